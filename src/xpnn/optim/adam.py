"""``Adam`` and ``AdamW``, as ``torch.optim.Adam`` and ``torch.optim.AdamW``."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._compat import Array, Namespace, is_writeable
from .._compat import device as device_of
from ..layers import Module
from ._base import Optimizer, check_at_least, check_bool, check_real, scale_add

__all__ = ["Adam", "AdamW"]


def _by_parts(xp: Namespace, f: Callable[..., Array], *arrays: Array) -> Array:
    """Apply a real elementwise ``f`` to complex arrays part by part.

    For complex arrays, ``f`` runs on the real parts and on the imaginary
    parts separately, and the results become the real and imaginary parts of
    the answer: PyTorch's Adam treats a complex parameter as its real view,
    a pair of real numbers per element. Real arrays go to ``f`` directly.
    """
    dtype = arrays[0].dtype
    if not xp.isdtype(dtype, "complex floating"):
        return f(*arrays)
    real = f(*(xp.real(a) for a in arrays))
    imag = f(*(xp.imag(a) for a in arrays))
    return xp.astype(real, dtype) + xp.astype(imag, dtype) * 1j


def _square(g: Array) -> Array:
    return g * g


def store(x: Array, new: Array) -> Array:
    """Write ``new`` into ``x`` where ``x`` may be written; else return ``new``.

    For updates that are not affine (a running maximum), which
    :func:`~xpnn.optim._base.scale_add` cannot express.
    """
    if is_writeable(x):
        x[...] = new
        return x
    return new


def _check_betas(value: object) -> tuple[float, float]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 2:
        raise TypeError(
            f"betas must be a pair of numbers (beta1, beta2), got {type(value).__name__} {value!r}"
        )
    betas = []
    for index, beta in enumerate(value):
        number = check_real(f"betas[{index}]", beta)
        if not 0.0 <= number < 1.0:
            raise ValueError(f"betas[{index}] must be in [0, 1), got {number!r}")
        betas.append(number)
    return betas[0], betas[1]


class Adam(Optimizer):
    r"""Adam, with the L2 penalty added to the gradient, as ``torch.optim.Adam``.

    At step :math:`t` (counted per parameter from 1), with gradient
    :math:`g` of parameter :math:`p`:

    .. math::

        g &\leftarrow g + \lambda p \\
        m &\leftarrow \beta_1 m + (1 - \beta_1) g \\
        v &\leftarrow \beta_2 v + (1 - \beta_2) g^2 \\
        p &\leftarrow p - \frac{\eta}{1 - \beta_1^t}
              \, \frac{m}{\sqrt{v} / \sqrt{1 - \beta_2^t} + \epsilon}

    With ``maximize=True`` the gradient's sign is flipped first
    (:math:`g \leftarrow -g`). With ``amsgrad=True`` the running maximum
    :math:`\hat v \leftarrow \max(\hat v, v)` (``max_exp_avg_sq``, from 0)
    replaces :math:`v` in the denominator.

    Parameters
    ----------
    model : Module
        The model to optimise (:class:`~xpnn.Linear`, ``Sequential``, ...).
        Its parameters and gradients are read by name at every step.
    lr : float, default 1e-3
        Learning rate :math:`\eta`, at least 0.
    betas : tuple of two floats, default (0.9, 0.999)
        Decay rates :math:`\beta_1, \beta_2` of the moment estimates, each
        in :math:`[0, 1)`.
    eps : float, default 1e-8
        :math:`\epsilon`, added to the denominator, at least 0.
    weight_decay : float, default 0.0
        L2 penalty :math:`\lambda` added to the gradient, at least 0. For
        decoupled weight decay use :class:`AdamW`.
    amsgrad : bool, default False
        Divide by the running maximum of the second moment (AMSGrad).
    maximize : bool, default False
        Maximise the objective: the gradient's sign is flipped first.

    Raises
    ------
    TypeError
        If ``model`` is not an xpnn Module, a setting is not a number (or
        ``betas`` not a pair of numbers), or ``amsgrad`` or ``maximize`` is
        not a bool.
    ValueError
        If a setting is out of range.

    See Also
    --------
    AdamW, SGD

    Notes
    -----
    The state of each parameter is its step count and the moment estimates
    ``exp_avg`` (:math:`m`), ``exp_avg_sq`` (:math:`v`) and, with
    ``amsgrad=True``, ``max_exp_avg_sq`` (:math:`\hat v`; ``None`` without
    it), arrays of the
    parameter's shape, dtype, library and device, updated in place where the
    library allows it. As in PyTorch, a complex parameter is treated as a
    pair of real numbers per element: :math:`g^2` and the division act on
    real and imaginary parts separately.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn import Linear
    >>> from xpnn.optim import Adam
    >>> layer = Linear(3, 2, seed=0)
    >>> optimizer = Adam(layer, lr=1e-2)
    >>> layer.grads["weight"] = np.ones((3, 2))
    >>> optimizer.step()  # the bias has no gradient and is left alone
    >>> sorted(k for k, v in optimizer.state_dict()["state"].items() if v["step"])
    ['weight']
    """

    buffer_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _added_hyperparameters = (("amsgrad", False), ("maximize", False))
    #: Whether weight decay shrinks the parameter (AdamW) instead of adding
    #: to the gradient (Adam).
    _decoupled = False

    def __init__(
        self,
        model: Module,
        *,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            model,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
        )

    @classmethod
    def _check_hyperparameters(cls, values: Mapping[str, object]) -> dict[str, Any]:
        return {
            "lr": check_at_least("lr", values["lr"], 0.0),
            "betas": _check_betas(values["betas"]),
            "eps": check_at_least("eps", values["eps"], 0.0),
            "weight_decay": check_at_least("weight_decay", values["weight_decay"], 0.0),
            "amsgrad": check_bool("amsgrad", values["amsgrad"]),
            "maximize": check_bool("maximize", values["maximize"]),
        }

    def _required_buffers(self, hyper: Mapping[str, Any], step: int) -> tuple[str, ...]:
        if step == 0:
            return ()
        return self.buffer_names if hyper["amsgrad"] else ("exp_avg", "exp_avg_sq")

    def _update(
        self, xp: Namespace, param: Array, grad: Array, entry: dict[str, Any], step: int
    ) -> tuple[float, Array]:
        lr = self._hyper["lr"]
        beta1, beta2 = self._hyper["betas"]
        eps = self._hyper["eps"]
        weight_decay = self._hyper["weight_decay"]
        if self._hyper["maximize"]:
            grad = -grad
        scale = 1.0
        if weight_decay != 0:
            if self._decoupled:
                scale = 1 - lr * weight_decay
            else:
                grad = grad + weight_decay * param
        exp_avg, exp_avg_sq = entry["exp_avg"], entry["exp_avg_sq"]
        if exp_avg is None:
            exp_avg = xp.zeros_like(param, device=device_of(param))
            exp_avg_sq = xp.zeros_like(param, device=device_of(param))
        exp_avg = scale_add(exp_avg, beta1, (1 - beta1) * grad)
        exp_avg_sq = scale_add(exp_avg_sq, beta2, (1 - beta2) * _by_parts(xp, _square, grad))
        entry["exp_avg"], entry["exp_avg_sq"] = exp_avg, exp_avg_sq
        second = exp_avg_sq
        if self._hyper["amsgrad"]:
            maximum = entry["max_exp_avg_sq"]
            if maximum is None:
                maximum = xp.zeros_like(param, device=device_of(param))
            second = store(maximum, _by_parts(xp, xp.maximum, maximum, exp_avg_sq))
            entry["max_exp_avg_sq"] = second
        step_size = lr / (1 - beta1**step)
        correction2 = 1 - beta2**step
        # The count is a Python int in eager steps, a 0-d array in a traced
        # step (xpnn.interop's TrainStep), which math.sqrt would concretize.
        correction2_sqrt = (
            math.sqrt(correction2) if isinstance(correction2, float) else correction2**0.5
        )

        def direction(m: Array, v: Array) -> Array:
            return m / (xp.sqrt(v) / correction2_sqrt + eps)

        return scale, _by_parts(xp, direction, exp_avg, second) * -step_size


class AdamW(Adam):
    r"""Adam with decoupled weight decay, as ``torch.optim.AdamW``.

    The same update as :class:`Adam`, except that the weight decay shrinks
    the parameter instead of entering the gradient and the moments:

    .. math::

        p \leftarrow (1 - \eta \lambda)\, p - \frac{\eta}{1 - \beta_1^t}
              \, \frac{m}{\sqrt{v} / \sqrt{1 - \beta_2^t} + \epsilon}

    with :math:`m` and :math:`v` updated from the raw gradient (negated with
    ``maximize=True``); ``amsgrad`` as in :class:`Adam`.

    Parameters
    ----------
    model : Module
        The model to optimise (:class:`~xpnn.Linear`, ``Sequential``, ...).
    lr : float, default 1e-3
        Learning rate :math:`\eta`, at least 0.
    betas : tuple of two floats, default (0.9, 0.999)
        Decay rates of the moment estimates, each in :math:`[0, 1)`.
    eps : float, default 1e-8
        Added to the denominator, at least 0.
    weight_decay : float, default 1e-2
        Decoupled weight decay :math:`\lambda`, at least 0.
    amsgrad : bool, default False
        Divide by the running maximum of the second moment (AMSGrad).
    maximize : bool, default False
        Maximise the objective: the gradient's sign is flipped first.

    Raises
    ------
    TypeError
        If ``model`` is not an xpnn Module, a setting is not a number, or
        ``amsgrad`` or ``maximize`` is not a bool.
    ValueError
        If a setting is out of range.

    See Also
    --------
    Adam, SGD
    """

    _decoupled = True

    def __init__(
        self,
        model: Module,
        *,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            model,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
        )

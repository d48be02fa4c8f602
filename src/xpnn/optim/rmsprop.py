"""``RMSprop``, as ``torch.optim.RMSprop``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._compat import Array, Namespace
from .._compat import device as device_of
from ..layers import Module
from ._base import Optimizer, check_at_least, check_bool, scale_add
from .adam import _by_parts, _square

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""RMSprop, as ``torch.optim.RMSprop``.

    With gradient :math:`g` of parameter :math:`p`:

    .. math::

        g &\leftarrow -g \quad \text{(only with maximize=True)} \\
        g &\leftarrow g + \lambda p \\
        v &\leftarrow \alpha v + (1 - \alpha) g^2 \\
        \bar g &\leftarrow \alpha \bar g + (1 - \alpha) g
            \quad \text{(only with centered=True)} \\
        d &= \sqrt{v - \bar g^2} + \epsilon \text{ (centered) or } \sqrt{v} + \epsilon \\
        b &\leftarrow \mu b + g / d \\
        p &\leftarrow p - \eta b \quad (p \leftarrow p - \eta\, g / d \text{ if } \mu = 0)

    with learning rate :math:`\eta`, smoothing constant :math:`\alpha`,
    momentum :math:`\mu` and weight decay :math:`\lambda`; :math:`v`,
    :math:`\bar g` and :math:`b` start at 0.

    Parameters
    ----------
    model : Module
        The model to optimise (:class:`~xpnn.Linear`, ``Sequential``, ...).
        Its parameters and gradients are read by name at every step.
    lr : float, default 1e-2
        Learning rate :math:`\eta`, at least 0.
    alpha : float, default 0.99
        Smoothing constant :math:`\alpha`, at least 0.
    eps : float, default 1e-8
        :math:`\epsilon`, added to the denominator, at least 0.
    weight_decay : float, default 0.0
        L2 penalty :math:`\lambda` added to the gradient, at least 0.
    momentum : float, default 0.0
        Momentum factor :math:`\mu`, at least 0.
    centered : bool, default False
        Normalise by an estimate of the gradient's variance instead of its
        second moment.
    maximize : bool, default False
        Maximise the objective: the gradient's sign is flipped first.

    Raises
    ------
    TypeError
        If ``model`` is not an xpnn Module, a number is not a real number, or
        ``centered`` or ``maximize`` is not a bool.
    ValueError
        If a number is negative, infinite or ``nan``.

    See Also
    --------
    Adagrad, Adam, SGD

    Notes
    -----
    The state of each parameter is its step count, ``square_avg``
    (:math:`v`), ``momentum_buffer`` (:math:`b`, ``None`` when
    :math:`\mu = 0`) and ``grad_avg`` (:math:`\bar g`, ``None`` unless
    centered). As in PyTorch, a complex parameter is a pair of real numbers
    per element.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn import Linear
    >>> from xpnn.optim import RMSprop
    >>> layer = Linear(3, 2, seed=0)
    >>> optimizer = RMSprop(layer, lr=0.01, momentum=0.9, centered=True)
    >>> layer.grads["weight"] = np.ones((3, 2))
    >>> optimizer.step()
    >>> sorted(optimizer.state_dict()["state"]["weight"])
    ['grad_avg', 'momentum_buffer', 'square_avg', 'step']
    """

    buffer_names = ("square_avg", "momentum_buffer", "grad_avg")

    def __init__(
        self,
        model: Module,
        *,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            model,
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
            maximize=maximize,
        )

    @classmethod
    def _check_hyperparameters(cls, values: Mapping[str, object]) -> dict[str, Any]:
        return {
            "lr": check_at_least("lr", values["lr"], 0.0),
            "alpha": check_at_least("alpha", values["alpha"], 0.0),
            "eps": check_at_least("eps", values["eps"], 0.0),
            "weight_decay": check_at_least("weight_decay", values["weight_decay"], 0.0),
            "momentum": check_at_least("momentum", values["momentum"], 0.0),
            "centered": check_bool("centered", values["centered"]),
            "maximize": check_bool("maximize", values["maximize"]),
        }

    def _required_buffers(self, hyper: Mapping[str, Any], step: int) -> tuple[str, ...]:
        if step == 0:
            return ()
        required = ["square_avg"]
        if hyper["momentum"] > 0:
            required.append("momentum_buffer")
        if hyper["centered"]:
            required.append("grad_avg")
        return tuple(required)

    def _update(
        self, xp: Namespace, param: Array, grad: Array, entry: dict[str, Any], step: int
    ) -> tuple[float, Array]:
        hyper = self._hyper
        lr, alpha, eps = hyper["lr"], hyper["alpha"], hyper["eps"]
        momentum, weight_decay = hyper["momentum"], hyper["weight_decay"]
        if hyper["maximize"]:
            grad = -grad
        if weight_decay != 0:
            grad = grad + weight_decay * param
        square_avg = entry["square_avg"]
        if square_avg is None:
            square_avg = xp.zeros_like(param, device=device_of(param))
        square_avg = scale_add(square_avg, alpha, (1 - alpha) * _by_parts(xp, _square, grad))
        entry["square_avg"] = square_avg
        if hyper["centered"]:
            grad_avg = entry["grad_avg"]
            if grad_avg is None:
                grad_avg = xp.zeros_like(param, device=device_of(param))
            grad_avg = scale_add(grad_avg, alpha, (1 - alpha) * grad)
            entry["grad_avg"] = grad_avg

            def normalised(g: Array, v: Array, m: Array) -> Array:
                return g / (xp.sqrt(v - m * m) + eps)

            direction = _by_parts(xp, normalised, grad, square_avg, grad_avg)
        else:

            def plain(g: Array, v: Array) -> Array:
                return g / (xp.sqrt(v) + eps)

            direction = _by_parts(xp, plain, grad, square_avg)
        if momentum > 0:
            buffer = entry["momentum_buffer"]
            if buffer is None:
                buffer = xp.zeros_like(param, device=device_of(param))
            buffer = scale_add(buffer, momentum, direction)
            entry["momentum_buffer"] = buffer
            direction = buffer
        return 1.0, direction * -lr

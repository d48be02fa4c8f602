"""``SGD``: stochastic gradient descent with momentum, as ``torch.optim.SGD``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._compat import Array, Namespace
from .._compat import device as device_of
from ..layers import Module
from ._base import Optimizer, check_at_least, check_bool, scale_add

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent, with optional momentum and weight decay.

    The update of each parameter :math:`p` with gradient :math:`g` is that of
    ``torch.optim.SGD``:

    .. math::

        g &\leftarrow -g \quad \text{(only with maximize=True)} \\
        g &\leftarrow g + \lambda p \\
        b &\leftarrow \mu b + (1 - \tau) g \quad (b = g \text{ at the first step}) \\
        d &= g + \mu b \text{ (Nesterov) or } b \\
        p &\leftarrow p - \eta d

    with learning rate :math:`\eta`, momentum :math:`\mu`, dampening
    :math:`\tau` and weight decay :math:`\lambda`. Without momentum, no
    buffer is kept and :math:`d = g`.

    Parameters
    ----------
    model : Module
        The model to optimise (:class:`~xpnn.Linear`, ``Sequential``, ...).
        Its parameters and gradients are read by name at every step.
    lr : float
        Learning rate :math:`\eta`, at least 0.
    momentum : float, default 0.0
        Momentum factor :math:`\mu`, at least 0.
    dampening : float, default 0.0
        Dampening :math:`\tau` of the momentum, at least 0.
    weight_decay : float, default 0.0
        L2 penalty :math:`\lambda` added to the gradient, at least 0.
    nesterov : bool, default False
        Use Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``.
    maximize : bool, default False
        Maximise the objective: the gradient's sign is flipped first.

    Raises
    ------
    TypeError
        If ``model`` is not an xpnn Module, a number is not a real number, or
        ``nesterov`` or ``maximize`` is not a bool.
    ValueError
        If a number is out of range, or ``nesterov=True`` without momentum
        or with dampening.

    See Also
    --------
    Adam, AdamW

    Notes
    -----
    Parameters that may be written (NumPy, PyTorch, CuPy, array_api_strict)
    and the momentum buffers are updated in place; JAX, read-only and Dask
    parameters get new arrays, written back into the module that holds them.
    The state of each parameter is its step count and ``momentum_buffer``.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn import Linear
    >>> from xpnn.optim import SGD
    >>> layer = Linear(3, 2, seed=0)
    >>> optimizer = SGD(layer, lr=0.1, momentum=0.9)
    >>> x = np.ones((4, 3))
    >>> def loss():
    ...     return float(0.5 * np.sum(layer(x) ** 2))
    >>> start = loss()
    >>> weight = layer.weight
    >>> for _ in range(5):
    ...     y, backward = layer.forward(x)
    ...     _ = backward(y)  # the gradient of the loss with respect to y is y
    ...     optimizer.step()
    ...     optimizer.zero_grad()
    >>> loss() < start
    True
    >>> layer.weight is weight  # NumPy parameters are updated in place
    True
    >>> optimizer.state_dict()["state"]["weight"]["step"]
    5
    """

    buffer_names = ("momentum_buffer",)
    _added_hyperparameters = (("maximize", False),)

    def __init__(
        self,
        model: Module,
        *,
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            model,
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
        )

    @classmethod
    def _check_hyperparameters(cls, values: Mapping[str, object]) -> dict[str, Any]:
        checked: dict[str, Any] = {
            "lr": check_at_least("lr", values["lr"], 0.0),
            "momentum": check_at_least("momentum", values["momentum"], 0.0),
            "dampening": check_at_least("dampening", values["dampening"], 0.0),
            "weight_decay": check_at_least("weight_decay", values["weight_decay"], 0.0),
            "nesterov": check_bool("nesterov", values["nesterov"]),
            "maximize": check_bool("maximize", values["maximize"]),
        }
        if checked["nesterov"] and (checked["momentum"] <= 0 or checked["dampening"] != 0):
            raise ValueError(
                f"nesterov=True requires momentum > 0 and dampening == 0, got "
                f"momentum={checked['momentum']!r}, dampening={checked['dampening']!r}"
            )
        return checked

    def _required_buffers(self, hyper: Mapping[str, Any], step: int) -> tuple[str, ...]:
        return self.buffer_names if step > 0 and hyper["momentum"] != 0 else ()

    def _plain_factor(self) -> float | None:
        hyper = self._hyper
        if hyper["momentum"] or hyper["weight_decay"] or hyper["maximize"]:
            return None
        return -float(hyper["lr"])

    def _update(
        self, xp: Namespace, param: Array, grad: Array, entry: dict[str, Any], step: int
    ) -> tuple[float, Array]:
        hyper = self._hyper
        lr, momentum, weight_decay = hyper["lr"], hyper["momentum"], hyper["weight_decay"]
        if hyper["maximize"]:
            grad = -grad
        if weight_decay != 0:
            grad = grad + weight_decay * param
        if momentum != 0:
            buffer = entry["momentum_buffer"]
            if buffer is None:
                # A copy: the buffer may later be updated in place.
                buffer = xp.asarray(grad, copy=True, device=device_of(grad))
            else:
                buffer = scale_add(buffer, momentum, (1 - hyper["dampening"]) * grad)
            entry["momentum_buffer"] = buffer
            grad = grad + momentum * buffer if hyper["nesterov"] else buffer
        return 1.0, grad * self._scalar(xp, -lr, grad)

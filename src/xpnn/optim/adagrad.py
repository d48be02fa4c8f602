"""``Adagrad``, as ``torch.optim.Adagrad``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._compat import Array, Namespace
from .._compat import device as device_of
from ..layers import Module
from ._base import Optimizer, check_at_least, check_bool, scale_add
from .adam import _by_parts, _square

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    r"""Adagrad, as ``torch.optim.Adagrad``.

    At step :math:`t` (counted per parameter from 1), with gradient
    :math:`g` of parameter :math:`p`:

    .. math::

        g &\leftarrow -g \quad \text{(only with maximize=True)} \\
        g &\leftarrow g + \lambda p \\
        \tilde\eta &= \eta / (1 + (t - 1) \delta) \\
        s &\leftarrow s + g^2 \quad (s = s_0 \text{ before the first step}) \\
        p &\leftarrow p - \tilde\eta\, g / (\sqrt{s} + \epsilon)

    with learning rate :math:`\eta`, learning-rate decay :math:`\delta`,
    weight decay :math:`\lambda` and initial accumulator value :math:`s_0`.

    Parameters
    ----------
    model : Module
        The model to optimise (:class:`~xpnn.Linear`, ``Sequential``, ...).
        Its parameters and gradients are read by name at every step.
    lr : float, default 1e-2
        Learning rate :math:`\eta`, at least 0.
    lr_decay : float, default 0.0
        Learning-rate decay :math:`\delta`, at least 0.
    weight_decay : float, default 0.0
        L2 penalty :math:`\lambda` added to the gradient, at least 0.
    initial_accumulator_value : float, default 0.0
        :math:`s_0`, the accumulator's starting value, at least 0.
    eps : float, default 1e-10
        :math:`\epsilon`, added to the denominator, at least 0.
    maximize : bool, default False
        Maximise the objective: the gradient's sign is flipped first.

    Raises
    ------
    TypeError
        If ``model`` is not an xpnn Module, a number is not a real number, or
        ``maximize`` is not a bool.
    ValueError
        If a number is negative, infinite or ``nan``.

    See Also
    --------
    RMSprop, Adam, SGD

    Notes
    -----
    The state of each parameter is its step count and ``sum`` (:math:`s`),
    ``None`` until the parameter's first update (PyTorch fills it at
    construction; the values are the same). As in PyTorch, a complex
    parameter is a pair of real numbers per element, and its accumulator
    starts at :math:`s_0 + s_0 i`.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn import Linear
    >>> from xpnn.optim import Adagrad
    >>> layer = Linear(3, 2, seed=0)
    >>> optimizer = Adagrad(layer, lr=0.1, initial_accumulator_value=0.5)
    >>> layer.grads["weight"] = np.ones((3, 2))
    >>> optimizer.step()
    >>> optimizer.state_dict()["state"]["weight"]["sum"][0, 0].item()
    1.5
    """

    buffer_names = ("sum",)

    def __init__(
        self,
        model: Module,
        *,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            model,
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
            maximize=maximize,
        )

    @classmethod
    def _check_hyperparameters(cls, values: Mapping[str, object]) -> dict[str, Any]:
        return {
            "lr": check_at_least("lr", values["lr"], 0.0),
            "lr_decay": check_at_least("lr_decay", values["lr_decay"], 0.0),
            "weight_decay": check_at_least("weight_decay", values["weight_decay"], 0.0),
            "initial_accumulator_value": check_at_least(
                "initial_accumulator_value", values["initial_accumulator_value"], 0.0
            ),
            "eps": check_at_least("eps", values["eps"], 0.0),
            "maximize": check_bool("maximize", values["maximize"]),
        }

    def _update(
        self, xp: Namespace, param: Array, grad: Array, entry: dict[str, Any], step: int
    ) -> tuple[float, Array]:
        hyper = self._hyper
        lr, lr_decay, eps = hyper["lr"], hyper["lr_decay"], hyper["eps"]
        if hyper["maximize"]:
            grad = -grad
        if hyper["weight_decay"] != 0:
            grad = grad + hyper["weight_decay"] * param
        # The count is a Python int in eager steps, a 0-d array in a traced step.
        clr = lr / (1 + (step - 1) * lr_decay) if lr_decay != 0 else lr
        accumulator = entry["sum"]
        if accumulator is None:
            start = hyper["initial_accumulator_value"]
            value = complex(start, start) if xp.isdtype(param.dtype, "complex floating") else start
            accumulator = xp.full(
                tuple(param.shape), value, dtype=param.dtype, device=device_of(param)
            )
        accumulator = scale_add(accumulator, 1.0, _by_parts(xp, _square, grad))
        entry["sum"] = accumulator

        def direction(g: Array, s: Array) -> Array:
            return g / (xp.sqrt(s) + eps)

        return 1.0, _by_parts(xp, direction, grad, accumulator) * -clr

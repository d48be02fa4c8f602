"""Loss objects for training loops, over :mod:`xpnn.functional.losses`.

A loss object holds its ``reduction`` and nothing else: calling it,
``loss_fn(input, target)``, returns ``(loss, grad)`` from the functional
form, and ``grad`` is what the model's backward pass takes next.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._checks import CheckBoundary, Checked
from ._compat import Array
from .functional.losses import (
    binary_cross_entropy_with_logits,
    check_cross_entropy,
    check_elementwise_loss,
    check_reduction,
    mse_loss,
    softmax_cross_entropy,
)

__all__ = ["BCEWithLogitsLoss", "CrossEntropyLoss", "Loss", "MSELoss"]


class Loss:
    """Base class of the loss objects: a read-only ``reduction`` and checks once per kind.

    Subclasses name their function of :mod:`xpnn.functional.losses` and its
    check (``_function``, ``_check``); the inputs are checked once per kind
    (``xpnn._checks``), then the function runs unchecked.
    """

    __slots__ = ("_checks", "_reduction")

    _function: Callable[..., tuple[Array, Array]]

    def __init__(self, reduction: str = "mean") -> None:
        self._reduction = check_reduction(reduction)
        self._checks = CheckBoundary()

    @property
    def reduction(self) -> str:
        """How the terms are combined: ``'mean'`` or ``'sum'``."""
        return self._reduction

    def _check(self, input: Array, target: Array) -> Checked:
        raise NotImplementedError

    def _options(self) -> dict[str, Any]:
        return {}

    def __call__(self, input: Array, target: Array) -> tuple[Array, Array]:
        """Return ``(loss, grad)``: the 0-D loss and its gradient for ``input``."""
        checked = self._checks.check(self._check, input, target)
        return type(self)._function(
            input, target, reduction=self._reduction, checked=checked, **self._options()
        )

    def reset_checks(self) -> None:
        """Forget which kinds of input were checked; the next call checks again."""
        self._checks.reset()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reduction={self._reduction!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Loss) or type(other) is not type(self):
            return NotImplemented
        return self._reduction == other._reduction

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._reduction))


class MSELoss(Loss):
    """Mean squared error, :func:`xpnn.functional.losses.mse_loss`.

    Parameters
    ----------
    reduction : {'mean', 'sum'}, default 'mean'
        Average the squared errors over every element, or add them up.

    Raises
    ------
    ValueError
        For an unknown ``reduction``.

    Notes
    -----
    ``loss_fn(input, target)`` takes predictions and targets of one shape,
    both real floating, and returns ``(loss, dinput)`` with
    ``dinput = 2 * (input - target) / N``.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.losses import MSELoss
    >>> loss_fn = MSELoss()
    >>> loss_fn
    MSELoss(reduction='mean')
    >>> loss, grad = loss_fn(np.array([1.0, 2.0]), np.array([0.0, 0.0]))
    >>> loss, grad
    (array(2.5), array([1., 2.]))
    """

    __slots__ = ()

    _function = staticmethod(mse_loss)

    def _check(self, input: Array, target: Array) -> Checked:
        return check_elementwise_loss(input, target, "mse_loss")


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy with integer class labels.

    The functional form is :func:`xpnn.functional.losses.softmax_cross_entropy`.

    Parameters
    ----------
    reduction : {'mean', 'sum'}, default 'mean'
        Average the rows' losses, or add them up.

    Raises
    ------
    ValueError
        For an unknown ``reduction``.

    Notes
    -----
    ``loss_fn(input, target)`` takes logits of shape (..., C), classes on the
    last axis, and integer labels of shape ``input.shape[:-1]`` with values in
    ``[0, C)``, and returns ``(loss, dinput)`` with
    ``dinput = (softmax(input) - onehot(target)) / N``, ``N`` the number of
    rows.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.losses import CrossEntropyLoss
    >>> loss_fn = CrossEntropyLoss(reduction="sum")
    >>> loss_fn
    CrossEntropyLoss(reduction='sum')
    >>> loss, grad = loss_fn(np.zeros((3, 4)), np.array([0, 1, 3]))
    >>> loss  # 3 log(4)
    array(4.15888308)
    >>> grad[0]
    array([-0.75,  0.25,  0.25,  0.25])
    """

    __slots__ = ("check_labels",)

    _function = staticmethod(softmax_cross_entropy)

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__(reduction)
        #: Whether each call reads back whether every label is in range
        #: (eager arrays only). A compiled step that checked its labels
        #: eagerly before its body turns it off for the body's length
        #: (:class:`xpnn.interop.step.TrainStep`).
        self.check_labels = True

    def _check(self, input: Array, target: Array) -> Checked:
        return check_cross_entropy(input, target, self._reduction)

    def _options(self) -> dict[str, Any]:
        return {"check_labels": self.check_labels}


class BCEWithLogitsLoss(Loss):
    """Binary cross-entropy on logits, stable for logits of any size.

    The functional form is
    :func:`xpnn.functional.losses.binary_cross_entropy_with_logits`.

    Parameters
    ----------
    reduction : {'mean', 'sum'}, default 'mean'
        Average the elements' losses, or add them up.

    Raises
    ------
    ValueError
        For an unknown ``reduction``.

    Notes
    -----
    ``loss_fn(input, target)`` takes logits and targets in ``[0, 1]`` of one
    shape, both real floating, and returns ``(loss, dinput)`` with
    ``dinput = (sigmoid(input) - target) / N``.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.losses import BCEWithLogitsLoss
    >>> loss_fn = BCEWithLogitsLoss()
    >>> loss_fn
    BCEWithLogitsLoss(reduction='mean')
    >>> loss, grad = loss_fn(np.array([0.0, 0.0]), np.array([1.0, 0.0]))
    >>> loss, grad  # log(2); (0.5 - t) / 2
    (array(0.69314718), array([-0.25,  0.25]))
    """

    __slots__ = ()

    _function = staticmethod(binary_cross_entropy_with_logits)

    def _check(self, input: Array, target: Array) -> Checked:
        return check_elementwise_loss(
            input, target, "binary_cross_entropy_with_logits", ("logits", "targets")
        )

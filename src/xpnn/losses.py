"""Loss objects for training loops, over :mod:`xpnn.functional.losses`.

A loss object holds its ``reduction`` and nothing else: calling it,
``loss_fn(input, target)``, returns ``(loss, grad)`` from the functional
form, and ``grad`` is what the model's backward pass takes next.
"""

from __future__ import annotations

from collections.abc import Callable

from ._compat import Array, Namespace, array_kind
from .functional.losses import (
    _check_cross_entropy,
    _check_reduction,
    _cross_entropy_constants,
    _cross_entropy_kernel,
    _CrossEntropyConstants,
    binary_cross_entropy_with_logits,
    mse_loss,
    softmax_cross_entropy,
)

__all__ = ["BCEWithLogitsLoss", "CrossEntropyLoss", "MSELoss"]

_LossFunction = Callable[..., tuple[Array, Array]]


class _Loss:
    """Shared behaviour: a validated, read-only ``reduction`` and a repr."""

    __slots__ = ("_reduction",)

    def __init__(self, reduction: str = "mean") -> None:
        self._reduction = _check_reduction(reduction)

    @property
    def reduction(self) -> str:
        """How the terms are combined: ``'mean'`` or ``'sum'``."""
        return self._reduction

    def _function(self) -> _LossFunction:
        raise NotImplementedError

    def __call__(self, input: Array, target: Array) -> tuple[Array, Array]:
        """Return ``(loss, grad)``: the 0-D loss and its gradient for ``input``."""
        return self._function()(input, target, reduction=self._reduction)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reduction={self._reduction!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Loss) or type(other) is not type(self):
            return NotImplemented
        return self._reduction == other._reduction

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._reduction))


class MSELoss(_Loss):
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

    def _function(self) -> _LossFunction:
        return mse_loss


class CrossEntropyLoss(_Loss):
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

    __slots__ = ("_check_labels", "_memo")

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self._memo: tuple[object, Namespace, int, _CrossEntropyConstants] | None = None
        # Off only for the length of a compiled step that checked its labels
        # itself (xpnn.interop.step.TrainStep).
        self._check_labels = True

    def _function(self) -> _LossFunction:
        return softmax_cross_entropy

    def __call__(self, input: Array, target: Array) -> tuple[Array, Array]:
        """Return ``(loss, grad)``: the 0-D loss and its gradient for ``input``."""
        # Everything but the label values depends only on the kinds of the
        # two arrays (type, dtype, shape, device): check a kind once. The
        # label values are checked on every call, by the kernel.
        key = (array_kind(input), array_kind(target))
        memo = self._memo
        if memo is not None and memo[0] == key:
            xp, classes, constants = memo[1], memo[2], memo[3]
        else:
            xp, classes = _check_cross_entropy(input, target)
            constants = _cross_entropy_constants(xp, input, target, classes, self._reduction)
            self._memo = (key, xp, classes, constants)
        return _cross_entropy_kernel(
            xp,
            input,
            target,
            classes,
            self._reduction,
            constants=constants,
            check_labels=self._check_labels,
        )


class BCEWithLogitsLoss(_Loss):
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

    def _function(self) -> _LossFunction:
        return binary_cross_entropy_with_logits

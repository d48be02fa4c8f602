"""Loss functions: the loss and its gradient with respect to the input.

Each function returns ``(loss, grad)``: ``loss`` is a 0-D array, the mean
(``reduction="mean"``, the default) or the sum (``reduction="sum"``) of the
per-element or per-row losses, and ``grad`` is the gradient of ``loss`` with
respect to the first argument, of the same shape. The gradients, derived in
``docs/losses.md``, are::

    mse_loss                          2 (pred - target) / N
    softmax_cross_entropy             (softmax(logits) - onehot(labels)) / N
    binary_cross_entropy_with_logits  (sigmoid(logits) - targets) / N

where ``N`` is the number of terms averaged (1 for ``reduction="sum"``): the
number of elements for the two elementwise losses, the number of rows,
``prod(logits.shape[:-1])``, for cross-entropy. ``N`` comes from the static
shape, never from the data. The mean of no terms is NaN, as in PyTorch.
Every dimension must therefore be known: one of unknown size (a Dask array
after boolean indexing) raises ``ValueError`` before any arithmetic, for
both reductions, since the two arguments' shapes could not be checked to
agree either.

Mixed floating dtypes follow the standard's type promotion: the loss has
``result_type`` of the floating inputs, and the gradient has the dtype of
the array it belongs to, as in ``torch.autograd``. The losses are defined for
real floating arrays only.

Every function checks its inputs (:func:`check_elementwise_loss`,
:func:`check_cross_entropy`) unless it is given what the check returned,
``checked=``: the loss objects of :mod:`xpnn.losses` check each kind of
input once and then call these same functions.
"""

from __future__ import annotations

import math

from .._checks import Checked, check_known_shape, check_real_floating, check_same_device, shape_str
from .._compat import Array, array_namespace, device
from ._dtypes import as_dtype
from ._reduction import REDUCTIONS, check_reduction, reduce_terms, scale_gradient
from .cross_entropy import (
    CrossEntropyConstants,
    check_cross_entropy,
    check_label_values,
    check_nll_loss,
    nll_loss,
    softmax_cross_entropy,
)

__all__ = [
    "REDUCTIONS",
    "CrossEntropyConstants",
    "binary_cross_entropy_with_logits",
    "check_cross_entropy",
    "check_elementwise_loss",
    "check_label_values",
    "check_nll_loss",
    "check_reduction",
    "mse_loss",
    "nll_loss",
    "softmax_cross_entropy",
]


def check_elementwise_loss(
    first: Array, second: Array, what: str, names: tuple[str, str] = ("pred", "target")
) -> Checked:
    """Check the two arguments of an elementwise loss (:func:`mse_loss`, ...).

    Both real floating, of one library, device and known shape. The result
    holds the namespace, ``result_type`` of the two, and ``constants``, the
    number of elements.

    Raises
    ------
    TypeError
        For arrays that are not real floating, or from different libraries.
    ValueError
        For arrays on different devices, or shapes that differ or are unknown.
    """
    first_name, second_name = names
    named = {first_name: first, second_name: second}
    xp = array_namespace(**named)
    check_real_floating(xp, what, **named)
    check_same_device(**named)
    shape = check_known_shape(first_name, first, "the loss")
    _check_same_shape(
        first_name, shape, second_name, check_known_shape(second_name, second, "the loss")
    )
    dtype = xp.result_type(first.dtype, second.dtype)
    return Checked(
        xp=xp,
        dtype=dtype,
        same_real_dtype=first.dtype == second.dtype,
        constants=math.prod(shape),
    )


def _check_same_shape(
    first: str, first_shape: tuple[int, ...], second: str, second_shape: tuple[int, ...]
) -> None:
    if second_shape != first_shape:
        raise ValueError(
            f"{second} must have the shape of {first}, {shape_str(first_shape)}, "
            f"got {shape_str(second_shape)}"
        )


def mse_loss(
    pred: Array, target: Array, *, reduction: str = "mean", checked: Checked | None = None
) -> tuple[Array, Array]:
    """Return the mean squared error and its gradient with respect to ``pred``.

    ``loss = sum((pred - target) ** 2) / N`` with ``N`` the number of
    elements (``N = 1`` for ``reduction="sum"``), like
    ``torch.nn.functional.mse_loss``.

    Parameters
    ----------
    pred : array of shape (...)
        Predictions, real floating, any shape (a 0-D array included).
    target : array of shape (...)
        Targets, real floating, with the shape of ``pred``.
    reduction : {'mean', 'sum'}, default 'mean'
        Average the squared errors, or add them up.

    Returns
    -------
    loss : array of shape ()
        In the namespace and on the device of the inputs, with dtype
        ``result_type(pred, target)``. NaN for the mean of zero elements.
    dpred : array of shape pred.shape
        ``2 * (pred - target) / N``, in the dtype of ``pred``.

    Raises
    ------
    TypeError
        For arrays that are not real floating, or from different libraries.
    ValueError
        For an unknown ``reduction``, arrays on different devices, or shapes
        that differ.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.losses import mse_loss
    >>> loss, dpred = mse_loss(np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 0.0]))
    >>> loss
    array(4.33333333)
    >>> dpred
    array([0.        , 1.33333333, 2.        ])
    >>> mse_loss(np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 0.0]), reduction="sum")[0]
    array(13.)
    """
    reduction = check_reduction(reduction)
    checked = checked or check_elementwise_loss(pred, target, "mse_loss")
    xp, dtype, count = checked.xp, checked.dtype, checked.constants
    diff = as_dtype(xp, pred, dtype) - as_dtype(xp, target, dtype)
    loss = reduce_terms(xp, diff * diff, count, reduction, pred)
    dpred = as_dtype(xp, scale_gradient(2 * diff, count, reduction), pred.dtype)
    return loss, dpred


def binary_cross_entropy_with_logits(
    logits: Array, targets: Array, *, reduction: str = "mean", checked: Checked | None = None
) -> tuple[Array, Array]:
    """Return the binary cross-entropy of sigmoid(logits) and its gradient.

    Each element contributes ``-(t log(sigmoid(x)) + (1 - t) log(1 - sigmoid(x)))``
    for ``x = logits`` and ``t = targets``, computed in the stable form
    ``max(x, 0) - x t + log1p(exp(-|x|))``, which never overflows. The terms
    are averaged (``reduction="mean"``) or added up (``"sum"``), like
    ``torch.nn.functional.binary_cross_entropy_with_logits``.

    Parameters
    ----------
    logits : array of shape (...)
        Log-odds, real floating, any shape (a 0-D array included).
    targets : array of shape (...)
        Probabilities of the positive class, real floating, with the shape
        of ``logits``. Values are expected in ``[0, 1]`` and not checked.
    reduction : {'mean', 'sum'}, default 'mean'
        Average the elements' losses, or add them up.

    Returns
    -------
    loss : array of shape ()
        In the namespace and on the device of the inputs, with dtype
        ``result_type(logits, targets)``. NaN for the mean of zero
        elements.
    dlogits : array of shape logits.shape
        ``(sigmoid(logits) - targets) / N`` with ``N`` the number of elements
        (1 for ``reduction="sum"``), in the dtype of ``logits``.

    Raises
    ------
    TypeError
        For arrays that are not real floating, or from different libraries.
    ValueError
        For an unknown ``reduction``, arrays on different devices, or shapes
        that differ.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.losses import binary_cross_entropy_with_logits
    >>> loss, dlogits = binary_cross_entropy_with_logits(
    ...     np.array([0.0, 0.0, 1e4]), np.array([1.0, 0.5, 1.0])
    ... )
    >>> loss  # 2 log(2) / 3: the third element costs nothing
    array(0.46209812)
    >>> dlogits
    array([-0.16666667,  0.        ,  0.        ])
    """
    reduction = check_reduction(reduction)
    checked = checked or check_elementwise_loss(
        logits, targets, "binary_cross_entropy_with_logits", ("logits", "targets")
    )
    xp, dtype, count = checked.xp, checked.dtype, checked.constants
    x = as_dtype(xp, logits, dtype)
    t = as_dtype(xp, targets, dtype)
    small = xp.exp(-xp.abs(x))  # in (0, 1]: never overflows
    terms = xp.maximum(x, xp.zeros_like(x, device=device(x))) - x * t + xp.log1p(small)
    # sigmoid(x) = 1 / (1 + exp(-x)) for x >= 0 and exp(x) / (1 + exp(x)) for
    # x < 0; both written with exp(-|x|).
    inverse = 1 / (1 + small)
    sigmoid = xp.where(x >= 0, inverse, small * inverse)
    loss = reduce_terms(xp, terms, count, reduction, logits)
    dlogits = as_dtype(xp, scale_gradient(sigmoid - t, count, reduction), logits.dtype)
    return loss, dlogits

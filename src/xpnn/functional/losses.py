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
from typing import NamedTuple

from .._checks import Checked, check_known_shape, check_real_floating, check_same_device, shape_str
from .._compat import Array, Device, Namespace, array_namespace, device, is_lazy
from ._dtypes import as_dtype, broadcast_zero

__all__ = [
    "CrossEntropyConstants",
    "binary_cross_entropy_with_logits",
    "check_cross_entropy",
    "check_elementwise_loss",
    "check_label_values",
    "check_reduction",
    "mse_loss",
    "softmax_cross_entropy",
]

# The accepted values of ``reduction``.
_REDUCTIONS = ("mean", "sum")


def check_reduction(reduction: object) -> str:
    """Return ``reduction`` if it is ``'mean'`` or ``'sum'``.

    Raises
    ------
    ValueError
        For any other value; the message lists the choices.
    """
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        choices = ", ".join(repr(r) for r in _REDUCTIONS)
        raise ValueError(f"reduction must be one of {choices}, got {reduction!r}")
    return reduction


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


def _reduce(xp: Namespace, terms: Array, count: int, reduction: str, like: Array) -> Array:
    """Sum ``terms`` and divide by ``count`` for the mean; a 0-D array on ``like``'s device."""
    total = xp.sum(terms)
    if reduction == "mean":
        # The mean of nothing is NaN, as in PyTorch; multiplying the zero sum
        # by NaN gives it without a floating-point warning.
        total = total / count if count else total * math.nan
    # NumPy's reductions return scalars; make the loss a 0-D array everywhere
    # (the other libraries already hand back one).
    if type(total) is type(like):
        return total
    return xp.asarray(total, device=device(like))


def _scaled(grad: Array, count: int, reduction: str) -> Array:
    """Divide a summed loss's gradient by ``count`` for the mean."""
    return grad / count if reduction == "mean" and count else grad


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
    loss = _reduce(xp, diff * diff, count, reduction, pred)
    dpred = as_dtype(xp, _scaled(2 * diff, count, reduction), pred.dtype)
    return loss, dpred


def _raise_bad_label(xp: Namespace, labels: Array, classes: int) -> None:
    """Name the first label outside ``[0, classes)`` (called once one is known)."""
    low, high = int(xp.min(labels)), int(xp.max(labels))
    bad = low if low < 0 else high
    raise ValueError(
        f"labels must be class indices in [0, {classes}) for logits with "
        f"{classes} classes, got {bad}"
    )


def check_label_values(labels: Array, classes: int) -> None:
    """Raise ``ValueError`` unless every label is a class index in ``[0, classes)``.

    One number is read back, so it runs outside compiled regions: a
    compiled training step checks its labels with it, eagerly, and runs
    the loss with ``check_labels=False``, which would otherwise break its
    graph to read the number. Lazy labels (JAX, Dask) are not read; the
    loss gives NaN for their rows instead.
    """
    if is_lazy(labels):
        return
    xp = array_namespace(labels=labels)
    if bool(xp.any((labels < 0) | (labels >= classes))):
        _raise_bad_label(xp, labels, classes)


def softmax_cross_entropy(
    logits: Array,
    labels: Array,
    *,
    reduction: str = "mean",
    checked: Checked | None = None,
    check_labels: bool = True,
) -> tuple[Array, Array]:
    """Return the softmax cross-entropy and its gradient with respect to ``logits``.

    For each row ``z = logits[i, :]`` with class index ``y = labels[i]`` the
    loss is ``logsumexp(z) - z[y]``, computed with the row maximum
    subtracted so that no exponential overflows. The rows' losses are
    averaged (``reduction="mean"``) or added up (``"sum"``), like
    ``torch.nn.functional.cross_entropy`` with class indices.

    Parameters
    ----------
    logits : array of shape (..., C)
        Unnormalised log-probabilities, real floating, classes on the last
        axis (PyTorch puts them on axis 1 for more than two dimensions). A
        1-D array is a single row.
    labels : array of shape logits.shape[:-1]
        Class indices, of an integer dtype, in ``[0, C)``; 0-D for 1-D
        ``logits``.
    reduction : {'mean', 'sum'}, default 'mean'
        Average the rows' losses, or add them up.
    checked : Checked, optional
        What :func:`check_cross_entropy` returned for inputs of this kind
        and this reduction; the checks run when omitted.
    check_labels : bool, default True
        Whether to read back whether every label is in range (eager arrays
        only). A compiled step that checked its labels with
        :func:`check_label_values` before turns it off.

    Returns
    -------
    loss : array of shape ()
        In the namespace, on the device and with the dtype of ``logits``.
        NaN for the mean of zero rows.
    dlogits : array of shape logits.shape
        ``(softmax(logits) - onehot(labels)) / N`` with ``N`` the number of
        rows (1 for ``reduction="sum"``), in the dtype of ``logits``.

    Raises
    ------
    TypeError
        For ``logits`` that are not real floating, ``labels`` that are not
        integers, or arrays from different libraries.
    ValueError
        For an unknown ``reduction``, arrays on different devices, shapes
        that do not fit, or labels outside ``[0, C)``.

    Notes
    -----
    The label range is checked only for eager arrays (NumPy, PyTorch, CuPy,
    array_api_strict), which reads two numbers back from the device. For
    lazy arrays (JAX, Dask) the check is skipped so that nothing is
    computed behind the caller's back: instead a row whose label is out of
    range gets a NaN loss and a NaN gradient, so the mistake shows up in
    the result rather than passing silently.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.losses import softmax_cross_entropy
    >>> logits = np.array([[0.0, 0.0], [0.0, np.log(3.0)]])
    >>> loss, dlogits = softmax_cross_entropy(logits, np.array([0, 1]))
    >>> loss  # (log(2) + log(4/3)) / 2
    array(0.49041463)
    >>> dlogits
    array([[-0.25 ,  0.25 ],
           [ 0.125, -0.125]])
    """
    reduction = check_reduction(reduction)
    checked = checked or check_cross_entropy(logits, labels, reduction)
    return _cross_entropy(checked, logits, labels, reduction, check_labels)


def check_cross_entropy(logits: Array, labels: Array, reduction: str = "mean") -> Checked:
    """Check everything of :func:`softmax_cross_entropy`'s inputs but the label values.

    Returns
    -------
    Checked
        The namespace, the logits' dtype, and ``constants``, a
        :class:`CrossEntropyConstants` for this kind of input and
        ``reduction``.

    Raises
    ------
    TypeError
        For ``logits`` that are not real floating, ``labels`` that are not
        integers, or arrays from different libraries.
    ValueError
        For an unknown ``reduction``, arrays on different devices, or shapes
        that do not fit.
    """
    reduction = check_reduction(reduction)
    xp = array_namespace(logits=logits, labels=labels)
    check_real_floating(xp, "softmax_cross_entropy", logits=logits)
    if not xp.isdtype(labels.dtype, "integral"):
        raise TypeError(
            f"labels must be class indices of an integer dtype, got {labels.dtype}; "
            "convert them first, for example with xp.astype(labels, xp.int64)"
        )
    check_same_device(logits=logits, labels=labels)
    shape = check_known_shape("logits", logits, "the loss")
    if len(shape) < 1:
        raise ValueError(
            "logits must have shape (..., C) with classes on the last axis, got a "
            "0-d array; reshape a single row with xp.reshape(logits, (C,))"
        )
    classes = shape[-1]
    if classes < 1:
        raise ValueError(
            f"logits has shape {shape_str(shape)}: expected at least one class "
            "on the last axis, got 0"
        )
    label_shape = check_known_shape("labels", labels, "the loss")
    if label_shape != shape[:-1]:
        raise ValueError(
            f"labels must have shape {shape_str(shape[:-1])} (logits.shape[:-1]), "
            f"got {shape_str(label_shape)}"
        )
    where = device(logits)
    count = math.prod(shape[:-1])
    scale = None
    if reduction == "mean" and count:
        scale = xp.asarray(1.0 / count, dtype=logits.dtype, device=where)
    constants = CrossEntropyConstants(
        classes,
        count,
        _class_index(xp, labels, classes, where),
        broadcast_zero(xp, logits.dtype, logits),
        xp.ones((classes, 1), dtype=logits.dtype, device=where),
        scale,
        is_lazy(logits) or is_lazy(labels),
    )
    return Checked(xp=xp, dtype=logits.dtype, constants=constants)


def _class_index(xp: Namespace, labels: Array, classes: int, where: Device) -> Array:
    """Return ``arange(classes)`` in a dtype that labels compare with exactly."""
    index_dtype = labels.dtype
    if classes - 1 > xp.iinfo(index_dtype).max:
        # More classes than the labels' dtype can count: compare in the
        # device's default integer dtype instead.
        index_dtype = xp.__array_namespace_info__().default_dtypes(device=where)["integral"]
    return xp.arange(classes, dtype=index_dtype, device=where)


class CrossEntropyConstants(NamedTuple):
    """What :func:`softmax_cross_entropy` derives from the kinds of its inputs alone."""

    #: Classes, the size of the logits' last axis.
    classes: int
    #: Rows, the product of the other sizes.
    rows: int
    #: ``arange(classes)`` in a dtype the labels compare with exactly.
    class_index: Array
    #: A zero of the logits' dtype, of shape (1,).
    zero: Array
    #: A column of ones, shape (classes, 1), of the logits' dtype.
    ones: Array
    #: 1 / rows as a 0-d array of the logits' dtype, or None for a sum: on
    #: PyTorch, dividing by a Python number wraps it in a new tensor at every
    #: call, and that costs as much as the division.
    scale: Array | None
    #: Whether either input is lazy (JAX, Dask): then no label is read back,
    #: and a row with a label out of range gets NaN instead.
    lazy: bool


def _cross_entropy(
    checked: Checked, logits: Array, labels: Array, reduction: str, check_labels: bool
) -> tuple[Array, Array]:
    """Return the loss and gradient of checked inputs (see softmax_cross_entropy)."""
    xp = checked.xp
    classes, count, class_index, zero, ones, scale, lazy = checked.constants
    if count == 0:
        where = device(logits)
        # No rows: nothing to compute (and Dask cannot take the row maximum
        # of an array with zero rows).
        empty = xp.zeros_like(logits, device=where)
        return _reduce(xp, empty, 0, reduction, logits), empty
    onehot = as_dtype(xp, labels, class_index.dtype)[..., None] == class_index

    onehot_values = xp.astype(onehot, logits.dtype)
    if check_labels and not lazy and int(xp.count_nonzero(onehot)) != count:
        # A label in range matches exactly one class: fewer matches than
        # rows means a label outside [0, C). One number is read back.
        _raise_bad_label(xp, labels, classes)

    shifted = logits - xp.max(logits, axis=-1, keepdims=True)
    exps = xp.exp(shifted)
    # Row sums as a product with a column of ones: a reduction costs NumPy
    # three times as much at a training step's sizes.
    sums = exps @ ones
    grad = exps / sums - onehot_values
    # Each row's loss, logsumexp(z) - z[y] = log(sum(exps)) - (z[y] - max),
    # is put at its label's column and every other column gets 0: with
    # where, -inf logits of other classes stay harmless.
    terms = xp.where(onehot, xp.log(sums) - shifted, zero)
    if not lazy:
        # One reduction over every row and column gives the summed loss.
        loss = xp.sum(terms)
        if scale is not None:
            loss, grad = loss * scale, grad * scale
        if type(loss) is not type(logits):  # NumPy's reductions give scalars
            loss = xp.asarray(loss, device=device(logits))
        return loss, grad
    # A row whose label is out of range matches no class: it gets NaN.
    rows = xp.sum(terms, axis=-1)
    valid = xp.any(onehot, axis=-1)
    where = device(logits)
    rows = xp.where(valid, rows, xp.full_like(rows, math.nan, device=where))
    grad = xp.where(
        xp.expand_dims(valid, axis=-1), grad, xp.full_like(grad, math.nan, device=where)
    )
    return _reduce(xp, rows, count, reduction, logits), _scaled(grad, count, reduction)


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
    loss = _reduce(xp, terms, count, reduction, logits)
    dlogits = as_dtype(xp, _scaled(sigmoid - t, count, reduction), logits.dtype)
    return loss, dlogits

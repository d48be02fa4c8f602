"""Softmax cross-entropy and negative log-likelihood, with PyTorch's options.

Both losses are written as one weighted sum per row. With classes on the
last axis (after moving them there when ``axis`` names another one), row
``i`` of the input has a vector of class weights ``q[i, :]`` and

.. code-block:: text

    cross-entropy   loss[i] = -sum_c q[i, c] log_softmax(z[i])_c
                    dz[i]   = sum_c q[i, c] * softmax(z[i]) - q[i]
    nll             loss[i] = -sum_c q[i, c] x[i, c]
                    dx[i]   = -q[i]

Every option only changes ``q``, or the divisor of the mean:

- class indices ``y``: ``q[i] = onehot(y[i]) * weight``; a row whose label is
  ``ignore_index`` has ``q[i] = 0``;
- ``label_smoothing`` ``e``: ``q[i] = (1 - e) q[i] + e / C * weight`` for rows
  that are not ignored;
- class probabilities ``t`` (cross-entropy only): ``q = t' * weight`` with
  ``t' = (1 - e) t + e / C``;
- the mean divides by the sum of ``weight[y[i]]`` over rows not ignored
  (their number without ``weight``), and by the number of rows for class
  probabilities, as ``torch.nn.functional.cross_entropy`` does.

The derivation is in ``docs/losses.md``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .._checks import (
    Checked,
    check_known_shape,
    check_real_floating,
    check_same_device,
    shape_str,
)
from .._compat import Array, Device, Namespace, array_namespace, device, is_lazy
from ._dtypes import as_dtype, broadcast_zero
from ._reduction import check_reduction, reduce_terms, scale_gradient

__all__ = [
    "CrossEntropyConstants",
    "check_cross_entropy",
    "check_label_values",
    "check_nll_loss",
    "nll_loss",
    "softmax_cross_entropy",
]

#: PyTorch's default ``ignore_index``: no class index equals it.
IGNORE_INDEX = -100


class CrossEntropyConstants(NamedTuple):
    """What the checks of a cross-entropy or NLL loss derive from the kinds of its inputs."""

    #: Classes, the size of the class axis.
    classes: int
    #: Rows, the product of the other sizes.
    rows: int
    #: The permutation that moves the class axis last, or None where it is.
    permutation: tuple[int, ...] | None
    #: Its inverse, for the gradient.
    inverse: tuple[int, ...] | None
    #: ``arange(classes)`` in a dtype the labels compare with exactly; None
    #: for class probabilities.
    class_index: Array | None
    #: A zero of the input's dtype, of shape (1,).
    zero: Array
    #: A column of ones, shape (classes, 1), of the input's dtype.
    ones: Array
    #: 1 / rows as a 0-d array of the input's dtype, or None (no rows, or
    #: not a mean): on PyTorch, dividing by a Python number wraps it in a
    #: new tensor at every call, and that costs as much as the division.
    scale: Array | None
    #: Whether an input is lazy (JAX, Dask): then no label is read back,
    #: and a row with a label out of range gets NaN instead.
    lazy: bool
    #: Whether the target holds class probabilities rather than indices.
    probabilities: bool
    #: Whether ``ignore_index`` is a class index, whose rows must be masked.
    ignore_in_range: bool
    #: Whether every option is at its default (no weight, no smoothing):
    #: then ``q`` is the one-hot matrix itself.
    plain: bool
    #: For 2-D inputs reduced to a 0-d loss: a vector of shape (rows,) that
    #: weighs each row's term (``1 / rows`` for a mean, 1 for a sum), and
    #: one of ones, shape (classes,), so that the loss is two products,
    #: ``row_weights @ (terms @ class_ones)``. Else None.
    row_weights: Array | None = None
    class_ones: Array | None = None


def _raise_bad_label(xp: Namespace, labels: Array, classes: int, ignore_index: int) -> None:
    """Name the first label outside ``[0, classes)`` that is not ``ignore_index``."""
    outside = ((labels < 0) | (labels >= classes)) & (labels != ignore_index)
    bad = xp.where(outside, labels, xp.zeros_like(labels, device=device(labels)))
    low, high = int(xp.min(bad)), int(xp.max(bad))
    raise ValueError(
        f"labels must be class indices in [0, {classes}) for logits with "
        f"{classes} classes, or ignore_index ({ignore_index}), got "
        f"{low if low < 0 else high}"
    )


def check_label_values(labels: Array, classes: int, ignore_index: int = IGNORE_INDEX) -> None:
    """Raise ``ValueError`` unless every label is in ``[0, classes)`` or is ``ignore_index``.

    One number is read back, so it runs outside compiled regions: a
    compiled training step checks its labels with it, eagerly, and runs
    the loss with ``check_labels=False``, which would otherwise break its
    graph to read the number. Lazy labels (JAX, Dask) are not read; the
    loss gives NaN for their rows instead.
    """
    if is_lazy(labels):
        return
    xp = array_namespace(labels=labels)
    outside = ((labels < 0) | (labels >= classes)) & (labels != ignore_index)
    if bool(xp.any(outside)):
        _raise_bad_label(xp, labels, classes, ignore_index)


def softmax_cross_entropy(
    logits: Array,
    target: Array,
    *,
    weight: Array | None = None,
    ignore_index: int = IGNORE_INDEX,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    axis: int = -1,
    checked: Checked | None = None,
    check_labels: bool = True,
) -> tuple[Array, Array]:
    """Return the softmax cross-entropy and its gradient with respect to ``logits``.

    ``torch.nn.functional.cross_entropy`` with every option, except that the
    classes are on the **last** axis unless ``axis`` says otherwise: PyTorch
    puts them on axis 1 for inputs of two or more dimensions, which is
    ``axis=1`` here. For 1-D and 2-D logits the two agree.

    For each row ``z`` with class index ``y`` and no option set, the loss is
    ``logsumexp(z) - z[y]``, computed with the row maximum subtracted so that
    no exponential overflows.

    Parameters
    ----------
    logits : array of shape (..., C, ...)
        Unnormalised log-probabilities, real floating, classes on ``axis``. A
        1-D array is a single row: its only axis holds the classes,
        whatever ``axis`` says.
    target : array
        Either class indices, of an integer dtype, with the shape of
        ``logits`` without its class axis, in ``[0, C)`` or equal to
        ``ignore_index``; or class probabilities, real floating, with the
        shape of ``logits`` (cast to its dtype).
    weight : array of shape (C,), optional
        A weight per class, real floating, in the namespace and on the device
        of ``logits`` (cast to its dtype).
    ignore_index : int, default -100
        Rows with this label add nothing to the loss or the mean's divisor,
        and get a zero gradient. Class indices only, as in PyTorch.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        The weighted mean of the rows' losses (see the module notes), their
        sum, or the rows' losses themselves.
    label_smoothing : float, default 0.0
        In ``[0, 1]``: the target mixes ``1 - label_smoothing`` of itself
        with ``label_smoothing`` of the uniform distribution.
    axis : int, default -1
        The class axis of ``logits`` with two or more dimensions.
    checked : Checked, optional
        What :func:`check_cross_entropy` returned for inputs of this kind
        and these options; the checks run when omitted.
    check_labels : bool, default True
        Whether to read back whether every label is in range (eager arrays
        only). A compiled step that checked its labels with
        :func:`check_label_values` before turns it off.

    Returns
    -------
    loss : array
        0-D, or one loss per row (the shape of ``logits`` without the class
        axis) for ``reduction='none'``. In the namespace, on the device and
        with the dtype of ``logits``. NaN for the mean of zero rows.
    dlogits : array of shape logits.shape
        The gradient of the sum of the returned losses, in the dtype of
        ``logits``: ``(softmax(logits) - onehot(target)) / N`` with no option
        set, ``N`` the number of rows (1 unless ``reduction='mean'``).

    Raises
    ------
    TypeError
        For ``logits`` or ``weight`` that are not real floating, targets
        that are neither integers nor real floating, or arrays from
        different libraries.
    ValueError
        For an unknown ``reduction``, arrays on different devices, shapes
        that do not fit, options out of range, or labels outside ``[0, C)``
        that are not ``ignore_index``.

    Notes
    -----
    The label range is checked only for eager arrays (NumPy, PyTorch, CuPy,
    array_api_strict), which reads one or two numbers back from the device.
    For lazy arrays (JAX, Dask) the check is skipped so that nothing is
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
    >>> softmax_cross_entropy(logits, np.array([0, -100]))[0]  # the second row is ignored
    array(0.69314718)
    """
    checked = checked or check_cross_entropy(
        logits,
        target,
        weight,
        reduction=reduction,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        axis=axis,
    )
    return _loss(
        checked,
        logits,
        target,
        weight,
        reduction=reduction,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        check_labels=check_labels,
        softmax=True,
    )


def nll_loss(
    log_probs: Array,
    target: Array,
    *,
    weight: Array | None = None,
    ignore_index: int = IGNORE_INDEX,
    reduction: str = "mean",
    axis: int = -1,
    checked: Checked | None = None,
    check_labels: bool = True,
) -> tuple[Array, Array]:
    """Return the negative log-likelihood loss and its gradient with respect to ``log_probs``.

    ``torch.nn.functional.nll_loss``: row ``i`` with class index ``y`` costs
    ``-weight[y] * log_probs[i, y]``; the mean divides by the sum of the
    weights of the rows not ignored. Classes are on the last axis unless
    ``axis`` says otherwise (PyTorch's layout is ``axis=1``).

    Parameters
    ----------
    log_probs : array of shape (..., C, ...)
        Log-probabilities (the output of ``log_softmax``), real floating. A
        1-D array is a single row.
    target : array
        Class indices of an integer dtype, with the shape of ``log_probs``
        without its class axis, in ``[0, C)`` or equal to ``ignore_index``.
    weight : array of shape (C,), optional
        A weight per class, real floating.
    ignore_index : int, default -100
        Rows with this label add nothing and get a zero gradient.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        The weighted mean, the sum, or the rows' losses.
    axis : int, default -1
        The class axis of inputs with two or more dimensions.
    checked : Checked, optional
        What :func:`check_nll_loss` returned for inputs of this kind.
    check_labels : bool, default True
        Whether to read back whether every label is in range (eager only).

    Returns
    -------
    loss : array
        0-D, or one loss per row for ``reduction='none'``.
    dlog_probs : array of shape log_probs.shape
        ``-weight[y] * onehot(y) / N``, ``N`` the divisor of the mean (1
        unless ``reduction='mean'``).

    Raises
    ------
    TypeError, ValueError
        As :func:`softmax_cross_entropy`.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.losses import nll_loss
    >>> log_probs = np.log(np.array([[0.5, 0.5], [0.25, 0.75]]))
    >>> loss, grad = nll_loss(log_probs, np.array([0, 1]), weight=np.array([1.0, 3.0]))
    >>> loss  # (log(2) + 3 log(4/3)) / 4
    array(0.38904835)
    >>> grad + 0.0  # -weight[y] onehot(y) / 4 (+ 0.0 prints -0.0 as 0.0)
    array([[-0.25,  0.  ],
           [ 0.  , -0.75]])
    """
    checked = checked or check_nll_loss(
        log_probs, target, weight, reduction=reduction, ignore_index=ignore_index, axis=axis
    )
    return _loss(
        checked,
        log_probs,
        target,
        weight,
        reduction=reduction,
        ignore_index=ignore_index,
        label_smoothing=0.0,
        check_labels=check_labels,
        softmax=False,
    )


# -- checks ------------------------------------------------------------------


def check_cross_entropy(
    logits: Array,
    target: Array,
    weight: Array | None = None,
    *,
    reduction: str = "mean",
    ignore_index: int = IGNORE_INDEX,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> Checked:
    """Check everything of :func:`softmax_cross_entropy`'s inputs but the label values.

    Returns
    -------
    Checked
        The namespace, the logits' dtype, and ``constants``, a
        :class:`CrossEntropyConstants` for this kind of input and these
        options.

    Raises
    ------
    TypeError, ValueError
        As :func:`softmax_cross_entropy`, before any arithmetic.
    """
    return _check(
        "softmax_cross_entropy",
        "logits",
        logits,
        target,
        weight,
        reduction=reduction,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        axis=axis,
        probabilities_allowed=True,
    )


def check_nll_loss(
    log_probs: Array,
    target: Array,
    weight: Array | None = None,
    *,
    reduction: str = "mean",
    ignore_index: int = IGNORE_INDEX,
    axis: int = -1,
) -> Checked:
    """Check everything of :func:`nll_loss`'s inputs but the label values."""
    return _check(
        "nll_loss",
        "log_probs",
        log_probs,
        target,
        weight,
        reduction=reduction,
        ignore_index=ignore_index,
        label_smoothing=0.0,
        axis=axis,
        probabilities_allowed=False,
    )


def check_options(
    *, ignore_index: object, label_smoothing: object, axis: object
) -> tuple[int, float, int]:
    """Return the checked ``(ignore_index, label_smoothing, axis)``; raise for bad values."""
    for name, value in (("ignore_index", ignore_index), ("axis", axis)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)):
        raise TypeError(
            f"label_smoothing must be a real number in [0, 1], got "
            f"{type(label_smoothing).__name__} {label_smoothing!r}"
        )
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    return int(ignore_index), float(label_smoothing), int(axis)  # type: ignore[call-overload]


def _check(
    what: str,
    name: str,
    input: Array,
    target: Array,
    weight: Array | None,
    *,
    reduction: str,
    ignore_index: int,
    label_smoothing: float,
    axis: int,
    probabilities_allowed: bool,
) -> Checked:
    reduction = check_reduction(reduction)
    ignore_index, label_smoothing, axis = check_options(
        ignore_index=ignore_index, label_smoothing=label_smoothing, axis=axis
    )
    named = {name: input, "target": target}
    if weight is not None:
        named["weight"] = weight
    xp = array_namespace(**named)
    check_real_floating(xp, what, **{name: input})
    if weight is not None:
        check_real_floating(xp, what, weight=weight)
    probabilities = xp.isdtype(target.dtype, "real floating")
    if not probabilities and not xp.isdtype(target.dtype, "integral"):
        kinds = "class indices of an integer dtype" + (
            ", or class probabilities of a real floating dtype" if probabilities_allowed else ""
        )
        raise TypeError(
            f"target must be {kinds}, got {target.dtype}; convert it first, for example "
            "with xp.astype(target, xp.int64)"
        )
    if probabilities and not probabilities_allowed:
        raise TypeError(
            f"target of {what} must be class indices of an integer dtype, got {target.dtype}; "
            "class probabilities need softmax_cross_entropy (CrossEntropyLoss)"
        )
    check_same_device(**named)
    shape = check_known_shape(name, input, "the loss")
    ndim = len(shape)
    if ndim < 1:
        raise ValueError(
            f"{name} must have a class axis, got a 0-d array; reshape a single row with "
            f"xp.reshape({name}, (C,))"
        )
    if ndim == 1:
        class_axis = 0
    elif -ndim <= axis < ndim:
        class_axis = axis % ndim
    else:
        raise ValueError(
            f"axis {axis} is out of range for {name} of shape {shape_str(shape)}; the class "
            f"axis must be in [{-ndim}, {ndim}) (-1, the last, or 1, PyTorch's)"
        )
    classes = shape[class_axis]
    if classes < 1:
        raise ValueError(
            f"{name} has shape {shape_str(shape)}: expected at least one class on axis "
            f"{class_axis}, got 0"
        )
    other = shape[:class_axis] + shape[class_axis + 1 :]
    target_shape = check_known_shape("target", target, "the loss")
    expected = shape if probabilities else other
    if target_shape != expected:
        if probabilities:
            hint = (
                f"class probabilities need the shape of {name}; class indices need an integer "
                "dtype, for example xp.astype(target, xp.int64)"
            )
        else:
            hint = f"class indices have the shape of {name} without its class axis, {class_axis}"
        raise ValueError(
            f"target must have shape {shape_str(expected)}, got {shape_str(target_shape)} ({hint})"
        )
    if weight is not None:
        weight_shape = check_known_shape("weight", weight, "the loss")
        if weight_shape != (classes,):
            raise ValueError(
                f"weight must have one value per class, shape ({classes},), got "
                f"{shape_str(weight_shape)}"
            )
    permutation = inverse = None
    if class_axis != ndim - 1:
        permutation = (*[a for a in range(ndim) if a != class_axis], class_axis)
        inverse = tuple(permutation.index(a) for a in range(ndim))
    where = device(input)
    count = math.prod(other)
    scale = None
    if reduction == "mean" and count:
        scale = xp.asarray(1.0 / count, dtype=input.dtype, device=where)
    reduced = ndim == 2 and count > 0 and reduction in ("mean", "sum")
    weight_of_row = 1.0 / count if reduction == "mean" and count else 1.0
    constants = CrossEntropyConstants(
        classes=classes,
        rows=count,
        permutation=permutation,
        inverse=inverse,
        class_index=None if probabilities else _class_index(xp, target, classes, where),
        zero=broadcast_zero(xp, input.dtype, input),
        ones=xp.ones((classes, 1), dtype=input.dtype, device=where),
        scale=scale,
        lazy=is_lazy(input) or is_lazy(target) or (weight is not None and is_lazy(weight)),
        probabilities=probabilities,
        ignore_in_range=0 <= ignore_index < classes,
        plain=weight is None and label_smoothing == 0.0,
        row_weights=xp.full((count,), weight_of_row, dtype=input.dtype, device=where)
        if reduced
        else None,
        class_ones=xp.ones((classes,), dtype=input.dtype, device=where) if reduced else None,
    )
    return Checked(xp=xp, dtype=input.dtype, constants=constants)


def _class_index(xp: Namespace, labels: Array, classes: int, where: Device) -> Array:
    """Return ``arange(classes)`` in a dtype that labels compare with exactly."""
    index_dtype = labels.dtype
    if classes - 1 > xp.iinfo(index_dtype).max:
        # More classes than the labels' dtype can count: compare in the
        # device's default integer dtype instead.
        index_dtype = xp.__array_namespace_info__().default_dtypes(device=where)["integral"]
    return xp.arange(classes, dtype=index_dtype, device=where)


# -- the computation -----------------------------------------------------------


def _loss(
    checked: Checked,
    input: Array,
    target: Array,
    weight: Array | None,
    *,
    reduction: str,
    ignore_index: int,
    label_smoothing: float,
    check_labels: bool,
    softmax: bool,
) -> tuple[Array, Array]:
    """Return the loss and gradient of checked inputs (see the module notes)."""
    xp = checked.xp
    c: CrossEntropyConstants = checked.constants
    if c.permutation is not None:
        input = xp.permute_dims(input, c.permutation)
        if c.probabilities:
            target = xp.permute_dims(target, c.permutation)
    if c.rows == 0:
        # No rows: nothing to compute (and Dask cannot take the row maximum
        # of an array with zero rows).
        where = device(input)
        grad = xp.zeros_like(input, device=where)
        terms = xp.zeros(input.shape[:-1], dtype=input.dtype, device=where)
        loss = reduce_terms(xp, terms, 0, reduction, input)
    elif c.probabilities:
        loss, grad = _probabilities(xp, c, input, target, weight, reduction, label_smoothing)
    else:
        loss, grad = _indices(
            xp, c, input, target, weight, reduction, ignore_index, label_smoothing,
            check_labels, softmax,
        )  # fmt: skip
    if c.inverse is not None:
        grad = xp.permute_dims(grad, c.inverse)
    return loss, grad


def _log_softmax_parts(xp: Namespace, c: CrossEntropyConstants, z: Array) -> tuple[Array, Array]:
    """Return ``(softmax(z), -log_softmax(z))`` along the last axis, without overflow."""
    shifted = z - xp.max(z, axis=-1, keepdims=True)
    exps = xp.exp(shifted)
    # Row sums as a product with a column of ones: a reduction costs NumPy
    # three times as much at a training step's sizes.
    sums = exps @ c.ones
    return exps / sums, xp.log(sums) - shifted


def _weighted(
    xp: Namespace, c: CrossEntropyConstants, q: Array, nlp: Array, onehot: Array | None
) -> Array:
    """Return ``q * nlp`` with 0 wherever ``q`` is 0, even where ``nlp`` is infinite.

    A class with a -inf logit has ``nlp = inf``; a zero weight must silence
    it without computing ``0 * inf``. ``onehot``, where given, is the mask
    and ``q`` itself (the plain case): no product is needed.
    """
    if onehot is not None:
        return xp.where(onehot, nlp, c.zero)
    return q * xp.where(q != 0, nlp, c.zero)


def _indices(
    xp: Namespace,
    c: CrossEntropyConstants,
    input: Array,
    labels: Array,
    weight: Array | None,
    reduction: str,
    ignore_index: int,
    label_smoothing: float,
    check_labels: bool,
    softmax: bool,
) -> tuple[Array, Array]:
    """Loss and gradient for class-index targets, classes on the last axis."""
    class_index: Array = c.class_index  # set for class indices
    compared = labels
    if compared.dtype != class_index.dtype:  # as_dtype, without the call
        compared = xp.astype(compared, class_index.dtype)
    onehot = compared[..., None] == class_index
    if c.ignore_in_range:
        onehot = onehot & (labels != ignore_index)[..., None]
    # The divisor of an unweighted mean: the rows not ignored. Eager labels
    # are counted (one number read back, which also finds bad labels); lazy
    # ones are not, and rows with a bad label get NaN below.
    divisor: int | Array = c.rows
    check = check_labels and not c.lazy
    if check:
        matches = int(xp.count_nonzero(onehot))
        if matches != c.rows:
            # Fewer matches than rows: ignored labels, or labels out of range.
            ignored = int(xp.count_nonzero(labels == ignore_index))
            if matches + ignored != c.rows:
                _raise_bad_label(xp, labels, c.classes, ignore_index)
            divisor = matches
    onehot_values = xp.astype(onehot, input.dtype)
    if softmax:
        probs, nlp = _log_softmax_parts(xp, c, input)
    else:
        probs, nlp = None, -input
    if c.plain and check and divisor == c.rows:
        # Every row counts once with weight 1: q is the one-hot matrix, and
        # where keeps -inf logits of the other classes harmless.
        terms = xp.where(onehot, nlp, c.zero)
        grad = probs - onehot_values if probs is not None else -onehot_values
        if reduction == "none":
            return xp.sum(terms, axis=-1), grad
        if c.row_weights is not None:
            # The (weighted) sum of the terms as two products: NumPy's sum of
            # a small matrix costs as much as both. NumPy's product of two
            # vectors is a scalar, which [...] makes a 0-d array.
            loss = c.row_weights @ (terms @ c.class_ones)
            if type(loss) is not type(input):
                loss = loss[...]
            return loss, grad if c.scale is None else grad * c.scale
        loss = xp.sum(terms)
        if c.scale is not None:
            loss, grad = loss * c.scale, grad * c.scale
        if type(loss) is not type(input):  # NumPy's reductions give scalars
            loss = xp.asarray(loss, device=device(input))
        return loss, grad
    q = onehot_values
    if weight is not None:
        q = q * as_dtype(xp, weight, input.dtype)
    if reduction == "mean" and (weight is not None or not check):
        # The weights of the rows' own classes, summed: the torch divisor.
        divisor = xp.sum(q)
    if label_smoothing:
        kept = xp.astype(labels != ignore_index, input.dtype)[..., None]
        uniform = kept * (label_smoothing / c.classes)
        if weight is not None:
            uniform = uniform * as_dtype(xp, weight, input.dtype)
        q = (1 - label_smoothing) * q + uniform
    terms = xp.sum(_weighted(xp, c, q, nlp, onehot if c.plain else None), axis=-1)
    grad = -q if probs is None else (q @ c.ones) * probs - q
    if c.lazy:
        # A label out of range that is not ignore_index matches no class:
        # its row gets NaN, so the mistake shows in the result.
        bad = ~xp.any(onehot, axis=-1) & (labels != ignore_index)
        nan = xp.full_like(terms, math.nan, device=device(terms))
        terms = xp.where(bad, nan, terms)
        grad = xp.where(bad[..., None], xp.full_like(grad, math.nan, device=device(grad)), grad)
    if reduction == "mean" and not isinstance(divisor, int):
        # Every row ignored: torch's loss is NaN and its gradient zero, and
        # neither should divide by zero on the way.
        empty = divisor == 0
        divisor = xp.where(empty, xp.ones_like(divisor, device=device(divisor)), divisor)
        loss = reduce_terms(xp, terms, divisor, reduction, input)
        loss = xp.where(empty, xp.full_like(loss, math.nan, device=device(loss)), loss)
    else:
        loss = reduce_terms(xp, terms, divisor, reduction, input)
    return loss, scale_gradient(grad, divisor, reduction)


def _probabilities(
    xp: Namespace,
    c: CrossEntropyConstants,
    logits: Array,
    target: Array,
    weight: Array | None,
    reduction: str,
    label_smoothing: float,
) -> tuple[Array, Array]:
    """Loss and gradient for class-probability targets, classes on the last axis."""
    q = as_dtype(xp, target, logits.dtype)
    if label_smoothing:
        q = (1 - label_smoothing) * q + label_smoothing / c.classes
    if weight is not None:
        q = q * as_dtype(xp, weight, logits.dtype)
    probs, nlp = _log_softmax_parts(xp, c, logits)
    terms = xp.sum(_weighted(xp, c, q, nlp, None), axis=-1)
    grad = (q @ c.ones) * probs - q
    return reduce_terms(xp, terms, c.rows, reduction, logits), scale_gradient(
        grad, c.rows, reduction
    )

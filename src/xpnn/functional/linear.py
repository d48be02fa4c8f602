"""The linear (dense) layer: forward and hand-derived backward.

``y = x @ weight + bias`` with ``weight`` stored as (in_features,
out_features). The three gradients, derived in ``docs/gradients.md``, are::

    dx      = dy @ conj(weight).T                    (..., in_features)
    dweight = conj(x2).T @ dy2                       (in_features, out_features)
    dbias   = sum(dy2, axis=0)                       (out_features,)

where ``x2`` and ``dy2`` are ``x`` and ``dy`` with every leading dimension
folded into one. The conjugates follow PyTorch's convention for complex
numbers, so that plain gradient descent, ``w - lr * dw``, lowers a real loss.

Mixed floating dtypes follow the standard's type promotion: the output has
``result_type(x, weight, bias)``, and each gradient has the dtype of the
array it belongs to (the real part is kept for a real array that met a
complex one), as in ``torch.autograd``.
"""

from __future__ import annotations

import math

from .._checks import check_floating, check_known_shape, check_same_device, is_unknown, shape_str
from .._compat import Array, DType, Namespace, array_namespace

__all__ = ["linear", "linear_backward"]


def _check_linear(xp: Namespace, x: Array, weight: Array, bias: Array | None) -> DType:
    """Validate forward inputs and return the dtype of the output."""
    check_floating(xp, x=x, weight=weight, bias=bias)
    check_same_device(x=x, weight=weight, bias=bias)
    if weight.ndim != 2:
        raise ValueError(
            "weight must have shape (in_features, out_features), got shape "
            f"{shape_str(weight.shape)}"
        )
    in_features, out_features = weight.shape
    if x.ndim < 1:
        raise ValueError(
            f"x must have shape (..., {in_features}) with at least one "
            "dimension, got a 0-d array; reshape scalars with "
            "xp.reshape(x, (1,))"
        )
    if is_unknown(x.shape[-1]):
        check_known_shape("x", x, f"a linear map from {in_features} features")
    if x.shape[-1] != in_features:
        raise ValueError(
            f"x has shape {shape_str(x.shape)}: expected last dimension "
            f"{in_features} (in_features), got {x.shape[-1]}"
        )
    if bias is not None and tuple(bias.shape) != (out_features,):
        raise ValueError(
            f"bias must have shape ({out_features},) (out_features), got "
            f"shape {shape_str(bias.shape)}"
        )
    if bias is None:
        return xp.result_type(x.dtype, weight.dtype)
    return xp.result_type(x.dtype, weight.dtype, bias.dtype)


def _check_dy(x: Array, weight: Array, dy: Array) -> None:
    # Sizes unknown until computed (Dask's, after boolean indexing) cannot be
    # checked against each other without computing them, so gradients need
    # known shapes; the forward pass, row by row, does not.
    check_known_shape("x", x, "the backward pass")
    check_known_shape("dy", dy, "the backward pass")
    expected = (*x.shape[:-1], weight.shape[1])
    if tuple(dy.shape) != expected:
        raise ValueError(
            f"dy must have the shape of the output, {shape_str(expected)} "
            f"(x.shape[:-1] + (out_features,)), got {shape_str(dy.shape)}"
        )


def _as(xp: Namespace, a: Array, dtype: DType) -> Array:
    # astype always copies in some libraries; skip it when nothing changes.
    return a if a.dtype == dtype else xp.astype(a, dtype)


def _gradient_as(xp: Namespace, grad: Array, dtype: DType) -> Array:
    """Cast a gradient to its parameter's dtype; real parameters keep Re."""
    if grad.dtype == dtype:
        return grad
    if xp.isdtype(grad.dtype, "complex floating") and not xp.isdtype(dtype, "complex floating"):
        grad = xp.real(grad)
    return _as(xp, grad, dtype)


def _rows(shape: tuple[int | None, ...]) -> int:
    """Count the rows left once every leading dimension is folded into one."""
    leading = shape[:-1]
    if any(s is None or (isinstance(s, float) and math.isnan(s)) for s in leading):
        return -1
    return math.prod(int(s) for s in leading if s is not None)


def forward_kernel(
    xp: Namespace,
    x: Array,
    weight: Array,
    bias: Array | None,
    dtype: DType,
    *,
    one_real_dtype: bool = False,
) -> Array:
    """Compute ``x @ weight + bias`` on inputs already checked.

    Every operand is cast to ``dtype`` first, so the operators below never mix
    dtypes (torch's operators do not follow standard promotion).
    ``one_real_dtype`` tells that every operand already has ``dtype``.
    """
    if one_real_dtype:
        y = x @ weight
        return y if bias is None else y + bias
    y = _as(xp, x, dtype) @ _as(xp, weight, dtype)
    if bias is not None:
        y = y + _as(xp, bias, dtype)
    return y


def backward_kernel(
    xp: Namespace,
    dy: Array,
    x: Array,
    weight: Array,
    *,
    has_bias: bool,
    bias_dtype: DType | None = None,
    one_real_dtype: bool = False,
) -> tuple[Array, Array, Array | None]:
    """Compute ``(dx, dweight, dbias)`` on inputs already checked.

    ``one_real_dtype`` tells that ``dy``, ``x``, ``weight`` (and the bias)
    share one real dtype, as callers that remember their checks know; with a
    2-d ``x`` the three products then need no cast, conjugate or reshape.
    """
    if one_real_dtype and x.ndim == 2:
        return dy @ weight.T, x.T @ dy, xp.sum(dy, axis=0) if has_bias else None
    dtype = xp.result_type(dy.dtype, x.dtype, weight.dtype)
    complex_math = xp.isdtype(dtype, "complex floating")
    dy_c = _as(xp, dy, dtype)
    x_c = _as(xp, x, dtype)
    w_c = _as(xp, weight, dtype)
    if complex_math:
        w_c = xp.conj(w_c)
        x_c = xp.conj(x_c)
    in_features, out_features = weight.shape
    rows = _rows(tuple(x.shape))
    x2 = xp.reshape(x_c, (rows, in_features))
    dy2 = xp.reshape(dy_c, (rows, out_features))
    dx = dy_c @ w_c.T
    dweight = x2.T @ dy2
    dbias = xp.sum(dy2, axis=0) if has_bias else None
    dx = _gradient_as(xp, dx, x.dtype)
    dweight = _gradient_as(xp, dweight, weight.dtype)
    if dbias is not None:
        dbias = _gradient_as(xp, dbias, bias_dtype if bias_dtype is not None else weight.dtype)
    return dx, dweight, dbias


def linear(x: Array, weight: Array, bias: Array | None = None) -> Array:
    """Apply a linear map: ``y = x @ weight + bias``.

    Parameters
    ----------
    x : array of shape (..., in_features)
        Input. Any number of leading dimensions, including none, zero-size
        ones and ones of unknown size (a Dask array after boolean indexing).
    weight : array of shape (in_features, out_features)
        The weight, in xpnn's layout (PyTorch stores its transpose).
    bias : array of shape (out_features,), optional
        Added to every output row.

    Returns
    -------
    y : array of shape (..., out_features)
        In the namespace and on the device of the inputs, with dtype
        ``result_type(x, weight, bias)``.

    Raises
    ------
    TypeError
        For non-floating inputs, or arrays from different libraries.
    ValueError
        For arrays on different devices, or shapes that do not fit.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional import linear
    >>> x = np.ones((2, 3))
    >>> weight = np.full((3, 4), 0.5)
    >>> linear(x, weight, np.zeros(4))
    array([[1.5, 1.5, 1.5, 1.5],
           [1.5, 1.5, 1.5, 1.5]])
    """
    xp = array_namespace(x=x, weight=weight, bias=bias)
    dtype = _check_linear(xp, x, weight, bias)
    return forward_kernel(xp, x, weight, bias, dtype)


def linear_backward(
    dy: Array, x: Array, weight: Array, *, has_bias: bool = True
) -> tuple[Array, Array, Array | None]:
    """Return the gradients of a linear map given the output gradient.

    Parameters
    ----------
    dy : array of shape (..., out_features)
        Gradient of the loss with respect to ``y = linear(x, weight, bias)``.
    x : array of shape (..., in_features)
        The input of the forward pass.
    weight : array of shape (in_features, out_features)
        The weight of the forward pass.
    has_bias : bool, default True
        Whether the forward pass had a bias; ``dbias`` is ``None`` if not.

    Returns
    -------
    dx : array of shape (..., in_features)
        ``dy @ conj(weight).T``, in the dtype of ``x``.
    dweight : array of shape (in_features, out_features)
        ``conj(x).T @ dy`` summed over every leading dimension, in the dtype
        of ``weight``.
    dbias : array of shape (out_features,) or None
        ``dy`` summed over every leading dimension, in the dtype of
        ``weight`` (the bias is assumed to share the weight's dtype).

    Raises
    ------
    TypeError
        For non-floating inputs, or arrays from different libraries.
    ValueError
        For arrays on different devices, shapes that do not fit, or shapes
        with a dimension of unknown size (``nan`` in Dask; call
        ``compute_chunk_sizes()`` first).

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional import linear_backward
    >>> dx, dweight, dbias = linear_backward(
    ...     np.ones((2, 4)), np.ones((2, 3)), np.full((3, 4), 0.5)
    ... )
    >>> dx
    array([[2., 2., 2.],
           [2., 2., 2.]])
    >>> dweight.shape, dbias
    ((3, 4), array([2., 2., 2., 2.]))
    """
    xp = array_namespace(dy=dy, x=x, weight=weight)
    _check_linear(xp, x, weight, None)
    check_floating(xp, dy=dy)
    check_same_device(x=x, dy=dy)
    _check_dy(x, weight, dy)
    return backward_kernel(xp, dy, x, weight, has_bias=has_bias)

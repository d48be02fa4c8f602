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

from .._checks import (
    Checked,
    check_floating,
    check_known_shape,
    check_same_device,
    is_unknown,
    shape_str,
)
from .._compat import Array, DType, array_namespace, device
from ._dtypes import as_dtype, gradient_as, rows

__all__ = [
    "check_linear",
    "check_linear_backward",
    "linear",
    "linear_backward",
    "linear_backward_kernel",
    "linear_kernel",
]


def check_linear(x: Array, weight: Array, bias: Array | None = None) -> Checked:
    """Check the inputs of :func:`linear`; return the namespace and the output dtype.

    ``same_real_dtype`` of the result tells that every input already has the
    output's dtype, a real one.

    Raises
    ------
    TypeError
        For non-floating inputs, or arrays from different libraries.
    ValueError
        For arrays on different devices, or shapes that do not fit.
    """
    xp = array_namespace(x=x, weight=weight, bias=bias, optional=("bias",))
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
    dtypes = (x.dtype, weight.dtype) if bias is None else (x.dtype, weight.dtype, bias.dtype)
    dtype = xp.result_type(*dtypes)
    same = all(d == dtype for d in dtypes) and not xp.isdtype(dtype, "complex floating")
    return Checked(xp=xp, dtype=dtype, same_real_dtype=same)


def check_linear_backward(
    dy: Array,
    x: Array,
    weight: Array,
    bias: Array | None = None,
    *,
    forward: Checked | None = None,
) -> Checked:
    """Check ``dy`` against the forward pass's ``x`` and ``weight``.

    ``x``, ``weight`` and ``bias`` are those :func:`check_linear` passed;
    ``forward`` is what it returned, which a layer's check boundary keys
    the backward pass on (the check itself needs only the arrays). Sizes
    unknown until computed (Dask's, after boolean indexing) cannot be
    checked against each other without computing them, so gradients need
    known shapes; the forward pass, row by row, does not. The result's
    ``dtype`` is the one the gradients are computed in.

    Raises
    ------
    TypeError
        For a non-floating ``dy``, or one of another library.
    ValueError
        For a ``dy`` on another device, of the wrong shape, or with a
        dimension of unknown size.
    """
    xp = array_namespace(dy=dy, x=x)
    check_floating(xp, dy=dy)
    check_same_device(x=x, dy=dy)
    check_known_shape("x", x, "the backward pass")
    check_known_shape("dy", dy, "the backward pass")
    expected = (*x.shape[:-1], weight.shape[1])
    if tuple(dy.shape) != expected:
        raise ValueError(
            f"dy must have the shape of the output, {shape_str(expected)} "
            f"(x.shape[:-1] + (out_features,)), got {shape_str(dy.shape)}"
        )
    dtypes = [dy.dtype, x.dtype, weight.dtype] + ([] if bias is None else [bias.dtype])
    dtype = xp.result_type(dy.dtype, x.dtype, weight.dtype)
    same = all(d == dtype for d in dtypes) and not xp.isdtype(dtype, "complex floating")
    ones = None
    if same and x.ndim == 2:
        # The bias gradient as a product, ones @ dy: a reduction costs NumPy
        # three times as much at a training step's sizes.
        ones = xp.ones((dy.shape[0],), dtype=dtype, device=device(dy))
    return Checked(xp=xp, dtype=dtype, same_real_dtype=same, constants=ones)


def linear_kernel(checked: Checked, x: Array, weight: Array, bias: Array | None) -> Array:
    """Compute ``x @ weight + bias`` on inputs :func:`check_linear` passed.

    Every operand is cast to the output dtype first, so the operators below
    never mix dtypes (torch's operators do not follow standard promotion);
    inputs that already share one real dtype need no cast.
    """
    if checked.same_real_dtype:
        y = x @ weight
        return y if bias is None else y + bias
    xp, dtype = checked.xp, checked.dtype
    y = as_dtype(xp, x, dtype) @ as_dtype(xp, weight, dtype)
    if bias is not None:
        y = y + as_dtype(xp, bias, dtype)
    return y


def linear_backward_kernel(
    checked: Checked,
    dy: Array,
    x: Array,
    weight: Array,
    *,
    has_bias: bool,
    bias_dtype: DType | None = None,
    input_grad: bool = True,
) -> tuple[Array | None, Array, Array | None]:
    """Compute ``(dx, dweight, dbias)`` on inputs :func:`check_linear_backward` passed.

    With one real dtype and a 2-d ``x`` (``checked.constants`` then holds a
    vector of ones, one per row), the three products need no cast,
    conjugate or reshape, and the bias gradient is ``ones @ dy``. With
    ``input_grad=False``, ``dx`` is ``None`` and not computed.
    """
    xp = checked.xp
    ones = checked.constants
    if ones is not None:  # one real dtype, 2-d: no cast, conjugate or reshape
        dx = dy @ weight.T if input_grad else None
        return dx, x.T @ dy, ones @ dy if has_bias else None
    dtype = checked.dtype
    dy_c = as_dtype(xp, dy, dtype)
    x_c = as_dtype(xp, x, dtype)
    w_c = as_dtype(xp, weight, dtype)
    if xp.isdtype(dtype, "complex floating"):
        w_c = xp.conj(w_c)
        x_c = xp.conj(x_c)
    in_features, out_features = weight.shape
    folded = rows(tuple(x.shape))
    x2 = xp.reshape(x_c, (folded, in_features))
    dy2 = xp.reshape(dy_c, (folded, out_features))
    dweight = x2.T @ dy2
    dbias = xp.sum(dy2, axis=0) if has_bias else None
    dx = gradient_as(xp, dy_c @ w_c.T, x.dtype) if input_grad else None
    dweight = gradient_as(xp, dweight, weight.dtype)
    if dbias is not None:
        dbias = gradient_as(xp, dbias, bias_dtype if bias_dtype is not None else weight.dtype)
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
    return linear_kernel(check_linear(x, weight, bias), x, weight, bias)


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
    check_linear(x, weight)
    checked = check_linear_backward(dy, x, weight)
    dx, dweight, dbias = linear_backward_kernel(checked, dy, x, weight, has_bias=has_bias)
    assert dx is not None  # the kernel computes dx unless told not to
    return dx, dweight, dbias

"""Layer and RMS normalisation: forward and hand-derived backward, as PyTorch's.

Both normalise over the last ``k`` dimensions of ``x``, the
``normalized_shape``, with ``n = prod(normalized_shape)`` values per row
(every leading index is a row)::

    layer norm:  mean = sum(x) / n           var = sum((x - mean)**2) / n   (biased)
                 xhat = (x - mean) * r       r = 1 / sqrt(var + eps)
                 y    = weight * xhat + bias

    RMS norm:    xhat = x * r                r = 1 / sqrt(sum(x**2) / n + eps)
                 y    = weight * xhat

The gradients, derived in ``docs/sequences.md``, are, per row, with
``g = dy * weight`` (``dy`` without a weight) and ``mean`` over the
normalised dimensions::

    layer norm:  dx = r * (g - mean(g) - xhat * mean(g * xhat))
    RMS norm:    dx = r * (g - xhat * mean(g * xhat))
    dweight = sum over rows of dy * xhat       dbias = sum over rows of dy

Nothing is written in place and nothing is read back to the host, so JAX's
traced and Dask's lazy arrays work as NumPy's and PyTorch's do. Sizes of
the leading dimensions may be unknown (Dask); the normalised ones may not.
"""

from __future__ import annotations

import math
import numbers
import operator
from dataclasses import dataclass

from .._checks import (
    Checked,
    check_real_floating,
    check_same_device,
    is_unknown,
    shape_str,
)
from .._compat import Array, DType, array_namespace
from ._dtypes import as_dtype, gradient_as

__all__ = [
    "LayerNormSaved",
    "check_layer_norm",
    "check_layer_norm_backward",
    "layer_norm",
    "layer_norm_backward",
    "layer_norm_backward_kernel",
    "layer_norm_kernel",
    "normalized_shape_of",
    "rms_norm",
    "rms_norm_backward",
]


@dataclass(frozen=True)
class LayerNormSaved:
    """What the backward pass of :func:`layer_norm` or :func:`rms_norm` needs of the forward.

    Attributes
    ----------
    xhat : array of the shape of x
        The normalised input, in the compute dtype.
    inv : array
        ``r``, ``1 / sqrt(var + eps)`` (layer norm) or ``1 / rms`` (RMS
        norm) per row, with size-1 normalised dimensions (broadcastable
        against ``x``).
    centred : bool
        Whether the mean was subtracted (layer norm): then ``dx`` carries
        the term through the mean.
    axes : tuple of int
        The normalised axes, negative (``(-2, -1)`` for two).
    """

    xhat: Array
    inv: Array
    centred: bool
    axes: tuple[int, ...]


def normalized_shape_of(normalized_shape: object) -> tuple[int, ...]:
    """Return ``normalized_shape`` (an int or a sequence of ints) as a tuple of ints >= 1.

    Raises
    ------
    TypeError
        For something that is neither an int nor a sequence of ints.
    ValueError
        For an empty sequence or a size below 1.
    """
    items: object = normalized_shape
    if isinstance(items, bool):
        raise TypeError(f"normalized_shape must be an int or a tuple of ints, got {items!r}")
    if not isinstance(items, list | tuple):
        items = (items,)
    sizes = []
    for size in items:
        if isinstance(size, bool):
            raise TypeError(f"normalized_shape must hold ints, got {normalized_shape!r}")
        try:
            sizes.append(int(operator.index(size)))
        except TypeError:
            raise TypeError(
                f"normalized_shape must be an int or a tuple of ints, got {normalized_shape!r}"
            ) from None
    if not sizes:
        raise ValueError("normalized_shape must name at least one dimension, got ()")
    if min(sizes) < 1:
        raise ValueError(f"normalized_shape must hold sizes >= 1, got {tuple(sizes)}")
    return tuple(sizes)


def _eps(eps: object) -> None:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or eps < 0:
        raise ValueError(f"eps must be a float >= 0, got {eps!r}")


def check_layer_norm(
    x: Array,
    weight: Array | None = None,
    bias: Array | None = None,
    *,
    normalized_shape: tuple[int, ...],
    what: str = "layer normalisation",
) -> Checked:
    """Check the inputs of :func:`layer_norm` (or :func:`rms_norm`, without ``bias``).

    ``constants`` of the result is ``(axes, n)``: the normalised axes
    (negative) and the number of values per row.

    Raises
    ------
    TypeError
        For arrays that are not real floating, or of different libraries.
    ValueError
        For arrays on different devices, an ``x`` whose trailing dimensions
        are not ``normalized_shape``, or a ``weight`` or ``bias`` not of
        shape ``normalized_shape``.
    """
    named = {"x": x, "weight": weight, "bias": bias}
    given = {name: value for name, value in named.items() if value is not None}
    xp = array_namespace(**given)
    check_real_floating(xp, what, **given)
    check_same_device(**given)
    k = len(normalized_shape)
    shape = tuple(x.shape)
    trailing = shape[len(shape) - k :] if len(shape) >= k else None
    if trailing is None or any(is_unknown(s) for s in trailing) or trailing != normalized_shape:
        listed = ", ".join(str(s) for s in normalized_shape)
        raise ValueError(
            f"Given normalized_shape={list(normalized_shape)}, expected input with shape "
            f"[*, {listed}], but got input of size {shape_str(shape)}; the last "
            f"{k} dimension(s) of x are normalised and must have known sizes"
        )
    for name in ("weight", "bias"):
        value = named[name]
        if value is not None and tuple(value.shape) != normalized_shape:
            raise ValueError(
                f"{name} must have shape {shape_str(normalized_shape)}, the normalized_shape, "
                f"got shape {shape_str(tuple(value.shape))}"
            )
    dtype = xp.result_type(*(value.dtype for value in given.values()))
    same = all(value.dtype == dtype for value in given.values())
    axes = tuple(range(-k, 0))
    return Checked(
        xp=xp, dtype=dtype, same_real_dtype=same, constants=(axes, math.prod(normalized_shape))
    )


def layer_norm_kernel(
    checked: Checked,
    x: Array,
    weight: Array | None,
    bias: Array | None,
    *,
    eps: float | None,
    centred: bool = True,
) -> tuple[Array, LayerNormSaved]:
    """Normalise ``x`` on inputs :func:`check_layer_norm` passed; return ``(y, saved)``.

    ``centred=False`` is RMS normalisation (no mean subtracted, no bias);
    ``eps=None`` is then the machine epsilon of the compute dtype, as PyTorch's.
    """
    xp, dtype = checked.xp, checked.dtype
    assert dtype is not None
    axes, _ = checked.constants
    xc = as_dtype(xp, x, dtype)
    if centred:
        xc = xc - xp.mean(xc, axis=axes, keepdims=True)
    if eps is None:
        eps = float(xp.finfo(dtype).eps)
    inv = 1.0 / xp.sqrt(xp.mean(xc * xc, axis=axes, keepdims=True) + eps)
    xhat = xc * inv
    y = xhat
    if weight is not None:
        y = y * as_dtype(xp, weight, dtype)
    if bias is not None:
        y = y + as_dtype(xp, bias, dtype)
    return y, LayerNormSaved(xhat=xhat, inv=inv, centred=centred, axes=axes)


def check_layer_norm_backward(dy: Array, x: Array, *, forward: Checked | None = None) -> Checked:
    """Check ``dy`` against the forward pass's ``x``; return the compute dtype.

    ``forward`` is what :func:`check_layer_norm` returned, which a layer's
    check boundary keys the backward pass on.

    Raises
    ------
    TypeError
        For a ``dy`` that is not real floating, or of another library.
    ValueError
        For a ``dy`` on another device, or of another shape than ``x``.
    """
    xp = array_namespace(dy=dy, x=x)
    check_real_floating(xp, "the backward pass of a normalisation", dy=dy)
    check_same_device(x=x, dy=dy)
    # Sizes unknown until computed (Dask) match anything: the math needs
    # only the normalised sizes, which the forward check found known.
    if dy.ndim != x.ndim or any(
        a != b and not (is_unknown(a) or is_unknown(b))
        for a, b in zip(dy.shape, x.shape, strict=True)
    ):
        raise ValueError(
            f"dy must have the shape of the output, {shape_str(tuple(x.shape))} (the shape of "
            f"x), got {shape_str(tuple(dy.shape))}"
        )
    base = forward.dtype if forward is not None and forward.dtype is not None else x.dtype
    return Checked(xp=xp, dtype=xp.result_type(dy.dtype, base))


def layer_norm_backward_kernel(
    checked: Checked,
    dy: Array,
    saved: LayerNormSaved,
    weight: Array | None,
    *,
    x_dtype: DType,
    has_bias: bool,
    bias_dtype: DType | None = None,
    input_grad: bool = True,
) -> tuple[Array | None, Array | None, Array | None]:
    """Compute ``(dx, dweight, dbias)`` on inputs :func:`check_layer_norm_backward` passed.

    ``dweight`` is ``None`` without ``weight``, ``dbias`` without a bias, and
    ``dx`` with ``input_grad=False``.
    """
    xp, dtype = checked.xp, checked.dtype
    assert dtype is not None
    axes = saved.axes
    dy_c = as_dtype(xp, dy, dtype)
    xhat = as_dtype(xp, saved.xhat, dtype)
    rows = tuple(range(dy.ndim - len(axes)))
    dweight = dbias = None
    if weight is not None:
        dweight = gradient_as(xp, xp.sum(dy_c * xhat, axis=rows), weight.dtype)
    if has_bias:
        dbias = gradient_as(
            xp, xp.sum(dy_c, axis=rows), bias_dtype if bias_dtype is not None else dtype
        )
    if not input_grad:
        return None, dweight, dbias
    g = dy_c if weight is None else dy_c * as_dtype(xp, weight, dtype)
    inner = g - xhat * xp.mean(g * xhat, axis=axes, keepdims=True)
    if saved.centred:
        inner = inner - xp.mean(g, axis=axes, keepdims=True)
    dx = as_dtype(xp, saved.inv, dtype) * inner
    return gradient_as(xp, dx, x_dtype), dweight, dbias


def layer_norm(
    x: Array,
    normalized_shape: int | tuple[int, ...],
    weight: Array | None = None,
    bias: Array | None = None,
    eps: float = 1e-5,
) -> Array:
    """Normalise the last dimensions of ``x``, as ``torch.nn.functional.layer_norm``.

    Parameters
    ----------
    x : array of shape (*, *normalized_shape)
        Real floating input.
    normalized_shape : int or tuple of int
        The trailing dimensions normalised together.
    weight, bias : arrays of shape normalized_shape, optional
        The elementwise affine map applied after normalising.
    eps : float, default 1e-5
        Added to the (biased) variance before the square root.

    Returns
    -------
    y : array of the shape of x
        In the result dtype of the inputs.

    Raises
    ------
    TypeError, ValueError
        As :func:`check_layer_norm` raises them.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional import layer_norm
    >>> np.round(layer_norm(np.array([[1.0, 3.0], [2.0, 2.0]]), 2), 4)
    array([[-1.,  1.],
           [ 0.,  0.]])
    """
    shape = normalized_shape_of(normalized_shape)
    _eps(eps)
    checked = check_layer_norm(x, weight, bias, normalized_shape=shape)
    y, _ = layer_norm_kernel(checked, x, weight, bias, eps=eps)
    return y


def layer_norm_backward(
    dy: Array,
    x: Array,
    normalized_shape: int | tuple[int, ...],
    weight: Array | None = None,
    *,
    has_bias: bool = False,
    eps: float = 1e-5,
) -> tuple[Array, Array | None, Array | None]:
    """Return ``(dx, dweight, dbias)`` of :func:`layer_norm` given the output gradient.

    The forward pass's inputs are passed again (its statistics are
    recomputed). ``dweight`` is ``None`` without ``weight``, ``dbias``
    without ``has_bias``. Each gradient has the dtype of the array it
    belongs to (``dbias`` that of ``x``).

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional import layer_norm_backward
    >>> dx, dweight, dbias = layer_norm_backward(
    ...     np.array([[1.0, 1.0]]), np.array([[1.0, 3.0]]), 2, np.ones(2), has_bias=True
    ... )
    >>> np.round(dx, 4), np.round(dweight, 4), dbias
    (array([[0., 0.]]), array([-1.,  1.]), array([1., 1.]))
    """
    shape = normalized_shape_of(normalized_shape)
    _eps(eps)
    forward = check_layer_norm(x, weight, normalized_shape=shape)
    _, saved = layer_norm_kernel(forward, x, weight, None, eps=eps)
    checked = check_layer_norm_backward(dy, x, forward=forward)
    dx, dweight, dbias = layer_norm_backward_kernel(
        checked, dy, saved, weight, x_dtype=x.dtype, has_bias=has_bias, bias_dtype=x.dtype
    )
    assert dx is not None
    return dx, dweight, dbias


def rms_norm(
    x: Array,
    normalized_shape: int | tuple[int, ...],
    weight: Array | None = None,
    eps: float | None = None,
) -> Array:
    """Divide the trailing dimensions of ``x`` by their RMS, as ``torch.nn.functional.rms_norm``.

    ``y = x / sqrt(mean(x**2) + eps) * weight``, the mean over the
    ``normalized_shape`` trailing dimensions.

    Parameters
    ----------
    x : array of shape (*, *normalized_shape)
        Real floating input.
    normalized_shape : int or tuple of int
        The trailing dimensions normalised together.
    weight : array of shape normalized_shape, optional
        The elementwise scale applied after normalising.
    eps : float, optional
        Added to the mean square; by default the machine epsilon of the
        compute dtype (``finfo(dtype).eps``), as in PyTorch.

    Returns
    -------
    y : array of the shape of x

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional import rms_norm
    >>> np.round(rms_norm(np.array([[3.0, 4.0]]), 2) ** 2, 4)
    array([[0.72, 1.28]])
    """
    shape = normalized_shape_of(normalized_shape)
    if eps is not None:
        _eps(eps)
    checked = check_layer_norm(x, weight, normalized_shape=shape, what="RMS normalisation")
    y, _ = layer_norm_kernel(checked, x, weight, None, eps=eps, centred=False)
    return y


def rms_norm_backward(
    dy: Array,
    x: Array,
    normalized_shape: int | tuple[int, ...],
    weight: Array | None = None,
    eps: float | None = None,
) -> tuple[Array, Array | None]:
    """Return ``(dx, dweight)`` of :func:`rms_norm` given the output gradient.

    ``dweight`` is ``None`` without ``weight``.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional import rms_norm_backward
    >>> dx, dweight = rms_norm_backward(np.array([[4.0, -3.0]]), np.array([[3.0, 4.0]]), 2)
    >>> np.round(dx * 5 / np.sqrt(2), 4), dweight
    (array([[ 4., -3.]]), None)
    """
    shape = normalized_shape_of(normalized_shape)
    if eps is not None:
        _eps(eps)
    forward = check_layer_norm(x, weight, normalized_shape=shape, what="RMS normalisation")
    _, saved = layer_norm_kernel(forward, x, weight, None, eps=eps, centred=False)
    checked = check_layer_norm_backward(dy, x, forward=forward)
    dx, dweight, _ = layer_norm_backward_kernel(
        checked, dy, saved, weight, x_dtype=x.dtype, has_bias=False
    )
    assert dx is not None
    return dx, dweight

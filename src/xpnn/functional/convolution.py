"""Convolutions (1-d and 2-d, one N-d implementation) with hand-derived gradients.

PyTorch's layouts: ``x`` is ``(N, C, *spatial)`` (or ``(C, *spatial)``
unbatched), ``weight`` is ``(out_channels, C // groups, *kernel)``, ``bias``
is ``(out_channels,)``. Like PyTorch, the operation is a cross-correlation.

The standard has no convolution, no ``as_strided`` and no scatter-add, so
(derivations in ``docs/convolution.md``)::

    forward   patches[n, c, p, j] = xpad[n, c, k_p * d + s * j]     (one strided slice per p)
              y[n, g, o, j]       = sum_{c, p} w[g, o, c, p] * patches[n, g, c, p, j]
    dweight   dw[g, o, (c, p)]    = dy[g, o, (n, j)] @ patches[g, (n, j), (c, p)]
    dbias     db[o]               = sum_{n, j} dy[n, o, j]
    dx        dpatches            = conj(w)^T @ dy                 (per group)
              dxpad               = sum_p  place_p(dpatches[:, :, p])
              dx                  = dxpad without the padding

where ``p`` runs over the kernel offsets ``k_p`` (C order), ``d`` is the
dilation, ``s`` the stride and ``j`` the output position. ``place_p`` puts
the gradient of the positions that offset ``p`` read back where they came
from: zeros interleaved between the values for a stride above 1, then zeros
concatenated before (``k_p * d``) and after, so each term has the padded
input's shape. The sum over the offsets adds exactly the contributions a
scatter-add would, in a fixed order, with no read back to the host.

Complex inputs follow PyTorch's convention (conjugates in the gradients),
and mixed floating dtypes the standard's promotion, as in
:mod:`xpnn.functional.linear`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass

from .._checks import (
    Checked,
    check_floating,
    check_known_shape,
    check_same_device,
    shape_str,
)
from .._compat import Array, DType, Namespace, array_namespace, device
from ._dtypes import as_dtype, gradient_as
from ._sliding import add_windows, interleave, pad_axis

__all__ = [
    "ConvGeometry",
    "check_conv",
    "check_conv_backward",
    "conv1d",
    "conv1d_backward",
    "conv2d",
    "conv2d_backward",
    "conv_backward_kernel",
    "conv_forward_kernel",
    "conv_kernel",
    "conv_padding",
    "conv_tuple",
]

Padding = str | int | Sequence[int]


def conv_tuple(name: str, value: object, nd: int, *, minimum: int = 1) -> tuple[int, ...]:
    """Return ``value`` (an int or ``nd`` ints) as a tuple of ``nd`` ints, each ``>= minimum``.

    Raises
    ------
    TypeError
        For something that is neither an int nor a sequence of ints (bools
        included).
    ValueError
        For a sequence of the wrong length, or a value below ``minimum``.
    """
    items: list[object]
    if isinstance(value, (list, tuple)):
        items = list(value)
        if len(items) != nd:
            raise ValueError(f"{name} must be an int or {nd} ints, got {value!r}")
    else:
        items = [value] * nd
    result = []
    for item in items:
        if isinstance(item, bool):
            raise TypeError(f"{name} must be an int or {nd} ints, got {value!r}")
        try:
            number = operator.index(item)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(f"{name} must be an int or {nd} ints, got {value!r}") from None
        if number < minimum:
            raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
        result.append(int(number))
    return tuple(result)


def conv_padding(padding: object, nd: int, stride: tuple[int, ...]) -> str | tuple[int, ...]:
    """Return ``padding`` as ``'valid'``, ``'same'`` or a tuple of ``nd`` ints >= 0.

    ``'same'`` needs a stride of 1 on every axis, as in PyTorch.

    Raises
    ------
    TypeError, ValueError
        For anything else, with the accepted forms in the message.
    """
    if isinstance(padding, str):
        if padding not in ("valid", "same"):
            raise ValueError(
                f"padding must be 'valid', 'same', an int or {nd} ints, got {padding!r}"
            )
        if padding == "same" and any(s != 1 for s in stride):
            raise ValueError(
                f"padding='same' is not supported for strided convolutions (stride={stride}); "
                "pass explicit padding instead"
            )
        return padding
    return conv_tuple("padding", padding, nd, minimum=0)


@dataclass(frozen=True, slots=True)
class ConvGeometry:
    """Sizes a checked convolution needs: kept in ``Checked.constants``.

    ``before``/``after`` are the zeros added on each side of each spatial
    axis, ``padded`` the padded sizes, ``out`` the output sizes; ``batched``
    tells whether ``x`` had its batch axis.
    """

    nd: int
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    kernel: tuple[int, ...]
    before: tuple[int, ...]
    after: tuple[int, ...]
    spatial: tuple[int, ...]
    padded: tuple[int, ...]
    out: tuple[int, ...]
    batched: bool


def _geometry(
    x: Array,
    weight: Array,
    nd: int,
    stride: object,
    padding: object,
    dilation: object,
    groups: object,
) -> ConvGeometry:
    stride_t = conv_tuple("stride", stride, nd)
    dilation_t = conv_tuple("dilation", dilation, nd)
    (groups_i,) = conv_tuple("groups", groups, 1)
    pad = conv_padding(padding, nd, stride_t)
    if weight.ndim != nd + 2:
        raise ValueError(
            f"weight must have shape (out_channels, in_channels // groups, {nd} kernel sizes), "
            f"got shape {shape_str(weight.shape)}"
        )
    check_known_shape("weight", weight, "a convolution")
    check_known_shape("x", x, "a convolution")
    if x.ndim not in (nd + 1, nd + 2):
        raise ValueError(
            f"x must have shape (N, C, {nd} spatial sizes) or, unbatched, (C, {nd} spatial "
            f"sizes), got shape {shape_str(x.shape)}"
        )
    out_channels, per_group = int(weight.shape[0]), int(weight.shape[1])
    kernel = tuple(int(k) for k in weight.shape[2:])
    if out_channels % groups_i:
        raise ValueError(
            f"weight has {out_channels} output channels, which groups={groups_i} does not divide"
        )
    channels = int(x.shape[-nd - 1])
    if channels != per_group * groups_i:
        raise ValueError(
            f"x has shape {shape_str(x.shape)}: expected {per_group * groups_i} channels "
            f"(weight.shape[1] * groups = {per_group} * {groups_i}), got {channels}"
        )
    if 0 in kernel or per_group == 0:
        raise ValueError(f"weight must have no zero-size axis, got {shape_str(weight.shape)}")
    spatial = tuple(int(s) for s in x.shape[-nd:])
    reach = tuple(d * (k - 1) + 1 for d, k in zip(dilation_t, kernel, strict=True))
    if pad == "valid":
        before = after = (0,) * nd
    elif pad == "same":
        # PyTorch: the total d*(k-1) split, the odd one extra on the right.
        before = tuple((r - 1) // 2 for r in reach)
        after = tuple(r - 1 - b for r, b in zip(reach, before, strict=True))
    else:
        assert not isinstance(pad, str)
        before = after = pad
    padded = tuple(s + b + a for s, b, a in zip(spatial, before, after, strict=True))
    if any(p < r for p, r in zip(padded, reach, strict=True)):
        raise ValueError(
            f"x has spatial size {spatial}, padded to {padded}, smaller than the dilated kernel "
            f"{reach} (kernel {kernel}, dilation {dilation_t}): the output would be empty"
        )
    out = tuple((p - r) // s + 1 for p, r, s in zip(padded, reach, stride_t, strict=True))
    return ConvGeometry(
        nd=nd,
        stride=stride_t,
        dilation=dilation_t,
        groups=groups_i,
        kernel=kernel,
        before=before,
        after=after,
        spatial=spatial,
        padded=padded,
        out=out,
        batched=x.ndim == nd + 2,
    )


def check_conv(
    x: Array,
    weight: Array,
    bias: Array | None = None,
    *,
    nd: int,
    stride: object = 1,
    padding: object = 0,
    dilation: object = 1,
    groups: object = 1,
) -> Checked:
    """Check the inputs of an ``nd``-d convolution; the geometry goes in ``constants``.

    Raises
    ------
    TypeError
        For non-floating inputs, arrays from different libraries, options
        of the wrong type.
    ValueError
        For arrays on different devices, shapes that do not fit, sizes
        unknown until computed, options out of range, or an empty output.
    """
    xp = array_namespace(x=x, weight=weight, bias=bias, optional=("bias",))
    check_floating(xp, x=x, weight=weight, bias=bias)
    check_same_device(x=x, weight=weight, bias=bias)
    geometry = _geometry(x, weight, nd, stride, padding, dilation, groups)
    out_channels = int(weight.shape[0])
    if bias is not None and tuple(bias.shape) != (out_channels,):
        raise ValueError(
            f"bias must have shape ({out_channels},) (out_channels), got shape "
            f"{shape_str(bias.shape)}"
        )
    dtypes = (x.dtype, weight.dtype) if bias is None else (x.dtype, weight.dtype, bias.dtype)
    dtype = xp.result_type(*dtypes)
    same = all(d == dtype for d in dtypes) and not xp.isdtype(dtype, "complex floating")
    return Checked(xp=xp, dtype=dtype, same_real_dtype=same, constants=geometry)


def check_conv_backward(
    dy: Array,
    x: Array,
    weight: Array,
    bias: Array | None = None,
    *,
    forward: Checked,
) -> Checked:
    """Check ``dy`` against the forward pass :func:`check_conv` checked as ``forward``.

    Raises
    ------
    TypeError
        For a non-floating ``dy``, or one of another library.
    ValueError
        For a ``dy`` on another device or not of the output's shape.
    """
    geometry: ConvGeometry = forward.constants
    xp = array_namespace(dy=dy, x=x)
    check_floating(xp, dy=dy)
    check_same_device(x=x, dy=dy)
    check_known_shape("dy", dy, "the backward pass")
    lead = tuple(x.shape[:1]) if geometry.batched else ()
    expected = (*lead, int(weight.shape[0]), *geometry.out)
    if tuple(dy.shape) != expected:
        raise ValueError(
            f"dy must have the shape of the output, {shape_str(expected)}, got "
            f"{shape_str(dy.shape)}"
        )
    dtypes = [dy.dtype, x.dtype, weight.dtype] + ([] if bias is None else [bias.dtype])
    dtype = xp.result_type(dy.dtype, x.dtype, weight.dtype)
    same = all(d == dtype for d in dtypes) and not xp.isdtype(dtype, "complex floating")
    return Checked(xp=xp, dtype=dtype, same_real_dtype=same, constants=geometry)


# -- building blocks ----------------------------------------------------------


def _offsets(kernel: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Every kernel offset, in C order (the order of ``weight``'s kernel axes)."""
    offsets: list[tuple[int, ...]] = [()]
    for k in kernel:
        offsets = [(*o, i) for o in offsets for i in range(k)]
    return offsets


def _patches(xp: Namespace, x4: Array, g: ConvGeometry) -> Array:
    """Return the patches of the batched ``x4``, shape ``(N, C, P, *out)``."""
    padded = x4
    for axis in range(g.nd):
        padded = pad_axis(xp, padded, 2 + axis, g.before[axis], g.after[axis])
    slices = []
    for offset in _offsets(g.kernel):
        index = [slice(None), slice(None)]
        for k, d, s, o in zip(offset, g.dilation, g.stride, g.out, strict=True):
            index.append(slice(k * d, k * d + s * (o - 1) + 1, s))
        slices.append(padded[tuple(index)])
    return xp.stack(slices, axis=2)


def _columns(xp: Namespace, patches: Array, groups: int) -> Array:
    """``(N, C, P, *out)`` patches as ``(N, G, C/G * P, L)``: split, then merge (for Dask)."""
    n, channels, p = (int(s) for s in patches.shape[:3])
    out = tuple(int(s) for s in patches.shape[3:])
    split = xp.reshape(patches, (n, groups, channels // groups, p, *out))
    return xp.reshape(split, (n, groups, channels // groups * p, math.prod(out)))


def _weight_rows(xp: Namespace, weight: Array, groups: int) -> Array:
    """``(O, C/G, *kernel)`` as ``(G, O/G, C/G * P)``: merge, then split (for Dask)."""
    out_channels = int(weight.shape[0])
    merged = xp.reshape(weight, (out_channels, math.prod(int(s) for s in weight.shape[1:])))
    return xp.reshape(merged, (groups, out_channels // groups, int(merged.shape[1])))


def _batched(xp: Namespace, x: Array, g: ConvGeometry) -> Array:
    return x if g.batched else xp.expand_dims(x, axis=0)


# -- kernels ------------------------------------------------------------------


def conv_kernel(checked: Checked, x: Array, weight: Array, bias: Array | None) -> Array:
    """Compute the convolution on inputs :func:`check_conv` passed."""
    return conv_forward_kernel(checked, x, weight, bias)[0]


def conv_forward_kernel(
    checked: Checked, x: Array, weight: Array, bias: Array | None
) -> tuple[Array, Array | None]:
    """Compute the convolution and return it with the patches it multiplied.

    Returns
    -------
    y : array
        What :func:`conv_kernel` returns.
    columns : array of shape (N, groups, C/groups * prod(kernel), prod(out)), or None
        The input's patches, which :func:`conv_backward_kernel` takes as
        ``columns`` so as not to build them again; None for an empty batch.
    """
    xp, dtype, g = checked.xp, checked.dtype, checked.constants
    assert isinstance(g, ConvGeometry)
    assert dtype is not None
    if not checked.same_real_dtype:
        x, weight = as_dtype(xp, x, dtype), as_dtype(xp, weight, dtype)
        bias = None if bias is None else as_dtype(xp, bias, dtype)
    x4 = _batched(xp, x, g)
    n, out_channels = int(x4.shape[0]), int(weight.shape[0])
    groups, length = g.groups, math.prod(g.out)
    if n == 0:  # an empty batch (Dask cannot reshape empty arrays)
        y = xp.zeros((0, out_channels, *g.out), dtype=dtype, device=device(x))
        return (y if bias is None else y + xp.reshape(bias, (out_channels, *([1] * g.nd)))), None
    cols = _columns(xp, _patches(xp, x4, g), groups)
    w3 = _weight_rows(xp, weight, groups)
    # Dask reshapes either merge or split axes in one call, never both.
    y = xp.reshape(xp.reshape(w3 @ cols, (n, out_channels, length)), (n, out_channels, *g.out))
    if bias is not None:
        y = y + xp.reshape(bias, (out_channels, *([1] * g.nd)))
    return (y if g.batched else y[0, ...]), cols


def conv_backward_kernel(
    checked: Checked,
    dy: Array,
    x: Array,
    weight: Array,
    *,
    has_bias: bool,
    bias_dtype: DType | None = None,
    input_grad: bool = True,
    columns: Array | None = None,
) -> tuple[Array | None, Array, Array | None]:
    """Compute ``(dx, dweight, dbias)`` on inputs :func:`check_conv_backward` passed.

    With ``input_grad=False``, ``dx`` is ``None`` and not computed.
    ``columns``, the patches :func:`conv_forward_kernel` returned for
    ``x``, saves building them again.
    """
    xp, dtype, g = checked.xp, checked.dtype, checked.constants
    assert isinstance(g, ConvGeometry)
    assert dtype is not None
    dy_c, x_c, w_c = (as_dtype(xp, a, dtype) for a in (dy, x, weight))
    if xp.isdtype(dtype, "complex floating"):
        x_c, w_c = xp.conj(x_c), xp.conj(w_c)
    x4, dy4 = _batched(xp, x_c, g), _batched(xp, dy_c, g)
    n, channels = int(x4.shape[0]), int(x4.shape[1])
    out_channels = int(weight.shape[0])
    groups, p, length = g.groups, math.prod(g.kernel), math.prod(g.out)
    cg, og = channels // groups, out_channels // groups
    if n == 0:  # an empty batch: zero gradients (Dask cannot reshape empty arrays)
        where = device(x)
        dx0 = xp.zeros(tuple(int(s) for s in x.shape), dtype=x.dtype, device=where)
        dw0 = xp.zeros(tuple(int(s) for s in weight.shape), dtype=weight.dtype, device=where)
        db0 = xp.zeros((out_channels,), dtype=bias_dtype or weight.dtype, device=where)
        return (dx0 if input_grad else None), dw0, (db0 if has_bias else None)
    dy3 = xp.reshape(xp.reshape(dy4, (n, out_channels, length)), (n, groups, og, length))

    # dweight[g] = sum over n of dy[n, g] (Og, L) @ patches[n, g].T (L, Cg*P): one product
    # per sample, summed, so neither operand is copied into another layout.
    if columns is None:
        cols = _columns(xp, _patches(xp, x4, g), groups)
    else:
        cols = as_dtype(xp, columns, dtype)
        if xp.isdtype(dtype, "complex floating"):
            cols = xp.conj(cols)
    dweight = xp.reshape(
        xp.reshape(xp.sum(dy3 @ xp.matrix_transpose(cols), axis=0), (out_channels, cg * p)),
        tuple(int(s) for s in weight.shape),
    )
    dweight = gradient_as(xp, dweight, weight.dtype)

    dbias = None
    if has_bias:
        dbias = xp.sum(dy3, axis=(0, 3))
        dbias = gradient_as(xp, xp.reshape(dbias, (out_channels,)), bias_dtype or weight.dtype)

    dx = None
    if input_grad:
        dcols = xp.matrix_transpose(_weight_rows(xp, w_c, groups)) @ dy3  # (N, G, Cg*P, L)
        dpatches = xp.reshape(
            xp.reshape(dcols, (n, groups, cg, p, *g.out)), (n, channels, p, *g.out)
        )
        for axis in range(g.nd):
            dpatches = interleave(xp, dpatches, 3 + axis, g.stride[axis])
        # Each kernel offset's share lands on a shifted window of the padded input.
        shares = (
            (tuple(o * d for o, d in zip(offset, g.dilation, strict=True)), dpatches[:, :, k, ...])
            for k, offset in enumerate(_offsets(g.kernel))
        )
        total = add_windows(xp, (n, channels, *g.padded), dpatches.dtype, device(x), shares)
        crop = [slice(None), slice(None)]
        crop += [slice(b, b + s) for b, s in zip(g.before, g.spatial, strict=True)]
        dx4 = total[tuple(crop)]
        dx = gradient_as(xp, dx4 if g.batched else dx4[0, ...], x.dtype)
    return dx, dweight, dbias


# -- the public functions -----------------------------------------------------


def _conv(
    nd: int,
    x: Array,
    weight: Array,
    bias: Array | None,
    stride: object,
    padding: object,
    dilation: object,
    groups: object,
) -> Array:
    options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return conv_kernel(check_conv(x, weight, bias, nd=nd, **options), x, weight, bias)


def _conv_backward(
    nd: int,
    dy: Array,
    x: Array,
    weight: Array,
    has_bias: bool,
    stride: object,
    padding: object,
    dilation: object,
    groups: object,
) -> tuple[Array, Array, Array | None]:
    options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    forward = check_conv(x, weight, nd=nd, **options)
    checked = check_conv_backward(dy, x, weight, forward=forward)
    dx, dweight, dbias = conv_backward_kernel(checked, dy, x, weight, has_bias=has_bias)
    assert dx is not None
    return dx, dweight, dbias


def conv1d(
    x: Array,
    weight: Array,
    bias: Array | None = None,
    stride: int | Sequence[int] = 1,
    padding: Padding = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> Array:
    """Apply a 1-d convolution (cross-correlation), as ``torch.nn.functional.conv1d``.

    Parameters
    ----------
    x : array of shape (N, C, L) or (C, L)
        Input; ``C = weight.shape[1] * groups``.
    weight : array of shape (out_channels, C // groups, K)
        The kernels, in PyTorch's layout.
    bias : array of shape (out_channels,), optional
        Added to every output position.
    stride, dilation : int or (int,), default 1
        Step between output positions; spacing of the kernel taps.
    padding : int, (int,), 'valid' or 'same', default 0
        Zeros added on both sides; ``'same'`` keeps the length (stride 1
        only; an odd total puts the extra zero on the right, as PyTorch).
    groups : int, default 1
        Channel groups; ``groups = C`` is a depthwise convolution.

    Returns
    -------
    y : array of shape (N, out_channels, L_out) or (out_channels, L_out)
        ``L_out = (L + pad_left + pad_right - dilation*(K-1) - 1) // stride + 1``.

    Raises
    ------
    TypeError, ValueError
        For inputs or options that do not fit (see :func:`check_conv`).

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional import conv1d
    >>> conv1d(np.arange(5.0).reshape(1, 1, 5), np.ones((1, 1, 3)), padding=1)
    array([[[1., 3., 6., 9., 7.]]])
    """
    return _conv(1, x, weight, bias, stride, padding, dilation, groups)


def conv2d(
    x: Array,
    weight: Array,
    bias: Array | None = None,
    stride: int | Sequence[int] = 1,
    padding: Padding = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> Array:
    """Apply a 2-d convolution (cross-correlation), as ``torch.nn.functional.conv2d``.

    Parameters
    ----------
    x : array of shape (N, C, H, W) or (C, H, W)
        Input; ``C = weight.shape[1] * groups``.
    weight : array of shape (out_channels, C // groups, KH, KW)
        The kernels, in PyTorch's layout.
    bias : array of shape (out_channels,), optional
        Added to every output position.
    stride, dilation : int or (int, int), default 1
        Step between output positions; spacing of the kernel taps.
    padding : int, (int, int), 'valid' or 'same', default 0
        Zeros added on both sides of each axis; ``'same'`` keeps the sizes
        (stride 1 only; an odd total puts the extra zero at the bottom or
        right, as PyTorch).
    groups : int, default 1
        Channel groups; ``groups = C`` is a depthwise convolution.

    Returns
    -------
    y : array of shape (N, out_channels, H_out, W_out) or (out_channels, H_out, W_out)
        Each output size as for :func:`conv1d`, per axis.

    Raises
    ------
    TypeError, ValueError
        For inputs or options that do not fit (see :func:`check_conv`).

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional import conv2d
    >>> conv2d(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)))
    array([[[[4., 4.],
             [4., 4.]]]])
    """
    return _conv(2, x, weight, bias, stride, padding, dilation, groups)


def conv1d_backward(
    dy: Array,
    x: Array,
    weight: Array,
    *,
    has_bias: bool = True,
    stride: int | Sequence[int] = 1,
    padding: Padding = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> tuple[Array, Array, Array | None]:
    """Return ``(dx, dweight, dbias)`` of :func:`conv1d` given the output gradient ``dy``.

    The options must be those of the forward pass. ``dx`` has ``x``'s shape
    and dtype, ``dweight`` the weight's, ``dbias`` (``None`` without bias)
    shape ``(out_channels,)`` in the weight's dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional import conv1d_backward
    >>> dx, dw, db = conv1d_backward(np.ones((1, 1, 3)), np.ones((1, 1, 5)), np.ones((1, 1, 3)))
    >>> dx
    array([[[1., 2., 3., 2., 1.]]])
    >>> dw, db
    (array([[[3., 3., 3.]]]), array([3.]))
    """
    return _conv_backward(1, dy, x, weight, has_bias, stride, padding, dilation, groups)


def conv2d_backward(
    dy: Array,
    x: Array,
    weight: Array,
    *,
    has_bias: bool = True,
    stride: int | Sequence[int] = 1,
    padding: Padding = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> tuple[Array, Array, Array | None]:
    """Return ``(dx, dweight, dbias)`` of :func:`conv2d` given the output gradient ``dy``.

    As :func:`conv1d_backward`, on two spatial axes.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional import conv2d_backward
    >>> dx, dw, db = conv2d_backward(
    ...     np.ones((1, 1, 2, 2)), np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2))
    ... )
    >>> dx[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    >>> dw[0, 0], db
    (array([[4., 4.],
           [4., 4.]]), array([4.]))
    """
    return _conv_backward(2, dy, x, weight, has_bias, stride, padding, dilation, groups)

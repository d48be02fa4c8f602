"""Pooling: max, average and adaptive average, forward and hand-derived backward.

Written once on the standard, with neither scatter nor ``as_strided``
(``docs/pooling.md`` has the derivations):

- **forward**: the input is padded along its spatial axes with ``concat``
  (``-inf`` for max pooling, zeros for averages), one strided slice is taken
  per kernel offset, the slices are stacked on a new last axis (the window
  axis) and reduced (``max``, or ``sum`` over a divisor);
- **max backward**: a one-hot mask of the *first* maximum of each window
  (``argmax`` along the window axis, which the standard defines as the first
  occurrence, ``== arange``), times ``dy``; each offset's slice of it goes
  back to the input's positions by zero-interleaving (the stride) and
  zero-padding with ``concat`` (the offset), and the offsets are summed;
- **average backward**: the same with ``dy / divisor`` for every offset;
- **adaptive average**: PyTorch's bins, ``start = floor(i*L/out)``,
  ``end = ceil((i+1)*L/out)``, one static slice per bin, an axis at a time,
  then ``stack``; its backward spreads ``dy / (end - start)`` over each bin.

Inputs are ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``, one or two
spatial axes. Every size is a static Python int read from the shape; unknown
sizes (Dask's NaN) are refused. Nothing is read back to the host, and every
array made here is made on the input's device.
"""

from __future__ import annotations

import itertools
import math
import numbers
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .._checks import (
    Checked,
    check_known_shape,
    check_real_floating,
    check_same_device,
    shape_str,
)
from .._compat import Array, Namespace, array_namespace, device
from ._dtypes import as_dtype, gradient_as
from ._sliding import add_windows, interleave, pad_axis

__all__ = [
    "adaptive_avg_pool1d",
    "adaptive_avg_pool1d_backward",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_backward",
    "adaptive_avg_pool_backward_kernel",
    "adaptive_avg_pool_kernel",
    "avg_pool1d",
    "avg_pool1d_backward",
    "avg_pool2d",
    "avg_pool2d_backward",
    "avg_pool_backward_kernel",
    "avg_pool_kernel",
    "check_adaptive_pool",
    "check_output_size",
    "check_pool",
    "check_pool_backward",
    "max_pool1d",
    "max_pool1d_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "max_pool_backward_kernel",
    "max_pool_kernel",
    "pool_settings",
]


# -- settings ----------------------------------------------------------------


def _ints(value: object, name: str, d: int, *, minimum: int) -> tuple[int, ...]:
    items: Sequence[object]
    if isinstance(value, (tuple, list)):
        items = value
        if len(items) != d:
            raise ValueError(f"{name} must be an int or {d} ints, got {value!r}")
    else:
        items = (value,) * d
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, numbers.Integral):
            raise TypeError(f"{name} must be an int or a tuple of {d} ints, got {value!r}")
        number = operator.index(item)
        if number < minimum:
            raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
        out.append(number)
    return tuple(out)


def check_output_size(output_size: object, d: int) -> None:
    """Check an adaptive pooling's ``output_size``: an int, or ``d`` ints (or ``None``), each >= 1.

    Raises
    ------
    TypeError
        For sizes that are not ints (or ``None``).
    ValueError
        For the wrong number of sizes, or a size below 1.
    """
    sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * d
    if len(sizes) != d:
        raise ValueError(f"output_size must be an int or {d} ints, got {output_size!r}")
    for size in sizes:
        if size is not None:
            _ints(size, "output_size", 1, minimum=1)


def pool_settings(
    d: int,
    kernel_size: object,
    stride: object = None,
    padding: object = 0,
    dilation: object = 1,
    *,
    what: str = "pooling",
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Check and normalise pooling settings to ``d``-tuples of ints.

    ``stride=None`` (or an empty tuple) means the kernel size, as in PyTorch;
    ``padding`` may be at most half the kernel size.

    Raises
    ------
    TypeError
        For settings that are not ints (or tuples of ``d`` ints).
    ValueError
        For sizes below 1 (padding below 0), or padding over half the kernel.
    """
    kernel = _ints(kernel_size, "kernel_size", d, minimum=1)
    steps = kernel if stride is None or stride == () or stride == [] else None
    steps = steps or _ints(stride, "stride", d, minimum=1)
    pads = _ints(padding, "padding", d, minimum=0)
    dilations = _ints(dilation, "dilation", d, minimum=1)
    if any(2 * p > k for p, k in zip(pads, kernel, strict=True)):
        raise ValueError(
            f"{what}: padding must be at most half of kernel_size, as in PyTorch, got "
            f"padding={padding!r} for kernel_size={kernel_size!r}"
        )
    return kernel, steps, pads, dilations


@dataclass(frozen=True)
class _Axis:
    """One spatial axis of a pooling: sizes, and where the windows fall."""

    size: int  # L
    kernel: int
    stride: int
    pad: int  # left padding (and at least this much on the right)
    dilation: int
    out: int
    padded: int  # the length after padding

    @property
    def span(self) -> int:
        """Length, in padded positions, that one offset's strided slice covers."""
        return (self.out - 1) * self.stride + 1

    def offsets(self) -> range:
        return range(0, self.kernel * self.dilation, self.dilation)


def _output_size(size: int, k: int, s: int, p: int, dil: int, ceil_mode: bool) -> int:
    """PyTorch's ``pooling_output_shape``."""
    numerator = size + 2 * p - dil * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = numerator // s + 1
    # The last window must start inside the input or the left padding.
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


@dataclass(frozen=True)
class _Geometry:
    axes: tuple[_Axis, ...]
    batched: bool
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    count_include_pad: bool = True
    adaptive: tuple[tuple[tuple[int, int], ...], ...] = ()


# -- checks ------------------------------------------------------------------


def _check_input(x: Array, what: str, d: int) -> tuple[Namespace, tuple[int, ...]]:
    xp = array_namespace(x=x)
    check_real_floating(xp, what, x=x)
    if x.ndim not in (d + 1, d + 2):
        spatial = "L" if d == 1 else "H, W"
        raise ValueError(
            f"{what} takes (N, C, {spatial}) or unbatched (C, {spatial}) input, got x of "
            f"shape {shape_str(tuple(x.shape))}"
        )
    return xp, check_known_shape("x", x, what)


def check_pool(
    x: Array,
    what: str,
    d: int,
    kernel_size: object,
    stride: object = None,
    padding: object = 0,
    dilation: object = 1,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Checked:
    """Check the input of a max or average pooling and work out its windows.

    Parameters
    ----------
    x : array
        ``(N, C, *spatial)`` or ``(C, *spatial)``, ``d`` spatial axes, real floating.
    what : str
        The function's name, for messages (``"max_pool2d"``).
    d : int
        The number of spatial axes, 1 or 2.
    kernel_size, stride, padding, dilation, ceil_mode, count_include_pad
        As in PyTorch (see :func:`pool_settings`).

    Returns
    -------
    Checked
        The namespace, ``x``'s dtype, and in ``constants`` the geometry of the
        windows (static Python ints) that the kernels read.

    Raises
    ------
    TypeError
        For a non-array, a dtype that is not real floating, or bad settings.
    ValueError
        For a rank other than ``d + 1`` or ``d + 2``, unknown sizes, bad
        settings, or an output that would be empty.
    """
    kernel, steps, pads, dilations = pool_settings(
        d, kernel_size, stride, padding, dilation, what=what
    )
    xp, shape = _check_input(x, what, d)
    axes = []
    for size, k, s, p, dil in zip(shape[-d:], kernel, steps, pads, dilations, strict=True):
        out = _output_size(size, k, s, p, dil, bool(ceil_mode))
        if out < 1:
            raise ValueError(
                f"{what}: the output would be empty: input of spatial size "
                f"{shape_str(shape[-d:])} is too small for kernel_size={kernel_size!r}, "
                f"padding={padding!r}, dilation={dilation!r}"
            )
        needed = (out - 1) * s + dil * (k - 1) + 1
        axes.append(_Axis(size, k, s, p, dil, out, max(size + 2 * p, needed)))
    out_shape = shape[:-d] + tuple(a.out for a in axes)
    geometry = _Geometry(tuple(axes), x.ndim == d + 2, shape, out_shape, bool(count_include_pad))
    return Checked(xp=xp, dtype=x.dtype, same_real_dtype=True, constants=geometry)


def _bins(size: int, out: int) -> tuple[tuple[int, int], ...]:
    # PyTorch: start = floor(i * L / out), end = ceil((i + 1) * L / out).
    return tuple(((i * size) // out, -((-(i + 1) * size) // out)) for i in range(out))


def check_adaptive_pool(x: Array, what: str, d: int, output_size: object) -> Checked:
    """Check the input of an adaptive average pooling and work out its bins.

    ``output_size`` is an int or ``d`` ints (``None`` keeps that axis's input
    size, as in PyTorch), each at least 1.

    Raises
    ------
    TypeError
        For a non-array, a dtype that is not real floating, or a bad ``output_size``.
    ValueError
        For a rank other than ``d + 1`` or ``d + 2``, unknown sizes, or sizes below 1.
    """
    xp, shape = _check_input(x, what, d)
    spatial = shape[-d:]
    sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * d
    if len(sizes) != d:
        raise ValueError(f"output_size must be an int or {d} ints, got {output_size!r}")
    outs = _ints(
        tuple(s if o is None else o for o, s in zip(sizes, spatial, strict=True)),
        "output_size",
        d,
        minimum=1,
    )
    bins = tuple(_bins(size, out) for size, out in zip(spatial, outs, strict=True))
    geometry = _Geometry((), x.ndim == d + 2, shape, shape[:-d] + outs, adaptive=bins)
    return Checked(xp=xp, dtype=x.dtype, same_real_dtype=True, constants=geometry)


def check_pool_backward(dy: Array, x: Array, what: str, *, forward: Checked) -> Checked:
    """Check ``dy`` against the input of a pooling and the forward's geometry.

    Returns
    -------
    Checked
        The namespace, the dtype to compute in (``result_type(dy, x)``), and the
        forward's geometry in ``constants``.

    Raises
    ------
    TypeError
        For arrays from different libraries or dtypes that are not real floating.
    ValueError
        For arrays on different devices, or a ``dy`` not of the output's shape.
    """
    xp = array_namespace(dy=dy, x=x)
    check_real_floating(xp, what, dy=dy, x=x)
    check_same_device(x=x, dy=dy)
    shape = check_known_shape("dy", dy, "the backward pass")
    geometry: _Geometry = forward.constants
    if shape != geometry.out_shape:
        raise ValueError(
            f"dy must have the shape of the output: expected {shape_str(geometry.out_shape)}, "
            f"got {shape_str(shape)}"
        )
    dtype = xp.result_type(dy.dtype, x.dtype)
    return Checked(xp=xp, dtype=dtype, same_real_dtype=dy.dtype == x.dtype, constants=geometry)


# -- building blocks ---------------------------------------------------------


def _tiled(axes: tuple[_Axis, ...]) -> bool:
    """Whether the windows tile the input: stride = kernel, no dilation, no padding.

    Then they are blocks of a reshape (the common 2x2 pooling), with no
    strided slice to stack and no overlap to add back.
    """
    return all(
        ax.stride == ax.kernel
        and ax.dilation == 1
        and ax.pad == 0
        and ax.out * ax.kernel <= ax.size
        for ax in axes
    )


def _tiles(xp: Namespace, x: Array, axes: tuple[_Axis, ...]) -> Array:
    """:func:`_windows` of tiling windows (:func:`_tiled`), by reshapes: ``(*lead, *out, K)``."""
    d = len(axes)
    lead = tuple(int(s) for s in x.shape[: x.ndim - d])
    crop = (..., *(slice(0, ax.out * ax.kernel) for ax in axes))
    blocks = xp.reshape(x[crop], (*lead, *(n for ax in axes for n in (ax.out, ax.kernel))))
    n = len(lead)
    order = (*range(n), *(n + 2 * i for i in range(d)), *(n + 2 * i + 1 for i in range(d)))
    blocks = xp.permute_dims(blocks, order)
    return xp.reshape(
        blocks, (*lead, *(ax.out for ax in axes), math.prod(ax.kernel for ax in axes))
    )


def _untile(xp: Namespace, grad: Array, axes: tuple[_Axis, ...]) -> Array:
    """Undo :func:`_tiles` (its adjoint): ``(*lead, *out, K)`` to ``(*lead, *spatial)``."""
    d = len(axes)
    lead = tuple(int(s) for s in grad.shape[: grad.ndim - d - 1])
    blocks = xp.reshape(grad, (*lead, *(ax.out for ax in axes), *(ax.kernel for ax in axes)))
    n = len(lead)
    order = (*range(n), *(i for a in range(d) for i in (n + a, n + d + a)))
    blocks = xp.permute_dims(blocks, order)
    dx = xp.reshape(blocks, (*lead, *(ax.out * ax.kernel for ax in axes)))
    for i, ax in enumerate(axes):  # the rows no window reached
        dx = pad_axis(xp, dx, i - d, 0, ax.size - ax.out * ax.kernel)
    return dx


def _windows(xp: Namespace, x: Array, axes: tuple[_Axis, ...], value: float) -> Array:
    """Stack one strided slice per kernel offset on a new last axis."""
    if _tiled(axes):
        return _tiles(xp, x, axes)
    d = len(axes)
    for i, ax in enumerate(axes):
        x = pad_axis(xp, x, i - d, ax.pad, ax.padded - ax.size - ax.pad, value)
    slices = []
    for starts in itertools.product(*(ax.offsets() for ax in axes)):
        index = (
            ...,
            *tuple(
                slice(start, start + ax.span, ax.stride)
                for start, ax in zip(starts, axes, strict=True)
            ),
        )
        slices.append(x[index])
    return xp.stack(slices, axis=-1)


def _unwindow(
    xp: Namespace, windows_grad: Callable[[int], Array], axes: tuple[_Axis, ...]
) -> Array:
    """Sum each offset's gradient back into the input's positions (the adjoint of :func:`_windows`).

    ``windows_grad(k)`` gives the gradient of the ``k``-th offset's slice,
    already zero-interleaved (:func:`interleave`) to the slice's span in the
    padded input; each is added into the padded input's gradient at its offset.
    """
    shares = (
        (starts, windows_grad(k))
        for k, starts in enumerate(itertools.product(*(ax.offsets() for ax in axes)))
    )
    first = windows_grad(0)
    lead = tuple(int(s) for s in first.shape[: first.ndim - len(axes)])
    padded = tuple(ax.padded for ax in axes)
    total = add_windows(xp, (*lead, *padded), first.dtype, device(first), shares)
    index = (..., *(slice(ax.pad, ax.pad + ax.size) for ax in axes))
    return total[index]


def _spread(xp: Namespace, a: Array, axes: tuple[_Axis, ...], trailing: int) -> Array:
    """Zero-interleave ``a`` along each spatial axis by its stride; ``trailing`` axes follow."""
    d = len(axes)
    for i, ax in enumerate(axes):
        a = interleave(xp, a, i - d - trailing, ax.stride)
    return a


def _divisor(xp: Namespace, geometry: _Geometry, dtype: object, where: object) -> Array:
    """Return what each window's sum is divided by, shaped to broadcast against the output."""
    d = len(geometry.axes)
    result = None
    for i, ax in enumerate(geometry.axes):
        counts = []
        for o in range(ax.out):
            start = o * ax.stride - ax.pad
            end = min(start + ax.kernel, ax.size + ax.pad)
            if not geometry.count_include_pad:
                start, end = max(start, 0), min(end, ax.size)
            counts.append(float(end - start))
        shape = [1] * d
        shape[i] = ax.out
        column = xp.reshape(xp.asarray(counts, dtype=dtype, device=where), tuple(shape))
        result = column if result is None else result * column
    assert result is not None
    return result


# -- max pooling -------------------------------------------------------------


def max_pool_kernel(x: Array, checked: Checked) -> Array:
    """Max pooling of ``x`` after :func:`check_pool` (``checked``), without checks."""
    geometry: _Geometry = checked.constants
    xp = checked.xp
    if math.prod(geometry.out_shape) == 0:
        return xp.zeros(geometry.out_shape, dtype=x.dtype, device=device(x))
    return xp.max(_windows(xp, x, geometry.axes, -math.inf), axis=-1)


def max_pool_backward_kernel(dy: Array, x: Array, checked: Checked) -> Array:
    """Max pooling's ``dx`` after :func:`check_pool_backward` (``checked``), without checks."""
    geometry: _Geometry = checked.constants
    xp, dtype = checked.xp, checked.dtype
    if math.prod(geometry.in_shape) == 0:
        return xp.zeros(geometry.in_shape, dtype=x.dtype, device=device(x))
    windows = _windows(xp, x, geometry.axes, -math.inf)
    # argmax returns the first occurrence of the maximum: PyTorch's tie rule.
    first = xp.argmax(windows, axis=-1, keepdims=True)
    positions = xp.arange(windows.shape[-1], dtype=first.dtype, device=device(x))
    mask = as_dtype(xp, first == positions, dtype)
    per_window = mask * xp.expand_dims(as_dtype(xp, dy, dtype), axis=-1)
    if _tiled(geometry.axes):
        return gradient_as(xp, _untile(xp, per_window, geometry.axes), x.dtype)
    grad = _spread(xp, per_window, geometry.axes, 1)
    dx = _unwindow(xp, lambda k: grad[..., k], geometry.axes)
    return gradient_as(xp, dx, x.dtype)


def max_pool1d(
    x: Array,
    kernel_size: int | tuple[int],
    stride: int | tuple[int] | None = None,
    padding: int | tuple[int] = 0,
    dilation: int | tuple[int] = 1,
    ceil_mode: bool = False,
    *,
    checked: Checked | None = None,
) -> Array:
    """Max over sliding windows of the last axis, as ``torch.nn.functional.max_pool1d``.

    Parameters
    ----------
    x : array of shape (N, C, L) or (C, L)
        Real floating input.
    kernel_size, stride, padding, dilation, ceil_mode
        As in PyTorch: ``stride`` defaults to ``kernel_size``, ``padding``
        (at most half the kernel) adds ``-inf`` on both sides, and with
        ``ceil_mode`` the last window may run past the end but must start
        inside the input or the left padding.
    checked : Checked, optional
        What :func:`check_pool` returned for ``x`` and these settings.

    Returns
    -------
    y : array of shape (N, C, L_out) or (C, L_out)

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.pooling import max_pool1d
    >>> max_pool1d(np.array([[1.0, 3.0, 2.0, 5.0, 4.0]]), 2)
    array([[3., 5.]])
    """
    checked = checked or check_pool(
        x, "max_pool1d", 1, kernel_size, stride, padding, dilation, ceil_mode
    )
    return max_pool_kernel(x, checked)


def max_pool1d_backward(
    dy: Array,
    x: Array,
    kernel_size: int | tuple[int],
    stride: int | tuple[int] | None = None,
    padding: int | tuple[int] = 0,
    dilation: int | tuple[int] = 1,
    ceil_mode: bool = False,
    *,
    checked: Checked | None = None,
) -> Array:
    """Return the input gradient of :func:`max_pool1d`.

    Each window's ``dy`` goes to its *first* maximum (PyTorch's rule for
    ties); windows that overlap add up. ``checked`` is what
    :func:`check_pool_backward` returned.
    """
    if checked is None:
        forward = check_pool(x, "max_pool1d", 1, kernel_size, stride, padding, dilation, ceil_mode)
        checked = check_pool_backward(dy, x, "max_pool1d", forward=forward)
    return max_pool_backward_kernel(dy, x, checked)


def max_pool2d(
    x: Array,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    ceil_mode: bool = False,
    *,
    checked: Checked | None = None,
) -> Array:
    """Max over sliding windows of the last two axes, as ``torch.nn.functional.max_pool2d``.

    Input ``(N, C, H, W)`` or ``(C, H, W)``; the settings are ints or pairs,
    as in :func:`max_pool1d`.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.pooling import max_pool2d
    >>> max_pool2d(np.arange(16.0).reshape(1, 4, 4), 2)
    array([[[ 5.,  7.],
            [13., 15.]]])
    """
    checked = checked or check_pool(
        x, "max_pool2d", 2, kernel_size, stride, padding, dilation, ceil_mode
    )
    return max_pool_kernel(x, checked)


def max_pool2d_backward(
    dy: Array,
    x: Array,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    ceil_mode: bool = False,
    *,
    checked: Checked | None = None,
) -> Array:
    """Return the input gradient of :func:`max_pool2d` (to the first maximum of each window)."""
    if checked is None:
        forward = check_pool(x, "max_pool2d", 2, kernel_size, stride, padding, dilation, ceil_mode)
        checked = check_pool_backward(dy, x, "max_pool2d", forward=forward)
    return max_pool_backward_kernel(dy, x, checked)


# -- average pooling ---------------------------------------------------------


def avg_pool_kernel(x: Array, checked: Checked) -> Array:
    """Average pooling of ``x`` after :func:`check_pool` (``checked``), without checks."""
    geometry: _Geometry = checked.constants
    xp = checked.xp
    if math.prod(geometry.out_shape) == 0:
        return xp.zeros(geometry.out_shape, dtype=x.dtype, device=device(x))
    total = xp.sum(_windows(xp, x, geometry.axes, 0.0), axis=-1)
    return total / _divisor(xp, geometry, x.dtype, device(x))


def avg_pool_backward_kernel(dy: Array, x: Array, checked: Checked) -> Array:
    """Average pooling's ``dx`` after :func:`check_pool_backward`, without checks."""
    geometry: _Geometry = checked.constants
    xp, dtype = checked.xp, checked.dtype
    if math.prod(geometry.in_shape) == 0:
        return xp.zeros(geometry.in_shape, dtype=x.dtype, device=device(x))
    share = as_dtype(xp, dy, dtype) / _divisor(xp, geometry, dtype, device(x))
    if _tiled(geometry.axes):
        size = math.prod(ax.kernel for ax in geometry.axes)
        per_window = xp.broadcast_to(xp.expand_dims(share, axis=-1), (*share.shape, size))
        return gradient_as(xp, _untile(xp, per_window, geometry.axes), x.dtype)
    share = _spread(xp, share, geometry.axes, 0)
    dx = _unwindow(xp, lambda k: share, geometry.axes)
    return gradient_as(xp, dx, x.dtype)


def avg_pool1d(
    x: Array,
    kernel_size: int | tuple[int],
    stride: int | tuple[int] | None = None,
    padding: int | tuple[int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    *,
    checked: Checked | None = None,
) -> Array:
    """Mean over sliding windows of the last axis, as ``torch.nn.functional.avg_pool1d``.

    Parameters
    ----------
    x : array of shape (N, C, L) or (C, L)
        Real floating input.
    kernel_size, stride, padding, ceil_mode
        As in :func:`max_pool1d`; the padding is zeros.
    count_include_pad : bool, default True
        Whether the zero padding counts in the divisor. The part of a
        ``ceil_mode`` window past the right padding never does (PyTorch).
    checked : Checked, optional
        What :func:`check_pool` returned.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.pooling import avg_pool1d
    >>> avg_pool1d(np.array([[1.0, 3.0, 2.0, 6.0]]), 2)
    array([[2., 4.]])
    """
    checked = checked or check_pool(
        x, "avg_pool1d", 1, kernel_size, stride, padding, 1, ceil_mode, count_include_pad
    )
    return avg_pool_kernel(x, checked)


def avg_pool1d_backward(
    dy: Array,
    x: Array,
    kernel_size: int | tuple[int],
    stride: int | tuple[int] | None = None,
    padding: int | tuple[int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    *,
    checked: Checked | None = None,
) -> Array:
    """Return the input gradient of :func:`avg_pool1d`: ``dy / divisor`` spread over each window."""
    if checked is None:
        forward = check_pool(
            x, "avg_pool1d", 1, kernel_size, stride, padding, 1, ceil_mode, count_include_pad
        )
        checked = check_pool_backward(dy, x, "avg_pool1d", forward=forward)
    return avg_pool_backward_kernel(dy, x, checked)


def avg_pool2d(
    x: Array,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    *,
    checked: Checked | None = None,
) -> Array:
    """Mean over sliding windows of the last two axes, as ``torch.nn.functional.avg_pool2d``.

    Input ``(N, C, H, W)`` or ``(C, H, W)``; settings as in :func:`avg_pool1d`.
    """
    checked = checked or check_pool(
        x, "avg_pool2d", 2, kernel_size, stride, padding, 1, ceil_mode, count_include_pad
    )
    return avg_pool_kernel(x, checked)


def avg_pool2d_backward(
    dy: Array,
    x: Array,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    *,
    checked: Checked | None = None,
) -> Array:
    """Return the input gradient of :func:`avg_pool2d`."""
    if checked is None:
        forward = check_pool(
            x, "avg_pool2d", 2, kernel_size, stride, padding, 1, ceil_mode, count_include_pad
        )
        checked = check_pool_backward(dy, x, "avg_pool2d", forward=forward)
    return avg_pool_backward_kernel(dy, x, checked)


# -- adaptive average pooling -----------------------------------------------


def adaptive_avg_pool_kernel(x: Array, checked: Checked) -> Array:
    """Adaptive average pooling after :func:`check_adaptive_pool` (``checked``), without checks."""
    geometry: _Geometry = checked.constants
    xp = checked.xp
    if math.prod(geometry.out_shape) == 0:
        return xp.zeros(geometry.out_shape, dtype=x.dtype, device=device(x))
    d = len(geometry.adaptive)
    # The bins are products of one range per axis: average one axis at a time.
    for i, bins in enumerate(geometry.adaptive):
        axis = x.ndim - d + i
        lead = (slice(None),) * axis
        means = [xp.mean(x[(*lead, slice(start, end), ...)], axis=axis) for start, end in bins]
        x = xp.stack(means, axis=axis)
    return x


def adaptive_avg_pool_backward_kernel(dy: Array, x: Array, checked: Checked) -> Array:
    """Adaptive average pooling's ``dx`` after :func:`check_pool_backward`, without checks."""
    geometry: _Geometry = checked.constants
    xp, dtype = checked.xp, checked.dtype
    if math.prod(geometry.in_shape) == 0:
        return xp.zeros(geometry.in_shape, dtype=x.dtype, device=device(x))
    d = len(geometry.adaptive)
    g = as_dtype(xp, dy, dtype)
    for i in reversed(range(d)):
        bins = geometry.adaptive[i]
        axis = g.ndim - d + i
        size = geometry.in_shape[axis]
        lead = (slice(None),) * axis
        trailing = (0,) * (g.ndim - axis - 1)
        shares = []
        for o, (start, end) in enumerate(bins):
            row = g[(*lead, slice(o, o + 1), ...)] / float(end - start)
            shape = list(row.shape)
            shape[axis] = end - start
            shares.append(((start, *trailing), xp.broadcast_to(row, tuple(shape))))
        full = tuple(size if a == axis else int(n) for a, n in enumerate(g.shape))
        total = add_windows(xp, full, g.dtype, device(g), shares)
        g = total
    return gradient_as(xp, g, x.dtype)


def adaptive_avg_pool1d(
    x: Array, output_size: int | tuple[int], *, checked: Checked | None = None
) -> Array:
    """Average over ``output_size`` bins of the last axis, as PyTorch's ``adaptive_avg_pool1d``.

    Bin ``i`` of an axis of length ``L`` covers ``floor(i*L/out)`` to
    ``ceil((i+1)*L/out)``; bins overlap where ``out`` does not divide ``L``.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.pooling import adaptive_avg_pool1d
    >>> adaptive_avg_pool1d(np.array([[1.0, 2.0, 3.0, 4.0, 5.0]]), 2)
    array([[2., 4.]])
    """
    checked = checked or check_adaptive_pool(x, "adaptive_avg_pool1d", 1, output_size)
    return adaptive_avg_pool_kernel(x, checked)


def adaptive_avg_pool1d_backward(
    dy: Array, x: Array, output_size: int | tuple[int], *, checked: Checked | None = None
) -> Array:
    """Return the input gradient of :func:`adaptive_avg_pool1d`: ``dy / bin size`` over each bin."""
    if checked is None:
        forward = check_adaptive_pool(x, "adaptive_avg_pool1d", 1, output_size)
        checked = check_pool_backward(dy, x, "adaptive_avg_pool1d", forward=forward)
    return adaptive_avg_pool_backward_kernel(dy, x, checked)


def adaptive_avg_pool2d(
    x: Array,
    output_size: int | tuple[int | None, int | None],
    *,
    checked: Checked | None = None,
) -> Array:
    """Average over ``output_size`` bins of the last two axes, as torch's adaptive_avg_pool2d."""
    checked = checked or check_adaptive_pool(x, "adaptive_avg_pool2d", 2, output_size)
    return adaptive_avg_pool_kernel(x, checked)


def adaptive_avg_pool2d_backward(
    dy: Array,
    x: Array,
    output_size: int | tuple[int | None, int | None],
    *,
    checked: Checked | None = None,
) -> Array:
    """Return the input gradient of :func:`adaptive_avg_pool2d`."""
    if checked is None:
        forward = check_adaptive_pool(x, "adaptive_avg_pool2d", 2, output_size)
        checked = check_pool_backward(dy, x, "adaptive_avg_pool2d", forward=forward)
    return adaptive_avg_pool_backward_kernel(dy, x, checked)

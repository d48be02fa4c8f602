"""Sliding-window building blocks shared by convolution and pooling.

The standard has strided slices, ``concat`` and ``stack`` but no
``as_strided``, no padding function and no scatter-add; these helpers build
padding, zero-interleaving and the adjoint of "take a window at each offset"
from what it has, without reading anything back to the host.
"""

from __future__ import annotations

from collections.abc import Iterable

from .._compat import Array, DType, Namespace, at, device

__all__ = ["add_windows", "interleave", "pad_axis"]


def _axis(a: Array, axis: int) -> int:
    return axis if axis >= 0 else a.ndim + axis


def pad_axis(
    xp: Namespace, a: Array, axis: int, before: int, after: int, value: float = 0.0
) -> Array:
    """Return ``a`` with ``before`` and ``after`` copies of ``value`` around ``axis``.

    Parameters
    ----------
    xp : namespace
        The namespace of ``a``.
    a : array
        Any shape.
    axis : int
        The axis to pad; negative counts from the end.
    before, after : int
        How many elements to add on each side (non-negative).
    value : float, default 0.0
        The fill (``-inf`` for max pooling).

    Returns
    -------
    array
        ``a`` itself when nothing is added, else a new array whose ``axis``
        is ``before + after`` longer.
    """
    if before == 0 and after == 0:
        return a
    axis = _axis(a, axis)
    parts = []
    for size in (before, None, after):
        if size is None:
            parts.append(a)
        elif size:
            shape = tuple(size if i == axis else int(s) for i, s in enumerate(a.shape))
            parts.append(xp.full(shape, value, dtype=a.dtype, device=device(a)))
    return xp.concat(parts, axis=axis)


def interleave(xp: Namespace, a: Array, axis: int, stride: int) -> Array:
    """Put ``stride - 1`` zeros between neighbours along ``axis``.

    Parameters
    ----------
    xp : namespace
        The namespace of ``a``.
    a : array
        Any shape, with ``n`` elements along ``axis``.
    axis : int
        The axis to spread; negative counts from the end.
    stride : int
        The distance between the values in the result (1 returns ``a``).

    Returns
    -------
    array
        ``a`` with ``stride * (n - 1) + 1`` elements along ``axis``: element
        ``i`` of ``a`` at ``stride * i``, zeros elsewhere. This is the adjoint
        of a strided slice, built with ``stack`` and ``reshape``.
    """
    if stride == 1:
        return a
    axis = _axis(a, axis)
    shape = tuple(int(s) for s in a.shape)
    n = shape[axis]
    zero = xp.zeros(shape, dtype=a.dtype, device=device(a))
    woven = xp.stack([a, *([zero] * (stride - 1))], axis=axis + 1)
    woven = xp.reshape(woven, (*shape[:axis], n * stride, *shape[axis + 1 :]))
    keep = (*(slice(None),) * axis, slice(0, stride * (n - 1) + 1), ...)
    return woven[keep]


def add_windows(
    xp: Namespace,
    shape: tuple[int, ...],
    dtype: DType,
    where: object,
    pieces: Iterable[tuple[tuple[int, ...], Array]],
) -> Array:
    """Return zeros of ``shape`` with each piece added at its offset on the trailing axes.

    This is the adjoint of taking one window per offset, which the forward
    passes of convolution and pooling do with strided slices.

    Parameters
    ----------
    xp : namespace
        The namespace of the pieces.
    shape : tuple of int
        The result's shape ``(*lead, *spatial)``.
    dtype, where
        The result's dtype and device.
    pieces : iterable of (starts, array)
        ``starts`` gives one offset per trailing (spatial) axis; the array
        has the shape ``(*lead, *window)`` and lands on
        ``[start : start + window]`` of each of those axes.

    Returns
    -------
    array of shape ``shape``
        The sum. The pieces are added into one fresh array, in place where
        the library allows and functionally on JAX, so no piece is padded
        to full size first.
    """
    total = xp.zeros(shape, dtype=dtype, device=where)
    for starts, piece in pieces:
        lead = (slice(None),) * (len(shape) - len(starts))
        sizes = tuple(int(s) for s in piece.shape[len(lead) :])
        window = tuple(slice(s, s + n) for s, n in zip(starts, sizes, strict=True))
        total = at(total, (*lead, *window)).add(piece)
    return total

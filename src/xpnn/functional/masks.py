"""Padding masks and means over the unpadded steps of a batch of sequences.

A batch of sequences of different lengths is padded to one length, and a
boolean *padding mask* of shape ``(batch, time)`` marks the padded steps with
``True``, PyTorch's ``key_padding_mask`` convention::

    mask[b, t] = t >= lengths[b]

:func:`masked_mean` averages over the unmasked steps only, the usual
pooling of a sequence classifier::

    y[b] = sum over t of keep[b, t] * x[b, t] / count[b]
    keep = not mask,   count[b] = sum over t of keep[b, t]

and its backward spreads each row's gradient evenly over its unmasked
steps, ``dx[b, t] = keep[b, t] * dy[b] / count[b]``; masked steps get zero.

A row whose steps are all masked (``count = 0``, a length-0 sequence) has
mean **zero** and zero gradient: its sum is divided by ``max(count, 1)``,
so no NaN appears. Values at masked steps are never read (``where``
replaces them), so padding holding NaN or infinity is harmless.

Nothing is read back to the host except in the eager check of the lengths
(NumPy, PyTorch, CuPy, array_api_strict); lazy lengths (JAX, Dask) are not
checked for their values.
"""

from __future__ import annotations

import operator

from .._checks import Checked, check_real_floating, check_same_device, shape_str
from .._compat import Array, array_namespace, is_lazy
from .._compat import device as device_of

__all__ = [
    "check_masked_mean",
    "masked_mean",
    "masked_mean_backward",
    "padding_mask",
]


def padding_mask(lengths: Array, max_length: int) -> Array:
    """Return the padding mask of sequences of the given lengths: ``True`` at padded steps.

    Parameters
    ----------
    lengths : integer array of shape (batch,)
        The length of each sequence, in ``[0, max_length]``.
    max_length : int
        The padded length, ``time``.

    Returns
    -------
    mask : bool array of shape (batch, max_length)
        ``mask[b, t] = t >= lengths[b]``, in ``lengths``' namespace and on
        its device: PyTorch's ``key_padding_mask`` convention.

    Raises
    ------
    TypeError
        For ``lengths`` that are not an integer array, or a ``max_length``
        that is not an int.
    ValueError
        For ``lengths`` that are not 1-d, a negative ``max_length``, or (eager
        arrays only: nothing is read back from JAX or Dask) a length outside
        ``[0, max_length]``.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional import padding_mask
    >>> padding_mask(np.array([3, 1]), 4)
    array([[False, False, False,  True],
           [False,  True,  True,  True]])
    """
    xp = array_namespace(lengths=lengths)
    if not xp.isdtype(lengths.dtype, "integral"):
        raise TypeError(
            f"lengths must have an integer dtype, got {lengths.dtype}; convert it first, for "
            "example with xp.astype(lengths, xp.int64)"
        )
    if isinstance(max_length, bool):
        raise TypeError(f"max_length must be an int, got bool {max_length}")
    try:
        steps = int(operator.index(max_length))
    except TypeError:
        raise TypeError(
            f"max_length must be an int, got {type(max_length).__name__} {max_length!r}"
        ) from None
    if steps < 0:
        raise ValueError(f"max_length must be >= 0, got {steps}")
    if lengths.ndim != 1:
        raise ValueError(
            f"lengths must have shape (batch,), one length per sequence, got shape "
            f"{shape_str(tuple(lengths.shape))}"
        )
    if not is_lazy(lengths) and bool(xp.any((lengths < 0) | (lengths > steps))):
        low, high = int(xp.min(lengths)), int(xp.max(lengths))
        raise ValueError(
            f"lengths must be in [0, max_length] = [0, {steps}], got {low if low < 0 else high}"
        )
    positions = xp.arange(steps, dtype=lengths.dtype, device=device_of(lengths))
    return positions[None, :] >= lengths[:, None]


def check_masked_mean(x: Array, mask: Array, *, axis: int = 1) -> Checked:
    """Check the inputs of :func:`masked_mean`; ``constants`` is the time axis (0 or 1).

    Raises
    ------
    TypeError
        For an ``x`` that is not real floating, a ``mask`` that is not
        boolean, arrays of different libraries, or an ``axis`` that is no int.
    ValueError
        For arrays on different devices, an ``x`` with fewer than 2
        dimensions, an ``axis`` other than 0 or 1, or a ``mask`` whose shape
        is not ``(batch, time)`` of ``x``.
    """
    xp = array_namespace(x=x, mask=mask)
    check_real_floating(xp, "masked_mean", x=x)
    if mask.dtype != xp.bool:
        raise TypeError(
            f"mask must be a bool array, True at padded steps, got {mask.dtype}; build it "
            "with xpnn.functional.padding_mask(lengths, max_length)"
        )
    check_same_device(x=x, mask=mask)
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError(f"axis must be an int, got {type(axis).__name__} {axis!r}")
    if x.ndim < 2:
        raise ValueError(
            f"x must have shape (batch, time, ...) or (time, batch, ...), got shape "
            f"{shape_str(tuple(x.shape))}"
        )
    time_axis = axis + x.ndim if axis < 0 else axis
    if time_axis not in (0, 1):
        raise ValueError(
            f"axis must be the time axis of x, 1 for (batch, time, ...) or 0 for "
            f"(time, batch, ...), got {axis}"
        )
    batch_axis = 1 - time_axis
    expected = (x.shape[batch_axis], x.shape[time_axis])
    if mask.ndim != 2 or tuple(mask.shape) != expected:
        raise ValueError(
            f"mask must have shape (batch, time) = {shape_str(expected)} for x of shape "
            f"{shape_str(tuple(x.shape))} with time on axis {time_axis}, got shape "
            f"{shape_str(tuple(mask.shape))}"
        )
    return Checked(xp=xp, dtype=x.dtype, constants=time_axis)


def _keep_and_count(checked: Checked, x: Array, mask: Array) -> tuple[Array, Array]:
    """``keep`` (bool, broadcastable against ``x``) and ``max(count, 1)`` per row, keepdims."""
    xp, time_axis = checked.xp, checked.constants
    keep = ~mask
    if time_axis == 0:
        keep = xp.permute_dims(keep, (1, 0))  # (time, batch)
    keep = xp.reshape(keep, (*keep.shape, *((1,) * (x.ndim - 2))))
    count = xp.sum(xp.astype(keep, x.dtype), axis=time_axis, keepdims=True)
    # A fully masked row divides its zero sum by 1, not 0: mean and gradient zero.
    count = count + xp.astype(count == 0, x.dtype)
    return keep, count


def masked_mean(x: Array, mask: Array, axis: int = 1) -> Array:
    """Average ``x`` over the steps the mask keeps (``False``) along the time ``axis``.

    Parameters
    ----------
    x : array of shape (batch, time, ...) (axis=1) or (time, batch, ...) (axis=0)
        Real floating input.
    mask : bool array of shape (batch, time)
        ``True`` at padded (ignored) steps, as :func:`padding_mask` builds it.
    axis : int, default 1
        The time axis of ``x``, 1 or 0.

    Returns
    -------
    y : array of shape (batch, ...)
        The mean over the unmasked steps; zero for a row whose steps are all
        masked. Masked values are never read, so NaN padding is harmless.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional import masked_mean, padding_mask
    >>> x = np.array([[[1.0], [3.0], [np.nan]], [[2.0], [0.0], [0.0]]])
    >>> masked_mean(x, padding_mask(np.array([2, 0]), 3))
    array([[2.],
           [0.]])
    """
    checked = check_masked_mean(x, mask, axis=axis)
    xp = checked.xp
    keep, count = _keep_and_count(checked, x, mask)
    zero = xp.zeros((1,), dtype=x.dtype, device=device_of(x))
    total = xp.sum(xp.where(keep, x, zero), axis=checked.constants, keepdims=True)
    return xp.squeeze(total / count, axis=checked.constants)


def masked_mean_backward(dy: Array, x: Array, mask: Array, axis: int = 1) -> Array:
    """Return ``dx`` of :func:`masked_mean`: ``dy / count`` at kept steps, zero at masked ones.

    Parameters
    ----------
    dy : array of shape (batch, ...)
        The gradient of the output, the shape of ``x`` without ``axis``.
    x, mask, axis
        As given to :func:`masked_mean`.

    Returns
    -------
    dx : array of the shape and dtype of x

    Raises
    ------
    TypeError, ValueError
        As :func:`check_masked_mean`, and for a ``dy`` of another library,
        device or shape.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional import masked_mean_backward, padding_mask
    >>> masked_mean_backward(np.ones((1, 1)), np.zeros((1, 3, 1)), padding_mask(np.array([2]), 3))
    array([[[0.5],
            [0.5],
            [0. ]]])
    """
    checked = check_masked_mean(x, mask, axis=axis)
    xp = array_namespace(dy=dy, x=x)
    check_real_floating(xp, "masked_mean", dy=dy)
    check_same_device(x=x, dy=dy)
    time_axis = checked.constants
    expected = tuple(s for i, s in enumerate(x.shape) if i != time_axis)
    if tuple(dy.shape) != expected:
        raise ValueError(
            f"dy must have the shape of masked_mean's output, {shape_str(expected)} (x without "
            f"axis {time_axis}), got {shape_str(tuple(dy.shape))}"
        )
    keep, count = _keep_and_count(checked, x, mask)
    share = xp.expand_dims(xp.astype(dy, x.dtype), axis=time_axis) / count
    zero = xp.zeros((1,), dtype=x.dtype, device=device_of(x))
    return xp.where(keep, share, zero)

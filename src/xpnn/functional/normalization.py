"""Batch normalisation: forward and hand-derived backward, as ``torch.nn.functional.batch_norm``.

The input ``x`` has shape ``(N, C, *spatial)``: channels on axis 1, as in
PyTorch. Each channel ``c`` is normalised over the ``n = N * prod(spatial)``
values it holds in the batch::

    mean = sum(x) / n                     var = sum((x - mean)**2) / n   (biased)
    xhat = (x - mean) * inv_std           inv_std = 1 / sqrt(var + eps)
    y    = weight * xhat + bias

In training mode ``mean`` and ``var`` are the batch's (and the running
statistics, when given, are updated with the *unbiased* variance
``var * n / (n - 1)``); in eval mode they are the running statistics. The
gradients, derived in ``docs/normalization.md``, are, per channel::

    dxhat   = dy * weight
    dx      = inv_std / n * (n * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))   (training)
    dx      = dxhat * inv_std                                                   (eval)
    dweight = sum(dy * xhat)              dbias = sum(dy)

Nothing is written in place: the updated running statistics are new arrays
(JAX's arrays are immutable, Dask's lazy), and no value is read back to the
host.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._checks import (
    Checked,
    check_known_shape,
    check_real_floating,
    check_same_device,
    is_unknown,
    shape_str,
)
from .._compat import Array, DType, Namespace, array_namespace
from ._dtypes import as_dtype, gradient_as

__all__ = [
    "BatchNormSaved",
    "batch_norm",
    "batch_norm_backward",
    "batch_norm_backward_kernel",
    "batch_norm_kernel",
    "check_batch_norm",
    "check_batch_norm_backward",
]


@dataclass(frozen=True)
class BatchNormSaved:
    """What the backward pass of :func:`batch_norm` needs of its forward pass.

    Attributes
    ----------
    xhat : array
        The normalised input, ``(x - mean) * inv_std``, in the compute dtype.
    inv_std : array of shape (1, C, 1, ...)
        ``1 / sqrt(var + eps)`` per channel, broadcastable against ``x``.
    training : bool
        Whether the batch's own statistics normalised ``x`` (then ``dx``
        carries the terms through the mean and the variance).
    """

    xhat: Array
    inv_std: Array
    training: bool


def check_batch_norm(
    x: Array,
    running_mean: Array | None = None,
    running_var: Array | None = None,
    weight: Array | None = None,
    bias: Array | None = None,
    *,
    training: bool = False,
) -> Checked:
    """Check the inputs of :func:`batch_norm`; return the namespace and the compute dtype.

    ``constants`` of the result is ``(axes, n)``: the axes reduced over (all
    but the channel axis 1) and the number of values per channel (``None``
    when a size is unknown, which only eval mode allows).

    Raises
    ------
    TypeError
        For arrays that are not real floating, or of different libraries.
    ValueError
        For arrays on different devices, an ``x`` with fewer than 2
        dimensions or an unknown channel size, per-channel arrays that are
        not of shape ``(C,)``, only one of the running statistics, or, in
        training mode, an unknown size or one value per channel.
    """
    named = {
        "x": x,
        "running_mean": running_mean,
        "running_var": running_var,
        "weight": weight,
        "bias": bias,
    }
    given = {name: value for name, value in named.items() if value is not None}
    xp = array_namespace(**given)
    check_real_floating(xp, "batch normalisation", **given)
    check_same_device(**given)
    if (running_mean is None) != (running_var is None):
        raise ValueError(
            "running_mean and running_var must be given together (or neither, to use the "
            "batch's statistics)"
        )
    if not training and running_mean is None:
        raise ValueError(
            "eval mode (training=False) normalises with running_mean and running_var; pass "
            "them, or training=True to use the batch's statistics"
        )
    if x.ndim < 2:
        raise ValueError(
            f"x must have shape (N, C, ...) with at least 2 dimensions, got shape "
            f"{shape_str(tuple(x.shape))}"
        )
    channels = x.shape[1]
    if is_unknown(channels):
        check_known_shape("x", x, "batch normalisation (its channel axis 1)")
    for name in ("running_mean", "running_var", "weight", "bias"):
        value = named[name]
        if value is not None and tuple(value.shape) != (channels,):
            raise ValueError(
                f"{name} must have shape ({channels},), one value per channel of x (axis 1 of "
                f"shape {shape_str(tuple(x.shape))}), got shape {shape_str(tuple(value.shape))}"
            )
    shape = tuple(x.shape)
    n: int | None = None
    if training:
        shape = check_known_shape("x", x, "batch normalisation in training mode")
        n = shape[0] * math.prod(shape[2:])
        if n == 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input size "
                f"{shape_str(shape)}"
            )
    elif not any(is_unknown(s) for s in shape):
        n = int(shape[0]) * math.prod(int(s) for s in shape[2:])
    dtype = xp.result_type(*(value.dtype for value in given.values()))
    same = all(value.dtype == dtype for value in given.values())
    axes = (0, *range(2, x.ndim))
    return Checked(xp=xp, dtype=dtype, same_real_dtype=same, constants=(axes, n))


def _per_channel(xp: Namespace, value: Array, ndim: int) -> Array:
    """Reshape a ``(C,)`` array to ``(1, C, 1, ...)``, broadcastable against ``x``."""
    return xp.reshape(value, (1, value.shape[0], *((1,) * (ndim - 2))))


def batch_norm_kernel(
    checked: Checked,
    x: Array,
    running_mean: Array | None,
    running_var: Array | None,
    weight: Array | None,
    bias: Array | None,
    *,
    training: bool,
    momentum: float | Array = 0.1,
    eps: float = 1e-5,
) -> tuple[Array, Array | None, Array | None, BatchNormSaved]:
    """Normalise ``x`` on inputs :func:`check_batch_norm` passed.

    Returns ``(y, new_running_mean, new_running_var, saved)``. The running
    statistics are new arrays in their own dtypes, updated in training mode
    (``momentum`` may be a 0-d array, the cumulative average's ``1 / t``),
    and the ones given otherwise (``None`` when none were given).
    """
    xp, dtype = checked.xp, checked.dtype
    assert dtype is not None
    axes, n = checked.constants
    xc = as_dtype(xp, x, dtype)
    ndim = x.ndim
    new_mean, new_var = running_mean, running_var
    if training:
        mean = xp.mean(xc, axis=axes, keepdims=True)
        centred = xc - mean
        var = xp.mean(centred * centred, axis=axes, keepdims=True)
        if running_mean is not None and running_var is not None:
            new_mean, new_var = _updated(
                xp, running_mean, running_var, mean, var, n, momentum, dtype
            )
    else:
        assert running_mean is not None
        assert running_var is not None
        mean = _per_channel(xp, as_dtype(xp, running_mean, dtype), ndim)
        var = _per_channel(xp, as_dtype(xp, running_var, dtype), ndim)
        centred = xc - mean
    inv_std = 1.0 / xp.sqrt(var + eps)
    xhat = centred * inv_std
    y = xhat
    if weight is not None:
        y = y * _per_channel(xp, as_dtype(xp, weight, dtype), ndim)
    if bias is not None:
        y = y + _per_channel(xp, as_dtype(xp, bias, dtype), ndim)
    return y, new_mean, new_var, BatchNormSaved(xhat=xhat, inv_std=inv_std, training=training)


def _updated(
    xp: Namespace,
    running_mean: Array,
    running_var: Array,
    mean: Array,
    var: Array,
    n: int,
    momentum: float | Array,
    dtype: DType,
) -> tuple[Array, Array]:
    """Return the running statistics after one batch, as PyTorch updates them."""
    channels = running_mean.shape[0]
    batch_mean = xp.reshape(mean, (channels,))
    unbiased = xp.reshape(var, (channels,)) * (n / (n - 1))
    if not isinstance(momentum, float | int):
        momentum = as_dtype(xp, momentum, dtype)
    new_mean = (1 - momentum) * as_dtype(xp, running_mean, dtype) + momentum * batch_mean
    new_var = (1 - momentum) * as_dtype(xp, running_var, dtype) + momentum * unbiased
    return as_dtype(xp, new_mean, running_mean.dtype), as_dtype(xp, new_var, running_var.dtype)


def check_batch_norm_backward(
    dy: Array, x: Array, weight: Array | None = None, *, forward: Checked | None = None
) -> Checked:
    """Check ``dy`` against the forward pass's ``x``; return the compute dtype.

    ``forward`` is what :func:`check_batch_norm` returned, which a layer's
    check boundary keys the backward pass on.

    Raises
    ------
    TypeError
        For a ``dy`` that is not real floating, or of another library.
    ValueError
        For a ``dy`` on another device, or of another shape than ``x``.
    """
    xp = array_namespace(dy=dy, x=x)
    check_real_floating(xp, "batch normalisation", dy=dy)
    check_same_device(x=x, dy=dy)
    check_known_shape("dy", dy, "the backward pass")
    expected = check_known_shape("x", x, "the backward pass")
    if tuple(dy.shape) != expected:
        raise ValueError(
            f"dy must have the shape of the output, {shape_str(expected)} (the shape of x), "
            f"got {shape_str(tuple(dy.shape))}"
        )
    base = forward.dtype if forward is not None and forward.dtype is not None else x.dtype
    dtype = xp.result_type(dy.dtype, base)
    axes = (0, *range(2, x.ndim))
    n = expected[0] * math.prod(expected[2:])
    return Checked(xp=xp, dtype=dtype, constants=(axes, n))


def batch_norm_backward_kernel(
    checked: Checked,
    dy: Array,
    saved: BatchNormSaved,
    weight: Array | None,
    *,
    x_dtype: DType,
    has_bias: bool,
    bias_dtype: DType | None = None,
    input_grad: bool = True,
) -> tuple[Array | None, Array | None, Array | None]:
    """Compute ``(dx, dweight, dbias)`` on inputs :func:`check_batch_norm_backward` passed.

    ``dweight`` is ``None`` without ``weight``, ``dbias`` without a bias, and
    ``dx`` with ``input_grad=False``.
    """
    xp, dtype = checked.xp, checked.dtype
    assert dtype is not None
    axes, n = checked.constants
    dy_c = as_dtype(xp, dy, dtype)
    xhat = as_dtype(xp, saved.xhat, dtype)
    channels = xhat.shape[1]
    dweight = dbias = None
    if weight is not None:
        dweight = xp.reshape(xp.sum(dy_c * xhat, axis=axes), (channels,))
        dweight = gradient_as(xp, dweight, weight.dtype)
    if has_bias:
        dbias = xp.reshape(xp.sum(dy_c, axis=axes), (channels,))
        dbias = gradient_as(xp, dbias, bias_dtype if bias_dtype is not None else dtype)
    if not input_grad:
        return None, dweight, dbias
    dxhat = dy_c
    if weight is not None:
        dxhat = dxhat * _per_channel(xp, as_dtype(xp, weight, dtype), dy.ndim)
    inv_std = as_dtype(xp, saved.inv_std, dtype)
    if saved.training:
        sum_dxhat = xp.sum(dxhat, axis=axes, keepdims=True)
        sum_dxhat_xhat = xp.sum(dxhat * xhat, axis=axes, keepdims=True)
        dx = (inv_std / n) * (n * dxhat - sum_dxhat - xhat * sum_dxhat_xhat)
    else:
        dx = dxhat * inv_std
    return gradient_as(xp, dx, x_dtype), dweight, dbias


def batch_norm(
    x: Array,
    running_mean: Array | None = None,
    running_var: Array | None = None,
    weight: Array | None = None,
    bias: Array | None = None,
    training: bool = False,
    momentum: float | Array = 0.1,
    eps: float = 1e-5,
) -> tuple[Array, Array | None, Array | None]:
    """Normalise each channel (axis 1) of ``x``, as ``torch.nn.functional.batch_norm``.

    Unlike PyTorch's, which updates the running statistics in place, this
    returns the updated ones as new arrays.

    Parameters
    ----------
    x : array of shape (N, C, ...)
        Real floating input, channels on axis 1.
    running_mean, running_var : arrays of shape (C,), optional
        The running statistics. Eval mode normalises with them; training
        mode returns them updated. Both or neither.
    weight, bias : arrays of shape (C,), optional
        The affine map applied after normalising.
    training : bool, default False
        Normalise with the batch's statistics (biased variance) and update
        the running ones with the unbiased variance, ``var * n / (n - 1)``.
    momentum : float or 0-d array, default 0.1
        ``new = (1 - momentum) * running + momentum * batch``.
    eps : float, default 1e-5
        Added to the variance before the square root.

    Returns
    -------
    y : array of the shape of x
        In the result dtype of the inputs.
    running_mean, running_var : arrays of shape (C,) or None
        Updated (new arrays) in training mode, the given ones otherwise.

    Raises
    ------
    TypeError, ValueError
        As :func:`check_batch_norm` raises them; in training mode, ``ValueError``
        for one value per channel ("Expected more than 1 value per channel when
        training"), as PyTorch.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional import batch_norm
    >>> y, mean, var = batch_norm(
    ...     np.array([[1.0], [3.0]]), np.zeros(1), np.ones(1), training=True
    ... )
    >>> np.round(y, 4), mean, var
    (array([[-1.],
           [ 1.]]), array([0.2]), array([1.1]))
    """
    checked = check_batch_norm(x, running_mean, running_var, weight, bias, training=training)
    y, new_mean, new_var, _ = batch_norm_kernel(
        checked,
        x,
        running_mean,
        running_var,
        weight,
        bias,
        training=training,
        momentum=momentum,
        eps=eps,
    )
    return y, new_mean, new_var


def batch_norm_backward(
    dy: Array,
    x: Array,
    running_mean: Array | None = None,
    running_var: Array | None = None,
    weight: Array | None = None,
    *,
    has_bias: bool = True,
    training: bool = False,
    eps: float = 1e-5,
) -> tuple[Array, Array | None, Array | None]:
    """Return ``(dx, dweight, dbias)`` of :func:`batch_norm` given the output gradient.

    The forward pass's inputs are passed again (the statistics of the batch
    are recomputed in training mode; the running statistics are read in eval
    mode). ``dweight`` is ``None`` without ``weight``, ``dbias`` without
    ``has_bias``. Each gradient has the dtype of the array it belongs to.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional import batch_norm_backward
    >>> dx, dweight, dbias = batch_norm_backward(
    ...     np.array([[1.0], [0.0]]), np.array([[1.0], [3.0]]), weight=np.ones(1), training=True
    ... )
    >>> dx.shape, np.round(dweight, 4), dbias
    ((2, 1), array([-1.]), array([1.]))
    """
    forward = check_batch_norm(x, running_mean, running_var, weight, training=training)
    *_, saved = batch_norm_kernel(
        forward, x, running_mean, running_var, weight, None, training=training, eps=eps
    )
    checked = check_batch_norm_backward(dy, x, weight, forward=forward)
    dx, dweight, dbias = batch_norm_backward_kernel(
        checked, dy, saved, weight, x_dtype=x.dtype, has_bias=has_bias, bias_dtype=x.dtype
    )
    assert dx is not None
    return dx, dweight, dbias

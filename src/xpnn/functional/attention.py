"""Scaled dot-product attention, head split and merge, and attention masks.

Forward/backward pairs (derived in ``docs/attention.md``), on arrays of
shape (batch, heads, length, head_dim)::

    S = q @ k.T * scale + mask          (..., L, S)   scale = 1/sqrt(head_dim)
    W = softmax(S)                      (..., L, S)   a row masked everywhere gives 0
    P = W * dropout_mask                (..., L, S)   (P = W without dropout)
    out = P @ v                         (..., L, Dv)

    dv = P.T @ dout
    dP = dout @ v.T + dweights          (dweights: the gradient of P, if returned)
    dW = dP * dropout_mask
    dS = W * (dW - sum(dW * W, axis=-1))
    dq = dS @ k * scale,   dk = dS.T @ q * scale

``mask`` is additive: ``-inf`` hides a position, as PyTorch's boolean masks
turn into. A row whose every position is hidden gets zero weights (and zero
gradients) instead of the NaN a plain softmax gives: PyTorch's
``scaled_dot_product_attention`` does the same, its ``MultiheadAttention``
with ``need_weights=True`` gives NaN.

Heads are split from the last dimension, head ``h`` taking features
``h*head_dim`` to ``(h+1)*head_dim``, PyTorch's order; a 3-d attention mask
of shape (batch*heads, L, S) is indexed ``n*heads + h`` as in PyTorch.
"""

from __future__ import annotations

import math

from .._checks import Checked, check_real_floating, check_same_device, shape_str
from .._compat import Array, DType, Namespace, array_namespace, device

__all__ = [
    "attention_mask",
    "average_heads",
    "average_heads_backward",
    "check_attention",
    "merge_heads",
    "merge_heads_backward",
    "scaled_dot_product_attention",
    "scaled_dot_product_attention_backward",
    "split_heads",
    "split_heads_backward",
]


def check_attention(q: Array, k: Array, v: Array, mask: Array | None = None) -> Checked:
    """Check the inputs of :func:`scaled_dot_product_attention`.

    ``q`` (..., L, D), ``k`` (..., S, D), ``v`` (..., S, Dv) with equal
    leading dimensions, one real floating dtype; ``mask`` a real floating
    array that broadcasts to (..., L, S). ``constants`` holds the zero and
    one the safe softmax needs, of shape (1,) on the inputs' device.

    Raises
    ------
    TypeError
        For arrays of other libraries or non-real dtypes.
    ValueError
        For shapes that do not fit, or arrays on different devices.
    """
    xp = array_namespace(q=q, k=k, v=v, mask=mask, optional=("mask",))
    check_real_floating(xp, "attention", q=q, k=k, v=v)
    if mask is not None:
        check_real_floating(xp, "attention", mask=mask)
    check_same_device(q=q, k=k, v=v, mask=mask)
    if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ValueError(
            f"q, k and v must have shapes (..., L, D), (..., S, D) and (..., S, Dv) with the "
            f"same number of dimensions (at least 2), got {shape_str(q.shape)}, "
            f"{shape_str(k.shape)} and {shape_str(v.shape)}"
        )
    if (
        tuple(q.shape[:-2]) != tuple(k.shape[:-2])
        or tuple(k.shape[:-2]) != tuple(v.shape[:-2])
        or q.shape[-1] != k.shape[-1]
        or k.shape[-2] != v.shape[-2]
    ):
        raise ValueError(
            f"q, k and v must have shapes (..., L, D), (..., S, D) and (..., S, Dv), got "
            f"{shape_str(q.shape)}, {shape_str(k.shape)} and {shape_str(v.shape)}"
        )
    dtype = xp.result_type(q.dtype, k.dtype, v.dtype)
    if q.dtype != dtype or k.dtype != dtype or v.dtype != dtype:
        raise TypeError(
            f"q, k and v must share one dtype, got {q.dtype}, {k.dtype} and {v.dtype}; "
            f"convert them first, for example with xp.astype(k, q.dtype)"
        )
    if mask is not None:
        target = (*q.shape[:-1], k.shape[-2])
        given = tuple(mask.shape)
        if len(given) > len(target) or any(
            g not in (1, t) for g, t in zip(given[::-1], target[::-1], strict=False)
        ):
            raise ValueError(
                f"mask must broadcast to {shape_str(target)} (..., L, S), got shape "
                f"{shape_str(given)}"
            )
    where = device(q)
    zero = xp.zeros((1,), dtype=dtype, device=where)
    one = xp.ones((1,), dtype=dtype, device=where)
    return Checked(xp=xp, dtype=dtype, same_real_dtype=True, constants=(zero, one))


def _safe_softmax(xp: Namespace, scores: Array, zero: Array, one: Array) -> Array:
    """Softmax over the last axis; a row of ``-inf`` everywhere gives zeros, not NaN."""
    top = xp.max(scores, axis=-1, keepdims=True)
    # A hidden row's maximum is -inf, and -inf - -inf is NaN: shift it by 0.
    top = xp.where(xp.isfinite(top), top, zero)
    e = xp.exp(scores - top)
    total = xp.sum(e, axis=-1, keepdims=True)
    return e / xp.where(total == zero, one, total)


def scaled_dot_product_attention(
    q: Array,
    k: Array,
    v: Array,
    *,
    mask: Array | None = None,
    dropout_mask: Array | None = None,
    checked: Checked | None = None,
) -> tuple[Array, Array]:
    """Attend: ``softmax(q @ k.T / sqrt(D) + mask) @ v``.

    Parameters
    ----------
    q : array of shape (..., L, D)
        Queries.
    k : array of shape (..., S, D)
        Keys.
    v : array of shape (..., S, Dv)
        Values.
    mask : array, optional
        Added to the scores; broadcasts to (..., L, S). ``-inf`` hides a
        position (see :func:`attention_mask`).
    dropout_mask : array of shape (..., L, S), optional
        Multiplies the weights before they meet ``v``: 0 or ``1/(1-p)``.
    checked : Checked, optional
        What :func:`check_attention` returned for these inputs.

    Returns
    -------
    out : array of shape (..., L, Dv)
        The attention output.
    weights : array of shape (..., L, S)
        The softmax weights, before dropout (what the backward pass needs).
        A row hidden everywhere holds zeros.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional import scaled_dot_product_attention
    >>> q = np.zeros((1, 2, 4))
    >>> out, weights = scaled_dot_product_attention(q, q, np.eye(2, 4)[None])
    >>> weights
    array([[[0.5, 0.5],
            [0.5, 0.5]]])
    """
    checked = checked or check_attention(q, k, v, mask)
    xp = checked.xp
    zero, one = checked.constants
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = (q * scale) @ xp.matrix_transpose(k)
    if mask is not None:
        scores = scores + mask
    weights = _safe_softmax(xp, scores, zero, one)
    p = weights if dropout_mask is None else weights * dropout_mask
    return p @ v, weights


def scaled_dot_product_attention_backward(
    d_out: Array,
    q: Array,
    k: Array,
    v: Array,
    weights: Array,
    *,
    d_weights: Array | None = None,
    dropout_mask: Array | None = None,
    checked: Checked | None = None,
) -> tuple[Array, Array, Array]:
    """Return ``(dq, dk, dv)`` of :func:`scaled_dot_product_attention`.

    Parameters
    ----------
    d_out : array of shape (..., L, Dv)
        Gradient of the output.
    q, k, v : arrays
        The forward pass's inputs.
    weights : array of shape (..., L, S)
        The softmax weights the forward pass returned.
    d_weights : array, optional
        Gradient of the weights after dropout, ``weights * dropout_mask``
        (what a layer returns as its attention weights); broadcasts to
        (..., L, S) (a head average's gradient has 1 for heads).
    dropout_mask : array of shape (..., L, S), optional
        The forward pass's dropout mask.
    checked : Checked, optional
        What :func:`check_attention` returned for the forward inputs.

    Returns
    -------
    dq, dk, dv : arrays shaped like q, k, v
    """
    checked = checked or check_attention(q, k, v)
    xp = checked.xp
    if tuple(d_out.shape) != (*q.shape[:-1], v.shape[-1]):
        raise ValueError(
            f"d_out must have the output's shape {shape_str((*q.shape[:-1], v.shape[-1]))}, "
            f"got {shape_str(d_out.shape)}"
        )
    scale = 1.0 / math.sqrt(q.shape[-1])
    p = weights if dropout_mask is None else weights * dropout_mask
    dv = xp.matrix_transpose(p) @ d_out
    dp = d_out @ xp.matrix_transpose(v)
    if d_weights is not None:
        dp = dp + d_weights
    dw = dp if dropout_mask is None else dp * dropout_mask
    ds = weights * (dw - xp.sum(dw * weights, axis=-1, keepdims=True))
    dq = (ds @ k) * scale
    dk = (xp.matrix_transpose(ds) @ q) * scale
    return dq, dk, dv


def split_heads(x: Array, num_heads: int, *, batch_first: bool = True) -> Array:
    """Split the features into heads: (N, L, E) or (L, N, E) to (N, heads, L, E/heads).

    Head ``h`` holds features ``h*E/heads`` to ``(h+1)*E/heads``, as in PyTorch.
    """
    xp = array_namespace(x=x)
    a, b, features = x.shape
    head_dim = features // num_heads
    x4 = xp.reshape(x, (a, b, num_heads, head_dim))
    return xp.permute_dims(x4, (0, 2, 1, 3) if batch_first else (1, 2, 0, 3))


def split_heads_backward(dy: Array, *, batch_first: bool = True) -> Array:
    """Return the gradient of :func:`split_heads`'s input: its output gradient merged back."""
    return merge_heads(dy, batch_first=batch_first)


def merge_heads(x: Array, *, batch_first: bool = True) -> Array:
    """Join the heads: (N, heads, L, D) to (N, L, heads*D), or (L, N, heads*D)."""
    xp = array_namespace(x=x)
    n, heads, length, head_dim = x.shape
    if batch_first:
        return xp.reshape(xp.permute_dims(x, (0, 2, 1, 3)), (n, length, heads * head_dim))
    return xp.reshape(xp.permute_dims(x, (2, 0, 1, 3)), (length, n, heads * head_dim))


def merge_heads_backward(dy: Array, num_heads: int, *, batch_first: bool = True) -> Array:
    """Return the gradient of :func:`merge_heads`'s input: its output gradient split again."""
    return split_heads(dy, num_heads, batch_first=batch_first)


def average_heads(weights: Array) -> Array:
    """Average attention weights over heads: (N, heads, L, S) to (N, L, S)."""
    xp = array_namespace(weights=weights)
    return xp.mean(weights, axis=1)


def average_heads_backward(dy: Array, num_heads: int) -> Array:
    """Return the gradient of :func:`average_heads`'s input: (N, 1, L, S), broadcast over heads."""
    xp = array_namespace(dy=dy)
    return xp.expand_dims(dy, axis=1) / num_heads


def _additive(xp: Namespace, mask: Array, dtype: DType, zero: Array, hidden: Array) -> Array:
    """Turn a boolean mask (True hides) into 0/-inf; cast a floating one to ``dtype``."""
    if xp.isdtype(mask.dtype, "bool"):
        return xp.where(mask, hidden, zero)
    return mask if mask.dtype == dtype else xp.astype(mask, dtype)


def attention_mask(
    key_padding_mask: Array | None,
    attn_mask: Array | None,
    *,
    batch: int,
    num_heads: int,
    target_length: int,
    source_length: int,
    is_causal: bool = False,
    dtype: DType,
    like: Array,
) -> Array | None:
    """Combine PyTorch's masks into one additive mask of shape (N, heads or 1, L, S).

    Parameters
    ----------
    key_padding_mask : array of shape (N, S), optional
        Boolean (True: the key is padding, ignored) or floating (added).
    attn_mask : array of shape (L, S) or (N*heads, L, S), optional
        Boolean (True: the query may not attend to the key) or floating
        (added). The 3-d form gives each batch element and head its own.
    batch, num_heads, target_length, source_length : int
        N, heads, L and S.
    is_causal : bool, default False
        Without ``attn_mask``, hide the keys after each query (position
        ``j > i``). With one, PyTorch takes ``is_causal`` as a hint that
        ``attn_mask`` is that mask; ``attn_mask`` is used.
    dtype : dtype
        The floating dtype of the result.
    like : array
        An array on the device of the result.

    Returns
    -------
    array or None
        0 where attending is allowed, ``-inf`` (or the floating masks' sum)
        elsewhere; ``None`` without any mask.
    """
    xp = array_namespace(like=like)
    where = device(like)
    zero = xp.zeros((1,), dtype=dtype, device=where)
    hidden = xp.full((1,), -math.inf, dtype=dtype, device=where)
    total = None
    if attn_mask is not None:
        total = _additive(xp, attn_mask, dtype, zero, hidden)
        shape = (1, 1) if attn_mask.ndim == 2 else (batch, num_heads)
        total = xp.reshape(total, (*shape, target_length, source_length))
    elif is_causal:
        rows = xp.arange(target_length, device=where)
        columns = xp.arange(source_length, device=where)
        later = xp.expand_dims(columns, axis=0) > xp.expand_dims(rows, axis=1)
        total = xp.reshape(xp.where(later, hidden, zero), (1, 1, target_length, source_length))
    if key_padding_mask is not None:
        padding = _additive(xp, key_padding_mask, dtype, zero, hidden)
        padding = xp.reshape(padding, (batch, 1, 1, source_length))
        total = padding if total is None else total + padding
    return total

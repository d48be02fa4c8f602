"""xpnn.functional.attention against torch.autograd and finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from selection import require_float64
from xpnn.functional import (
    merge_heads,
    merge_heads_backward,
    scaled_dot_product_attention,
    scaled_dot_product_attention_backward,
    split_heads,
    split_heads_backward,
)
from xpnn.functional.attention import attention_mask
from xpnn.testing import assert_close, check_gradients, random_array, to_numpy

N, H, L, S, D = 2, 2, 3, 4, 3


def _t(a):
    return torch.tensor(to_numpy(a), dtype=torch.float64, requires_grad=True)


def _torch_attention(q, k, v, mask, drop):
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores + mask
    # A row hidden everywhere: zeros, as torch's scaled_dot_product_attention.
    seen = torch.isfinite(scores).any(dim=-1, keepdim=True)
    weights = torch.softmax(torch.where(seen, scores, 0.0), dim=-1) * seen
    p = weights if drop is None else weights * drop
    return p @ v, p


@pytest.mark.parametrize("case", ["plain", "masked-dropout"])
def test_forward_and_gradients_match_torch(xp, device, real_dtype, case):
    make = {"dtype": real_dtype, "device": device}
    q = random_array(xp, (N, H, L, D), seed=0, **make)
    k = random_array(xp, (N, H, S, D), seed=1, **make)
    v = random_array(xp, (N, H, S, D), seed=2, **make)
    d_out = random_array(xp, (N, H, L, D), seed=3, **make)
    mask = drop = d_weights = None
    if case == "masked-dropout":
        host = np.random.default_rng(4).normal(size=(N, 1, L, S))
        host[0, 0, 1, :] = -np.inf  # a query that sees no key
        host[1, 0, :, 1:] = -np.inf  # queries that see one key only
        mask = xp.asarray(host, **make)
        keep = np.random.default_rng(5).random((N, H, L, S)) >= 0.3
        drop = xp.asarray(keep / 0.7, **make)
        d_weights = random_array(xp, (N, H, L, S), seed=6, **make)
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask, dropout_mask=drop)
    dq, dk, dv = scaled_dot_product_attention_backward(
        d_out, q, k, v, weights, d_weights=d_weights, dropout_mask=drop
    )
    tq, tk, tv = _t(q), _t(k), _t(v)
    t_mask = None if mask is None else torch.tensor(to_numpy(mask), dtype=torch.float64)
    t_drop = None if drop is None else torch.tensor(to_numpy(drop), dtype=torch.float64)
    t_out, t_p = _torch_attention(tq, tk, tv, t_mask, t_drop)
    loss = (t_out * torch.tensor(to_numpy(d_out))).sum()
    if d_weights is not None:
        loss = loss + (t_p * torch.tensor(to_numpy(d_weights))).sum()
    loss.backward()
    tol = {"xp": xp, "device": device, "dtype": real_dtype}
    assert_close(out, t_out.detach().numpy(), **tol)
    shown = weights if drop is None else weights * drop
    assert_close(shown, t_p.detach().numpy(), **tol)
    assert_close(dq, tq.grad.numpy(), **tol)
    assert_close(dk, tk.grad.numpy(), **tol)
    assert_close(dv, tv.grad.numpy(), **tol)
    if case == "masked-dropout":  # the hidden row: zero weights, zero gradient
        assert not np.any(to_numpy(weights)[0, :, 1])
        assert not np.any(to_numpy(dq)[0, :, 1])


def test_gradients_match_finite_differences(xp, device):
    require_float64(xp, device)
    make = {"dtype": xp.float64, "device": device}
    q = random_array(xp, (1, 2, 2, 2), seed=0, **make)
    k = random_array(xp, (1, 2, 3, 2), seed=1, **make)
    v = random_array(xp, (1, 2, 3, 2), seed=2, **make)
    mask = xp.asarray(np.array([[0.0, -np.inf, 0.5]]), **make)

    def f(q, k, v):
        return scaled_dot_product_attention(q, k, v, mask=mask)[0]

    def backward(dy, q, k, v):
        _, weights = scaled_dot_product_attention(q, k, v, mask=mask)
        return scaled_dot_product_attention_backward(dy, q, k, v, weights)

    check_gradients(f, backward, [q, k, v])


@pytest.mark.parametrize("batch_first", [True, False])
def test_split_and_merge_heads_follow_torch_order(xp, device, batch_first):
    shape = (N, L, 4) if batch_first else (L, N, 4)
    x = random_array(xp, shape, dtype=xp.float32, device=device, seed=0)
    heads = split_heads(x, 2, batch_first=batch_first)
    host = to_numpy(x) if batch_first else to_numpy(x).transpose(1, 0, 2)
    expected = host.reshape(N, L, 2, 2).transpose(0, 2, 1, 3)
    assert_close(heads, expected, xp=xp, device=device, dtype=xp.float32)
    assert_close(merge_heads(heads, batch_first=batch_first), to_numpy(x), xp=xp, device=device)
    merged = split_heads_backward(heads, batch_first=batch_first)
    assert_close(merged, to_numpy(x), xp=xp, device=device)
    assert_close(
        merge_heads_backward(x, 2, batch_first=batch_first), expected, xp=xp, device=device
    )


def test_attention_mask_combines_torch_masks(xp, device):
    like = xp.zeros((1,), dtype=xp.float32, device=device)
    padding = xp.asarray(np.array([[False, True], [False, False]]), device=device)
    causal = attention_mask(
        padding,
        None,
        batch=2,
        num_heads=1,
        target_length=2,
        source_length=2,
        is_causal=True,
        dtype=xp.float32,
        like=like,
    )
    expected = np.array([[[[0, -np.inf], [0, -np.inf]]], [[[0, -np.inf], [0, 0]]]])
    assert_close(causal, expected, xp=xp, device=device, dtype=xp.float32)
    assert (
        attention_mask(
            None,
            None,
            batch=2,
            num_heads=1,
            target_length=2,
            source_length=2,
            dtype=xp.float32,
            like=like,
        )
        is None
    )


def test_bad_shapes_are_refused():
    q = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match=r"\(\.\.\., L, D\), \(\.\.\., S, D\)"):
        scaled_dot_product_attention(q, np.zeros((2, 3, 5)), np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="mask must broadcast"):
        scaled_dot_product_attention(q, q, q, mask=np.zeros((2, 4)))
    with pytest.raises(TypeError, match="one dtype"):
        scaled_dot_product_attention(q, q.astype(np.float32), q)

"""xpnn.MultiheadAttention against torch.nn.MultiheadAttention, and finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xpnn
from selection import require_float64
from xpnn import Linear, MultiheadAttention
from xpnn.layers import from_config
from xpnn.testing import assert_close, check_gradients, random_array, to_numpy

E, HEADS = 4, 2


def _randomise(model, xp, device, dtype, seed=20):
    """Give every parameter (biases included, which start at zero) random values."""
    for index, (name, value) in enumerate(model.named_parameters()):
        noise = random_array(xp, tuple(value.shape), dtype=dtype, device=device, seed=seed + index)
        model.set_parameter(name, noise * 0.5)


def _twin(model, torch_module):
    state = {
        k: torch.tensor(to_numpy(v), dtype=torch.float64) for k, v in model.state_dict().items()
    }
    torch_module.load_state_dict(state)
    return torch_module


def _check_parameter_gradients(model, twin, tol):
    torch_params = dict(twin.named_parameters())
    for name, owner, local in model.parameter_slots():
        expected = torch_params[name].grad.numpy()
        if isinstance(owner, Linear) and local == "weight":
            expected = expected.T  # xpnn's Linear stores (in, out)
        assert_close(owner.grads[local], expected, **tol, err_msg=name)


# (batch_first, self-attention, batch, key_padding_mask, attn_mask, need_weights, average)
CASES = {
    "self-padding": (False, True, 2, "odd-lengths", None, True, True),
    "cross-float-masks": (True, False, 2, "float", "float-3d", True, False),
    "one-key-visible": (True, False, 2, None, "one-key", True, True),
    "causal-batch-1": (False, True, 1, None, "causal", False, True),
    "hidden-row": (True, False, 2, "hidden-row", None, False, True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_forward_and_every_gradient_match_torch(xp, device, real_dtype, case):
    batch_first, self_attention, n, padding, masking, need_weights, average = CASES[case]
    length, source = (4, 4) if self_attention else (3, 4)
    make = {"dtype": real_dtype, "device": device}
    layer = MultiheadAttention(E, HEADS, batch_first=batch_first, seed=0, xp=xp, **make)
    _randomise(layer, xp, device, real_dtype)
    twin = _twin(layer, torch.nn.MultiheadAttention(E, HEADS, batch_first=batch_first).double())

    def shaped(size):
        return (n, size, E) if batch_first else (size, n, E)

    query = random_array(xp, shaped(length), seed=1, **make)
    key = query if self_attention else random_array(xp, shaped(source), seed=2, **make)
    value = query if self_attention else random_array(xp, shaped(source), seed=3, **make)
    kpm = attn = None
    t_attn = None
    if padding == "odd-lengths":  # lengths 3 and 1
        kpm = np.arange(source)[None, :] >= np.array([[3], [1]])
    elif padding == "hidden-row":  # the second sequence is padding throughout
        kpm = np.zeros((n, source), dtype=bool)
        kpm[1] = True
    elif padding == "float":  # added to the scores
        kpm = np.random.default_rng(7).normal(size=(n, source))
    if masking == "float-3d":
        attn = np.random.default_rng(4).normal(size=(n * HEADS, length, source))
    elif masking == "one-key":  # each query sees a single key
        attn = np.ones((length, source), dtype=bool)
        attn[np.arange(length), np.arange(length)[::-1] % source] = False
    elif masking == "causal":  # given to torch, asked of xpnn with is_causal
        t_attn = torch.triu(torch.ones(length, source, dtype=torch.bool), diagonal=1)
    if attn is not None:
        t_attn = torch.tensor(attn)
    t_kpm = None if kpm is None else torch.tensor(kpm)
    (out, weights), backward = layer.forward(
        query,
        key,
        value,
        key_padding_mask=None
        if kpm is None
        else xp.asarray(kpm, **(make if kpm.dtype.kind == "f" else {"device": device})),
        attn_mask=None
        if attn is None
        else xp.asarray(attn, **(make if attn.dtype.kind == "f" else {"device": device})),
        need_weights=need_weights,
        average_attn_weights=average,
        is_causal=masking == "causal",
    )
    tq = torch.tensor(to_numpy(query), dtype=torch.float64, requires_grad=True)
    tk = (
        tq
        if self_attention
        else torch.tensor(to_numpy(key), dtype=torch.float64, requires_grad=True)
    )
    tv = (
        tq
        if self_attention
        else torch.tensor(to_numpy(value), dtype=torch.float64, requires_grad=True)
    )
    t_out, t_weights = twin(
        tq,
        tk,
        tv,
        key_padding_mask=t_kpm,
        attn_mask=t_attn,
        need_weights=need_weights,
        average_attn_weights=average,
        is_causal=masking == "causal",
    )
    d_out = random_array(xp, tuple(out.shape), seed=5, **make)
    loss = (t_out * torch.tensor(to_numpy(d_out), dtype=torch.float64)).sum()
    d_weights = None
    if need_weights:
        assert t_weights is not None
        assert weights is not None
        d_weights = random_array(xp, tuple(weights.shape), seed=6, **make)
        loss = loss + (t_weights * torch.tensor(to_numpy(d_weights), dtype=torch.float64)).sum()
    else:
        assert weights is None
    loss.backward()
    dq, dk, dv = backward(d_out, d_weights)
    tol = {"xp": xp, "device": device, "dtype": real_dtype}
    assert_close(out, t_out.detach().numpy(), **tol)
    if need_weights:
        assert_close(weights, t_weights.detach().numpy(), **tol)
    assert_close(dq, tq.grad.numpy(), **tol)
    if self_attention:  # one array: its whole gradient comes back as dquery
        assert dk is None
        assert dv is None
    else:
        assert_close(dk, tk.grad.numpy(), **tol)
        assert_close(dv, tv.grad.numpy(), **tol)
    _check_parameter_gradients(layer, twin, tol)


def test_gradients_match_finite_differences(xp, device):
    require_float64(xp, device)
    make = {"dtype": xp.float64, "device": device}
    layer = MultiheadAttention(E, HEADS, batch_first=True, seed=0, xp=xp, **make)
    _randomise(layer, xp, device, xp.float64)
    query = random_array(xp, (1, 2, E), seed=1, **make)
    key = random_array(xp, (1, 3, E), seed=2, **make)
    kpm = xp.asarray(np.array([[False, False, True]]), device=device)

    def f(query, key):
        return layer(query, key, key, key_padding_mask=kpm)[0]

    def backward(dy, query, key):
        _, back = layer.forward(query, key, key, key_padding_mask=kpm, need_weights=False)
        dq, dk, dv = back(dy)
        return dq, dk + dv

    # The parameters' gradients are checked against torch.autograd above.
    check_gradients(f, backward, [query, key])


@pytest.mark.parametrize("batch_first", [False, True])
def test_one_sequence_without_batch_axis_matches_torch(xp, device, batch_first):
    make = {"dtype": xp.float32, "device": device}
    layer = MultiheadAttention(E, HEADS, batch_first=batch_first, seed=0, xp=xp, **make)
    twin = _twin(layer, torch.nn.MultiheadAttention(E, HEADS, batch_first=batch_first).double())
    x = random_array(xp, (3, E), seed=1, **make)
    padding = xp.asarray(np.array([False, False, True]), device=device)
    (out, weights), backward = layer.forward(x, x, x, key_padding_mask=padding)
    dx, dk, dv = backward(random_array(xp, (3, E), seed=2, **make))
    tx = torch.tensor(to_numpy(x), dtype=torch.float64, requires_grad=True)
    t_out, t_weights = twin(tx, tx, tx, key_padding_mask=torch.tensor(to_numpy(padding)))
    t_out.backward(torch.tensor(to_numpy(random_array(xp, (3, E), seed=2, **make))).double())
    tol = {"xp": xp, "device": device, "dtype": xp.float32}
    assert_close(out, t_out.detach().numpy(), **tol)
    assert_close(weights, t_weights.detach().numpy(), **tol)
    assert_close(dx, tx.grad.numpy(), **tol)
    assert dk is None
    assert dv is None


def test_dropout_acts_in_training_only(xp, device):
    make = {"dtype": xp.float32, "device": device}
    layer = MultiheadAttention(E, HEADS, dropout=0.5, batch_first=True, seed=3, xp=xp, **make)
    x = random_array(xp, (2, 3, E), seed=1, **make)
    _, weights = layer(x, x, x, average_attn_weights=False)
    host = to_numpy(weights)
    assert np.any(host == 0.0)  # dropped
    kept = host[host != 0.0]
    assert np.all(kept <= 2.0 + 1e-6)
    assert np.any(kept > 1.0 / 3.0)
    layer.eval()
    _, weights = layer(x, x, x)
    assert_close(xp.sum(weights, axis=-1), np.ones((2, 3)), xp=xp, device=device, dtype=xp.float32)
    again = MultiheadAttention(E, HEADS, dropout=0.5, batch_first=True, seed=3, xp=xp, **make)
    assert_close(again(x, x, x, average_attn_weights=False)[1], host, xp=xp, device=device)


def test_state_dict_keys_config_and_checkpoint(tmp_path, xp, device):
    layer = MultiheadAttention(E, HEADS, seed=0, xp=xp, device=device, dtype=xp.float32)
    torch_keys = list(torch.nn.MultiheadAttention(E, HEADS).state_dict())
    assert list(layer.state_dict()) == torch_keys
    rebuilt = from_config(layer.config())
    assert isinstance(rebuilt, MultiheadAttention)
    assert rebuilt.config() == layer.config()
    xpnn.save(layer, tmp_path / "mha.safetensors")
    loaded = xpnn.load(tmp_path / "mha.safetensors", xp=xp, device=device)
    x = random_array(xp, (3, 2, E), dtype=xp.float32, device=device, seed=0)
    assert_close(
        loaded(x, x, x)[0], to_numpy(layer(x, x, x)[0]), xp=xp, device=device, dtype=xp.float32
    )


def test_bad_inputs_are_refused():
    layer = MultiheadAttention(E, HEADS, seed=0)
    x = np.zeros((3, 2, E))
    with pytest.raises(ValueError, match="divisible"):
        MultiheadAttention(5, 2)
    with pytest.raises(ValueError, match=r"query must be a batch of shape \(L, N, E\)"):
        layer(np.zeros((3, 2, 1, E)), x, x)
    with pytest.raises(ValueError, match=r"so key must be one too, \(S, E\)"):
        layer(np.zeros((3, E)), x, x)
    with pytest.raises(ValueError, match="expected last dimension 4"):
        layer(np.zeros((3, 2, 5)), x, x)
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(2, 3\)"):
        layer(x, x, x, key_padding_mask=np.zeros((3, 2), dtype=bool))
    with pytest.raises(TypeError, match="key_padding_mask must be boolean"):
        layer(x, x, x, key_padding_mask=np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match=r"attn_mask must have shape \(3, 3\) or \(4, 3, 3\)"):
        layer(x, x, x, attn_mask=np.zeros((2, 3, 3)))
    (_, _), backward = layer.forward(x, x, x)
    with pytest.raises(ValueError, match="d_attn_output must have the output's shape"):
        backward(np.zeros((3, 2, 5)))

"""xpnn.TransformerEncoderLayer / TransformerEncoder against torch.nn, and finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xpnn
from selection import require_float64
from xpnn import LayerNorm, Linear, Sequential, TransformerEncoder, TransformerEncoderLayer
from xpnn.layers import from_config
from xpnn.testing import assert_close, check_gradients, random_array, to_numpy

E, HEADS, FF, L = 4, 2, 6, 3


def _randomise(model, xp, device, dtype, seed=20):
    """Give every parameter random values (torch starts biases at zero, norms at one)."""
    for index, (name, value) in enumerate(model.named_parameters()):
        noise = random_array(xp, tuple(value.shape), dtype=dtype, device=device, seed=seed + index)
        model.set_parameter(name, noise * 0.5 + (1.0 if name.endswith("norm1.weight") else 0.0))


def _twin(model, torch_module):
    state = {
        k: torch.tensor(to_numpy(v), dtype=torch.float64) for k, v in model.state_dict().items()
    }
    torch_module.load_state_dict(state)
    return torch_module


def _compare(model, twin, x, tol, **masks):
    y, backward = model.forward(x, **masks)
    xp = tol["xp"]
    dy = random_array(xp, tuple(y.shape), dtype=tol["dtype"], device=tol["device"], seed=9)
    dx = backward(dy)
    tx = torch.tensor(to_numpy(x), dtype=torch.float64, requires_grad=True)
    t_masks = {
        k: None if v is None else torch.tensor(to_numpy(v))
        for k, v in masks.items()
        if k != "is_causal"
    }
    ty = twin(tx, **t_masks)
    ty.backward(torch.tensor(to_numpy(dy), dtype=torch.float64))
    assert_close(y, ty.detach().numpy(), **tol)
    assert_close(dx, tx.grad.numpy(), **tol)
    torch_params = dict(twin.named_parameters())
    for name, owner, local in model.parameter_slots():
        expected = torch_params[name].grad.numpy()
        if isinstance(owner, Linear) and local == "weight":
            expected = expected.T  # xpnn's Linear stores (in, out)
        assert_close(owner.grads[local], expected, **tol, err_msg=name)


@pytest.mark.parametrize(
    ("norm_first", "activation", "batch_first"),
    [(False, "relu", False), (True, "gelu", True)],
    ids=["post-relu", "pre-gelu-batch-first"],
)
def test_encoder_layer_matches_torch(xp, device, real_dtype, norm_first, activation, batch_first):
    make = {"xp": xp, "device": device, "dtype": real_dtype}
    settings = {
        "dropout": 0.0,
        "activation": activation,
        "batch_first": batch_first,
        "norm_first": norm_first,
    }
    layer = TransformerEncoderLayer(E, HEADS, FF, seed=0, **settings, **make)
    _randomise(layer, xp, device, real_dtype)
    twin = _twin(layer, torch.nn.TransformerEncoderLayer(E, HEADS, FF, **settings).double())
    shape = (2, L, E) if batch_first else (L, 2, E)
    x = random_array(xp, shape, dtype=real_dtype, device=device, seed=1)
    padding = xp.asarray(np.arange(L)[None, :] >= np.array([[L], [1]]), device=device)
    tol = {"xp": xp, "device": device, "dtype": real_dtype}
    _compare(layer, twin, x, tol, src_key_padding_mask=padding)


def test_encoder_with_norm_matches_torch(xp, device, real_dtype):
    make = {"xp": xp, "device": device, "dtype": real_dtype}
    layer = TransformerEncoderLayer(E, HEADS, FF, dropout=0.0, seed=0, **make)
    model = TransformerEncoder(layer, 2, norm=LayerNorm(E, **make))
    _randomise(model, xp, device, real_dtype)
    t_layer = torch.nn.TransformerEncoderLayer(E, HEADS, FF, dropout=0.0)
    # enable_nested_tensor=False: torch's regular path, the one xpnn computes.
    twin = torch.nn.TransformerEncoder(
        t_layer, 2, norm=torch.nn.LayerNorm(E), enable_nested_tensor=False
    ).double()
    assert list(model.state_dict()) == list(twin.state_dict())
    _twin(model, twin)
    x = random_array(xp, (L, 2, E), dtype=real_dtype, device=device, seed=1)
    causal = xp.asarray(np.triu(np.ones((L, L), dtype=bool), k=1), device=device)
    tol = {"xp": xp, "device": device, "dtype": real_dtype}
    _compare(model, twin, x, tol, mask=causal)


def test_gradients_match_finite_differences(xp, device):
    require_float64(xp, device)
    make = {"xp": xp, "device": device, "dtype": xp.float64}
    layer = TransformerEncoderLayer(E, HEADS, FF, dropout=0.0, batch_first=True, seed=0, **make)
    x = random_array(xp, (1, 2, E), dtype=xp.float64, device=device, seed=1)
    check_gradients(layer, lambda dy, x: (layer.forward(x)[1](dy),), [x])


def test_copies_sequential_checkpoint_and_config(tmp_path, xp, device):
    make = {"xp": xp, "device": device, "dtype": xp.float32}
    layer = TransformerEncoderLayer(E, HEADS, FF, dropout=0.0, batch_first=True, seed=0, **make)
    model = Sequential(
        TransformerEncoder(layer, 2, norm=LayerNorm(E, **make)), Linear(E, 2, **make)
    )
    encoder = model[0]
    first, second = encoder.layers[0], encoder.layers[1]
    assert first is not layer
    if "jax" not in xp.__name__:  # JAX arrays are immutable: sharing one is harmless
        # Copies: an optimizer writing into one leaves the other alone.
        assert first.linear1.weight is not second.linear1.weight
    assert_close(first.linear1.weight, to_numpy(layer.linear1.weight), xp=xp, device=device)
    rebuilt = from_config(model.config())
    assert rebuilt.config() == model.config()
    assert [n for n, _ in rebuilt.named_parameters()] == [n for n, _ in model.named_parameters()]
    xpnn.save(model, tmp_path / "encoder.safetensors")
    loaded = xpnn.load(tmp_path / "encoder.safetensors", xp=xp, device=device)
    x = random_array(xp, (2, L, E), dtype=xp.float32, device=device, seed=3)
    assert_close(loaded(x), to_numpy(model(x)), xp=xp, device=device, dtype=xp.float32)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="activation must be 'relu' or 'gelu'"):
        TransformerEncoderLayer(E, HEADS, activation="tanh")
    with pytest.raises(TypeError, match="encoder_layer must be an xpnn TransformerEncoderLayer"):
        TransformerEncoder(Linear(E, E), 2)
    with pytest.raises(ValueError, match="num_layers must be an int of at least 1"):
        TransformerEncoder(TransformerEncoderLayer(E, HEADS, FF), 0)

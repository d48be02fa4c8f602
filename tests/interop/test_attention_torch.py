"""from_torch and to_torch for torch.nn's attention and transformer encoder modules."""

from __future__ import annotations

import pytest
import torch

from xpnn import MultiheadAttention, TransformerEncoder, TransformerEncoderLayer
from xpnn.interop.torch import from_torch, to_torch
from xpnn.testing import assert_close, random_array, to_numpy

E, HEADS, FF = 4, 2, 6


def _torch_module(kind):
    torch.manual_seed(0)
    if kind == "attention":
        return torch.nn.MultiheadAttention(E, HEADS, batch_first=True)
    layer = torch.nn.TransformerEncoderLayer(
        E, HEADS, FF, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
    )
    if kind == "layer":
        return layer
    # enable_nested_tensor=False: the regular path, which xpnn computes (see TransformerEncoder).
    return torch.nn.TransformerEncoder(
        layer, 2, norm=torch.nn.LayerNorm(E), enable_nested_tensor=False
    )


def _run(module, x, padding):
    if isinstance(module, (MultiheadAttention, torch.nn.MultiheadAttention)):
        return module(x, x, x, key_padding_mask=padding)[0]
    if isinstance(module, (TransformerEncoderLayer, torch.nn.TransformerEncoderLayer)):
        return module(x, src_key_padding_mask=padding)
    return module(x, mask=None, src_key_padding_mask=padding)


@pytest.mark.parametrize("kind", ["attention", "layer", "encoder"])
def test_conversion_both_ways_gives_equal_outputs(xp, device, kind):
    twin = _torch_module(kind).eval()
    model = from_torch(twin, xp=xp, device=device)
    expected = {"attention": MultiheadAttention, "layer": TransformerEncoderLayer}
    assert type(model) is expected.get(kind, TransformerEncoder)
    assert not model.training
    assert all(not module.training for module in model.modules())
    assert list(model.state_dict()) == list(twin.state_dict())
    x = random_array(xp, (2, 3, E), dtype=xp.float32, device=device, seed=0)
    padding = xp.asarray([[False, False, False], [False, False, True]], device=device)
    t_x = torch.tensor(to_numpy(x))
    t_padding = torch.tensor(to_numpy(padding))
    with torch.no_grad():
        reference = _run(twin, t_x, t_padding).numpy()
        back = to_torch(model)
        assert type(back) is type(twin)
        assert not back.training
        round_trip = _run(back, t_x, t_padding).numpy()
    assert_close(_run(model, x, padding), reference, xp=xp, device=device, dtype=xp.float32)
    assert_close(round_trip, reference)

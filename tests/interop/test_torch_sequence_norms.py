"""from_torch / to_torch for nn.LayerNorm, nn.RMSNorm and nn.Embedding: equal outputs both ways."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from xpnn import LayerNorm, RMSNorm, Sequential
from xpnn.interop.torch import from_torch, to_torch
from xpnn.layers.embedding import Embedding
from xpnn.testing import assert_close, random_array, to_numpy

# (torch module, xpnn type, input shape or None for indices)
MODULES = [
    (lambda: nn.LayerNorm((2, 3), eps=1e-3), LayerNorm, (2, 2, 3)),
    (lambda: nn.LayerNorm(3, bias=False), LayerNorm, (2, 3)),
    (lambda: nn.RMSNorm(3, eps=1e-4), RMSNorm, (2, 3)),
    (lambda: nn.RMSNorm(3, elementwise_affine=False), RMSNorm, (2, 3)),
    (lambda: nn.Embedding(5, 3, padding_idx=-2), Embedding, None),
]
IDS = ["layer_norm", "layer_norm_no_bias", "rms_norm", "rms_norm_plain", "embedding"]


@pytest.mark.parametrize(("make", "kind", "shape"), MODULES, ids=IDS)
def test_round_trip_gives_equal_outputs(xp, device, real_dtype, make, kind, shape):
    torch.manual_seed(0)
    module = make().double()
    with torch.no_grad():  # parameters away from their initial ones and zeros
        for value in module.parameters():
            value.add_(torch.randn_like(value))
    model = from_torch(module, xp=xp, device=device, dtype=real_dtype)
    assert type(model) is kind
    assert list(model.state_dict()) == list(module.state_dict())
    if shape is None:
        host = np.array([[0, 3, 4], [3, 1, 1]])
        info = xp.__array_namespace_info__()
        x = xp.asarray(host, dtype=info.default_dtypes(device=device)["indexing"], device=device)
        tx = torch.tensor(host)
    else:
        x = random_array(xp, shape, dtype=real_dtype, device=device, seed=1)
        tx = torch.tensor(to_numpy(x), dtype=torch.float64)
    expected = module(tx).detach().numpy()
    assert_close(model(x), expected, xp=xp, device=device, dtype=real_dtype)
    back = to_torch(Sequential(model))
    assert type(back[0]) is type(module)
    assert back[0].state_dict().keys() == module.state_dict().keys()
    got = back.double()(tx).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5 if real_dtype == xp.float32 else 1e-12)


def test_embedding_options_without_equal_are_refused():
    with pytest.raises(ValueError, match="max_norm"):
        from_torch(nn.Embedding(4, 2, max_norm=1.0))
    with pytest.raises(ValueError, match="sparse"):
        from_torch(nn.Sequential(nn.Embedding(4, 2, sparse=True)))

"""xpnn.LayerNorm and xpnn.RMSNorm against torch.nn, two steps of forward and backward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xpnn import LayerNorm, RMSNorm
from xpnn.layers import from_config
from xpnn.testing import assert_close, random_array, to_numpy

CASES = [
    (LayerNorm, torch.nn.LayerNorm, (2, 3, 4), 4, {}),
    (LayerNorm, torch.nn.LayerNorm, (2, 2, 3), (2, 3), {"bias": False, "eps": 1e-3}),
    (LayerNorm, torch.nn.LayerNorm, (3, 4), 4, {"elementwise_affine": False}),
    (RMSNorm, torch.nn.RMSNorm, (2, 2, 3), (2, 3), {"eps": 1e-3}),
    (RMSNorm, torch.nn.RMSNorm, (3, 4), 4, {"elementwise_affine": False}),
]
IDS = ["ln-last1", "ln-last2-no-bias", "ln-plain", "rms-last2", "rms-plain"]


@pytest.mark.parametrize(("kind", "twin_kind", "shape", "normalized", "options"), CASES, ids=IDS)
def test_steps_match_torch(xp, device, real_dtype, kind, twin_kind, shape, normalized, options):
    layer = kind(normalized, **options, xp=xp, device=device, dtype=real_dtype)
    twin = twin_kind(normalized, **options).double()
    assert list(layer.state_dict()) == list(twin.state_dict())
    for name, value in twin.named_parameters():
        new = random_array(xp, tuple(value.shape), dtype=real_dtype, device=device, seed=5)
        layer.set_parameter(name, new)
        with torch.no_grad():
            value.copy_(torch.tensor(to_numpy(new), dtype=torch.float64))
    tol = {"xp": xp, "device": device, "dtype": real_dtype}
    for step in range(2):  # the gradients accumulate over the two
        x = random_array(xp, shape, dtype=real_dtype, device=device, seed=step)
        dy = random_array(xp, shape, dtype=real_dtype, device=device, seed=10 + step)
        y, backward = layer.forward(x)
        dx = backward(dy)
        tx = torch.tensor(to_numpy(x), dtype=torch.float64, requires_grad=True)
        ty = twin(tx)
        ty.backward(torch.tensor(to_numpy(dy), dtype=torch.float64))
        assert_close(y, ty.detach().numpy(), **tol)
        assert_close(dx, tx.grad.numpy(), **tol)
        for name, value in twin.named_parameters():
            assert_close(layer.grads[name], value.grad.numpy(), **tol)
    assert_close(layer(x), ty.detach().numpy(), **tol)


def test_settings_and_refusals():
    norm = LayerNorm((2, 3), eps=1e-3, bias=False)
    assert norm.bias is None
    assert norm.weight.shape == (2, 3)
    again = from_config(norm.config())
    assert again._settings() == norm._settings()
    assert "bias" not in again.params
    assert RMSNorm(3).eps is None
    assert from_config(RMSNorm([3], elementwise_affine=False).config()).params == {}
    _, backward = LayerNorm(3).forward(np.ones((2, 3)), input_grad=False)
    assert backward(np.ones((2, 3))) is None
    with pytest.raises(ValueError, match=r"expected input with shape \[\*, 2, 3\]"):
        norm(np.ones((3, 2)))
    with pytest.raises(TypeError, match="normalized_shape"):
        LayerNorm(2.5)
    with pytest.raises(ValueError, match="eps"):
        RMSNorm(2, eps=-1.0)
    with pytest.raises(AttributeError, match="elementwise_affine=False"):
        LayerNorm(2, elementwise_affine=False).weight = np.ones(2)

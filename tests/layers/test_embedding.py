"""xpnn.Embedding against torch.nn.Embedding: initialisation, steps, settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xpnn.layers import from_config
from xpnn.layers.embedding import Embedding
from xpnn.testing import assert_close, random_array, to_numpy


def test_steps_match_torch(xp, device, real_dtype):
    layer = Embedding(5, 3, padding_idx=-1, seed=0, xp=xp, device=device, dtype=real_dtype)
    assert layer.padding_idx == 4
    weight = to_numpy(layer.weight)
    np.testing.assert_array_equal(weight[4], 0.0)  # the padding row starts at zero
    twin = torch.nn.Embedding(5, 3, padding_idx=-1).double()
    assert list(layer.state_dict()) == list(twin.state_dict())
    with torch.no_grad():
        twin.weight.copy_(torch.tensor(weight, dtype=torch.float64))
    integral = xp.__array_namespace_info__().default_dtypes(device=device)["indexing"]
    tol = {"xp": xp, "device": device, "dtype": real_dtype}
    for step, host in enumerate(
        [np.array([[0, 4, 2], [2, 2, 4]]), np.array([[1, 2, 2], [0, 1, 1]])]
    ):
        indices = xp.asarray(host, dtype=integral, device=device)
        dy = random_array(xp, (*host.shape, 3), dtype=real_dtype, device=device, seed=step)
        y, backward = layer.forward(indices)
        assert backward(dy) is None
        ty = twin(torch.tensor(host))
        ty.backward(torch.tensor(to_numpy(dy), dtype=torch.float64))
        assert_close(y, ty.detach().numpy(), **tol)
        assert_close(layer.grads["weight"], twin.weight.grad.numpy(), **tol)  # accumulated
    assert_close(layer(indices), ty.detach().numpy(), **tol)


def test_initialisation_settings_and_refusals():
    drawn = to_numpy(Embedding(200, 50, seed=1).weight)
    assert abs(drawn.mean()) < 0.02
    assert abs(drawn.std() - 1.0) < 0.02  # N(0, 1), as torch's
    layer = Embedding(4, 2, padding_idx=1, seed=3)
    np.testing.assert_array_equal(to_numpy(Embedding(4, 2, 1, seed=3).weight), layer.weight)
    again = from_config(layer.config())
    assert again._settings() == {"num_embeddings": 4, "embedding_dim": 2, "padding_idx": 1}
    with pytest.raises(ValueError, match="Padding_idx must be within num_embeddings"):
        Embedding(4, 2, padding_idx=-5)
    with pytest.raises(ValueError, match="embedding_dim must be at least 1"):
        Embedding(4, 0)
    with pytest.raises(ValueError, match=r"index out of range: indices must be in \[0, 4\)"):
        layer(np.array([4]))
    _, backward = layer.forward(np.array([0, 1]))
    backward(np.ones((2, 2)))
    with pytest.raises(RuntimeError, match="second time"):
        backward(np.ones((2, 2)))

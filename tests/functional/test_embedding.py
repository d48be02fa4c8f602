"""xpnn.functional.embedding and its weight gradient against torch.autograd, finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from selection import require_float64
from xpnn.functional.embedding import embedding, embedding_backward
from xpnn.testing import assert_close, check_gradients, random_array, to_numpy

# (indices, num_embeddings, padding_idx): many duplicates (50 indices over a
# vocabulary of 4), a 2-d batch with a negative padding_idx.
RNG = np.random.default_rng(0)
CASES = [
    (RNG.integers(0, 4, size=50), 4, None),
    (np.array([[1, 4, 4, 0], [2, 1, 4, 4]]), 6, -2),
]
IDS = ["50-over-4", "2d-padding"]


def _indices(xp, device, host):
    info = xp.__array_namespace_info__()
    return xp.asarray(host, dtype=info.default_dtypes(device=device)["indexing"], device=device)


@pytest.mark.parametrize(("host", "vocabulary", "padding_idx"), CASES, ids=IDS)
def test_forward_and_weight_gradient_match_torch(
    xp, device, real_dtype, host, vocabulary, padding_idx
):
    indices = _indices(xp, device, host)
    weight = random_array(xp, (vocabulary, 3), dtype=real_dtype, device=device, seed=1)
    dy = random_array(xp, (*host.shape, 3), dtype=real_dtype, device=device, seed=2)
    y = embedding(indices, weight, padding_idx)
    dweight = embedding_backward(dy, indices, weight, padding_idx)
    tw = torch.tensor(to_numpy(weight), dtype=torch.float64, requires_grad=True)
    ty = F.embedding(torch.tensor(host), tw, padding_idx)
    ty.backward(torch.tensor(to_numpy(dy), dtype=torch.float64))
    tol = {"xp": xp, "device": device, "dtype": real_dtype}
    assert_close(y, ty.detach().numpy(), **tol)
    assert_close(dweight, tw.grad.numpy(), **tol)


def test_weight_gradient_matches_finite_differences(xp, device):
    require_float64(xp, device)
    indices = _indices(xp, device, np.array([[3, 0, 3], [3, 1, 0]]))
    weight = random_array(xp, (5, 2), dtype=xp.float64, device=device, seed=3)

    # No padding_idx: its zero gradient is a convention, not the derivative.
    def f(weight, indices):
        return embedding(indices, weight)

    def back(dy, weight, indices):
        return embedding_backward(dy, indices, weight), None

    check_gradients(f, back, [weight, indices])


@pytest.mark.backend("jax")
def test_weight_gradient_under_jit():
    import jax
    import jax.numpy as jnp

    host = RNG.integers(0, 4, size=(5, 10))
    dy = RNG.normal(size=(5, 10, 3))
    expected = np.zeros((6, 3))
    np.add.at(expected, host.reshape(-1), dy.reshape(-1, 3))
    expected[2] = 0.0
    weight = jnp.zeros((6, 3), dtype=jnp.float32)
    step = jax.jit(lambda dy, i, w: embedding_backward(dy, i, w, padding_idx=2))
    got = step(jnp.asarray(dy, dtype=jnp.float32), jnp.asarray(host), weight)
    assert_close(got, expected, xp=jnp, device=weight.device, dtype=jnp.float32)


@pytest.mark.backend("dask")
def test_chunked_dask_indices():
    import dask.array as da

    host = RNG.integers(0, 7, size=(6, 5))
    dy = RNG.normal(size=(6, 5, 2))
    expected = np.zeros((7, 2))
    np.add.at(expected, host.reshape(-1), dy.reshape(-1, 2))
    indices = da.from_array(host, chunks=(2, 3))
    weight = da.from_array(RNG.normal(size=(7, 2)), chunks=(3, 2))
    y = embedding(indices, weight)
    dweight = embedding_backward(da.from_array(dy, chunks=(2, 3, 2)), indices, weight)
    assert isinstance(dweight, da.Array)
    tol = {"xp": da, "device": "cpu", "dtype": weight.dtype}
    assert_close(y, to_numpy(weight)[host], **tol)
    assert_close(dweight, expected, **tol)


def test_bad_indices_are_refused():
    weight = np.zeros((4, 2))
    with pytest.raises(ValueError, match=r"indices must be in \[0, 4\) .* got 4"):
        embedding(np.array([0, 4]), weight)
    with pytest.raises(ValueError, match="got -1"):
        embedding(np.array([[-1, 2]]), weight)
    with pytest.raises(TypeError, match="integer dtype"):
        embedding(np.array([0.0, 1.0]), weight)
    with pytest.raises(ValueError, match="Padding_idx must be within num_embeddings"):
        embedding_backward(np.ones((1, 2)), np.array([0]), weight, padding_idx=4)
    with pytest.raises(ValueError, match=r"dy must have the shape of the output, \(2, 2\)"):
        embedding_backward(np.ones((2, 3)), np.array([0, 1]), weight)
    empty = embedding_backward(np.ones((0, 2)), np.zeros((0,), dtype=np.int64), weight)
    np.testing.assert_array_equal(empty, weight)

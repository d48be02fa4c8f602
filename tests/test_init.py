"""xpnn.init: host-side seeded initialisers, identical on every backend."""

from __future__ import annotations

import math

import array_api_compat.numpy as xp
import numpy as np
import pytest
import torch

from xpnn import Linear, init
from xpnn.testing import to_numpy

NAMES = list(init.INITIALIZERS)


@pytest.mark.parametrize("name", NAMES)
def test_bit_identical_on_every_backend(xp, device, dtype, name):
    draw = init.INITIALIZERS[name]
    ours = draw(
        (30, 20), xp=xp, device=device, dtype=dtype, rng=np.random.default_rng(3), fan_in=30
    )
    host_dtype = to_numpy(ours).dtype
    reference = draw(
        (30, 20), xp=np, device="cpu", dtype=host_dtype, rng=np.random.default_rng(3), fan_in=30
    )
    np.testing.assert_array_equal(to_numpy(ours), reference)
    assert ours.dtype == dtype


def _draw(name: str, shape=(400, 300), seed=0, **extra):
    return init.INITIALIZERS[name](
        shape,
        xp=np,
        device="cpu",
        dtype=np.float64,
        rng=np.random.default_rng(seed),
        fan_in=shape[0],
        **extra,
    )


@pytest.mark.parametrize(
    ("name", "torch_init"),
    [
        ("xavier_uniform", torch.nn.init.xavier_uniform_),
        ("xavier_normal", torch.nn.init.xavier_normal_),
        ("kaiming_uniform", lambda w: torch.nn.init.kaiming_uniform_(w, nonlinearity="relu")),
        ("kaiming_normal", lambda w: torch.nn.init.kaiming_normal_(w, nonlinearity="relu")),
    ],
)
def test_distribution_matches_torch_nn_init(name, torch_init):
    """Same law as torch.nn.init (torch's weight is the transpose of ours)."""
    torch.manual_seed(0)
    theirs = torch_init(torch.empty(300, 400, dtype=torch.float64)).numpy()
    ours = _draw(name)
    assert abs(ours.std() - theirs.std()) < 0.01 * theirs.std()
    assert abs(ours.mean()) < 0.01 * theirs.std()
    if name.endswith("uniform"):
        assert abs(np.abs(ours).max() - np.abs(theirs).max()) < 1e-3 * theirs.std()


def test_portable_gaussian_is_standard_normal():
    values = init.normal(
        (200_000,), std=1.0, xp=np, device="cpu", dtype=np.float64, rng=np.random.default_rng(1)
    )
    assert abs(values.mean()) < 0.01
    assert abs(values.std() - 1.0) < 0.01
    within_one_sigma = np.mean(np.abs(values) < 1.0)
    assert abs(within_one_sigma - 0.6827) < 0.005
    assert np.all(np.isfinite(values))


def test_complex_draws_keep_the_variance():
    values = init.normal(
        (100_000,), std=2.0, xp=np, device="cpu", dtype=np.complex128, rng=np.random.default_rng(2)
    )
    assert abs(np.mean(np.abs(values) ** 2) - 4.0) < 0.05
    assert abs(values.real.std() - values.imag.std()) < 0.02


def test_zeros_and_torch_default():
    assert not _draw("zeros").any()
    weight = _draw("default", shape=(50, 10))
    assert np.abs(weight).max() <= 1 / math.sqrt(50)


@pytest.mark.parametrize(
    ("nonlinearity", "param"),
    [
        ("linear", None),
        ("sigmoid", None),
        ("tanh", None),
        ("relu", None),
        ("leaky_relu", 0.2),
        ("leaky_relu", None),
    ],
)
def test_calculate_gain_matches_torch(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(
        torch.nn.init.calculate_gain(nonlinearity, param)
    )


def test_calculate_gain_rejects_unknown():
    with pytest.raises(ValueError, match="nonlinearity must be one of .*got 'swish'"):
        init.calculate_gain("swish")


def test_linear_takes_initialisers_by_name_or_callable(xp, device):
    layer = Linear(
        8, 4, xp=xp, device=device, weight_init="xavier_normal", bias_init="zeros", seed=5
    )
    expected = _draw("xavier_normal", shape=(8, 4), seed=5)
    np.testing.assert_allclose(
        to_numpy(layer.weight), expected.astype(to_numpy(layer.weight).dtype)
    )
    assert not to_numpy(layer.bias).any()
    custom = Linear(3, 2, xp=xp, device=device, weight_init=init.zeros)
    assert not to_numpy(custom.weight).any()


def test_linear_rejects_unknown_initialiser():
    with pytest.raises(ValueError, match="weight_init must be one of default, xavier_uniform"):
        Linear(2, 2, weight_init="orthogonal")


@pytest.mark.parametrize("dtype_name", ["float32", "float64", "complex64"])
def test_uniform_draws_in_chunks_the_values_of_one_draw(monkeypatch, dtype_name):
    def one_draw(shape, bound, dtype):
        rng = np.random.default_rng(7)
        if np.dtype(dtype).kind == "c":
            half = bound / np.sqrt(2.0)
            real = rng.uniform(-half, half, size=shape)
            imag = rng.uniform(-half, half, size=shape)
            return (real + 1j * imag).astype(dtype)
        return rng.uniform(-bound, bound, size=shape).astype(dtype)

    monkeypatch.setattr(init, "DRAW_CHUNK", 5)  # 37 values: 8 chunks, the last short
    dtype = getattr(xp, dtype_name)
    drawn = init.uniform(
        (37,), bound=0.5, xp=xp, device="cpu", dtype=dtype, rng=np.random.default_rng(7)
    )
    assert drawn.dtype == dtype
    np.testing.assert_array_equal(drawn, one_draw((37,), 0.5, dtype_name))
    shaped = init.uniform(
        (6, 7), bound=2.0, xp=xp, device="cpu", dtype=dtype, rng=np.random.default_rng(7)
    )
    np.testing.assert_array_equal(shaped, one_draw((6, 7), 2.0, dtype_name))


def test_a_float32_weight_is_drawn_without_a_float64_copy_of_it():
    import tracemalloc

    shape = (1000, 2000)  # 8 MB in float32, 16 MB in float64
    tracemalloc.start()
    try:
        init.uniform(
            shape, bound=0.1, xp=xp, device="cpu", dtype=xp.float32, rng=np.random.default_rng(0)
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The weight and one chunk of float64 draws (and its float32 rounding).
    assert peak < 4 * 2_000_000 + 12 * init.DRAW_CHUNK + 1_000_000

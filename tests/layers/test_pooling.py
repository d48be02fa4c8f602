"""xpnn.layers.pooling and xpnn.layers.reshape: the layers against torch.nn, checkpoints, interop.

Few, tiny shapes: the JAX session compiles once per shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import xpnn
from oracles import widen
from xpnn import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AvgPool1d,
    AvgPool2d,
    Flatten,
    Linear,
    MaxPool1d,
    MaxPool2d,
    Sequential,
    Unflatten,
)
from xpnn.interop.torch import from_torch, to_torch
from xpnn.layers import LAYERS, from_config
from xpnn.testing import assert_close, check_gradients, random_array, to_numpy

nn = torch.nn

# (xpnn layer, torch twin, input shape)
LAYER_CASES: list[tuple[Callable[[], Any], Callable[[], nn.Module], tuple[int, ...]]] = [
    (lambda: MaxPool1d(3, 2, 1), lambda: nn.MaxPool1d(3, 2, 1), (2, 3, 7)),
    (lambda: MaxPool2d(2, ceil_mode=True), lambda: nn.MaxPool2d(2, ceil_mode=True), (3, 5, 5)),
    (
        lambda: MaxPool2d((3, 2), (1, 2), (1, 0), dilation=(1, 2)),
        lambda: nn.MaxPool2d((3, 2), (1, 2), (1, 0), dilation=(1, 2)),
        (1, 2, 5, 7),
    ),
    (
        lambda: AvgPool1d(2, 1, 1, count_include_pad=False),
        lambda: nn.AvgPool1d(2, 1, 1, count_include_pad=False),
        (3, 6),
    ),
    (lambda: AvgPool2d(3, 2, 1), lambda: nn.AvgPool2d(3, 2, 1), (2, 2, 5, 6)),
    (lambda: AdaptiveAvgPool1d(4), lambda: nn.AdaptiveAvgPool1d(4), (2, 3, 7)),
    (lambda: AdaptiveAvgPool2d((3, 2)), lambda: nn.AdaptiveAvgPool2d((3, 2)), (2, 5, 6)),
    (lambda: AdaptiveAvgPool2d(1), lambda: nn.AdaptiveAvgPool2d(1), (1, 3, 4, 4)),
    (Flatten, nn.Flatten, (2, 3, 2, 2)),
    (lambda: Flatten(0, 1), lambda: nn.Flatten(0, 1), (2, 3, 2)),
    (lambda: Unflatten(1, (2, -1)), lambda: nn.Unflatten(1, (2, -1)), (2, 6)),
]
IDS = [
    "MaxPool1d(3,2,1)",
    "MaxPool2d(2,ceil)-unbatched",
    "MaxPool2d-dilation",
    "AvgPool1d-exclude-pad-unbatched",
    "AvgPool2d(3,2,1)",
    "AdaptiveAvgPool1d(4)",
    "AdaptiveAvgPool2d((3,2))-unbatched",
    "AdaptiveAvgPool2d(1)-batch1",
    "Flatten",
    "Flatten(0,1)",
    "Unflatten(1,(2,-1))",
]


# The JAX session compiles every operation once per shape and dtype (seconds
# per case): it runs these cases only, in its widest dtype.
JAX_CASES = (1, 6, 8, 9, 10)


def widest_real_dtype(xp: Any, device: Any) -> Any:
    available = xp.__array_namespace_info__().dtypes(device=device, kind="real floating")
    return available.get("float64", available["float32"])


def torch_reference(
    twin: nn.Module, x: np.ndarray, dy: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    tx = torch.tensor(widen(x), requires_grad=True)
    y = twin(tx)
    if dy is None:
        return to_numpy(y), None
    y.backward(torch.tensor(widen(dy)))
    return to_numpy(y), to_numpy(tx.grad)


@pytest.mark.parametrize("case", range(len(LAYER_CASES)), ids=IDS)
def test_layer_matches_torch(xp, device, real_dtype, case):
    if "jax" in xp.__name__ and (
        case not in JAX_CASES or real_dtype != widest_real_dtype(xp, device)
    ):
        pytest.skip("the JAX session runs a few cases: it compiles each operation per shape")
    make, twin, shape = LAYER_CASES[case]
    layer = make()
    x = random_array(xp, shape, dtype=real_dtype, device=device, seed=1)
    out_shape = torch_reference(twin(), np.zeros(shape), None)[0].shape
    dy = random_array(xp, tuple(out_shape), dtype=real_dtype, device=device, seed=2)
    y, backward = layer.forward(x)
    dx = backward(dy)
    ref_y, ref_dx = torch_reference(twin(), to_numpy(x), to_numpy(dy))
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    assert_close(y, ref_y, **same, err_msg="y")
    assert_close(dx, ref_dx, **same, err_msg="dx")
    assert_close(layer(x), ref_y, **same, err_msg="__call__")
    assert layer.params == {}
    with pytest.raises(RuntimeError):
        backward(dy)
    _, no_grad = layer.forward(x, input_grad=False)
    assert no_grad(dy) is None


def test_in_a_model_matches_finite_differences(xp, device):
    # The differences run in float64 on the model's device, where its parameters live.
    available = xp.__array_namespace_info__().dtypes(device=device, kind="real floating")
    if "float64" not in available:
        pytest.skip(f"device {device!r} has no float64 (inspection API)")
    dtype = available["float64"]
    model = Sequential(
        MaxPool2d(2, 1),
        AvgPool2d(2, 1, ceil_mode=True),
        Flatten(),
        Linear(4, 2, xp=xp, device=device, dtype=dtype, seed=0),
    )
    x = random_array(xp, (2, 1, 4, 4), dtype=dtype, device=device, seed=3)
    check_gradients(model, lambda dy, x: (model.forward(x)[1](dy),), [x])


def test_empty_batch(xp, device):
    real_dtype = widest_real_dtype(xp, device)
    model = Sequential(MaxPool2d(2), AdaptiveAvgPool2d(1), Flatten())
    x = xp.zeros((0, 2, 4, 4), dtype=real_dtype, device=device)
    y, backward = model.forward(x)
    assert tuple(y.shape) == (0, 2)
    assert tuple(backward(xp.zeros((0, 2), dtype=real_dtype, device=device)).shape) == (0, 2, 4, 4)


def test_settings_repr_and_config():
    layer = MaxPool2d((2, 2), padding=1)
    assert repr(layer) == (
        "MaxPool2d(kernel_size=2, stride=2, padding=1, dilation=1, ceil_mode=False)"
    )
    assert repr(AvgPool1d(3)) == (
        "AvgPool1d(kernel_size=3, stride=3, padding=0, ceil_mode=False, count_include_pad=True)"
    )
    assert repr(Unflatten(1, [2, 3])) == "Unflatten(dim=1, unflattened_size=(2, 3))"
    for name in ("MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "Flatten", "Unflatten"):
        assert name in LAYERS
    made = MaxPool2d((3, 2), (1, 2), (1, 0), (1, 2), ceil_mode=True)
    assert repr(from_config(made.config())) == repr(made)
    assert not MaxPool1d(2).keeps_shape()


def test_refusals():
    with pytest.raises(ValueError, match="return_indices=True is not supported"):
        MaxPool2d(2, return_indices=True)
    with pytest.raises(ValueError, match="divisor_override=3 is not supported"):
        AvgPool2d(2, divisor_override=3)
    with pytest.raises(ValueError, match="at most half of kernel_size"):
        MaxPool1d(2, padding=2)
    with pytest.raises(ValueError, match="output_size must be at least 1"):
        AdaptiveAvgPool2d((0, 2))
    with pytest.raises(ValueError, match="must multiply to the size of dimension 1"):
        Unflatten(1, (2, 2))(np.zeros((2, 6)))


@pytest.mark.backend("numpy")
def test_unknown_sizes_are_refused():
    da = pytest.importorskip("dask.array")
    x = da.from_array(np.arange(8.0).reshape(1, 8), chunks=4)
    unknown = x[:, x[0] > 2]
    for layer in (MaxPool1d(2), AdaptiveAvgPool1d(2), Flatten(0)):
        with pytest.raises(ValueError, match="unknown dimensions"):
            layer(unknown)


def test_torch_round_trip(xp, device):
    twin = nn.Sequential(
        nn.MaxPool2d(2, 1, ceil_mode=True),
        nn.AvgPool2d(3, 2, 1, count_include_pad=False),
        nn.AdaptiveAvgPool2d((1, 2)),
        nn.Flatten(),
        nn.Unflatten(1, (2, 2)),
        nn.AdaptiveAvgPool1d(1),
        nn.MaxPool1d(1),
        nn.AvgPool1d(1),
    ).double()
    model = from_torch(twin, xp=xp, device=device)
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5))
    dtype = xp.__array_namespace_info__().dtypes(device=device).get("float64", xp.float32)
    y = model(xp.asarray(x, dtype=dtype, device=device))
    assert_close(y, twin(torch.tensor(x)).detach().numpy(), xp=xp, device=device, dtype=dtype)
    back = to_torch(model)
    assert [repr(m) for m in back] == [repr(m) for m in twin]
    with pytest.raises(ValueError, match="return_indices"):
        from_torch(nn.MaxPool2d(2, return_indices=True))


def test_checkpoint_round_trip(xp, device, tmp_path):
    real_dtype = widest_real_dtype(xp, device)
    model = Sequential(
        MaxPool2d(2, 1, padding=1, ceil_mode=True),
        AvgPool2d((2, 1), count_include_pad=False),
        AdaptiveAvgPool2d((None, 2)),
        Flatten(),
        Unflatten(1, (2, -1)),
        Flatten(),
        Linear(8, 3, xp=xp, device=device, dtype=real_dtype, seed=0),
    )
    path = tmp_path / "pool.safetensors"
    xpnn.save(model, path)
    loaded = xpnn.load(path, xp=xp, device=device)
    assert repr(loaded) == repr(model)
    x = random_array(xp, (2, 2, 4, 5), dtype=real_dtype, device=device, seed=4)
    assert_close(loaded(x), model(x))


def lazy_model() -> Sequential:
    return Sequential(
        MaxPool2d(2, 1, 1, ceil_mode=True),
        AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
        AdaptiveAvgPool2d((2, 1)),
        Flatten(),
    )


@pytest.mark.backend("dask")
def test_dask_stays_lazy():
    dask = pytest.importorskip("dask")
    da = pytest.importorskip("dask.array")
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 4))
    ref_y, ref_backward = lazy_model().forward(x)
    ref_dx = ref_backward(np.ones(ref_y.shape))

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("something was computed")

    model = lazy_model()
    with dask.config.set(scheduler=refuse):
        y, backward = model.forward(da.from_array(x, chunks=(1, 2, 3, 2)))
        dx = backward(da.ones(y.shape, chunks=1))
    np.testing.assert_allclose(y.compute(), ref_y)
    np.testing.assert_allclose(dx.compute(), ref_dx)


@pytest.mark.backend("jax")
def test_traces_under_jax_jit():
    jax = pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 4)).astype(np.float32)
    ref_y, ref_backward = lazy_model().forward(x)
    ref_dx = ref_backward(np.ones(ref_y.shape, dtype=np.float32))
    model = lazy_model()

    def step(x: Any) -> Any:
        y, backward = model.forward(x)
        return y, backward(jnp.ones(y.shape, dtype=y.dtype))

    y, dx = jax.jit(step)(jnp.asarray(x))
    model.reset_checks()
    np.testing.assert_allclose(np.asarray(y), ref_y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(dx), ref_dx, rtol=1e-5, atol=1e-6)

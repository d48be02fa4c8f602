"""xpnn.Linear: construction, initialisation, forward/backward, errors."""

from __future__ import annotations

import gc
import math
import weakref
from typing import Any

import numpy as np
import pytest

import xpnn
from oracles import torch_linear
from xpnn import Linear
from xpnn.testing import assert_close, random_array, to_numpy


def test_defaults_come_from_the_inspection_api(xp, device):
    layer = Linear(3, 2, xp=xp, device=device, seed=0)
    info = xp.__array_namespace_info__()
    assert layer.weight.dtype == info.default_dtypes(device=device)["real floating"]
    assert layer.bias.dtype == layer.weight.dtype
    assert tuple(layer.weight.shape) == (3, 2)
    assert tuple(layer.bias.shape) == (2,)
    assert xpnn._compat.device(layer.weight) == device
    assert xpnn._compat.device(layer.bias) == device


def test_default_namespace_is_numpy():
    layer = Linear(3, 2, seed=0)
    assert isinstance(layer.weight, np.ndarray)
    assert layer.weight.dtype == np.float64


def test_initialisation_is_pytorch_default_and_bit_identical(xp, device, dtype):
    """The same seed gives bit-identical parameters on every backend."""
    layer = Linear(50, 40, xp=xp, device=device, dtype=dtype, seed=1234)
    reference = Linear(50, 40, dtype=np.dtype(str(to_numpy(layer.weight).dtype)), seed=1234)
    np.testing.assert_array_equal(to_numpy(layer.weight), reference.weight)
    np.testing.assert_array_equal(to_numpy(layer.bias), reference.bias)
    # PyTorch's default: uniform in ±1/sqrt(in_features) (complex: each part
    # in ±bound/sqrt(2)).
    bound = 1 / math.sqrt(50)
    weight = to_numpy(layer.weight)
    assert np.max(np.abs(weight.real)) <= bound
    assert np.max(np.abs(weight.imag)) <= bound
    assert np.abs(weight).max() > 0.8 * bound / (math.sqrt(2) if np.iscomplexobj(weight) else 1)


def test_seed_controls_the_draw():
    same = Linear(4, 3, seed=7).weight, Linear(4, 3, seed=7).weight
    np.testing.assert_array_equal(*same)
    assert not np.array_equal(Linear(4, 3, seed=7).weight, Linear(4, 3, seed=8).weight)
    generator = np.random.default_rng(7)
    np.testing.assert_array_equal(Linear(4, 3, seed=generator).weight, same[0])


def test_matches_pytorch_nn_linear_initial_distribution():
    """Moments of the draw match torch.nn.Linear's default initialisation."""
    import torch

    torch.manual_seed(0)
    theirs = torch.nn.Linear(256, 256, dtype=torch.float64).weight.detach().numpy()
    ours = Linear(256, 256, seed=0).weight
    assert abs(theirs.std() - ours.std()) < 0.02 * theirs.std()
    assert abs(theirs.min() - ours.min()) < 1e-3
    assert abs(theirs.max() - ours.max()) < 1e-3


def test_forward_backward_match_torch_autograd(xp, device, dtype):
    layer = Linear(4, 3, xp=xp, device=device, dtype=dtype, seed=0)
    x = random_array(xp, (2, 5, 4), dtype=dtype, device=device, seed=1)
    dy = random_array(xp, (2, 5, 3), dtype=dtype, device=device, seed=2)
    y, backward = layer.forward(x)
    dx = backward(dy)
    ref_y, ref_dx, ref_dw, ref_db = torch_linear(
        to_numpy(x), to_numpy(layer.weight), to_numpy(layer.bias), to_numpy(dy)
    )
    same = {"xp": xp, "device": device, "dtype": dtype}
    assert_close(y, ref_y, **same)
    assert_close(dx, ref_dx, **same)
    assert_close(layer.grads["weight"], ref_dw, **same)
    assert_close(layer.grads["bias"], ref_db, **same)
    assert_close(layer(x), ref_y, **same)


def test_gradients_accumulate_until_zero_grad(xp, device, real_dtype):
    layer = Linear(4, 3, xp=xp, device=device, dtype=real_dtype, seed=0)
    assert layer.grads == {"weight": None, "bias": None}
    x = random_array(xp, (5, 4), dtype=real_dtype, device=device, seed=1)
    dy = random_array(xp, (5, 3), dtype=real_dtype, device=device, seed=2)
    for _ in range(3):
        _, backward = layer.forward(x)
        backward(dy)
    _, ref_dw, ref_db = torch_linear(
        to_numpy(x), to_numpy(layer.weight), to_numpy(layer.bias), to_numpy(dy)
    )[1:]
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    assert_close(layer.grads["weight"], 3 * ref_dw, **same)
    assert_close(layer.grads["bias"], 3 * ref_db, **same)
    layer.zero_grad()
    assert layer.grads == {"weight": None, "bias": None}


def test_each_backward_keeps_its_own_input(xp, device, real_dtype):
    layer = Linear(4, 3, xp=xp, device=device, dtype=real_dtype, seed=0)
    x1 = random_array(xp, (5, 4), dtype=real_dtype, device=device, seed=1)
    x2 = random_array(xp, (2, 4), dtype=real_dtype, device=device, seed=2)
    dy1 = random_array(xp, (5, 3), dtype=real_dtype, device=device, seed=3)
    dy2 = random_array(xp, (2, 3), dtype=real_dtype, device=device, seed=4)
    _, backward1 = layer.forward(x1)
    _, backward2 = layer.forward(x2)
    dx2 = backward2(dy2)
    dx1 = backward1(dy1)
    w, b = to_numpy(layer.weight), to_numpy(layer.bias)
    _, ref_dx1, ref_dw1, ref_db1 = torch_linear(to_numpy(x1), w, b, to_numpy(dy1))
    _, ref_dx2, ref_dw2, ref_db2 = torch_linear(to_numpy(x2), w, b, to_numpy(dy2))
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    assert_close(dx1, ref_dx1, **same)
    assert_close(dx2, ref_dx2, **same)
    assert_close(layer.grads["weight"], ref_dw1 + ref_dw2, **same)
    assert_close(layer.grads["bias"], ref_db1 + ref_db2, **same)


def test_without_bias(xp, device):
    layer = Linear(4, 3, bias=False, xp=xp, device=device, seed=0)
    assert layer.bias is None
    assert list(layer.params) == ["weight"]
    assert len(layer.parameters()) == 1
    x = random_array(xp, (5, 4), dtype=layer.dtype, device=device, seed=1)
    y, backward = layer.forward(x)
    backward(xp.ones_like(y))
    assert set(layer.grads) == {"weight"}
    with pytest.raises(AttributeError, match="bias=False"):
        layer.bias = xp.zeros(3, device=device)


def test_inputs_are_not_modified(xp, device, real_dtype):
    layer = Linear(4, 3, xp=xp, device=device, dtype=real_dtype, seed=0)
    x = random_array(xp, (5, 4), dtype=real_dtype, device=device, seed=1)
    dy = random_array(xp, (5, 3), dtype=real_dtype, device=device, seed=2)
    before = to_numpy(x), to_numpy(dy), to_numpy(layer.weight)
    _, backward = layer.forward(x)
    backward(dy, retain_graph=True)
    backward(dy)  # accumulating onto the first call's gradients
    for a, b in zip((x, dy, layer.weight), before, strict=True):
        np.testing.assert_array_equal(to_numpy(a), b)


def test_call_keeps_nothing_alive():
    layer = Linear(4, 3, seed=0)
    x = np.ones((2, 4))
    alive = weakref.ref(x)
    layer(x)
    del x
    gc.collect()
    assert alive() is None
    assert layer.grads == {"weight": None, "bias": None}


def test_parameters_and_repr(xp, device):
    layer = Linear(4, 3, xp=xp, device=device, seed=0)
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    assert layer.parameters()[0] is layer.weight
    text = repr(layer)
    assert text.startswith("Linear(in_features=4, out_features=3, bias=True, xp=")
    assert "device=" in text
    assert "dtype=" in text


def test_string_device_is_found_by_name():
    import array_api_strict as strict

    layer = Linear(2, 2, xp=strict, device="device1", seed=0)
    assert layer.weight.device == strict.Device("device1")


@pytest.mark.parametrize("bad", [0, -3])
def test_sizes_below_one_raise_value_error(bad):
    with pytest.raises(ValueError, match=f"in_features must be at least 1, got {bad}"):
        Linear(bad, 3)
    with pytest.raises(ValueError, match=f"out_features must be at least 1, got {bad}"):
        Linear(3, bad)


@pytest.mark.parametrize("bad", [2.5, "3", True, None])
def test_non_integer_sizes_raise_type_error(bad):
    with pytest.raises(TypeError, match="in_features must be an int"):
        Linear(bad, 3)


def test_unknown_namespace_raises_type_error():
    with pytest.raises(TypeError, match="xp must be an array library module"):
        Linear(2, 2, xp="numpy")


def test_integer_dtype_raises_type_error(xp, device):
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        Linear(2, 2, xp=xp, device=device, dtype=xp.int32)


def test_dtype_the_device_lacks_raises_value_error():
    import array_api_strict as strict

    with pytest.raises(ValueError, match=r"does not support dtype.*float64.*supports float32"):
        Linear(2, 2, xp=strict, device="no_float64", dtype=strict.float64)


@pytest.mark.backend("torch")
@pytest.mark.parametrize("dtype", [None, "float32"])
def test_device_that_is_not_available_is_named(dtype):
    # torch's inspection API lists no dtypes for a device it cannot use.
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(
        ValueError,
        match=r"device 'cuda' is not available here \(CUDA is not available\): torch reports "
        r"no dtypes for it; use one of the devices it has: cpu",
    ):
        Linear(2, 2, xp=torch, device="cuda", dtype=dtype)
    layer = Linear(2, 2, seed=0)
    with pytest.raises(ValueError, match=r"device 'cuda' is not available here"):
        layer.to(torch, device="cuda", dtype=dtype)
    assert type(layer.weight) is np.ndarray


def test_forward_errors_are_the_functional_ones(xp, device):
    layer = Linear(64, 8, xp=xp, device=device, seed=0)
    with pytest.raises(ValueError, match=r"expected last dimension 64 \(in_features\), got 63"):
        layer.forward(xp.ones((2, 63), dtype=layer.dtype, device=device))
    with pytest.raises(TypeError, match="x must have a real or complex floating dtype"):
        layer(xp.ones((2, 64), dtype=xp.int32, device=device))
    _, backward = layer.forward(xp.ones((2, 64), dtype=layer.dtype, device=device))
    with pytest.raises(ValueError, match=r"dy must have the shape of the output, \(2, 8\)"):
        backward(xp.ones((2, 7), dtype=layer.dtype, device=device))
    assert layer.grads["weight"] is None  # nothing half-written on failure


def test_layer_on_another_device_raises_value_error():
    import array_api_strict as strict

    layer = Linear(3, 2, xp=strict, device="device1", seed=0)
    with pytest.raises(
        ValueError, match=r"x is on device .*CPU_DEVICE.* but weight is on device .*device1"
    ):
        layer(strict.ones((2, 3), device=strict.Device("CPU_DEVICE")))


def test_layer_from_another_library_raises_type_error(xp, device):
    import array_api_strict

    other: Any = array_api_strict if xp.__name__ == "array_api_compat.numpy" else np
    layer = Linear(3, 2, xp=other, seed=0)
    with pytest.raises(TypeError, match="arrays from different libraries"):
        layer(xp.ones((2, 3), device=device))


def test_library_module_and_compat_namespace_are_the_same_backend():
    import array_api_compat.numpy
    import array_api_compat.torch
    import torch

    assert Linear(2, 2, xp=np).xp is Linear(2, 2, xp=array_api_compat.numpy).xp
    assert Linear(2, 2, xp=torch).xp is Linear(2, 2, xp=array_api_compat.torch).xp
    layer = Linear(2, 2, xp=torch, seed=0)
    assert isinstance(layer.weight, torch.Tensor)
    assert layer(torch.ones(3, 2)).shape == (3, 2)


def test_checks_still_run_after_a_remembered_call():
    """The per-layer memo of validated inputs never lets a bad input through."""
    import array_api_strict as strict

    layer = Linear(3, 2, xp=strict, device="device1", dtype=strict.float32, seed=0)
    good = strict.ones((4, 3), dtype=strict.float32, device=strict.Device("device1"))
    _, backward = layer.forward(good)
    backward(strict.ones((4, 2), dtype=strict.float32, device=strict.Device("device1")))
    with pytest.raises(ValueError, match="CPU_DEVICE"):
        layer(strict.ones((4, 3), dtype=strict.float32))
    with pytest.raises(TypeError, match="floating dtype"):
        layer(strict.ones((4, 3), dtype=strict.int32, device=strict.Device("device1")))
    with pytest.raises(ValueError, match=r"got 4"):
        layer(strict.ones((4, 4), dtype=strict.float32, device=strict.Device("device1")))
    _, backward = layer.forward(good)
    with pytest.raises(ValueError, match="dy must have the shape of the output"):
        backward(strict.ones((5, 2), dtype=strict.float32, device=strict.Device("device1")))
    with pytest.raises(ValueError, match="CPU_DEVICE"):
        backward(strict.ones((4, 2), dtype=strict.float32))


def test_replacing_a_parameter_is_seen_by_the_next_call():
    layer = Linear(3, 2, dtype=np.float32, seed=0)
    x = np.ones((4, 3), dtype=np.float32)
    assert layer(x).dtype == np.float32
    layer.set_parameter("weight", np.ones((3, 2), dtype=np.float64))
    assert layer(x).dtype == np.float64  # standard promotion, checked again
    # set_parameter refuses another shape; the dict itself is not guarded, and
    # the next call checks what it holds.
    layer.params["weight"] = np.ones((5, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="expected last dimension 5"):
        layer(x)

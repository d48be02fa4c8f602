"""xpnn.layers.activations: the activation layers on every backend and device."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from oracles import widen
from xpnn.layers._module import Module
from xpnn.layers.activations import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from xpnn.layers.linear import Linear
from xpnn.layers.sequential import Sequential
from xpnn.testing import assert_close, check_gradients, random_array, to_numpy

F = torch.nn.functional

# (layer factory, torch counterpart, defined for complex numbers)
LAYERS: list[tuple[Callable[[], Module], Callable[[torch.Tensor], torch.Tensor], bool]] = [
    (ReLU, F.relu, False),
    (lambda: LeakyReLU(0.2), lambda t: F.leaky_relu(t, 0.2), False),
    (Tanh, torch.tanh, True),
    (Sigmoid, torch.sigmoid, True),
    (GELU, F.gelu, False),
    (Softmax, lambda t: torch.softmax(t, dim=-1), False),
    (lambda: Softmax(axis=0), lambda t: torch.softmax(t, dim=0), False),
    (LogSoftmax, lambda t: torch.log_softmax(t, dim=-1), False),
    (lambda: LogSoftmax(axis=1), lambda t: torch.log_softmax(t, dim=1), False),
]
IDS = [
    "ReLU",
    "LeakyReLU(0.2)",
    "Tanh",
    "Sigmoid",
    "GELU",
    "Softmax",
    "Softmax(axis=0)",
    "LogSoftmax",
    "LogSoftmax(axis=1)",
]
DTYPES = ("float32", "float64", "complex64", "complex128")


def layer_dtypes() -> list[Any]:
    return [
        pytest.param(make, oracle, name, id=f"{ident}-{name}")
        for (make, oracle, complex_ok), ident in zip(LAYERS, IDS, strict=True)
        for name in (DTYPES if complex_ok else DTYPES[:2])
    ]


def dtype_named(xp: Any, device: Any, name: str) -> Any:
    available = xp.__array_namespace_info__().dtypes(device=device)
    if name not in available:
        pytest.skip(f"device {device!r} has no {name} (inspection API)")
    return available[name]


def torch_reference(
    oracle: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray, dy: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``y, dx`` from torch.autograd in double precision."""
    tx = torch.tensor(widen(x), requires_grad=True)
    y = oracle(tx)
    y.backward(torch.tensor(widen(dy)))
    return to_numpy(y), to_numpy(tx.grad)


@pytest.mark.parametrize(("make", "oracle", "dtype_name"), layer_dtypes())
@pytest.mark.parametrize("shape", [(2, 3, 4), (3, 0)], ids=str)
def test_forward_backward_match_torch_autograd(xp, device, make, oracle, dtype_name, shape):
    dtype = dtype_named(xp, device, dtype_name)
    layer = make()
    x = 2 * random_array(xp, shape, dtype=dtype, device=device, seed=1)
    dy = random_array(xp, shape, dtype=dtype, device=device, seed=2)
    y, backward = layer.forward(x)
    dx = backward(dy)
    ref_y, ref_dx = torch_reference(oracle, to_numpy(x), to_numpy(dy))
    same = {"xp": xp, "device": device, "dtype": dtype}
    assert_close(y, ref_y, **same, err_msg="y")
    assert_close(dx, ref_dx, **same, err_msg="dx")
    assert_close(layer(x), ref_y, **same, err_msg="__call__")
    assert layer.params == {}
    assert layer.grads == {}


@pytest.mark.parametrize(("make", "oracle", "dtype_name"), layer_dtypes())
def test_matches_finite_differences(xp, device, make, oracle, dtype_name):
    dtype = dtype_named(xp, device, dtype_name)
    layer = make()
    x = random_array(xp, (2, 3), dtype=dtype, device=device, seed=3)
    check_gradients(layer, lambda dy, x: (layer.forward(x)[1](dy),), [x])


@pytest.mark.parametrize("make", [m for m, _, _ in LAYERS], ids=IDS)
def test_each_backward_keeps_its_own_forward(xp, device, real_dtype, make):
    layer = make()
    x1 = random_array(xp, (2, 3), dtype=real_dtype, device=device, seed=1)
    x2 = random_array(xp, (2, 3), dtype=real_dtype, device=device, seed=2)
    dy = random_array(xp, (2, 3), dtype=real_dtype, device=device, seed=3)
    before = [to_numpy(a) for a in (x1, x2, dy)]
    _, backward1 = layer.forward(x1)
    _, backward2 = layer.forward(x2)
    dx2 = backward2(dy)
    dx1 = backward1(dy)
    assert_close(dx1, layer.forward(x1)[1](dy))
    assert_close(dx2, layer.forward(x2)[1](dy))
    for a, b in zip((x1, x2, dy), before, strict=True):
        np.testing.assert_array_equal(to_numpy(a), b)


def test_stable_at_large_float32_inputs(xp, device):
    x = xp.asarray([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4 + 1]], dtype=xp.float32, device=device)
    for make, _, _ in LAYERS:
        y, backward = make().forward(x)
        dx = backward(xp.ones_like(x))
        assert np.all(np.isfinite(to_numpy(y))), repr(make())
        assert np.all(np.isfinite(to_numpy(dx))), repr(make())


def test_in_a_model_with_linear_layers(xp, device, real_dtype):
    """Activations chain with parameterised layers; input gradient checked numerically."""
    # The differences run in float64 on the model's device, where its
    # parameters live.
    dtype_named(xp, device, "float64")
    model = Sequential(
        Linear(4, 5, xp=xp, device=device, dtype=real_dtype, seed=0),
        GELU(),
        Linear(5, 5, xp=xp, device=device, dtype=real_dtype, seed=1),
        Tanh(),
        Linear(5, 3, xp=xp, device=device, dtype=real_dtype, seed=2),
        LogSoftmax(),
    )
    x = random_array(xp, (2, 4), dtype=real_dtype, device=device, seed=3)
    check_gradients(model, lambda dy, x: (model.forward(x)[1](dy),), [x])


def test_call_keeps_nothing_alive():
    layer = Tanh()
    x = np.ones((2, 4))
    alive = weakref.ref(x)
    y = layer(x)
    del x
    gc.collect()
    assert alive() is None
    assert y.shape == (2, 4)


@pytest.mark.parametrize(
    ("layer", "text"),
    [
        (ReLU(), "ReLU()"),
        (LeakyReLU(), "LeakyReLU(negative_slope=0.01)"),
        (LeakyReLU(negative_slope=0.2), "LeakyReLU(negative_slope=0.2)"),
        (LeakyReLU(1), "LeakyReLU(negative_slope=1.0)"),
        (Tanh(), "Tanh()"),
        (Sigmoid(), "Sigmoid()"),
        (GELU(), "GELU(approximate='none')"),
        (GELU("tanh"), "GELU(approximate='tanh')"),
        (Softmax(), "Softmax(axis=-1)"),
        (Softmax(axis=0), "Softmax(axis=0)"),
        (LogSoftmax(), "LogSoftmax(axis=-1)"),
        (LogSoftmax(axis=np.int64(2)), "LogSoftmax(axis=2)"),
    ],
    ids=str,
)
def test_repr(layer, text):
    assert repr(layer) == text
    assert isinstance(layer, Module)
    assert layer.parameters() == []
    assert list(layer.named_parameters()) == []
    assert layer.children() == []
    assert layer.training
    assert layer.eval() is layer
    assert not layer.training


# --- errors ---


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        ("0.1", TypeError, "negative_slope must be a real number, got str '0.1'"),
        (False, TypeError, "negative_slope must be a real number, got bool False"),
        (None, TypeError, "negative_slope must be a real number, got NoneType"),
        (float("nan"), ValueError, "negative_slope must be finite, got nan"),
        (-float("inf"), ValueError, "negative_slope must be finite, got -inf"),
    ],
)
def test_leaky_relu_slope_is_validated(bad, error, message):
    with pytest.raises(error, match=message):
        LeakyReLU(bad)


@pytest.mark.parametrize("layer_class", [Softmax, LogSoftmax])
@pytest.mark.parametrize(
    ("bad", "kind"), [(1.0, "float"), (True, "bool"), ("-1", "str"), (None, "NoneType")]
)
def test_axis_is_validated(layer_class, bad, kind):
    with pytest.raises(TypeError, match=f"axis must be an int, got {kind}"):
        layer_class(axis=bad)


def test_gelu_form_is_checked():
    with pytest.raises(ValueError, match=r"approximate must be 'none' \(the exact GELU\)"):
        GELU(approximate="exact")


def test_forward_errors_are_the_functional_ones(xp, device):
    ints = xp.ones((2, 3), dtype=xp.int32, device=device)
    with pytest.raises(TypeError, match="x must have a real floating dtype"):
        ReLU()(ints)
    with pytest.raises(TypeError, match="x must have a real or complex floating dtype"):
        Tanh().forward(ints)
    with pytest.raises(TypeError, match="relu is defined for real numbers only"):
        ReLU()(xp.ones((2, 3), dtype=xp.complex64, device=device))
    x = xp.ones((2, 3), dtype=xp.float32, device=device)
    with pytest.raises(ValueError, match=r"axis 2 is out of range for x of shape \(2, 3\)"):
        Softmax(axis=2)(x)
    with pytest.raises(ValueError, match="x is a 0-d array, which has no axis 1"):
        LogSoftmax(axis=1)(xp.ones((), dtype=xp.float32, device=device))


@pytest.mark.parametrize("make", [m for m, _, _ in LAYERS], ids=IDS)
def test_backward_errors_are_the_functional_ones(xp, device, make):
    x = xp.ones((2, 3), dtype=xp.float32, device=device)
    _, backward = make().forward(x)
    with pytest.raises(ValueError, match=r"dy must have the shape of [xy]: expected \(2, 3\)"):
        backward(xp.ones((3, 2), dtype=xp.float32, device=device))
    with pytest.raises(TypeError, match="dy must have a .*floating dtype"):
        backward(xp.ones((2, 3), dtype=xp.int32, device=device))
    with pytest.raises(TypeError, match="dy must be an array"):
        backward([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])


def test_backward_on_another_device_raises_value_error():
    import array_api_strict as strict

    _, backward = Sigmoid().forward(strict.ones((2, 3), device=strict.Device("device1")))
    with pytest.raises(ValueError, match=r"y is on device .*device1.* but dy is on device"):
        backward(strict.ones((2, 3), device=strict.Device("CPU_DEVICE")))

"""xpnn.functional.activations on every backend and device."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from oracles import widen
from xpnn.functional.activations import (
    gelu,
    gelu_backward,
    leaky_relu,
    leaky_relu_backward,
    log_softmax,
    log_softmax_backward,
    relu,
    relu_backward,
    sigmoid,
    sigmoid_backward,
    softmax,
    softmax_backward,
    tanh,
    tanh_backward,
)
from xpnn.testing import assert_close, check_gradients, random_array, to_numpy

F = torch.nn.functional


@dataclass(frozen=True)
class Case:
    """One activation: its functional pair and its torch counterpart."""

    name: str
    forward: Callable[[Any], Any]
    # backward(dy, kept), with kept the input x or the output y.
    backward: Callable[[Any, Any], Any]
    keeps_output: bool
    oracle: Callable[[torch.Tensor], torch.Tensor]
    complex_ok: bool = False
    needs_axis: bool = False

    def __str__(self) -> str:
        return self.name

    def gradient(self, dy: Any, x: Any) -> Any:
        """``dx`` from ``x``, whatever the backward keeps."""
        return self.backward(dy, self.forward(x) if self.keeps_output else x)


CASES = [
    Case("relu", relu, relu_backward, False, F.relu),
    Case("leaky_relu", leaky_relu, leaky_relu_backward, False, F.leaky_relu),
    Case(
        "leaky_relu(0.2)",
        functools.partial(leaky_relu, negative_slope=0.2),
        functools.partial(leaky_relu_backward, negative_slope=0.2),
        False,
        functools.partial(F.leaky_relu, negative_slope=0.2),
    ),
    Case("tanh", tanh, tanh_backward, True, torch.tanh, complex_ok=True),
    Case("sigmoid", sigmoid, sigmoid_backward, True, torch.sigmoid, complex_ok=True),
    Case("gelu", gelu, gelu_backward, False, F.gelu),
    Case(
        "gelu(tanh)",
        functools.partial(gelu, approximate="tanh"),
        functools.partial(gelu_backward, approximate="tanh"),
        False,
        functools.partial(F.gelu, approximate="tanh"),
    ),
    Case(
        "softmax",
        softmax,
        softmax_backward,
        True,
        functools.partial(torch.softmax, dim=-1),
        needs_axis=True,
    ),
    Case(
        "softmax(axis=0)",
        functools.partial(softmax, axis=0),
        functools.partial(softmax_backward, axis=0),
        True,
        functools.partial(torch.softmax, dim=0),
        needs_axis=True,
    ),
    Case(
        "log_softmax",
        log_softmax,
        log_softmax_backward,
        True,
        functools.partial(torch.log_softmax, dim=-1),
        needs_axis=True,
    ),
    Case(
        "log_softmax(axis=-2)",
        functools.partial(log_softmax, axis=-2),
        functools.partial(log_softmax_backward, axis=-2),
        True,
        functools.partial(torch.log_softmax, dim=-2),
        needs_axis=True,
    ),
]
COMPLEX_CASES = [case for case in CASES if case.complex_ok]
REAL_ONLY = [case for case in CASES if not case.complex_ok]
# 0-d, 1-D, 2-D, 3-D and zero-size inputs; the variants with a non-default
# slope or axis run on a few of them.
SHAPES = [(), (7,), (2, 3), (2, 3, 4), (0,), (3, 0)]
VARIANT_SHAPES = [(2, 3), (2, 3, 4), (3, 0)]
REAL_DTYPES = ("float32", "float64")
ALL_DTYPES = (*REAL_DTYPES, "complex64", "complex128")


def shapes_for(case: Case) -> list[tuple[int, ...]]:
    shapes = VARIANT_SHAPES if "(" in case.name else SHAPES
    return [s for s in shapes if len(s) >= 1] if case.needs_axis else shapes


def case_shapes(cases: list[Case]) -> list[Any]:
    return [
        pytest.param(case, shape, id=f"{case}-{shape}")
        for case in cases
        for shape in shapes_for(case)
    ]


def case_dtypes(cases: list[Case]) -> list[Any]:
    """Each case with each dtype it is defined for."""
    return [
        pytest.param(case, name, id=f"{case}-{name}")
        for case in cases
        for name in (ALL_DTYPES if case.complex_ok else REAL_DTYPES)
    ]


def dtype_named(xp: Any, device: Any, name: str) -> Any:
    available = xp.__array_namespace_info__().dtypes(device=device)
    if name not in available:
        pytest.skip(f"device {device!r} has no {name} (inspection API)")
    return available[name]


@pytest.fixture(params=("complex64", "complex128"))
def complex_dtype(request: pytest.FixtureRequest, xp: Any, device: Any) -> Any:
    return dtype_named(xp, device, request.param)


def torch_reference(case: Case, x: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``y, dx`` from torch.autograd in double precision."""
    tx = torch.tensor(widen(x), requires_grad=True)
    y = case.oracle(tx)
    y.backward(torch.tensor(widen(dy)))
    return to_numpy(y), to_numpy(tx.grad)


def inputs(xp: Any, device: Any, dtype: Any, shape: tuple[int, ...], seed: int = 0):
    x = 2 * random_array(xp, shape, dtype=dtype, device=device, seed=seed)
    dy = random_array(xp, shape, dtype=dtype, device=device, seed=seed + 1)
    return x, dy


def check_against_torch(xp: Any, device: Any, dtype: Any, case: Case, shape: tuple[int, ...]):
    x, dy = inputs(xp, device, dtype, shape)
    y = case.forward(x)
    dx = case.backward(dy, y if case.keeps_output else x)
    ref_y, ref_dx = torch_reference(case, to_numpy(x), to_numpy(dy))
    same = {"xp": xp, "device": device, "dtype": dtype}
    assert_close(y, ref_y, **same, err_msg=f"{case} y")
    assert_close(dx, ref_dx, **same, err_msg=f"{case} dx")


@pytest.mark.parametrize(("case", "shape"), case_shapes(CASES))
def test_matches_torch_autograd(xp, device, real_dtype, case, shape):
    check_against_torch(xp, device, real_dtype, case, shape)


@pytest.mark.parametrize(("case", "shape"), case_shapes(COMPLEX_CASES))
def test_complex_matches_torch_autograd(xp, device, complex_dtype, case, shape):
    check_against_torch(xp, device, complex_dtype, case, shape)


@pytest.mark.parametrize(("case", "dtype_name"), case_dtypes(CASES))
def test_matches_finite_differences(xp, device, case, dtype_name):
    dtype = dtype_named(xp, device, dtype_name)
    x, _ = inputs(xp, device, dtype, (2, 3), seed=10)
    check_gradients(case.forward, lambda dy, x: (case.gradient(dy, x),), [x])


def test_relu_and_leaky_relu_follow_torch_at_zero_and_nan(xp, device, real_dtype):
    x = xp.asarray([-1.0, 0.0, 2.0, float("nan")], dtype=real_dtype, device=device)
    dy = xp.ones_like(x)
    for case in (c for c in CASES if "relu" in c.name):
        _, ref_dx = torch_reference(case, to_numpy(x), to_numpy(dy))
        same = {"xp": xp, "device": device, "dtype": real_dtype}
        ref_y = to_numpy(case.oracle(torch.tensor(to_numpy(x).astype(np.float64))))
        assert_close(case.forward(x), ref_y, **same, err_msg=str(case))
        assert_close(case.backward(dy, x), ref_dx, **same, err_msg=str(case))


@pytest.mark.parametrize(("case", "dtype_name"), case_dtypes(CASES))
def test_inputs_are_not_modified(xp, device, case, dtype_name):
    dtype = dtype_named(xp, device, dtype_name)
    x, dy = inputs(xp, device, dtype, (2, 3))
    y = case.forward(x)
    kept = y if case.keeps_output else x
    before = [to_numpy(a) for a in (x, dy, kept)]
    case.backward(dy, kept)
    case.backward(dy, kept)
    for a, b in zip((x, dy, kept), before, strict=True):
        np.testing.assert_array_equal(to_numpy(a), b)


def test_read_only_numpy_inputs():
    x = np.linspace(-2.0, 2.0, 6).reshape(2, 3)
    x.setflags(write=False)
    for case in CASES:
        y = case.forward(x)
        y.setflags(write=False)
        assert case.gradient(np.ones((2, 3)), x).shape == (2, 3)


def test_mixed_precision_gradient_has_the_dtype_of_the_input(xp, device):
    """dy in float64 for a float32 forward: dx is float32, as in torch.autograd."""
    available = xp.__array_namespace_info__().dtypes(device=device)
    if "float64" not in available:
        pytest.skip(f"device {device!r} has no float64 (inspection API)")
    x = random_array(xp, (2, 3), dtype=xp.float32, device=device, seed=1)
    dy = random_array(xp, (2, 3), dtype=xp.float64, device=device, seed=2)
    for case in CASES:
        dx = case.gradient(dy, x)
        _, ref_dx = torch_reference(case, to_numpy(x), to_numpy(dy))
        assert_close(dx, ref_dx, xp=xp, device=device, dtype=xp.float32, err_msg=str(case))


def test_real_dy_for_complex_output(xp, device, complex_dtype):
    x = random_array(xp, (2, 3), dtype=complex_dtype, device=device, seed=1)
    real = xp.float32 if complex_dtype == xp.complex64 else xp.float64
    dy = random_array(xp, (2, 3), dtype=real, device=device, seed=2)
    for case in COMPLEX_CASES:
        dx = case.gradient(dy, x)
        _, ref_dx = torch_reference(case, to_numpy(x), to_numpy(dy).astype(np.complex128))
        assert_close(dx, ref_dx, xp=xp, device=device, dtype=complex_dtype, err_msg=str(case))


# --- stability: large inputs give finite values in single precision ---


def test_stable_at_large_float32_inputs(xp, device):
    rows = [
        [1e4, -1e4, 0.0, 1.0],
        [-1e4, -1e4, -1e4, -1e4 + 1],
        [1e4, 1e4, 1e4, 1e4],
        [-1e4, 1e4, 3.0, -3.0],
    ]
    x = xp.asarray(rows, dtype=xp.float32, device=device)
    dy = xp.ones_like(x)
    for case in CASES:
        y = case.forward(x)
        dx = case.gradient(dy, x)
        assert y.dtype == xp.float32
        assert dx.dtype == xp.float32
        assert np.all(np.isfinite(to_numpy(y))), f"{case}: {to_numpy(y)}"
        assert np.all(np.isfinite(to_numpy(dx))), f"{case}: {to_numpy(dx)}"
    host = np.asarray(rows, dtype=np.float64)
    same = {"xp": xp, "device": device, "dtype": xp.float32}
    for axis in (-1, 0):
        sums = xp.sum(softmax(x, axis=axis), axis=axis)
        assert_close(sums, np.ones(4), **same)
        exp_sums = xp.sum(xp.exp(log_softmax(x, axis=axis)), axis=axis)
        assert_close(exp_sums, np.ones(4), **same)
        shifted = host - host.max(axis=axis, keepdims=True)
        want = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        assert_close(log_softmax(x, axis=axis), want, **same)
    assert_close(sigmoid(x), 0.5 * (1 + np.tanh(host / 2)), **same)
    assert_close(gelu(x), F.gelu(torch.tensor(host)).numpy(), **same)
    tanh_form = F.gelu(torch.tensor(host), approximate="tanh").numpy()
    assert_close(gelu(x, approximate="tanh"), tanh_form, **same)


def test_complex_stable_at_large_real_parts(xp, device, complex_dtype):
    x = xp.asarray([1e4 + 1j, -1e4 + 1j, 1e4 - 2j, -1e4 - 2j], dtype=complex_dtype, device=device)
    dy = xp.ones_like(x)
    same = {"xp": xp, "device": device, "dtype": complex_dtype}
    assert_close(sigmoid(x), np.array([1, 0, 1, 0], dtype=np.complex128), **same)
    assert_close(tanh(x), np.array([1, -1, 1, -1], dtype=np.complex128), **same)
    for case in COMPLEX_CASES:
        assert np.all(np.isfinite(to_numpy(case.gradient(dy, x)))), str(case)


# --- errors: raised before any arithmetic, with messages a user can act on ---


def integer_dtype(xp: Any, device: Any) -> Any:
    available = xp.__array_namespace_info__().dtypes(device=device)
    return xp.int64 if "int64" in available else xp.int32


@pytest.mark.parametrize("case", CASES, ids=str)
def test_integer_and_boolean_inputs_raise_type_error(xp, device, case):
    kind = "real floating" if not case.complex_ok else "real or complex floating"
    floats = xp.ones((2, 3), dtype=xp.float32, device=device)
    for bad in (
        xp.ones((2, 3), dtype=integer_dtype(xp, device), device=device),
        xp.ones((2, 3), dtype=xp.bool, device=device),
    ):
        with pytest.raises(TypeError, match=rf"x must have a {kind} dtype.*xp\.astype\(x, xp\."):
            case.forward(bad)
        with pytest.raises(TypeError, match=rf"dy must have a {kind} dtype"):
            case.backward(bad, floats)
        name = "y" if case.keeps_output else "x"
        with pytest.raises(TypeError, match=rf"{name} must have a {kind} dtype"):
            case.backward(floats, bad)


@pytest.mark.parametrize("case", REAL_ONLY, ids=str)
def test_complex_inputs_of_real_only_activations_raise_type_error(xp, device, case):
    z = xp.ones((2, 3), dtype=xp.complex64, device=device)
    floats = xp.ones((2, 3), dtype=xp.float32, device=device)
    what = case.name.split("(")[0]
    with pytest.raises(
        TypeError, match=rf"x must have a real floating dtype.*{what} is defined for real numbers"
    ):
        case.forward(z)
    with pytest.raises(TypeError, match="dy must have a real floating dtype"):
        case.backward(z, floats)


@pytest.mark.parametrize("case", COMPLEX_CASES, ids=str)
def test_complex_dy_for_real_output_raises_type_error(xp, device, case):
    y = xp.ones((2, 3), dtype=xp.float32, device=device)
    dy = xp.ones((2, 3), dtype=xp.complex64, device=device)
    with pytest.raises(TypeError, match=r"dy has the complex dtype .* but y is real.*xp\.real"):
        case.backward(dy, y)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_arrays_from_two_libraries_raise_type_error(xp, device, case):
    import array_api_strict

    other: Any = np if xp.__name__ != "array_api_compat.numpy" else array_api_strict
    x = xp.ones((2, 3), dtype=xp.float32, device=device)
    dy = other.ones((2, 3), dtype=other.float32)
    name = "y" if case.keeps_output else "x"
    with pytest.raises(
        TypeError, match=rf"arrays from different libraries cannot be combined.*dy:.*{name}:"
    ):
        case.backward(dy, x)
    with pytest.raises(TypeError, match="x must be an array"):
        case.forward([[1.0, 2.0, 3.0]])


@pytest.mark.parametrize("case", CASES, ids=str)
def test_arrays_on_two_devices_raise_value_error(case):
    import array_api_strict as strict

    cpu, device1 = strict.Device("CPU_DEVICE"), strict.Device("device1")
    kept = strict.ones((2, 3), device=device1)
    dy = strict.ones((2, 3), device=cpu)
    name = "y" if case.keeps_output else "x"
    with pytest.raises(
        ValueError, match=rf"{name} is on device .*device1.* but dy is on device .*CPU_DEVICE"
    ):
        case.backward(dy, kept)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_shape_mismatch_gives_expected_and_actual(xp, device, case):
    kept = xp.ones((2, 3), dtype=xp.float32, device=device)
    dy = xp.ones((3, 2), dtype=xp.float32, device=device)
    name = "y" if case.keeps_output else "x"
    with pytest.raises(
        ValueError, match=rf"dy must have the shape of {name}: expected \(2, 3\), got \(3, 2\)"
    ):
        case.backward(dy, kept)
    with pytest.raises(ValueError, match=r"expected \(2, 3\), got \(6,\)"):
        case.backward(xp.ones((6,), dtype=xp.float32, device=device), kept)


@pytest.mark.parametrize(
    ("forward", "backward"),
    [(softmax, softmax_backward), (log_softmax, log_softmax_backward)],
    ids=["softmax", "log_softmax"],
)
def test_axis_errors(xp, device, forward, backward):
    x = xp.ones((2, 3), dtype=xp.float32, device=device)
    with pytest.raises(
        ValueError,
        match=r"axis 2 is out of range for x of shape \(2, 3\): expected an axis from -2 to 1",
    ):
        forward(x, axis=2)
    with pytest.raises(ValueError, match=r"axis -3 is out of range for x"):
        forward(x, axis=-3)
    with pytest.raises(ValueError, match=r"axis 2 is out of range for y of shape \(2, 3\)"):
        backward(x, x, axis=2)
    with pytest.raises(ValueError, match=r"x is a 0-d array, which has no axis 1.*axis 0 or -1"):
        forward(xp.ones((), dtype=xp.float32, device=device), axis=1)
    for bad, kind in ((1.0, "float"), (True, "bool"), ("0", "str"), (None, "NoneType")):
        with pytest.raises(TypeError, match=f"axis must be an int, got {kind}"):
            forward(x, axis=bad)
        with pytest.raises(TypeError, match=f"axis must be an int, got {kind}"):
            backward(x, x, axis=bad)


def test_axis_accepts_integer_like_values():
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(softmax(x, axis=np.int64(0)), softmax(x, axis=0))


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        ("0.1", TypeError, "negative_slope must be a real number, got str '0.1'"),
        (True, TypeError, "negative_slope must be a real number, got bool True"),
        (0.1j, TypeError, "negative_slope must be a real number, got complex"),
        (None, TypeError, "negative_slope must be a real number, got NoneType"),
        (float("nan"), ValueError, "negative_slope must be finite, got nan"),
        (float("inf"), ValueError, "negative_slope must be finite, got inf"),
    ],
)
def test_negative_slope_errors(bad, error, message):
    x = np.ones(3)
    with pytest.raises(error, match=message):
        leaky_relu(x, negative_slope=bad)
    with pytest.raises(error, match=message):
        leaky_relu_backward(x, x, negative_slope=bad)


def test_numpy_scalar_slope_keeps_single_precision(xp, device):
    x = xp.asarray([-1.0, 2.0], dtype=xp.float32, device=device)
    assert leaky_relu(x, negative_slope=np.float64(0.5)).dtype == xp.float32
    assert leaky_relu_backward(x, x, negative_slope=np.float64(0.5)).dtype == xp.float32


# --- properties over shapes, axes and dtypes, against NumPy float64 ---


def numpy_softmax(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Softmax and log-softmax in float64, the textbook way on shifted input."""
    x = widen(x)
    if x.size == 0:
        return x.copy(), x.copy()
    shifted = x - x.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    total = e.sum(axis=axis, keepdims=True)
    return e / total, shifted - np.log(total)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.lists(st.integers(0, 4), min_size=1, max_size=3).map(tuple),
    axis_seed=st.integers(0, 5),
    dtype_name=st.sampled_from(["float32", "float64"]),
    scale=st.sampled_from([1.0, 30.0, 1e3]),
    seed=st.integers(0, 2**16),
)
def test_property_softmax_matches_numpy_float64(
    xp, device, shape, axis_seed, dtype_name, scale, seed
):
    available = xp.__array_namespace_info__().dtypes(device=device)
    assume(dtype_name in available)
    dtype = available[dtype_name]
    axis = axis_seed % len(shape) - (len(shape) if axis_seed >= len(shape) else 0)
    x, dy = inputs(xp, device, dtype, shape, seed=seed)
    x = scale * x
    want_y, want_log = numpy_softmax(to_numpy(x), axis)
    same = {"xp": xp, "device": device, "dtype": dtype}
    # Rounding x - max(x) to the dtype errs by about eps * |x|, which the
    # exponentials turn into a relative error; allow for it on large logits.
    eps = float(np.finfo(dtype_name).eps)
    rtol = (1e-4 if dtype_name == "float32" else 1e-10) + 20 * eps * scale
    atol = (1e-5 if dtype_name == "float32" else 1e-12) + 20 * eps * scale
    tol = {"rtol": rtol, "atol": atol}
    y = softmax(x, axis=axis)
    log_y = log_softmax(x, axis=axis)
    assert_close(y, want_y, **same, **tol)
    assert_close(log_y, want_log, **same, **tol)
    if 0 not in shape:
        np.testing.assert_allclose(to_numpy(y).sum(axis=axis), 1.0, rtol=1e-5)
    g = widen(to_numpy(dy))
    want_dx = want_y * (g - (g * want_y).sum(axis=axis, keepdims=True))
    want_log_dx = g - want_y * g.sum(axis=axis, keepdims=True)
    assert_close(softmax_backward(dy, y, axis=axis), want_dx, **same, **tol)
    assert_close(log_softmax_backward(dy, log_y, axis=axis), want_log_dx, **same, **tol)

"""xpnn.functional.linear and linear_backward on every backend and device."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from oracles import numpy_linear, torch_linear
from xpnn.functional import linear, linear_backward
from xpnn.testing import assert_close, check_gradients, random_array, to_numpy

# (shape of x, in_features, out_features): 1-D, 2-D, 3-D and 4-D inputs,
# zero-size batches, and in/out features of 1.
SHAPES = [
    ((4,), 4, 3),
    ((5, 4), 4, 3),
    ((2, 3, 4), 4, 3),
    ((2, 1, 3, 4), 4, 2),
    ((0, 4), 4, 3),
    ((3, 0, 4), 4, 3),
    ((6, 1), 1, 3),
    ((6, 3), 3, 1),
]


def make_inputs(
    xp: Any, device: Any, dtype: Any, x_shape: tuple[int, ...], m: int, p: int, seed: int = 0
):
    x = random_array(xp, x_shape, dtype=dtype, device=device, seed=seed)
    weight = random_array(xp, (m, p), dtype=dtype, device=device, seed=seed + 1)
    bias = random_array(xp, (p,), dtype=dtype, device=device, seed=seed + 2)
    dy = random_array(xp, (*x_shape[:-1], p), dtype=dtype, device=device, seed=seed + 3)
    return x, weight, bias, dy


@pytest.mark.parametrize(("x_shape", "m", "p"), SHAPES, ids=str)
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
def test_matches_torch_autograd(xp, device, dtype, x_shape, m, p, with_bias):
    x, weight, bias, dy = make_inputs(xp, device, dtype, x_shape, m, p)
    bias = bias if with_bias else None
    y = linear(x, weight, bias)
    dx, dweight, dbias = linear_backward(dy, x, weight, has_bias=with_bias)

    ref_y, ref_dx, ref_dw, ref_db = torch_linear(
        to_numpy(x), to_numpy(weight), to_numpy(bias) if with_bias else None, to_numpy(dy)
    )
    same = {"xp": xp, "device": device, "dtype": dtype}
    assert_close(y, ref_y, **same, err_msg="y")
    assert_close(dx, ref_dx, **same, err_msg="dx")
    assert_close(dweight, ref_dw, **same, err_msg="dweight")
    if with_bias:
        assert_close(dbias, ref_db, **same, err_msg="dbias")
    else:
        assert dbias is None


@pytest.mark.parametrize(("x_shape", "m", "p"), [SHAPES[0], SHAPES[2], SHAPES[6]], ids=str)
def test_matches_finite_differences(xp, device, dtype, x_shape, m, p):
    x, weight, bias, _ = make_inputs(xp, device, dtype, x_shape, m, p, seed=10)
    check_gradients(
        linear,
        lambda dy, x, weight, bias: linear_backward(dy, x, weight),
        [x, weight, bias],
    )


def test_inputs_are_not_modified(xp, device, dtype):
    x, weight, bias, dy = make_inputs(xp, device, dtype, (3, 2, 4), 4, 3)
    before = [to_numpy(a) for a in (x, weight, bias, dy)]
    linear(x, weight, bias)
    linear_backward(dy, x, weight)
    for a, b in zip((x, weight, bias, dy), before, strict=True):
        np.testing.assert_array_equal(to_numpy(a), b)


def test_read_only_numpy_inputs():
    x = np.ones((2, 3))
    weight = np.ones((3, 4))
    for a in (x, weight):
        a.setflags(write=False)
    assert linear(x, weight).shape == (2, 4)
    assert linear_backward(np.ones((2, 4)), x, weight)[0].shape == (2, 3)


def test_mixed_float_dtypes_follow_standard_promotion(xp, device):
    """float32 x with float64 weight: y is float64; each gradient keeps the
    dtype of its own array. The same on every backend, torch included."""
    available = xp.__array_namespace_info__().dtypes(device=device)
    if "float64" not in available:
        pytest.skip(f"device {device!r} has no float64 (inspection API)")
    f32, f64 = xp.float32, xp.float64
    x = random_array(xp, (5, 4), dtype=f32, device=device, seed=1)
    weight = random_array(xp, (4, 3), dtype=f64, device=device, seed=2)
    bias = random_array(xp, (3,), dtype=f32, device=device, seed=3)
    dy = random_array(xp, (5, 3), dtype=f64, device=device, seed=4)
    y = linear(x, weight, bias)
    dx, dweight, dbias = linear_backward(dy, x, weight)
    ref_y, ref_dx, ref_dw, ref_db = torch_linear(
        to_numpy(x), to_numpy(weight), to_numpy(bias), to_numpy(dy)
    )
    assert_close(y, ref_y, xp=xp, device=device, dtype=f64)
    assert_close(dx, ref_dx, xp=xp, device=device, dtype=f32)
    assert_close(dweight, ref_dw, xp=xp, device=device, dtype=f64)
    assert_close(dbias, ref_db, xp=xp, device=device, dtype=f64)


def test_complex_input_with_real_weight_keeps_real_gradient(xp, device):
    available = xp.__array_namespace_info__().dtypes(device=device)
    x = random_array(xp, (5, 4), dtype=available["complex64"], device=device, seed=1)
    weight = random_array(xp, (4, 3), dtype=available["float32"], device=device, seed=2)
    dy = random_array(xp, (5, 3), dtype=available["complex64"], device=device, seed=3)
    dx, dweight, _ = linear_backward(dy, x, weight, has_bias=False)
    _, ref_dx, ref_dw, _ = torch_linear(to_numpy(x), to_numpy(weight), None, to_numpy(dy))
    assert_close(dx, ref_dx, xp=xp, device=device, dtype=available["complex64"])
    # A real parameter's gradient is the real part, as in torch.autograd.
    assert_close(dweight, ref_dw.real, xp=xp, device=device, dtype=available["float32"])


# --- errors: raised before any arithmetic, with messages a user can act on ---


def test_integer_and_boolean_inputs_raise_type_error(xp, device):
    x = xp.ones(
        (2, 3),
        dtype=xp.int64
        if "int64" in xp.__array_namespace_info__().dtypes(device=device)
        else xp.int32,
        device=device,
    )
    weight = xp.ones((3, 2), dtype=xp.float32, device=device)
    with pytest.raises(
        TypeError,
        match=r"x must have a real or complex floating dtype.*xp\.astype\(x, xp\.float32\)",
    ):
        linear(x, weight)
    flags = xp.ones((3, 2), dtype=xp.bool, device=device)
    with pytest.raises(TypeError, match="weight must have a real or complex floating dtype"):
        linear(xp.ones((2, 3), dtype=xp.float32, device=device), flags)
    with pytest.raises(TypeError, match="dy must have a real or complex floating dtype"):
        linear_backward(
            xp.ones((2, 2), dtype=xp.int32, device=device),
            xp.ones((2, 3), dtype=xp.float32, device=device),
            weight,
        )


def test_arrays_from_two_libraries_raise_type_error(xp, device):
    import array_api_strict

    other = np if xp.__name__ != "array_api_compat.numpy" else array_api_strict
    x = xp.ones((2, 3), dtype=xp.float32, device=device)
    weight = other.ones((3, 2), dtype=other.float32)
    with pytest.raises(
        TypeError, match="arrays from different libraries cannot be combined.*x:.*weight:"
    ):
        linear(x, weight)
    with pytest.raises(TypeError, match="x must be an array"):
        linear([[1.0, 2.0, 3.0]], xp.ones((3, 2), dtype=xp.float32, device=device))


def test_arrays_on_two_devices_raise_value_error():
    import array_api_strict as strict

    cpu, device1 = strict.Device("CPU_DEVICE"), strict.Device("device1")
    x = strict.ones((2, 3), device=cpu)
    weight = strict.ones((3, 2), device=device1)
    with pytest.raises(
        ValueError, match=r"x is on device .*CPU_DEVICE.* but weight is on device .*device1"
    ):
        linear(x, weight)
    dy = strict.ones((2, 2), device=cpu)
    with pytest.raises(
        ValueError, match=r"x is on device .*device1.* but dy is on device .*CPU_DEVICE"
    ):
        linear_backward(
            dy, strict.ones((2, 3), device=device1), strict.ones((3, 2), device=device1)
        )


def test_shape_errors_give_expected_and_actual(xp, device):
    f32 = xp.float32
    weight = xp.ones((64, 8), dtype=f32, device=device)
    with pytest.raises(ValueError, match=r"expected last dimension 64 \(in_features\), got 63"):
        linear(xp.ones((2, 63), dtype=f32, device=device), weight)
    with pytest.raises(
        ValueError, match=r"bias must have shape \(8,\) \(out_features\), got shape \(7,\)"
    ):
        linear(
            xp.ones((2, 64), dtype=f32, device=device),
            weight,
            xp.ones((7,), dtype=f32, device=device),
        )
    with pytest.raises(
        ValueError, match=r"weight must have shape \(in_features, out_features\), got shape \(64,\)"
    ):
        linear(xp.ones((2, 64), dtype=f32, device=device), xp.ones((64,), dtype=f32, device=device))
    with pytest.raises(ValueError, match="got a 0-d array"):
        linear(xp.asarray(1.0, dtype=f32, device=device), xp.ones((1, 8), dtype=f32, device=device))
    x = xp.ones((2, 64), dtype=f32, device=device)
    with pytest.raises(
        ValueError, match=r"dy must have the shape of the output, \(2, 8\).*got \(2, 7\)"
    ):
        linear_backward(xp.ones((2, 7), dtype=f32, device=device), x, weight)
    with pytest.raises(ValueError, match=r"expected last dimension 64 \(in_features\), got 5"):
        linear_backward(
            xp.ones((2, 8), dtype=f32, device=device),
            xp.ones((2, 5), dtype=f32, device=device),
            weight,
        )


# --- properties over shapes and dtypes, against a NumPy float64 oracle ---

shapes = st.tuples(
    st.lists(st.integers(0, 3), min_size=0, max_size=3).map(tuple),
    st.integers(1, 6),
    st.integers(1, 6),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=shapes,
    dtype_name=st.sampled_from(["float32", "float64", "complex64", "complex128"]),
    with_bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_property_matches_numpy_float64(xp, device, shape, dtype_name, with_bias, seed):
    available = xp.__array_namespace_info__().dtypes(device=device)
    assume(dtype_name in available)
    dtype = available[dtype_name]
    leading, m, p = shape
    x, weight, bias, dy = make_inputs(xp, device, dtype, (*leading, m), m, p, seed=seed)
    bias = bias if with_bias else None
    y = linear(x, weight, bias)
    dx, dweight, dbias = linear_backward(dy, x, weight, has_bias=with_bias)
    ref = numpy_linear(
        to_numpy(x), to_numpy(weight), to_numpy(bias) if with_bias else None, to_numpy(dy)
    )
    same = {"xp": xp, "device": device, "dtype": dtype}
    for name, got, want in zip(("y", "dx", "dweight"), (y, dx, dweight), ref[:3], strict=True):
        assert_close(got, want, **same, err_msg=name)
    if with_bias:
        assert_close(dbias, ref[3], **same, err_msg="dbias")

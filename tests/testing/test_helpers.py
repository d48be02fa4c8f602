"""xpnn.testing's own helpers must catch what numpy.testing lets through."""

from __future__ import annotations

import numpy as np
import pytest

from xpnn.functional import linear, linear_backward
from xpnn.testing import assert_close, check_gradients, random_array, to_numpy


def test_assert_close_checks_namespace_device_dtype_shape_values():
    import array_api_strict as strict

    cpu, device1 = strict.Device("CPU_DEVICE"), strict.Device("device1")
    a = strict.asarray([1.0, 2.0], device=cpu)
    assert_close(a, strict.asarray([1.0, 2.0], device=cpu))
    # numpy.testing would accept each of these.
    np.testing.assert_allclose(np.asarray([1.0, 2.0]), to_numpy(a))
    with pytest.raises(AssertionError, match="namespace differs"):
        assert_close(a, np.asarray([1.0, 2.0]))
    with pytest.raises(AssertionError, match="device differs"):
        assert_close(a, strict.asarray([1.0, 2.0], device=device1))
    with pytest.raises(AssertionError, match="dtype differs"):
        assert_close(a, strict.asarray([1.0, 2.0], device=cpu, dtype=strict.float32))
    with pytest.raises(AssertionError, match="shape differs"):
        assert_close(a, strict.asarray([[1.0, 2.0]], device=cpu))
    with pytest.raises(AssertionError, match=r"(?s)values differ in 1 of 2 elements.*at \(1,\)"):
        assert_close(a, strict.asarray([1.0, 2.1], device=cpu))


def test_assert_close_against_a_host_reference(xp, device):
    x = random_array(xp, (3,), dtype=xp.float32, device=device, seed=0)
    reference = to_numpy(x).astype(np.float64)
    assert_close(x, reference, xp=xp, device=device, dtype=xp.float32)
    with pytest.raises(AssertionError, match="values differ"):
        assert_close(x, reference + 1e-3, xp=xp, device=device, dtype=xp.float32)


def test_random_array_is_the_same_on_every_backend(xp, device):
    a = random_array(xp, (4, 3), dtype=xp.float32, device=device, seed=5)
    b = random_array(np, (4, 3), dtype=np.float32, device="cpu", seed=5)
    np.testing.assert_array_equal(to_numpy(a), b)


def test_to_numpy_copies():
    a = np.ones(3)
    b = to_numpy(a)
    b[0] = 5
    assert a[0] == 1


def test_check_gradients_accepts_a_correct_backward(xp, device, dtype):
    x = random_array(xp, (3, 2), dtype=dtype, device=device, seed=0)
    w = random_array(xp, (2, 4), dtype=dtype, device=device, seed=1)
    error = check_gradients(
        linear, lambda dy, x, w: linear_backward(dy, x, w, has_bias=False)[:2], [x, w]
    )
    assert error < 1e-3


def test_check_gradients_catches_a_wrong_backward(xp, device):
    x = random_array(xp, (3, 2), dtype=xp.float32, device=device, seed=0)
    w = random_array(xp, (2, 4), dtype=xp.float32, device=device, seed=1)

    def doubled(dy, x, w):
        dx, dw, _ = linear_backward(dy, x, w, has_bias=False)
        return dx, 2 * dw

    with pytest.raises(
        AssertionError, match=r"gradient of inputs\[1\] differs from central differences"
    ):
        check_gradients(linear, doubled, [x, w])


def test_check_gradients_catches_a_missing_conjugate(xp, device):
    available = xp.__array_namespace_info__().dtypes(device=device)
    x = random_array(xp, (3, 2), dtype=available["complex64"], device=device, seed=0)
    w = random_array(xp, (2, 4), dtype=available["complex64"], device=device, seed=1)

    def no_conjugate(dy, x, w):
        return dy @ w.T, x.T @ dy

    with pytest.raises(AssertionError, match="differs from central differences"):
        check_gradients(linear, no_conjugate, [x, w])


def test_check_gradients_catches_a_wrong_dtype():
    x = np.ones((2, 2), dtype=np.float32)
    with pytest.raises(AssertionError, match="has dtype float64, the input float32"):
        check_gradients(lambda x: 2 * x, lambda dy, x: (np.astype(2 * dy, np.float64),), [x])

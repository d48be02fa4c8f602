"""xpnn.testing's own helpers must catch what numpy.testing lets through."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from xpnn.functional import linear, linear_backward
from xpnn.testing import (
    assert_close,
    check_against_autograd,
    check_gradients,
    random_array,
    to_numpy,
)
from xpnn.testing.plugin import supported_dtype


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


# -- assert_close on every backend and device ---------------------------------


def test_assert_close_reports_the_worst_elements_on_every_backend(xp, device, dtype):
    x = random_array(xp, (3, 4), dtype=dtype, device=device, seed=3)
    assert_close(x, x)
    host = to_numpy(x)
    host[1, 2] += 0.5
    host[2, 0] += 0.25
    shifted = xp.asarray(host, dtype=dtype, device=device)
    with pytest.raises(AssertionError) as caught:
        assert_close(x, shifted)
    message = str(caught.value)
    assert message.startswith("values differ in 2 of 12 elements")
    assert "largest |diff| 0.5" in message
    # The worst first, each with its index.
    assert message.index("at (1, 2)") < message.index("at (2, 0)")


def test_assert_close_default_tolerances_follow_the_dtype(xp, device, real_dtype):
    x = xp.ones(4, dtype=real_dtype, device=device)
    nearly = x + xp.asarray(1e-7, dtype=real_dtype, device=device)
    if real_dtype == xp.float32:
        assert_close(nearly, x)
    else:
        with pytest.raises(AssertionError, match=r"rtol=1e-10"):
            assert_close(nearly, x)
        assert_close(nearly, x, rtol=1e-6)


def test_assert_close_takes_a_device_by_name_and_a_dtype_by_name(xp, device):
    x = xp.ones(2, dtype=xp.float32, device=device)
    reference = np.ones(2, dtype=np.float64)
    assert_close(x, reference, xp=xp, device=device, dtype="float32")
    with pytest.raises(AssertionError, match="dtype differs: actual float32, expected float64"):
        assert_close(x, reference, xp=xp, device=device)


def test_assert_close_compares_integers_and_booleans_exactly(xp, device):
    a = xp.asarray([1, 2, 3], device=device)
    assert_close(a, xp.asarray([1, 2, 3], device=device))
    with pytest.raises(AssertionError, match="values differ in 1 of 3"):
        assert_close(a, xp.asarray([1, 2, 4], device=device))
    assert_close(a > 1, xp.asarray([False, True, True], device=device))
    with pytest.raises(AssertionError, match="values differ in 1 of 3"):
        assert_close(a > 1, xp.asarray([False, False, True], device=device))


def test_assert_close_computes_lazy_arrays_of_unknown_size():
    da = pytest.importorskip("dask.array")
    x = da.from_array(np.arange(6.0), chunks=3)
    positive = x[x > 2]
    assert np.isnan(positive.shape[0])
    assert_close(positive, da.from_array(np.asarray([3.0, 4.0, 5.0]), chunks=3))
    with pytest.raises(AssertionError, match=r"shape differs: actual \(3,\), expected \(2,\)"):
        assert_close(positive, da.from_array(np.asarray([3.0, 4.0]), chunks=2))


def test_assert_close_takes_a_library_module_as_xp():
    assert_close(np.ones(2), np.ones(2), xp=np)
    with pytest.raises(AssertionError, match="namespace differs: actual numpy, expected torch"):
        assert_close(np.ones(2), np.ones(2), xp=pytest.importorskip("torch"))


def test_assert_close_knows_a_torch_device_without_index():
    torch = pytest.importorskip("torch")
    x = torch.ones(2, dtype=torch.float64)
    assert_close(x, np.ones(2), xp=torch, device="cpu", dtype=torch.float64)
    assert_close(x, np.ones(2), xp=torch, device=torch.device("cpu"))
    if torch.cuda.is_available():
        on_gpu = x.to("cuda")
        assert_close(on_gpu, np.ones(2), xp=torch, device=torch.device("cuda"))
        with pytest.raises(AssertionError, match="device differs"):
            assert_close(on_gpu, np.ones(2), xp=torch, device="cpu")


def test_assert_close_explains_a_host_reference_without_device():
    strict = pytest.importorskip("array_api_strict")
    x = strict.ones(2, device=strict.Device("device1"))
    with pytest.raises(AssertionError, match="desired is a numpy array: pass device="):
        assert_close(x, np.ones(2), xp=strict)


# -- check_against_autograd ------------------------------------------------------


def test_check_against_autograd_accepts_a_correct_backward(xp, device, dtype):
    pytest.importorskip("torch")
    x = random_array(xp, (3, 2), dtype=dtype, device=device, seed=0)
    w = random_array(xp, (2, 4), dtype=dtype, device=device, seed=1)
    b = random_array(xp, (4,), dtype=dtype, device=device, seed=2)
    error = check_against_autograd(
        linear, lambda dy, x, w, b: linear_backward(dy, x, w, has_bias=True), [x, w, b]
    )
    assert error < 1e-3


def test_check_against_autograd_catches_a_wrong_backward(xp, device):
    pytest.importorskip("torch")
    x = random_array(xp, (3, 2), dtype=xp.float32, device=device, seed=0)
    w = random_array(xp, (2, 4), dtype=xp.float32, device=device, seed=1)

    def doubled(dy, x, w):
        dx, dw, _ = linear_backward(dy, x, w, has_bias=False)
        return dx, 2 * dw

    with pytest.raises(
        AssertionError, match=r"gradient of inputs\[1\] differs from torch.autograd"
    ):
        check_against_autograd(linear, doubled, [x, w])


def test_check_against_autograd_catches_a_missing_conjugate(xp, device):
    pytest.importorskip("torch")
    complex64 = supported_dtype(xp, device, "complex64")
    x = random_array(xp, (3, 2), dtype=complex64, device=device, seed=0)
    w = random_array(xp, (2, 4), dtype=complex64, device=device, seed=1)

    def no_conjugate(dy, x, w):
        return dy @ w.T, x.T @ dy

    with pytest.raises(AssertionError, match="differs from torch.autograd"):
        check_against_autograd(linear, no_conjugate, [x, w])


def test_check_against_autograd_skips_labels_and_none_gradients():
    pytest.importorskip("torch")
    logits = np.asarray([[0.5, -1.0, 2.0], [1.0, 0.0, -0.5]])
    labels = np.asarray([2, 0])

    def picked(logits, labels):
        return np.take_along_axis(logits, labels[:, None], axis=1)[:, 0]

    def picked_in_the_namespace(logits, labels):
        from xpnn._compat import array_namespace

        xp = array_namespace(logits=logits)
        return xp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]

    def backward(dy, logits, labels):
        grad = np.zeros_like(logits)
        grad[np.arange(2), labels] = dy
        return grad, None

    check_against_autograd(picked_in_the_namespace, backward, [logits, labels])
    with pytest.raises(RuntimeError, match="f failed on float64 PyTorch tensors"):
        check_against_autograd(picked, backward, [logits, labels])


def test_check_against_autograd_names_a_function_torch_cannot_follow():
    pytest.importorskip("torch")

    def through_numpy(x):
        from xpnn._compat import array_namespace

        return array_namespace(x=x).asarray(to_numpy(x) ** 2)

    with pytest.raises(AssertionError, match="PyTorch saw no path from the inputs"):
        check_against_autograd(through_numpy, lambda dy, x: (2 * x * dy,), [np.ones(3)])


def test_check_against_autograd_says_how_to_get_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"pip install torch.*pytest.importorskip\('torch'\)"):
        check_against_autograd(lambda x: x, lambda dy, x: (dy,), [np.ones(2)])

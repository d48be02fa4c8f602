"""xpnn.functional.losses on every backend and device, against torch and NumPy."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from array_api_compat import device as device_of
from array_api_compat import is_lazy_array, to_device
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from xpnn.functional.losses import (
    binary_cross_entropy_with_logits,
    mse_loss,
    softmax_cross_entropy,
)
from xpnn.testing import assert_close, check_gradients, random_array, to_numpy

REDUCTIONS = ("mean", "sum")
# Elementwise losses: 0-D, 1-D, 2-D, 3-D and zero-size inputs.
ELEMENT_SHAPES = [(), (5,), (4, 3), (2, 3, 4), (0, 3)]
# Cross-entropy logits (..., C): a batch, one row (0-D label), a sequence
# batch (B, T, C), zero rows, and a single class.
LOGIT_SHAPES = [(4, 5), (5,), (2, 3, 5), (0, 5), (3, 1)]


# --- references: torch.autograd in float64, and NumPy float64 ---


def _torch_loss(function: Any, x: np.ndarray, *args: torch.Tensor, **kwargs: Any):
    tx = torch.tensor(x.astype(np.float64), requires_grad=True)
    loss = function(tx, *args, **kwargs)
    loss.backward()
    return loss.detach().numpy(), tx.grad.numpy()


def torch_mse(pred: np.ndarray, target: np.ndarray, reduction: str):
    """``(loss, dpred)`` of torch.nn.functional.mse_loss in float64."""
    target_t = torch.tensor(target.astype(np.float64))
    return _torch_loss(torch.nn.functional.mse_loss, pred, target_t, reduction=reduction)


def torch_cross_entropy(logits: np.ndarray, labels: np.ndarray, reduction: str):
    """``(loss, dlogits)`` of torch.nn.functional.cross_entropy in float64.

    torch wants the classes on axis 1 for more than two dimensions; xpnn keeps
    them last, so the axis is moved for torch and the gradient comes back in
    xpnn's layout.
    """

    def cross_entropy(tx: torch.Tensor) -> torch.Tensor:
        inputs = torch.movedim(tx, -1, 1) if tx.ndim > 2 else tx
        target = torch.tensor(labels.astype(np.int64))
        return torch.nn.functional.cross_entropy(inputs, target, reduction=reduction)

    return _torch_loss(cross_entropy, logits)


def torch_bce(logits: np.ndarray, targets: np.ndarray, reduction: str):
    """``(loss, dlogits)`` of binary_cross_entropy_with_logits in float64."""
    targets_t = torch.tensor(targets.astype(np.float64))
    return _torch_loss(
        torch.nn.functional.binary_cross_entropy_with_logits,
        logits,
        targets_t,
        reduction=reduction,
    )


def numpy_cross_entropy(logits: np.ndarray, labels: np.ndarray, reduction: str):
    """Softmax cross-entropy and its gradient, written out in NumPy float64."""
    z = logits.astype(np.float64)
    classes = z.shape[-1]
    top = z.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(z - top).sum(axis=-1)) + top[..., 0]
    index = labels.astype(np.intp)[..., None]
    rows = lse - np.take_along_axis(z, index, axis=-1)[..., 0]
    grad = np.exp(z - lse[..., None]) - (index == np.arange(classes))
    count = rows.size
    if reduction == "sum":
        return rows.sum(), grad
    if count == 0:
        return np.float64(np.nan), grad
    return rows.sum() / count, grad / count


# --- inputs ---


def index_dtype(xp: Any, device: Any) -> Any:
    available = xp.__array_namespace_info__().dtypes(device=device)
    return available["int64"] if "int64" in available else available["int32"]


def make_labels(
    xp: Any, device: Any, shape: tuple[int, ...], classes: int, seed: int, dtype: Any = None
) -> Any:
    host = np.asarray(np.random.default_rng(seed).integers(0, classes, size=shape))
    return xp.asarray(
        host, dtype=dtype if dtype is not None else index_dtype(xp, device), device=device
    )


def make_probabilities(xp: Any, device: Any, shape: tuple[int, ...], dtype: Any, seed: int) -> Any:
    host = np.random.default_rng(seed).uniform(size=shape)
    return xp.asarray(host.astype(np.float64), dtype=dtype, device=device)


def on_device_of(a: Any, like: Any) -> Any:
    """``a`` on the device of ``like`` (finite differences may run elsewhere)."""
    return a if device_of(a) == device_of(like) else to_device(a, device_of(like))


def int_array(xp: Any, device: Any, shape: tuple[int, ...]) -> Any:
    return xp.ones(shape, dtype=index_dtype(xp, device), device=device)


# --- against torch.autograd ---


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", ELEMENT_SHAPES, ids=str)
def test_mse_matches_torch(xp, device, real_dtype, shape, reduction):
    pred = random_array(xp, shape, dtype=real_dtype, device=device, seed=1)
    target = random_array(xp, shape, dtype=real_dtype, device=device, seed=2)
    loss, dpred = mse_loss(pred, target, reduction=reduction)
    ref_loss, ref_dpred = torch_mse(to_numpy(pred), to_numpy(target), reduction)
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    assert_close(loss, ref_loss, **same, err_msg="loss")
    assert_close(dpred, ref_dpred, **same, err_msg="dpred")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", LOGIT_SHAPES, ids=str)
def test_cross_entropy_matches_torch(xp, device, real_dtype, shape, reduction):
    logits = 3 * random_array(xp, shape, dtype=real_dtype, device=device, seed=3)
    labels = make_labels(xp, device, shape[:-1], shape[-1], seed=4)
    loss, dlogits = softmax_cross_entropy(logits, labels, reduction=reduction)
    ref_loss, ref_dlogits = torch_cross_entropy(to_numpy(logits), to_numpy(labels), reduction)
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    assert_close(loss, ref_loss, **same, err_msg="loss")
    assert_close(dlogits, ref_dlogits, **same, err_msg="dlogits")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", ELEMENT_SHAPES, ids=str)
def test_bce_with_logits_matches_torch(xp, device, real_dtype, shape, reduction):
    logits = 3 * random_array(xp, shape, dtype=real_dtype, device=device, seed=5)
    targets = make_probabilities(xp, device, shape, real_dtype, seed=6)
    loss, dlogits = binary_cross_entropy_with_logits(logits, targets, reduction=reduction)
    ref_loss, ref_dlogits = torch_bce(to_numpy(logits), to_numpy(targets), reduction)
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    assert_close(loss, ref_loss, **same, err_msg="loss")
    assert_close(dlogits, ref_dlogits, **same, err_msg="dlogits")


def test_mean_of_nothing_is_nan(xp, device):
    empty = xp.zeros((0, 3), dtype=xp.float32, device=device)
    labels = int_array(xp, device, (0,))
    for loss, grad in (
        mse_loss(empty, empty),
        softmax_cross_entropy(empty, labels),
        binary_cross_entropy_with_logits(empty, empty),
    ):
        assert np.isnan(to_numpy(loss))
        assert tuple(grad.shape) == (0, 3)
    assert to_numpy(mse_loss(empty, empty, reduction="sum")[0]) == 0


@pytest.mark.parametrize("name", ["int8", "int16", "int32", "int64", "uint8"])
def test_labels_of_any_integer_dtype(xp, device, name):
    available = xp.__array_namespace_info__().dtypes(device=device)
    if name not in available:
        pytest.skip(f"device {device!r} has no {name} (inspection API)")
    # 200 classes: more than int8 can count, so the comparison is widened.
    logits = random_array(xp, (6, 200), dtype=xp.float32, device=device, seed=7)
    labels = make_labels(xp, device, (6,), 100, seed=8, dtype=available[name])
    loss, dlogits = softmax_cross_entropy(logits, labels)
    ref_loss, ref_dlogits = torch_cross_entropy(to_numpy(logits), to_numpy(labels), "mean")
    assert_close(loss, ref_loss, xp=xp, device=device, dtype=xp.float32)
    assert_close(dlogits, ref_dlogits, xp=xp, device=device, dtype=xp.float32)


# --- against float64 central differences ---


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_gradient_matches_finite_differences(xp, device, real_dtype, reduction):
    pred = random_array(xp, (3, 4), dtype=real_dtype, device=device, seed=10)
    target = random_array(xp, (3, 4), dtype=real_dtype, device=device, seed=11)
    check_gradients(
        lambda p, t: mse_loss(p, t, reduction=reduction)[0],
        lambda dy, p, t: (dy * mse_loss(p, t, reduction=reduction)[1], None),
        [pred, target],
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(3, 4), (4,), (2, 2, 3)], ids=str)
def test_cross_entropy_gradient_matches_finite_differences(
    xp, device, real_dtype, shape, reduction
):
    logits = random_array(xp, shape, dtype=real_dtype, device=device, seed=12)
    labels = make_labels(xp, device, shape[:-1], shape[-1], seed=13)

    def loss(z):
        return softmax_cross_entropy(z, on_device_of(labels, z), reduction=reduction)[0]

    def backward(dy, z):
        return (dy * softmax_cross_entropy(z, on_device_of(labels, z), reduction=reduction)[1],)

    check_gradients(loss, backward, [logits])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_gradient_matches_finite_differences(xp, device, real_dtype, reduction):
    logits = 2 * random_array(xp, (3, 4), dtype=real_dtype, device=device, seed=14)
    targets = make_probabilities(xp, device, (3, 4), real_dtype, seed=15)
    check_gradients(
        lambda x, t: binary_cross_entropy_with_logits(x, t, reduction=reduction)[0],
        lambda dy, x, t: (
            dy * binary_cross_entropy_with_logits(x, t, reduction=reduction)[1],
            None,
        ),
        [logits, targets],
    )


# --- stability: huge logits overflow nothing ---

HUGE_LOGITS = np.array(
    [[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [1e4, 1e4, 1e4], [-1e4, -1e4, -1e4]], dtype=np.float64
)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_is_stable_for_huge_logits(xp, device, real_dtype, reduction):
    logits = xp.asarray(HUGE_LOGITS, dtype=real_dtype, device=device)
    labels = xp.asarray(np.array([1, 0, 2, 1]), dtype=index_dtype(xp, device), device=device)
    loss, dlogits = softmax_cross_entropy(logits, labels, reduction=reduction)
    assert np.all(np.isfinite(to_numpy(loss)))
    assert np.all(np.isfinite(to_numpy(dlogits)))
    ref_loss, ref_dlogits = torch_cross_entropy(HUGE_LOGITS, to_numpy(labels), reduction)
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    assert_close(loss, ref_loss, **same, err_msg="loss")
    assert_close(dlogits, ref_dlogits, **same, err_msg="dlogits")


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_is_stable_for_huge_logits(xp, device, real_dtype, reduction):
    host_logits = np.array([1e4, -1e4, 1e4, -1e4, 1e4, -1e4, 0.0])
    host_targets = np.array([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 1.0])
    logits = xp.asarray(host_logits, dtype=real_dtype, device=device)
    targets = xp.asarray(host_targets, dtype=real_dtype, device=device)
    loss, dlogits = binary_cross_entropy_with_logits(logits, targets, reduction=reduction)
    assert np.all(np.isfinite(to_numpy(loss)))
    assert np.all(np.isfinite(to_numpy(dlogits)))
    ref_loss, ref_dlogits = torch_bce(host_logits, host_targets, reduction)
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    assert_close(loss, ref_loss, **same, err_msg="loss")
    assert_close(dlogits, ref_dlogits, **same, err_msg="dlogits")


def test_cross_entropy_accepts_masked_logits(xp, device, real_dtype):
    """Classes masked with -inf logits (not the label's) get zero probability."""
    host = np.array([[0.5, -np.inf, 1.0], [-np.inf, 2.0, -np.inf], [3.0, 1.0, -np.inf]])
    logits = xp.asarray(host, dtype=real_dtype, device=device)
    labels = xp.asarray(np.array([2, 1, 0]), dtype=index_dtype(xp, device), device=device)
    loss, dlogits = softmax_cross_entropy(logits, labels)
    ref_loss, ref_dlogits = torch_cross_entropy(host, to_numpy(labels), "mean")
    assert np.all(np.isfinite(ref_dlogits))
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    assert_close(loss, ref_loss, **same, err_msg="loss")
    assert_close(dlogits, ref_dlogits, **same, err_msg="dlogits")


# --- dtypes and inputs ---


def test_mixed_float_dtypes_follow_standard_promotion(xp, device):
    """The loss has result_type of the floating inputs; the gradient keeps the
    dtype of the input it belongs to."""
    available = xp.__array_namespace_info__().dtypes(device=device)
    if "float64" not in available:
        pytest.skip(f"device {device!r} has no float64 (inspection API)")
    f32, f64 = xp.float32, xp.float64
    a32 = random_array(xp, (4, 3), dtype=f32, device=device, seed=20)
    b64 = random_array(xp, (4, 3), dtype=f64, device=device, seed=21)
    p64 = make_probabilities(xp, device, (4, 3), f64, seed=22)
    p32 = make_probabilities(xp, device, (4, 3), f32, seed=23)

    loss, dpred = mse_loss(a32, b64)
    ref_loss, ref_dpred = torch_mse(to_numpy(a32), to_numpy(b64), "mean")
    assert_close(loss, ref_loss, xp=xp, device=device, dtype=f64)
    assert_close(dpred, ref_dpred, xp=xp, device=device, dtype=f32)

    loss, dlogits = binary_cross_entropy_with_logits(a32, p64)
    ref_loss, ref_dlogits = torch_bce(to_numpy(a32), to_numpy(p64), "mean")
    assert_close(loss, ref_loss, xp=xp, device=device, dtype=f64)
    assert_close(dlogits, ref_dlogits, xp=xp, device=device, dtype=f32)

    loss, dlogits = binary_cross_entropy_with_logits(b64, p32)
    ref_loss, ref_dlogits = torch_bce(to_numpy(b64), to_numpy(p32), "mean")
    assert_close(loss, ref_loss, xp=xp, device=device, dtype=f64)
    assert_close(dlogits, ref_dlogits, xp=xp, device=device, dtype=f64)


def test_inputs_are_not_modified(xp, device, real_dtype):
    a = random_array(xp, (3, 4), dtype=real_dtype, device=device, seed=30)
    b = random_array(xp, (3, 4), dtype=real_dtype, device=device, seed=31)
    p = make_probabilities(xp, device, (3, 4), real_dtype, seed=32)
    labels = make_labels(xp, device, (3,), 4, seed=33)
    arrays = (a, b, p, labels)
    before = [to_numpy(x) for x in arrays]
    mse_loss(a, b)
    softmax_cross_entropy(a, labels, reduction="sum")
    binary_cross_entropy_with_logits(a, p)
    for x, old in zip(arrays, before, strict=True):
        np.testing.assert_array_equal(to_numpy(x), old)


def test_read_only_numpy_inputs():
    logits = np.zeros((2, 3))
    labels = np.array([0, 2])
    for a in (logits, labels):
        a.setflags(write=False)
    assert softmax_cross_entropy(logits, labels)[1].shape == (2, 3)
    assert mse_loss(logits, logits)[1].shape == (2, 3)
    assert binary_cross_entropy_with_logits(logits, logits)[1].shape == (2, 3)


def test_loss_is_a_zero_d_array_of_the_namespace(xp, device):
    x = random_array(xp, (2, 3), dtype=xp.float32, device=device, seed=40)
    labels = make_labels(xp, device, (2,), 3, seed=41)
    for loss, _ in (
        mse_loss(x, x),
        softmax_cross_entropy(x, labels),
        binary_cross_entropy_with_logits(x, x * 0),
    ):
        assert tuple(loss.shape) == ()
        assert type(loss) is type(x)
        assert device_of(loss) == device_of(x)


# --- labels out of range: an error for eager arrays, NaN for lazy ones ---


@pytest.mark.parametrize("bad", [3, -1])
def test_labels_out_of_range(xp, device, bad):
    logits = random_array(xp, (3, 3), dtype=xp.float32, device=device, seed=50)
    labels = xp.asarray(np.array([0, bad, 2]), dtype=index_dtype(xp, device), device=device)
    if not is_lazy_array(labels):
        with pytest.raises(
            ValueError,
            match=(
                rf"labels must be class indices in \[0, 3\) for logits with 3 classes, "
                rf"or ignore_index \(-100\), got {bad}"
            ),
        ):
            softmax_cross_entropy(logits, labels)
        return
    # Lazy arrays are not read: the bad row poisons its loss and gradient.
    loss, dlogits = softmax_cross_entropy(logits, labels, reduction="sum")
    assert np.isnan(to_numpy(loss))
    grad = to_numpy(dlogits)
    assert np.all(np.isnan(grad[1]))
    assert np.all(np.isfinite(grad[[0, 2]]))


# --- errors: raised before any arithmetic, with messages a user can act on ---


@pytest.mark.parametrize("reduction", ["batchmean", "MEAN", None, 1])
def test_unknown_reduction_raises_value_error(xp, device, reduction):
    x = xp.ones((2, 3), dtype=xp.float32, device=device)
    labels = int_array(xp, device, (2,))
    match = rf"reduction must be one of 'none', 'mean', 'sum', got {reduction!r}"
    with pytest.raises(ValueError, match=match):
        mse_loss(x, x, reduction=reduction)
    with pytest.raises(ValueError, match=match):
        softmax_cross_entropy(x, labels, reduction=reduction)
    with pytest.raises(ValueError, match=match):
        binary_cross_entropy_with_logits(x, x, reduction=reduction)


def test_non_floating_inputs_raise_type_error(xp, device):
    x = xp.ones((2, 3), dtype=xp.float32, device=device)
    ints = int_array(xp, device, (2, 3))
    flags = xp.ones((2, 3), dtype=xp.bool, device=device)
    with pytest.raises(
        TypeError, match=r"pred must have a real floating dtype.*xp\.astype\(pred, xp\.float32\)"
    ):
        mse_loss(ints, x)
    with pytest.raises(TypeError, match=r"target must have a real floating dtype"):
        mse_loss(x, flags)
    with pytest.raises(
        TypeError,
        match=r"logits must have a real floating dtype.*xp\.astype\(logits, xp\.float32\)",
    ):
        softmax_cross_entropy(ints, int_array(xp, device, (2,)))
    with pytest.raises(TypeError, match=r"logits must have a real floating dtype"):
        binary_cross_entropy_with_logits(flags, x)
    with pytest.raises(
        TypeError,
        match=r"targets must have a real floating dtype.*xp\.astype\(targets, xp\.float32\)",
    ):
        binary_cross_entropy_with_logits(x, ints)


def test_complex_inputs_raise_type_error(xp, device):
    available = xp.__array_namespace_info__().dtypes(device=device)
    z = xp.ones((2, 3), dtype=available["complex64"], device=device)
    x = xp.ones((2, 3), dtype=xp.float32, device=device)
    match = (
        r"must have a real floating dtype, got the complex dtype "
        r".*defined for real numbers only.*xp\.real"
    )
    with pytest.raises(TypeError, match="pred " + match):
        mse_loss(z, x)
    with pytest.raises(TypeError, match="target " + match):
        mse_loss(x, z)
    with pytest.raises(TypeError, match="logits " + match):
        softmax_cross_entropy(z, int_array(xp, device, (2,)))
    with pytest.raises(TypeError, match="targets " + match):
        binary_cross_entropy_with_logits(x, z)


def test_non_integer_labels_raise_type_error(xp, device):
    logits = xp.ones((2, 3), dtype=xp.float32, device=device)
    # Floating targets are class probabilities, which need the logits' shape.
    with pytest.raises(ValueError, match=r"class indices need an integer dtype.*xp\.int64"):
        softmax_cross_entropy(logits, xp.zeros((2,), dtype=xp.float32, device=device))
    match = r"target must be class indices of an integer dtype.*xp\.astype\(target, xp\.int64\)"
    with pytest.raises(TypeError, match=match):
        softmax_cross_entropy(logits, xp.ones((2,), dtype=xp.bool, device=device))


def test_arrays_from_two_libraries_raise_type_error(xp, device):
    import array_api_strict

    other = np if xp.__name__ != "array_api_compat.numpy" else array_api_strict
    x = xp.ones((2, 3), dtype=xp.float32, device=device)
    y = other.ones((2, 3), dtype=other.float32)
    labels = other.zeros((2,), dtype=other.int32)
    match = "arrays from different libraries cannot be combined"
    with pytest.raises(TypeError, match=match + ".*pred:.*target:"):
        mse_loss(x, y)
    with pytest.raises(TypeError, match=match + ".*logits:.*target:"):
        softmax_cross_entropy(x, labels)
    with pytest.raises(TypeError, match=match + ".*logits:.*targets:"):
        binary_cross_entropy_with_logits(x, y)
    with pytest.raises(TypeError, match="target must be an array"):
        mse_loss(x, [[1.0, 2.0, 3.0]] * 2)


def test_arrays_on_two_devices_raise_value_error():
    import array_api_strict as strict

    cpu, device1 = strict.Device("CPU_DEVICE"), strict.Device("device1")
    x = strict.ones((2, 3), device=cpu)
    y = strict.ones((2, 3), device=device1)
    with pytest.raises(
        ValueError, match=r"pred is on device .*CPU_DEVICE.* but target is on device .*device1"
    ):
        mse_loss(x, y)
    with pytest.raises(
        ValueError, match=r"logits is on device .*device1.* but target is on device .*CPU_DEVICE"
    ):
        softmax_cross_entropy(y, strict.zeros((2,), dtype=strict.int64, device=cpu))
    with pytest.raises(
        ValueError, match=r"logits is on device .*CPU_DEVICE.* but targets is on device .*device1"
    ):
        binary_cross_entropy_with_logits(x, y)


def test_shape_errors_give_expected_and_actual(xp, device):
    f32 = xp.float32
    x = xp.ones((2, 3), dtype=f32, device=device)
    with pytest.raises(
        ValueError, match=r"target must have the shape of pred, \(2, 3\), got \(3,\)"
    ):
        mse_loss(x, xp.ones((3,), dtype=f32, device=device))
    with pytest.raises(
        ValueError, match=r"targets must have the shape of logits, \(2, 3\), got \(2, 1\)"
    ):
        binary_cross_entropy_with_logits(x, xp.ones((2, 1), dtype=f32, device=device))
    with pytest.raises(
        ValueError, match=r"target must have shape \(2,\), got \(2, 3\) \(class indices"
    ):
        softmax_cross_entropy(x, int_array(xp, device, (2, 3)))
    with pytest.raises(ValueError, match=r"target must have shape \(\), got \(1,\)"):
        softmax_cross_entropy(xp.ones((3,), dtype=f32, device=device), int_array(xp, device, (1,)))
    with pytest.raises(ValueError, match="got a 0-d array"):
        softmax_cross_entropy(xp.asarray(1.0, dtype=f32, device=device), int_array(xp, device, ()))
    with pytest.raises(ValueError, match=r"shape \(2, 0\): expected at least one class on axis 1"):
        softmax_cross_entropy(
            xp.ones((2, 0), dtype=f32, device=device), int_array(xp, device, (2,))
        )


def test_unknown_dimensions_raise_value_error():
    da = pytest.importorskip("dask.array")
    x = da.from_array(np.arange(4.0))
    masked = x[x > 1]  # a boolean mask leaves the length unknown
    with pytest.raises(ValueError, match=r"pred has shape \(nan,\) with unknown dimensions"):
        mse_loss(masked, masked)
    with pytest.raises(ValueError, match=r"logits has shape \(nan,\) with unknown dimensions"):
        binary_cross_entropy_with_logits(masked, masked)


# --- property: cross-entropy against a NumPy float64 implementation ---


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    leading=st.lists(st.integers(0, 3), min_size=0, max_size=3).map(tuple),
    classes=st.integers(1, 6),
    dtype_name=st.sampled_from(["float32", "float64"]),
    reduction=st.sampled_from(REDUCTIONS),
    scale=st.sampled_from([1.0, 10.0, 100.0]),
    seed=st.integers(0, 2**16),
)
def test_property_cross_entropy_matches_numpy_float64(
    xp, device, leading, classes, dtype_name, reduction, scale, seed
):
    available = xp.__array_namespace_info__().dtypes(device=device)
    assume(dtype_name in available)
    dtype = available[dtype_name]
    shape = (*leading, classes)
    logits = scale * random_array(xp, shape, dtype=dtype, device=device, seed=seed)
    labels = make_labels(xp, device, leading, classes, seed=seed + 1)
    loss, dlogits = softmax_cross_entropy(logits, labels, reduction=reduction)
    ref_loss, ref_dlogits = numpy_cross_entropy(to_numpy(logits), to_numpy(labels), reduction)
    same = {"xp": xp, "device": device, "dtype": dtype}
    assert_close(loss, ref_loss, **same, err_msg="loss")
    assert_close(dlogits, ref_dlogits, **same, err_msg="dlogits")

"""Cross-entropy and NLL with PyTorch's options, against torch.autograd and finite differences."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from array_api_compat import is_lazy_array

from xpnn.functional.losses import check_label_values, nll_loss, softmax_cross_entropy
from xpnn.losses import CrossEntropyLoss, NLLLoss
from xpnn.testing import assert_close, check_gradients, random_array, to_numpy

CLASSES = 4
# Labels of six rows: every class, and two rows that the ignore cases hide.
LABELS = np.array([0, 3, 1, 2, 1, 3])


def index_dtype(xp: Any, device: Any) -> Any:
    available = xp.__array_namespace_info__().dtypes(device=device)
    return available["int64"] if "int64" in available else available["int32"]


def labels_for(xp: Any, device: Any, host: np.ndarray) -> Any:
    return xp.asarray(host, dtype=index_dtype(xp, device), device=device)


def class_weight(xp: Any, device: Any, dtype: Any) -> Any:
    return xp.asarray(np.array([0.5, 2.0, 1.0, 3.0]), dtype=dtype, device=device)


def torch_reference(
    function: Any, x: np.ndarray, target: np.ndarray, weight: np.ndarray | None, **options: Any
) -> tuple[np.ndarray, np.ndarray]:
    """``(loss, dx)`` of a torch loss in float64; the gradient of the sum for 'none'."""
    tx = torch.tensor(x.astype(np.float64), requires_grad=True)
    tt = torch.tensor(target.astype(np.int64 if target.dtype.kind in "iu" else np.float64))
    tw = None if weight is None else torch.tensor(weight.astype(np.float64))
    loss = function(tx, tt, weight=tw, **options)
    loss.sum().backward()
    return loss.detach().numpy(), tx.grad.numpy()


# What the rows' labels become: none ignored, two rows at torch's default
# ignore_index, or the class-1 rows ignored through ignore_index=1.
IGNORE_CASES = {
    "none_ignored": (LABELS, -100),
    "default_index": (np.where(np.arange(6) % 3 == 1, -100, LABELS), -100),
    "class_index": (LABELS, 1),
}


# (weighted, ignore case, label smoothing): each option alone and together.
INDEX_CASES = [
    (False, "none_ignored", 0.0),
    (False, "default_index", 0.0),
    (True, "none_ignored", 0.0),
    (False, "class_index", 0.2),
    (True, "class_index", 0.0),
    (True, "default_index", 0.2),
]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(
    ("weighted", "ignore", "smoothing"),
    INDEX_CASES,
    ids=[f"{'weighted' if w else 'plain'}-{i}-{s}" for w, i, s in INDEX_CASES],
)
def test_cross_entropy_with_indices_matches_torch(
    xp, device, real_dtype, weighted, ignore, smoothing, reduction
):
    host_labels, ignore_index = IGNORE_CASES[ignore]
    logits = random_array(xp, (6, CLASSES), dtype=real_dtype, device=device, seed=3)
    weight = class_weight(xp, device, real_dtype) if weighted else None
    loss, grad = softmax_cross_entropy(
        logits,
        labels_for(xp, device, host_labels),
        weight=weight,
        ignore_index=ignore_index,
        label_smoothing=smoothing,
        reduction=reduction,
    )
    ref_loss, ref_grad = torch_reference(
        torch.nn.functional.cross_entropy,
        to_numpy(logits),
        host_labels,
        None if weight is None else to_numpy(weight),
        ignore_index=ignore_index,
        label_smoothing=smoothing,
        reduction=reduction,
    )
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    assert_close(loss, ref_loss, **same, err_msg="loss")
    assert_close(grad, ref_grad, **same, err_msg="grad")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_cross_entropy_with_probabilities_matches_torch(
    xp, device, real_dtype, weighted, smoothing, reduction
):
    logits = random_array(xp, (5, CLASSES), dtype=real_dtype, device=device, seed=4)
    raw = np.random.default_rng(5).uniform(size=(5, CLASSES))
    raw[1, 2] = 0.0  # a zero probability: its term must be 0, not 0 * log(p)
    host_target = raw / raw.sum(axis=1, keepdims=True)
    target = xp.asarray(host_target, dtype=real_dtype, device=device)
    weight = class_weight(xp, device, real_dtype) if weighted else None
    loss, grad = softmax_cross_entropy(
        logits, target, weight=weight, label_smoothing=smoothing, reduction=reduction
    )
    ref_loss, ref_grad = torch_reference(
        torch.nn.functional.cross_entropy,
        to_numpy(logits),
        to_numpy(target),
        None if weight is None else to_numpy(weight),
        label_smoothing=smoothing,
        reduction=reduction,
    )
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    assert_close(loss, ref_loss, **same, err_msg="loss")
    assert_close(grad, ref_grad, **same, err_msg="grad")


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("probabilities", [False, True], ids=["indices", "probabilities"])
def test_class_axis_one_is_torchs_layout(xp, device, real_dtype, probabilities, reduction):
    """(N, C, T) logits with axis=1 give what torch gives for the same array."""
    logits = random_array(xp, (2, CLASSES, 3), dtype=real_dtype, device=device, seed=6)
    rng = np.random.default_rng(7)
    if probabilities:
        raw = rng.uniform(size=(2, CLASSES, 3))
        host_target = raw / raw.sum(axis=1, keepdims=True)
        target = xp.asarray(host_target, dtype=real_dtype, device=device)
    else:
        host_target = rng.integers(0, CLASSES, size=(2, 3))
        host_target[0, 1] = -100
        target = labels_for(xp, device, host_target)
    weight = class_weight(xp, device, real_dtype)
    loss, grad = softmax_cross_entropy(
        logits, target, weight=weight, label_smoothing=0.1, reduction=reduction, axis=1
    )
    ref_loss, ref_grad = torch_reference(
        torch.nn.functional.cross_entropy,
        to_numpy(logits),
        host_target,
        to_numpy(weight),
        label_smoothing=0.1,
        reduction=reduction,
    )
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    assert_close(loss, ref_loss, **same, err_msg="loss")
    assert_close(grad, ref_grad, **same, err_msg="grad")
    if reduction == "none":
        assert tuple(loss.shape) == (2, 3)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("ignore", list(IGNORE_CASES))
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_nll_loss_matches_torch(xp, device, real_dtype, weighted, ignore, reduction):
    host_labels, ignore_index = IGNORE_CASES[ignore]
    log_probs = random_array(xp, (6, CLASSES), dtype=real_dtype, device=device, seed=8)
    weight = class_weight(xp, device, real_dtype) if weighted else None
    loss, grad = nll_loss(
        log_probs,
        labels_for(xp, device, host_labels),
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
    )
    ref_loss, ref_grad = torch_reference(
        torch.nn.functional.nll_loss,
        to_numpy(log_probs),
        host_labels,
        None if weight is None else to_numpy(weight),
        ignore_index=ignore_index,
        reduction=reduction,
    )
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    assert_close(loss, ref_loss, **same, err_msg="loss")
    assert_close(grad, ref_grad, **same, err_msg="grad")


def test_every_row_ignored_gives_nan_mean_and_zero_gradient(xp, device, real_dtype):
    logits = random_array(xp, (3, CLASSES), dtype=real_dtype, device=device, seed=9)
    labels = labels_for(xp, device, np.full(3, -100))
    for weight in (None, class_weight(xp, device, real_dtype)):
        loss, grad = softmax_cross_entropy(logits, labels, weight=weight)
        assert np.isnan(to_numpy(loss))
        np.testing.assert_array_equal(to_numpy(grad), np.zeros((3, CLASSES)))
        ref_loss, _ = torch_reference(
            torch.nn.functional.cross_entropy,
            to_numpy(logits),
            np.full(3, -100),
            None if weight is None else to_numpy(weight),
        )
        assert np.isnan(ref_loss)


# --- finite differences in float64, for the combined options ---


def _real64(xp: Any, device: Any) -> Any:
    if "float64" not in xp.__array_namespace_info__().dtypes(device=device):
        pytest.skip(f"{device} has no float64, which finite differences need")
    return xp.float64


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_combined_options_match_finite_differences(xp, device, reduction):
    f64 = _real64(xp, device)
    logits = random_array(xp, (2, CLASSES, 3), dtype=f64, device=device, seed=10)
    host = np.array([[0, 3, -100], [2, 1, 1]])
    labels = labels_for(xp, device, host)
    weight = class_weight(xp, device, f64)
    options = {
        "weight": weight,
        "label_smoothing": 0.15,
        "reduction": reduction,
        "axis": 1,
    }
    check_gradients(
        lambda z: softmax_cross_entropy(z, labels, **options)[0],
        lambda dy, z: (dy * softmax_cross_entropy(z, labels, **options)[1],),
        [logits],
    )
    raw = np.random.default_rng(11).uniform(size=(2, CLASSES, 3))
    target = xp.asarray(raw / raw.sum(axis=1, keepdims=True), dtype=f64, device=device)
    check_gradients(
        lambda z: softmax_cross_entropy(z, target, **options)[0],
        lambda dy, z: (dy * softmax_cross_entropy(z, target, **options)[1],),
        [logits],
    )
    nll_options = {"weight": weight, "reduction": reduction, "axis": 1}
    check_gradients(
        lambda z: nll_loss(z, labels, **nll_options)[0],
        lambda dy, z: (dy * nll_loss(z, labels, **nll_options)[1],),
        [logits],
    )


# --- labels out of range, with ignore_index about ---


def test_bad_labels_beside_ignored_ones(xp, device):
    logits = random_array(xp, (4, 3), dtype=xp.float32, device=device, seed=12)
    labels = labels_for(xp, device, np.array([0, -100, 5, 2]))
    if not is_lazy_array(labels):
        match = r"in \[0, 3\) for logits with 3 classes, or ignore_index \(-100\), got 5"
        with pytest.raises(ValueError, match=match):
            softmax_cross_entropy(logits, labels)
        with pytest.raises(ValueError, match=match):
            check_label_values(labels, 3)
        check_label_values(labels_for(xp, device, np.array([0, -100, 2])), 3)
        return
    # Lazy arrays are not read: only the bad row becomes NaN.
    loss, grad = softmax_cross_entropy(logits, labels, reduction="none")
    rows = to_numpy(loss)
    assert np.isnan(rows[2])
    assert rows[1] == 0
    assert np.all(np.isfinite(rows[[0, 3]]))
    assert np.all(np.isnan(to_numpy(grad)[2]))


# --- options refused with messages a user can act on ---


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"label_smoothing": 1.5}, ValueError, r"label_smoothing must be in \[0, 1\], got 1\.5"),
        ({"label_smoothing": "0.1"}, TypeError, "label_smoothing must be a real number"),
        ({"ignore_index": 1.0}, TypeError, "ignore_index must be an int, got float"),
        ({"axis": None}, TypeError, "axis must be an int, got NoneType"),
        ({"weight": [1.0, 2.0]}, TypeError, "weight must be an array"),
    ],
)
def test_options_refused_when_the_loss_is_built(options, error, match):
    with pytest.raises(error, match=match):
        CrossEntropyLoss(**options)


def test_call_time_errors(xp, device):
    logits = xp.ones((2, 3, 4), dtype=xp.float32, device=device)
    labels = labels_for(xp, device, np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(ValueError, match=r"axis 3 is out of range for logits of shape"):
        softmax_cross_entropy(logits, labels, axis=3)
    # Classes last by default: these labels fit axis 1, not the last axis.
    with pytest.raises(ValueError, match=r"target must have shape \(2, 3\), got \(2, 4\)"):
        softmax_cross_entropy(logits, labels)
    weight = xp.ones((4,), dtype=xp.float32, device=device)
    with pytest.raises(ValueError, match=r"weight must have one value per class, shape \(3,\)"):
        softmax_cross_entropy(logits, labels, weight=weight, axis=1)
    probabilities = xp.ones((2, 3, 4), dtype=xp.float32, device=device)
    with pytest.raises(TypeError, match="class probabilities need softmax_cross_entropy"):
        nll_loss(logits, probabilities, axis=1)


def test_loss_objects_hold_their_options(xp, device, real_dtype):
    weight = class_weight(xp, device, real_dtype)
    loss_fn = CrossEntropyLoss("sum", weight=weight, ignore_index=0, label_smoothing=0.1, axis=1)
    assert repr(loss_fn) == (
        "CrossEntropyLoss(reduction='sum', ignore_index=0, label_smoothing=0.1, axis=1, "
        "weight=<array of shape (4,)>)"
    )
    assert loss_fn.weight is weight
    assert loss_fn.ignore_index == 0
    assert loss_fn.axis == 1
    assert CrossEntropyLoss(**loss_fn.settings()) == loss_fn
    assert CrossEntropyLoss("sum", weight=weight) != CrossEntropyLoss("sum")
    logits = random_array(xp, (2, CLASSES, 3), dtype=real_dtype, device=device, seed=13)
    labels = labels_for(xp, device, np.array([[0, 1, 2], [3, 0, 1]]))
    expected = softmax_cross_entropy(
        logits, labels, weight=weight, ignore_index=0, label_smoothing=0.1, reduction="sum",
        axis=1,
    )  # fmt: skip
    for _ in range(2):  # the second call reuses the first one's checks
        got = loss_fn(logits, labels)
        for mine, reference in zip(got, expected, strict=True):
            assert_close(mine, to_numpy(reference), xp=xp, device=device, dtype=real_dtype)
    nll = NLLLoss(weight=weight, axis=1)
    assert repr(nll) == "NLLLoss(reduction='mean', axis=1, weight=<array of shape (4,)>)"

"""The loss classes of xpnn.losses: thin, stateless wrappers of the functions."""

from __future__ import annotations

import numpy as np
import pytest

from xpnn.functional.losses import (
    binary_cross_entropy_with_logits,
    mse_loss,
    softmax_cross_entropy,
)
from xpnn.losses import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from xpnn.testing import assert_close, random_array, to_numpy

CLASSES = [MSELoss, CrossEntropyLoss, BCEWithLogitsLoss]
REDUCTIONS = ("mean", "sum")


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_repr_names_the_reduction(cls):
    assert repr(cls()) == f"{cls.__name__}(reduction='mean')"
    assert repr(cls("sum")) == f"{cls.__name__}(reduction='sum')"
    assert repr(cls(reduction="sum")) == f"{cls.__name__}(reduction='sum')"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("reduction", ["batchmean", "Mean", "", None, 0])
def test_unknown_reduction_raises_in_init(cls, reduction):
    with pytest.raises(
        ValueError, match=rf"reduction must be one of 'none', 'mean', 'sum', got {reduction!r}"
    ):
        cls(reduction=reduction)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_reduction_is_read_only_and_nothing_else_is_kept(cls):
    loss_fn = cls("sum")
    assert loss_fn.reduction == "sum"
    with pytest.raises(AttributeError):
        loss_fn.reduction = "mean"
    with pytest.raises(AttributeError):
        loss_fn.last_loss = 1.0
    assert loss_fn == cls("sum")
    assert loss_fn != cls("mean")
    assert hash(loss_fn) == hash(cls("sum"))
    assert MSELoss() != CrossEntropyLoss()


def _inputs(xp, device, dtype):
    x = random_array(xp, (4, 3), dtype=dtype, device=device, seed=1)
    y = random_array(xp, (4, 3), dtype=dtype, device=device, seed=2)
    probabilities = xp.asarray(
        np.random.default_rng(3).uniform(size=(4, 3)), dtype=dtype, device=device
    )
    available = xp.__array_namespace_info__().dtypes(device=device)
    index = available["int64"] if "int64" in available else available["int32"]
    labels = xp.asarray(np.array([0, 2, 1, 2]), dtype=index, device=device)
    return {
        MSELoss: (mse_loss, x, y),
        CrossEntropyLoss: (softmax_cross_entropy, x, labels),
        BCEWithLogitsLoss: (binary_cross_entropy_with_logits, x, probabilities),
    }


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_same_results_as_the_functions(xp, device, real_dtype, reduction):
    for cls, (function, first, second) in _inputs(xp, device, real_dtype).items():
        loss_fn = cls(reduction)
        loss, grad = loss_fn(first, second)
        ref_loss, ref_grad = function(first, second, reduction=reduction)
        name = cls.__name__
        assert_close(loss, ref_loss, rtol=0, atol=0, err_msg=f"{name} loss")
        assert_close(grad, ref_grad, rtol=0, atol=0, err_msg=f"{name} grad")
        # Calling again gives the same: nothing is carried between calls.
        again, _ = loss_fn(first, second)
        np.testing.assert_array_equal(to_numpy(again), to_numpy(loss))
        assert repr(loss_fn) == f"{name}(reduction={reduction!r})"


def test_errors_come_from_the_functions():
    with pytest.raises(ValueError, match=r"xp\.astype\(target, xp\.int64\)"):
        CrossEntropyLoss()(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match=r"target must have the shape of pred"):
        MSELoss()(np.zeros((2, 3)), np.zeros(3))

"""The elementwise losses and their options, against torch.autograd and finite differences.

``mse_loss``, ``l1_loss``, ``huber_loss``, ``smooth_l1_loss``,
``binary_cross_entropy``, ``binary_cross_entropy_with_logits`` (``weight``,
``pos_weight``) and ``kl_div`` (``log_target``, ``'batchmean'``), with every
reduction, on every backend and device of the matrix; then their loss
objects.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from array_api_compat import is_lazy_array

from xpnn.functional.losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    huber_loss,
    kl_div,
    l1_loss,
    mse_loss,
    smooth_l1_loss,
)
from xpnn.losses import (
    BCELoss,
    BCEWithLogitsLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    SmoothL1Loss,
)
from xpnn.testing import assert_close, check_gradients, to_numpy

REDUCTIONS = ("none", "mean", "sum")
# 0-D, 1-D, 2-D, 3-D and zero-size inputs: all of them for reduction='none',
# whose terms have the input's shape; the 0-D, 3-D and zero-size ones for the
# reductions, whose edge cases they hold (the mean of nothing, 'batchmean' of
# a 0-D input), which keeps the lazy backends' sessions short.
SHAPES = [(), (5,), (4, 3), (2, 3, 4), (0, 3)]
REDUCED_SHAPES = [(), (2, 3, 4), (0, 3)]


# --- host inputs: float64 NumPy, placed on the device by each test ---


def _rng(shape: tuple[int, ...], seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, len(shape), *shape])


def normal(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.asarray(_rng(shape, seed).standard_normal(shape))


def logits(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return 3 * normal(shape, seed)


def probabilities(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """In [0.05, 0.95]: away from the floors, so finite differences hold."""
    return np.asarray(_rng(shape, seed).uniform(0.05, 0.95, size=shape))


def targets(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Probabilities with some exact zeros and ones."""
    t = np.asarray(_rng(shape, seed).uniform(size=shape))
    return np.where(t < 0.2, 0.0, np.where(t > 0.9, 1.0, t))


def log_probabilities(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.log(probabilities(shape, seed))


def weight_per_row(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Shape ``shape[1:]``: broadcast over the first axis."""
    return np.asarray(_rng(shape, seed).uniform(0.5, 2.0, size=shape[1:]))


def weight_per_class(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Shape ``shape[-1:]``: one per class of the last axis (0-D for a 0-D input)."""
    return np.asarray(_rng(shape, seed).uniform(0.5, 3.0, size=shape[-1:]))


Maker = Callable[[tuple[int, ...], int], np.ndarray]


@dataclass(frozen=True)
class Case:
    id: str
    function: Callable[..., tuple[Any, Any]]
    reference: Callable[..., torch.Tensor]
    first: Maker
    second: Maker
    options: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, Maker] = field(default_factory=dict)
    reductions: tuple[str, ...] = REDUCTIONS


CASES = [
    Case("mse", mse_loss, F.mse_loss, normal, normal),
    Case("l1", l1_loss, F.l1_loss, normal, normal),
    Case("huber", huber_loss, F.huber_loss, normal, normal),
    Case("huber-delta0.3", huber_loss, F.huber_loss, normal, normal, {"delta": 0.3}),
    Case("smooth_l1", smooth_l1_loss, F.smooth_l1_loss, normal, normal),
    Case("smooth_l1-beta0.3", smooth_l1_loss, F.smooth_l1_loss, normal, normal, {"beta": 0.3}),
    Case("smooth_l1-beta0", smooth_l1_loss, F.smooth_l1_loss, normal, normal, {"beta": 0.0}),
    Case("bce", binary_cross_entropy, F.binary_cross_entropy, probabilities, targets),
    Case(
        "bce-weight",
        binary_cross_entropy,
        F.binary_cross_entropy,
        probabilities,
        targets,
        arrays={"weight": weight_per_row},
    ),
    Case(
        "bcel",
        binary_cross_entropy_with_logits,
        F.binary_cross_entropy_with_logits,
        logits,
        targets,
    ),
    Case(
        "bcel-weight",
        binary_cross_entropy_with_logits,
        F.binary_cross_entropy_with_logits,
        logits,
        targets,
        arrays={"weight": weight_per_row},
    ),
    Case(
        "bcel-pos_weight",
        binary_cross_entropy_with_logits,
        F.binary_cross_entropy_with_logits,
        logits,
        targets,
        arrays={"pos_weight": weight_per_class},
    ),
    Case(
        "bcel-weight-pos_weight",
        binary_cross_entropy_with_logits,
        F.binary_cross_entropy_with_logits,
        logits,
        targets,
        arrays={"weight": weight_per_row, "pos_weight": weight_per_class},
    ),
    Case(
        "kl",
        kl_div,
        F.kl_div,
        log_probabilities,
        targets,
        reductions=(*REDUCTIONS, "batchmean"),
    ),
    Case(
        "kl-log_target",
        kl_div,
        F.kl_div,
        log_probabilities,
        log_probabilities,
        {"log_target": True},
        reductions=(*REDUCTIONS, "batchmean"),
    ),
]
CASE_REDUCTIONS = [
    pytest.param(case, reduction, id=f"{case.id}-{reduction}")
    for case in CASES
    for reduction in case.reductions
]


# --- the oracle: torch.autograd in float64 ---


def torch_reference(
    function: Callable[..., torch.Tensor], first: np.ndarray, second: np.ndarray, **options: Any
) -> tuple[np.ndarray, np.ndarray]:
    """``(loss, dfirst)`` in float64: the gradient of the sum of the returned terms.

    NumPy arrays among ``options`` (weights) become float64 tensors.
    """
    tx = torch.tensor(np.asarray(first, dtype=np.float64), requires_grad=True)
    tt = torch.tensor(np.asarray(second, dtype=np.float64))
    options = {
        name: torch.tensor(np.asarray(value, dtype=np.float64))
        if isinstance(value, np.ndarray)
        else value
        for name, value in options.items()
    }
    with warnings.catch_warnings():
        # torch warns that kl_div's 'mean' is not the divergence; xpnn documents it.
        warnings.filterwarnings("ignore", "reduction: 'mean' divides", UserWarning)
        loss = function(tx, tt, **options)
    loss.sum().backward()
    assert tx.grad is not None
    return loss.detach().numpy(), tx.grad.numpy()


def on_device(xp: Any, device: Any, dtype: Any, host: np.ndarray) -> Any:
    return xp.asarray(host, dtype=dtype, device=device)


def rounded(xp: Any, dtype: Any, host: np.ndarray) -> np.ndarray:
    """``host`` rounded to ``dtype`` on the host: what the oracle gets, with no read-back."""
    return np.asarray(host, dtype=np.float32 if dtype == xp.float32 else np.float64)


def case_inputs(
    xp: Any, device: Any, dtype: Any, case: Case, shape: tuple[int, ...], seed: int = 0
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``(host, arrays)``: the inputs by name (first, second, weights), rounded and placed."""
    makers = {"first": case.first, "second": case.second, **case.arrays}
    host = {
        name: rounded(xp, dtype, make(shape, seed + i))
        for i, (name, make) in enumerate(makers.items())
    }
    return host, {name: on_device(xp, device, dtype, a) for name, a in host.items()}


def split(inputs: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    """``(first, second, weights by name)`` of what :func:`case_inputs` returned."""
    first, second, *_ = inputs.values()
    return first, second, {k: v for k, v in inputs.items() if k not in ("first", "second")}


# --- against torch.autograd ---


@pytest.mark.parametrize(("case", "reduction"), CASE_REDUCTIONS)
def test_matches_torch(xp, device, real_dtype, case, reduction):
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    for shape in SHAPES if reduction == "none" else REDUCED_SHAPES:
        host, arrays = case_inputs(xp, device, real_dtype, case, shape)
        first, second, weights = split(arrays)
        loss, grad = case.function(first, second, reduction=reduction, **case.options, **weights)
        first, second, weights = split(host)
        ref_loss, ref_grad = torch_reference(
            case.reference, first, second, reduction=reduction, **case.options, **weights
        )
        assert tuple(loss.shape) == (shape if reduction == "none" else ())
        assert tuple(grad.shape) == shape
        assert_close(loss, ref_loss, **same, err_msg=f"loss, shape {shape}")
        assert_close(grad, ref_grad, **same, err_msg=f"grad, shape {shape}")


# --- against float64 central differences ---


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_gradient_matches_finite_differences(xp, device, real_dtype, case):
    """The terms' gradients, each weighted by its own cotangent ('none').

    The reductions only scale this (the torch tests check them); one
    reduction keeps the differences cheap on lazy backends.
    """
    _, arrays = case_inputs(xp, device, real_dtype, case, (2, 2), seed=7)
    names = list(case.arrays)

    def loss(a, b, *weights):
        given = dict(zip(names, weights, strict=True))
        return case.function(a, b, reduction="none", **case.options, **given)[0]

    def backward(dy, a, b, *weights):
        given = dict(zip(names, weights, strict=True))
        grad = case.function(a, b, reduction="none", **case.options, **given)[1]
        return (dy * grad, None, *[None] * len(weights))

    check_gradients(loss, backward, list(arrays.values()))


# --- the points where a piecewise loss changes its formula ---

# d = pred - target at -2, -1, -1/2, 0, 1/2, 1, 2 times the threshold 0.5,
# all exact in binary, around a target of 0.25.
KINK_TARGET = np.full(7, 0.25)
KINK_PRED = KINK_TARGET + 0.5 * np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
KINKS = [
    (l1_loss, F.l1_loss, {}),
    (huber_loss, F.huber_loss, {"delta": 0.5}),
    (smooth_l1_loss, F.smooth_l1_loss, {"beta": 0.5}),
    (smooth_l1_loss, F.smooth_l1_loss, {"beta": 0.0}),
]


@pytest.mark.parametrize(
    ("function", "reference", "options"),
    KINKS,
    ids=["l1", "huber-0.5", "smooth_l1-0.5", "smooth_l1-0"],
)
def test_thresholds_and_zero_match_torch(xp, device, real_dtype, function, reference, options):
    pred = on_device(xp, device, real_dtype, KINK_PRED)
    target = on_device(xp, device, real_dtype, KINK_TARGET)
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    for reduction in ("none", "mean"):
        loss, grad = function(pred, target, reduction=reduction, **options)
        ref_loss, ref_grad = torch_reference(
            reference, KINK_PRED, KINK_TARGET, reduction=reduction, **options
        )
        assert_close(loss, ref_loss, **same, err_msg=f"loss, {reduction}")
        assert_close(grad, ref_grad, **same, err_msg=f"grad, {reduction}")
    # At d == 0 the gradient is 0, and at |d| == threshold the two pieces meet.
    assert to_numpy(grad)[3] == 0


# --- binary cross-entropy at the edges ---


def test_bce_floors_its_logarithms_as_torch(xp, device, real_dtype):
    """p of exactly 0 or 1 costs 100 (log floored at -100); the gradient's divisor is 1e-12."""
    host_p = np.array([0.0, 0.0, 1.0, 1.0, 0.5, 1e-20, 1.0 - 2.0**-20])
    host_t = np.array([0.0, 1.0, 0.0, 1.0, 0.5, 1.0, 0.0])
    host_w = np.linspace(0.5, 2.0, 7)
    p, t, w = (on_device(xp, device, real_dtype, a) for a in (host_p, host_t, host_w))
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    for reduction in REDUCTIONS:
        loss, grad = binary_cross_entropy(p, t, weight=w, reduction=reduction)
        assert np.all(np.isfinite(to_numpy(loss)))
        ref_loss, ref_grad = torch_reference(
            F.binary_cross_entropy, to_numpy(p), host_t, weight=host_w, reduction=reduction
        )
        assert_close(loss, ref_loss, **same, err_msg=f"loss, {reduction}")
        assert_close(grad, ref_grad, **same, err_msg=f"grad, {reduction}")


@pytest.mark.parametrize(
    ("host_p", "host_t", "match"),
    [
        ([0.5, 1.5], [1.0, 0.0], r"probs must be in \[0, 1\], got 1\.5 \(.*with_logits"),
        ([0.5, float("nan")], [1.0, 0.0], r"probs must be in \[0, 1\], got nan"),
        ([0.5, 0.5], [1.0, -0.5], r"targets must be in \[0, 1\], got -0\.5"),
    ],
    ids=["probs-above", "probs-nan", "targets-below"],
)
def test_bce_refuses_values_outside_the_unit_interval(xp, device, host_p, host_t, match):
    p = on_device(xp, device, xp.float32, np.array(host_p))
    t = on_device(xp, device, xp.float32, np.array(host_t))
    if not is_lazy_array(p):
        with pytest.raises(ValueError, match=match):
            binary_cross_entropy(p, t)
        with pytest.raises(ValueError, match=match):
            BCELoss()(p, t)
        return
    # Lazy arrays are not read: the bad element gets NaN, the others not.
    loss, grad = binary_cross_entropy(p, t, reduction="none")
    for got in (to_numpy(loss), to_numpy(grad)):
        assert np.isnan(got[1])
        assert np.isfinite(got[0])


def test_bce_with_logits_weights_are_stable_for_huge_logits(xp, device, real_dtype):
    host_x = np.array([[1e4, -1e4, 1e4, -1e4], [1e4, -1e4, 0.0, 3.0]])
    host_t = np.array([[1.0, 0.0, 0.0, 1.0], [0.5, 0.5, 1.0, 0.0]])
    host_w = np.array([[2.0], [0.5]])
    host_pw = np.array([3.0, 0.5, 1.0, 2.0])
    x, t, w, pw = (on_device(xp, device, real_dtype, a) for a in (host_x, host_t, host_w, host_pw))
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    for reduction in REDUCTIONS:
        loss, grad = binary_cross_entropy_with_logits(
            x, t, weight=w, pos_weight=pw, reduction=reduction
        )
        assert np.all(np.isfinite(to_numpy(loss)))
        assert np.all(np.isfinite(to_numpy(grad)))
        ref_loss, ref_grad = torch_reference(
            F.binary_cross_entropy_with_logits,
            host_x,
            host_t,
            weight=host_w,
            pos_weight=host_pw,
            reduction=reduction,
        )
        assert_close(loss, ref_loss, **same, err_msg=f"loss, {reduction}")
        assert_close(grad, ref_grad, **same, err_msg=f"grad, {reduction}")


def test_weights_take_the_dtype_of_the_loss(xp, device):
    """float64 weights of a float32 loss are cast to float32, as torch does."""
    available = xp.__array_namespace_info__().dtypes(device=device)
    if "float64" not in available:
        pytest.skip(f"device {device!r} has no float64 (inspection API)")
    host_x, host_t = logits((4, 3), 1), targets((4, 3), 2)
    host_w, host_pw = weight_per_row((4, 3), 3), weight_per_class((4, 3), 4)
    x, t = (on_device(xp, device, xp.float32, a) for a in (host_x, host_t))
    w, pw = (on_device(xp, device, xp.float64, a) for a in (host_w, host_pw))
    loss, grad = binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw)
    ref_loss, ref_grad = torch_reference(
        F.binary_cross_entropy_with_logits,
        to_numpy(x),
        to_numpy(t),
        weight=host_w,
        pos_weight=host_pw,
    )
    assert_close(loss, ref_loss, xp=xp, device=device, dtype=xp.float32)
    assert_close(grad, ref_grad, xp=xp, device=device, dtype=xp.float32)


# --- errors: options and weights, before any arithmetic ---


BAD_OPTIONS = [
    (huber_loss, HuberLoss, "delta", 0.0, ValueError, r"delta must be > 0, got 0\.0"),
    (huber_loss, HuberLoss, "delta", -1, ValueError, r"delta must be > 0, got -1"),
    (huber_loss, HuberLoss, "delta", float("nan"), ValueError, r"delta must be > 0, got nan"),
    (huber_loss, HuberLoss, "delta", "1", TypeError, r"delta must be a real number > 0, got str"),
    (huber_loss, HuberLoss, "delta", True, TypeError, r"delta must be a real number > 0, got bool"),
    (smooth_l1_loss, SmoothL1Loss, "beta", -0.5, ValueError, r"beta must be >= 0, got -0\.5"),
    (smooth_l1_loss, SmoothL1Loss, "beta", None, TypeError, r"beta must be a real number >= 0"),
    (kl_div, KLDivLoss, "log_target", 1, TypeError, r"log_target must be True or False, got int"),
]


@pytest.mark.parametrize(
    ("function", "cls", "name", "value", "error", "match"),
    BAD_OPTIONS,
    ids=[f"{row[2]}={row[3]!r}" for row in BAD_OPTIONS],
)
def test_bad_options_are_refused(function, cls, name, value, error, match):
    x = np.zeros((2, 3))
    with pytest.raises(error, match=match):
        function(x, x, **{name: value})
    with pytest.raises(error, match=match):
        cls(**{name: value})


def test_bad_weights_and_reductions_are_refused(xp, device):
    x = xp.zeros((2, 3), dtype=xp.float32, device=device)
    with pytest.raises(
        ValueError,
        match=r"weight must broadcast to the shape of logits, \(2, 3\), got \(2,\)",
    ):
        binary_cross_entropy_with_logits(x, x, weight=xp.ones((2,), device=device))
    with pytest.raises(
        ValueError,
        match=r"pos_weight must broadcast to the shape of logits, \(2, 3\), got \(1, 2, 3\)",
    ):
        binary_cross_entropy_with_logits(x, x, pos_weight=xp.ones((1, 2, 3), device=device))
    with pytest.raises(ValueError, match=r"weight must broadcast to the shape of probs"):
        binary_cross_entropy(x, x, weight=xp.ones((4,), device=device))
    ints = xp.ones((3,), dtype=xp.int32, device=device)
    with pytest.raises(TypeError, match=r"pos_weight must have a real floating dtype"):
        binary_cross_entropy_with_logits(x, x, pos_weight=ints)
    with pytest.raises(TypeError, match=r"weight must be an array"):
        BCEWithLogitsLoss(weight=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"'none', 'mean', 'sum', 'batchmean', got 'batch'"):
        kl_div(x, x, reduction="batch")
    with pytest.raises(ValueError, match=r"'none', 'mean', 'sum', got 'batchmean'"):
        l1_loss(x, x, reduction="batchmean")
    with pytest.raises(ValueError, match=r"'none', 'mean', 'sum', got 'batchmean'"):
        HuberLoss("batchmean")


# --- the loss objects ---

OBJECTS = [
    (MSELoss("none"), mse_loss, {}, normal, normal),
    (L1Loss("sum"), l1_loss, {}, normal, normal),
    (HuberLoss(delta=0.3), huber_loss, {"delta": 0.3}, normal, normal),
    (SmoothL1Loss("none", beta=0.0), smooth_l1_loss, {"beta": 0.0}, normal, normal),
    (
        KLDivLoss("batchmean", log_target=True),
        kl_div,
        {"log_target": True},
        log_probabilities,
        log_probabilities,
    ),
]


@pytest.mark.parametrize(
    ("loss_fn", "function", "options", "first", "second"),
    OBJECTS,
    ids=[type(row[0]).__name__ for row in OBJECTS],
)
def test_objects_call_their_functions(xp, device, loss_fn, function, options, first, second):
    x = on_device(xp, device, xp.float32, first((4, 3), 1))
    y = on_device(xp, device, xp.float32, second((4, 3), 2))
    loss, grad = loss_fn(x, y)
    ref_loss, ref_grad = function(x, y, reduction=loss_fn.reduction, **options)
    assert_close(loss, ref_loss, rtol=0, atol=0)
    assert_close(grad, ref_grad, rtol=0, atol=0)


def test_objects_with_weights_call_their_functions(xp, device):
    p = on_device(xp, device, xp.float32, probabilities((4, 3), 1))
    t = on_device(xp, device, xp.float32, targets((4, 3), 2))
    w = on_device(xp, device, xp.float32, weight_per_row((4, 3), 3))
    pw = on_device(xp, device, xp.float32, weight_per_class((4, 3), 4))
    for loss_fn, (loss, grad) in (
        (BCELoss("sum", weight=w), binary_cross_entropy(p, t, weight=w, reduction="sum")),
        (
            BCEWithLogitsLoss(weight=w, pos_weight=pw),
            binary_cross_entropy_with_logits(p, t, weight=w, pos_weight=pw),
        ),
        (BCEWithLogitsLoss(pos_weight=pw), binary_cross_entropy_with_logits(p, t, pos_weight=pw)),
    ):
        for _ in range(2):  # the second call reuses the check's record
            got_loss, got_grad = loss_fn(p, t)
            assert_close(got_loss, loss, rtol=0, atol=0)
            assert_close(got_grad, grad, rtol=0, atol=0)


def test_object_settings_repr_and_properties():
    w, pw = np.ones(3), np.full(3, 2.0)
    objects = {
        "L1Loss(reduction='mean')": L1Loss(),
        "HuberLoss(reduction='mean')": HuberLoss(delta=1),
        "HuberLoss(reduction='sum', delta=0.5)": HuberLoss("sum", delta=0.5),
        "SmoothL1Loss(reduction='none', beta=0.0)": SmoothL1Loss("none", beta=0),
        "BCELoss(reduction='mean', weight=<array of shape (3,)>)": BCELoss(weight=w),
        "BCEWithLogitsLoss(reduction='mean', weight=<array of shape (3,)>, "
        "pos_weight=<array of shape (3,)>)": BCEWithLogitsLoss(weight=w, pos_weight=pw),
        "KLDivLoss(reduction='batchmean')": KLDivLoss("batchmean"),
        "KLDivLoss(reduction='mean', log_target=True)": KLDivLoss(log_target=True),
    }
    for text, loss_fn in objects.items():
        assert repr(loss_fn) == text
        settings = loss_fn.settings()
        twin = type(loss_fn)(**settings)
        assert twin == loss_fn
        assert hash(twin) == hash(loss_fn)
    assert HuberLoss(delta=2).settings() == {"reduction": "mean", "delta": 2.0}
    assert SmoothL1Loss(beta=0.25).beta == 0.25
    assert HuberLoss(delta=3).delta == 3.0
    assert KLDivLoss(log_target=True).log_target is True
    bce = BCEWithLogitsLoss(pos_weight=pw)
    assert bce.pos_weight is pw
    assert bce.weight is None
    assert bce.settings() == {"reduction": "mean", "weight": None, "pos_weight": pw}
    assert BCELoss(weight=w).weight is w
    assert HuberLoss(delta=0.5) != HuberLoss(delta=1.0)
    for loss_fn, name in ((HuberLoss(), "delta"), (KLDivLoss(), "log_target"), (bce, "weight")):
        with pytest.raises(AttributeError):
            setattr(loss_fn, name, 1.0)
    with pytest.raises(TypeError):
        HuberLoss("mean", 0.5)  # the options are keyword-only, as torch's are not

"""SiLU, softplus, ELU, hardtanh, Mish and identity; softmax of 0-d arrays."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

from oracles import widen
from xpnn.functional.activations import (
    elu,
    elu_backward,
    hardtanh,
    hardtanh_backward,
    identity,
    identity_backward,
    log_softmax,
    log_softmax_backward,
    mish,
    mish_backward,
    silu,
    silu_backward,
    softmax,
    softmax_backward,
    softplus,
    softplus_backward,
)
from xpnn.testing import assert_close, check_gradients, random_array, to_numpy

F = torch.nn.functional


@dataclass(frozen=True)
class Case:
    """One activation with its settings: the functional pair and the torch oracle."""

    name: str
    forward: Callable[..., Any]
    backward: Callable[..., Any]
    oracle: Callable[[torch.Tensor], torch.Tensor]

    def __str__(self) -> str:
        return self.name


def case(name: str, forward: Any, backward: Any, oracle: Any, **settings: float) -> Case:
    return Case(
        name,
        functools.partial(forward, **settings),
        functools.partial(backward, **settings),
        oracle,
    )


CASES = [
    case("silu", silu, silu_backward, F.silu),
    case("softplus", softplus, softplus_backward, F.softplus),
    case(
        "softplus(2,5)",
        softplus,
        softplus_backward,
        functools.partial(F.softplus, beta=2.0, threshold=5.0),
        beta=2.0,
        threshold=5.0,
    ),
    case("elu", elu, elu_backward, F.elu),
    case("elu(0.5)", elu, elu_backward, functools.partial(F.elu, alpha=0.5), alpha=0.5),
    case("hardtanh", hardtanh, hardtanh_backward, F.hardtanh),
    case(
        "hardtanh(-0.5,1)",
        hardtanh,
        hardtanh_backward,
        functools.partial(F.hardtanh, min_val=-0.5, max_val=1.0),
        min_val=-0.5,
        max_val=1.0,
    ),
    case("mish", mish, mish_backward, F.mish),
    case("identity", identity, identity_backward, lambda t: t * 1),
]
# The kinks of every case (0, ±1, -0.5, 2.5 = 5 / beta), the thresholds of
# softplus (20, 2.5) on both sides, and values where exp overflows float32.
EDGES = [-1e4, -100.0, -30.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.5, 2.75, 19.5, 20.0, 20.5, 100.0, 1e4]


def torch_reference(case: Case, x: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``y, dx`` from torch.autograd in double precision."""
    tx = torch.tensor(widen(x), requires_grad=True)
    y = case.oracle(tx)
    y.backward(torch.tensor(widen(dy)))
    return to_numpy(y), to_numpy(tx.grad)


def check_against_torch(xp: Any, device: Any, dtype: Any, case: Case, x: Any, dy: Any) -> None:
    y = case.forward(x)
    dx = case.backward(dy, x)
    ref_y, ref_dx = torch_reference(case, to_numpy(x), to_numpy(dy))
    same = {"xp": xp, "device": device, "dtype": dtype}
    assert_close(y, ref_y, **same, err_msg=f"{case} y")
    assert_close(dx, ref_dx, **same, err_msg=f"{case} dx")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_matches_torch_autograd(xp, device, real_dtype, case):
    # 3-D, 0-d and zero-size inputs.
    for shape in ((2, 3, 4), (), (3, 0)):
        x = 3 * random_array(xp, shape, dtype=real_dtype, device=device, seed=1)
        dy = random_array(xp, shape, dtype=real_dtype, device=device, seed=2)
        check_against_torch(xp, device, real_dtype, case, x, dy)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_kinks_thresholds_and_extremes_follow_torch(xp, device, real_dtype, case):
    x = xp.asarray(EDGES, dtype=real_dtype, device=device)
    dy = xp.ones_like(x)
    check_against_torch(xp, device, real_dtype, case, x, dy)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_matches_finite_differences(xp, device, real_dtype, case):
    # check_gradients differentiates in float64, on a device that has it.
    x = 2 * random_array(xp, (2, 3), dtype=real_dtype, device=device, seed=10)
    check_gradients(case.forward, lambda dy, x: (case.backward(dy, x),), [x])


def test_identity_returns_its_input_and_takes_complex_numbers(xp, device):
    if "float64" not in xp.__array_namespace_info__().dtypes(device=device):
        pytest.skip(f"device {device!r} has no float64 (inspection API)")
    x = random_array(xp, (2, 3), dtype=xp.float32, device=device, seed=0)
    assert identity(x) is x
    dy = random_array(xp, (2, 3), dtype=xp.float32, device=device, seed=1)
    assert identity_backward(dy, x) is dy
    # A float64 dy gives dx in x's dtype, as torch.autograd does.
    dy64 = xp.astype(dy, xp.float64)
    assert_close(identity_backward(dy64, x), to_numpy(dy), xp=xp, device=device, dtype=xp.float32)
    z = xp.astype(x, xp.complex128)
    assert identity(z) is z
    with pytest.raises(TypeError, match="dy has the complex dtype"):
        identity_backward(z, x)


@pytest.mark.parametrize("forward", [silu, softplus, elu, hardtanh, mish], ids=lambda f: f.__name__)
def test_inputs_of_the_wrong_kind(xp, device, forward):
    with pytest.raises(TypeError, match="x must have a real floating dtype"):
        forward(xp.ones((2,), dtype=xp.int32, device=device))
    with pytest.raises(TypeError, match=f"{forward.__name__} is defined for real numbers only"):
        forward(xp.ones((2,), dtype=xp.complex64, device=device))


def test_settings_are_checked():
    x = np.zeros(2)
    for forward, settings in (
        (softplus, {"beta": "1"}),
        (softplus, {"threshold": None}),
        (elu, {"alpha": True}),
        (hardtanh, {"min_val": np.zeros(1)}),
    ):
        (name,) = settings
        with pytest.raises(TypeError, match=f"{name} must be a real number, got"):
            forward(x, **settings)
    for forward, settings, message in (
        (softplus, {"beta": 0}, "beta must be a nonzero real number"),
        (softplus, {"threshold": float("inf")}, "threshold must be finite, got inf"),
        (elu, {"alpha": float("nan")}, "alpha must be finite, got nan"),
        (hardtanh, {"min_val": 1.0}, "min_val must be less than max_val, got min_val=1.0"),
        (hardtanh, {"min_val": 2.0, "max_val": -2.0}, "min_val must be less than max_val"),
    ):
        with pytest.raises(ValueError, match=message):
            forward(x, **settings)
        with pytest.raises(ValueError, match=message):
            globals()[f"{forward.__name__}_backward"](x, x, **settings)


# -- softmax and log-softmax of a 0-d array ---------------------------------------------------


@pytest.mark.parametrize("axis", [0, -1])
def test_softmax_of_a_0d_array_is_a_group_of_one(xp, device, real_dtype, axis):
    x = xp.asarray(3.0, dtype=real_dtype, device=device)
    dy = xp.asarray(0.5, dtype=real_dtype, device=device)
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    for forward, backward, oracle in (
        (softmax, softmax_backward, torch.softmax),
        (log_softmax, log_softmax_backward, torch.log_softmax),
    ):
        tx = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
        ty = oracle(tx, axis)
        ty.backward(torch.tensor(0.5, dtype=torch.float64))
        y = forward(x, axis=axis)
        assert_close(y, to_numpy(ty), **same)
        assert_close(backward(dy, y, axis=axis), to_numpy(tx.grad), **same)
    assert float(to_numpy(softmax(x, axis=axis))) == 1.0
    assert float(to_numpy(log_softmax(x, axis=axis))) == 0.0

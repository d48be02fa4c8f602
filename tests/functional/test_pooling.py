"""xpnn.functional.pooling: max, average and adaptive pooling against torch and finite differences.

Few, tiny shapes: the JAX session compiles once per shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from oracles import widen
from xpnn.functional import pooling as P
from xpnn.testing import assert_close, check_gradients, random_array, to_numpy

F = torch.nn.functional

# (our forward, our backward, torch's, settings)
CASES: list[tuple[str, tuple[int, ...], dict[str, Any]]] = [
    ("max_pool1d", (2, 7), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("max_pool2d", (1, 5, 5), {"kernel_size": 2, "stride": 2, "dilation": 2, "ceil_mode": True}),
    ("max_pool2d", (1, 1, 5, 4), {"kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 0)}),
    ("avg_pool1d", (2, 7), {"kernel_size": 4, "stride": 3, "padding": 2, "ceil_mode": True}),
    (
        "avg_pool1d",
        (1, 2, 7),
        {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False},
    ),
    ("avg_pool2d", (1, 1, 5, 4), {"kernel_size": (2, 3), "stride": 2, "padding": 1}),
    (
        "avg_pool2d",
        (1, 5, 4),
        {
            "kernel_size": 3,
            "stride": 2,
            "padding": 1,
            "ceil_mode": True,
            "count_include_pad": False,
        },
    ),
    ("adaptive_avg_pool1d", (2, 7), {"output_size": 3}),
    ("adaptive_avg_pool1d", (1, 2, 6), {"output_size": 3}),
    ("adaptive_avg_pool2d", (1, 5, 4), {"output_size": (2, 3)}),
    ("adaptive_avg_pool2d", (1, 1, 5, 4), {"output_size": (4, None)}),
]
IDS = [f"{name}-{shape}-{settings}" for name, shape, settings in CASES]


# The JAX session compiles every operation once per shape and dtype (seconds
# per case): it runs these cases only; every other backend runs them all.
JAX_CASES = (2, 6, 9)


def thin_for_jax(xp: Any, case: int) -> None:
    if "jax" in xp.__name__ and case not in JAX_CASES:
        pytest.skip("the JAX session runs a few cases: it compiles each operation per shape")


def ours(name: str) -> tuple[Any, Any]:
    return getattr(P, name), getattr(P, name + "_backward")


def torch_reference(
    name: str, x: np.ndarray, dy: np.ndarray | None, settings: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray | None]:
    tx = torch.tensor(widen(x), requires_grad=True)
    y = getattr(F, name)(tx, **settings)
    if dy is None:
        return to_numpy(y), None
    y.backward(torch.tensor(widen(dy)))
    return to_numpy(y), to_numpy(tx.grad)


def output_shape(name: str, shape: tuple[int, ...], settings: dict[str, Any]) -> tuple[int, ...]:
    return tuple(torch_reference(name, np.zeros(shape), None, settings)[0].shape)


@pytest.mark.parametrize("case", range(len(CASES)), ids=IDS)
def test_forward_and_backward_match_torch_autograd(xp, device, case):
    thin_for_jax(xp, case)
    name, shape, settings = CASES[case]
    # In the widest dtype only (float32 on devices without float64): the JAX
    # session compiles each operation once per shape and dtype.
    real_dtype = widest_real_dtype(xp, device)
    forward, backward = ours(name)
    x = random_array(xp, shape, dtype=real_dtype, device=device, seed=1)
    dy = random_array(
        xp, output_shape(name, shape, settings), dtype=real_dtype, device=device, seed=2
    )
    before = to_numpy(x)
    y = forward(x, **settings)
    dx = backward(dy, x, **settings)
    ref_y, ref_dx = torch_reference(name, to_numpy(x), to_numpy(dy), settings)
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    assert_close(y, ref_y, **same, err_msg="y")
    assert_close(dx, ref_dx, **same, err_msg="dx")
    np.testing.assert_array_equal(to_numpy(x), before)


# The cases the torch test ran, so that JAX reuses what it compiled.
GRADCHECK = [0, 2, 3, 6, 9]


def widest_real_dtype(xp: Any, device: Any) -> Any:
    available = xp.__array_namespace_info__().dtypes(device=device, kind="real floating")
    return available.get("float64", available["float32"])


@pytest.mark.parametrize("case", GRADCHECK, ids=[IDS[i] for i in GRADCHECK])
def test_matches_finite_differences(xp, device, case):
    thin_for_jax(xp, case)
    name, shape, settings = CASES[case]
    # Once per device, in float64 where it has it (the differences run in
    # float64 in any case): each check evaluates the function twice per element.
    forward, backward = ours(name)
    x = random_array(xp, shape, dtype=widest_real_dtype(xp, device), device=device, seed=3)
    check_gradients(
        lambda x: forward(x, **settings), lambda dy, x: (backward(dy, x, **settings),), [x]
    )


@pytest.mark.parametrize("case", [0, 2], ids=["max_pool1d", "max_pool2d"])
def test_ties_send_the_gradient_to_the_first_maximum(xp, device, real_dtype, case):
    thin_for_jax(xp, case)
    if "jax" in xp.__name__ and real_dtype != widest_real_dtype(xp, device):
        pytest.skip("the JAX session runs a few cases: it compiles each operation per shape")
    # Integers in {0, 1}: most windows hold several maxima, and overlapping
    # windows share them.
    name, shape, settings = CASES[case]
    values = np.random.default_rng(0).integers(0, 2, size=shape).astype(np.float64)
    x = xp.asarray(values, dtype=real_dtype, device=device)
    forward, backward = ours(name)
    dy_shape = output_shape(name, shape, settings)
    dy = random_array(xp, dy_shape, dtype=real_dtype, device=device, seed=4)
    ref_y, ref_dx = torch_reference(name, values, to_numpy(dy), settings)
    assert_close(forward(x, **settings), ref_y, xp=xp, device=device, dtype=real_dtype)
    assert_close(backward(dy, x, **settings), ref_dx, xp=xp, device=device, dtype=real_dtype)


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("max_pool2d", {"kernel_size": 2}),
        ("avg_pool2d", {"kernel_size": 2}),
        ("adaptive_avg_pool2d", {"output_size": 2}),
    ],
)
def test_empty_batch(xp, device, real_dtype, name, settings):
    forward, backward = ours(name)
    x = xp.zeros((0, 2, 4, 4), dtype=real_dtype, device=device)
    y = forward(x, **settings)
    assert tuple(y.shape) == (0, 2, 2, 2)
    dx = backward(xp.zeros((0, 2, 2, 2), dtype=real_dtype, device=device), x, **settings)
    assert tuple(dx.shape) == (0, 2, 4, 4)


def test_settings_and_inputs_are_checked(xp, device):
    x = xp.zeros((1, 2, 5), dtype=xp.float32, device=device)
    with pytest.raises(ValueError, match="at most half of kernel_size"):
        P.max_pool1d(x, 2, padding=2)
    with pytest.raises(ValueError, match="output would be empty"):
        P.max_pool1d(x, 7)
    with pytest.raises(ValueError, match=r"takes \(N, C, H, W\)"):
        P.max_pool2d(x[0, ...], 2)
    with pytest.raises(TypeError, match="kernel_size must be an int"):
        P.avg_pool1d(x, 2.0)
    with pytest.raises(ValueError, match="stride must be at least 1"):
        P.avg_pool1d(x, 2, 0)
    with pytest.raises(ValueError, match="output_size must be at least 1"):
        P.adaptive_avg_pool1d(x, 0)
    with pytest.raises(
        ValueError, match=r"dy must have the shape of the output: expected \(1, 2, 2\)"
    ):
        P.max_pool1d_backward(x, x, 2)
    with pytest.raises(TypeError, match="real floating"):
        P.max_pool1d(xp.zeros((1, 2, 5), dtype=xp.int32, device=device), 2)

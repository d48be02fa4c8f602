"""xpnn.functional.special.erf: its accuracy in ulp (NumPy) and every backend and device."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from array_api_extra.testing import lazy_xp_function, patch_lazy_xp_functions

from xpnn.functional.special import erf
from xpnn.testing import assert_close

# Called from this module, erf refuses to compute on Dask and runs under
# jax.jit on JAX.
lazy_xp_function(erf)

EXTREMES = [
    1e-300,
    5e-324,
    2.2250738585072014e-308,
    1e-8,
    0.46875,
    0.5,
    math.nextafter(0.5, 1.0),
    4.0,
    math.nextafter(4.0, 5.0),
    5.9,
    6.0,
    26.5,
    27.0,
    27.3,
    1e300,
]
# Measured on the grid and extremes below: 2 ulp in float64, 3 in float32.
ULP_BOUND = {np.float64: 2.0, np.float32: 3.0}


def ulps(got: np.ndarray, want: np.ndarray, dtype: type[np.floating[Any]]) -> np.ndarray:
    """``|got - want|`` in units of the spacing of ``want`` in ``dtype``."""
    spacing = np.spacing(np.abs(want).astype(dtype)).astype(np.float64)
    return np.abs(got.astype(np.float64) - want.astype(np.float64)) / spacing


@pytest.fixture
def lazy(xp: Any, request: pytest.FixtureRequest) -> Iterator[None]:
    with patch_lazy_xp_functions(request, xp=xp):
        yield


@pytest.mark.backend("numpy")
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_erf_within_a_few_ulp_of_math_erf(dtype):
    grid = np.linspace(-10.0, 10.0, 2_000_001)
    x = np.concatenate([grid, EXTREMES, [-v for v in EXTREMES]])
    if dtype is np.float32:
        x = x[np.abs(x) < 1e30].astype(np.float32)
    # math.erf of the float32 input, rounded to float32, for float32.
    want = np.array([math.erf(float(v)) for v in x]).astype(dtype)
    got = erf(x)
    assert got.dtype == dtype
    error = ulps(got, want, dtype)
    worst = int(np.argmax(error))
    assert error[worst] <= ULP_BOUND[dtype], f"{error[worst]} ulp at x = {x[worst]!r}"


@pytest.mark.backend("numpy")
def test_erf_special_values():
    x = np.array([np.inf, -np.inf, 0.0, -0.0, np.nan])
    got = erf(x)
    np.testing.assert_array_equal(got, [1.0, -1.0, 0.0, -0.0, np.nan])
    assert np.signbit(got[3])


@pytest.mark.usefixtures("lazy")
def test_erf_on_every_backend(xp, device, real_dtype):
    values = [-30.0, -6.0, -3.0, -1.0, -0.5, -0.3, -1e-5, 0.0, 0.2, 0.49, 0.51, 2.0, 4.5, 27.0]
    x = xp.reshape(xp.asarray(values, dtype=real_dtype, device=device), (2, 7))
    want = np.array([math.erf(v) for v in values]).reshape(2, 7)
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    assert_close(erf(x), want, **same)
    special = xp.asarray([math.inf, -math.inf, math.nan], dtype=real_dtype, device=device)
    assert_close(erf(special), np.array([1.0, -1.0, np.nan]), **same)


def test_erf_refuses_integers_and_booleans(xp, device):
    for dtype in (xp.int32, xp.bool):
        with pytest.raises(TypeError, match="must have a real floating dtype"):
            erf(xp.zeros((2,), dtype=dtype, device=device))

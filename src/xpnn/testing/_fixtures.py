"""The fixtures of ``xpnn.testing.plugin``, registered only when it is on.

They need the cases of the run (:mod:`xpnn.testing.cases`), not the plugin,
which registers this module.
"""

from __future__ import annotations

from typing import Any

import pytest

from .cases import FLOATING_DTYPES, REAL_DTYPES, XPCase, resolve_case, supported_dtype

__all__ = ["device", "dtype", "real_dtype", "xp", "xp_case"]


@pytest.fixture(scope="session")
def xp_case(request: pytest.FixtureRequest) -> XPCase:
    """Return the backend-device pair under test: its names, namespace and device."""
    backend, device = request.param
    return resolve_case(request.config, backend, device)


@pytest.fixture(scope="session")
def xp(xp_case: XPCase) -> Any:
    """Return the array namespace under test, once per backend-device pair."""
    return xp_case.xp


@pytest.fixture(scope="session")
def device(xp_case: XPCase) -> Any:
    """Return the device under test."""
    return xp_case.device


@pytest.fixture(params=FLOATING_DTYPES)
def dtype(request: pytest.FixtureRequest, xp: Any, device: Any) -> Any:
    """Return each floating dtype the device supports, asked of the inspection API."""
    return supported_dtype(xp, device, request.param)


@pytest.fixture(params=REAL_DTYPES)
def real_dtype(request: pytest.FixtureRequest, xp: Any, device: Any) -> Any:
    """Return float32 and float64, where the device supports them (inspection API)."""
    return supported_dtype(xp, device, request.param)

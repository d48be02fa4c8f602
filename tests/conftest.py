"""Fixtures over the backend matrix described once in ``backends/``.

Selection, by option or environment variable (nox sets the latter):

- ``--backend NAME[,NAME]`` / ``XPNN_BACKEND``: which backends to test;
- ``--device NAME[,NAME]`` / ``XPNN_DEVICE``: which of their devices;
- ``XPNN_REQUIRE_DEVICES=1``: a device that is not present fails instead of
  being skipped.

With no selection every backend and device in the matrix is tried; those
not installed or not present are skipped with the reason. A backend or
device asked for explicitly that is missing fails (as einops does).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from xpnn.testing._matrix import BackendSpec, DeviceSpec, Unavailable, load_matrix, resolve

MATRIX = load_matrix(Path(__file__).resolve().parents[1] / "backends")

FLOATING_DTYPES = ("float32", "float64", "complex64", "complex128")


def _split(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("xpnn", "xpnn backend matrix")
    group.addoption("--backend", help="backends to test, comma-separated (XPNN_BACKEND)")
    group.addoption("--device", help="devices to test, comma-separated (XPNN_DEVICE)")


def _selection(config: pytest.Config) -> tuple[list[tuple[BackendSpec, DeviceSpec]], bool]:
    backends = _split(config.getoption("--backend") or os.environ.get("XPNN_BACKEND"))
    devices = _split(config.getoption("--device") or os.environ.get("XPNN_DEVICE"))
    explicit = backends is not None or devices is not None
    for name in backends or []:
        if name not in MATRIX:
            raise pytest.UsageError(f"unknown backend {name!r}; the matrix has {', '.join(MATRIX)}")
    cases = []
    for spec in MATRIX.values():
        if backends is not None and spec.name not in backends:
            continue
        for device in spec.devices:
            if devices is not None and device.name not in devices:
                continue
            cases.append((spec, device))
    if not cases:
        raise pytest.UsageError(
            f"no backend-device pair matches backend={backends} device={devices}"
        )
    return cases, explicit


def pytest_configure(config: pytest.Config) -> None:
    cases, explicit = _selection(config)
    config.stash[_CASES] = cases
    config.stash[_REQUIRED] = explicit or os.environ.get("XPNN_REQUIRE_DEVICES") == "1"
    # Environment a backend needs (JAX's x64) must exist before its import.
    for spec in {spec.name: spec for spec, _ in cases}.values():
        for key, value in spec.env.items():
            os.environ.setdefault(key, value)


_CASES = pytest.StashKey[list]()
_REQUIRED = pytest.StashKey[bool]()
_RESOLVED: dict[str, Any] = {}


def _label(case: tuple[BackendSpec, DeviceSpec]) -> str:
    return f"{case[0].name}-{case[1].name}"


def _cpu_pairs(config: pytest.Config) -> list[tuple[Any, Any]]:
    """Ordered pairs of CPU backend-devices with at least one side selected."""
    selected = {_label(case) for case in config.stash[_CASES]}
    every = [(spec, dev) for spec in MATRIX.values() for dev in spec.devices if not dev.gpu]
    return [(a, b) for a in every for b in every if _label(a) in selected or _label(b) in selected]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_case" in metafunc.fixturenames:
        cases = metafunc.config.stash[_CASES]
        ids = [_label(case) for case in cases]
        metafunc.parametrize("backend_case", cases, ids=ids, indirect=True, scope="session")
    if "cpu_pair" in metafunc.fixturenames:
        pairs = _cpu_pairs(metafunc.config)
        ids = [f"{_label(a)}-to-{_label(b)}" for a, b in pairs]
        metafunc.parametrize("cpu_pair", pairs, ids=ids, indirect=True, scope="session")


def _resolved(config: pytest.Config, spec: BackendSpec, device: DeviceSpec) -> tuple[Any, ...]:
    """Import a backend-device once; skip (or fail, if it was asked for) when missing."""
    key = _label((spec, device))
    if key not in _RESOLVED:
        try:
            _RESOLVED[key] = (*resolve(spec, device), key)
        except Unavailable as exc:
            _RESOLVED[key] = exc
    found = _RESOLVED[key]
    if isinstance(found, Unavailable):
        selected = key in {_label(case) for case in config.stash[_CASES]}
        if config.stash[_REQUIRED] and selected:
            pytest.fail(f"{found} (it was asked for explicitly)", pytrace=False)
        pytest.skip(str(found))
    return found


@pytest.fixture(scope="session")
def backend_case(request: pytest.FixtureRequest) -> tuple[Any, Any, str]:
    spec, device = request.param
    return _resolved(request.config, spec, device)  # type: ignore[return-value]


@pytest.fixture(scope="session")
def cpu_pair(request: pytest.FixtureRequest) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """``((xp, device, label), (xp, device, label))``: a source and a target on CPU.

    Every ordered pair of CPU backend-devices of the matrix with at least one
    side selected; a side that is not installed skips the pair.
    """
    (a_spec, a_dev), (b_spec, b_dev) = request.param
    return _resolved(request.config, a_spec, a_dev), _resolved(request.config, b_spec, b_dev)


@pytest.fixture(scope="session")
def xp(backend_case: tuple[Any, Any, str]) -> Any:
    """The namespace under test."""
    return backend_case[0]


@pytest.fixture(scope="session")
def device(backend_case: tuple[Any, Any, str]) -> Any:
    """The device under test."""
    return backend_case[1]


def supported_dtype(xp: Any, device: Any, name: str) -> Any:
    """Return ``xp``'s dtype called ``name``, or skip if the device lacks it."""
    available = xp.__array_namespace_info__().dtypes(device=device)
    if name not in available:
        pytest.skip(f"device {device!r} has no {name} (inspection API)")
    return available[name]


@pytest.fixture(params=FLOATING_DTYPES)
def dtype(request: pytest.FixtureRequest, xp: Any, device: Any) -> Any:
    """Each floating dtype the device supports, asked of the inspection API."""
    return supported_dtype(xp, device, request.param)


@pytest.fixture(params=("float32", "float64"))
def real_dtype(request: pytest.FixtureRequest, xp: Any, device: Any) -> Any:
    """Each real floating dtype the device supports."""
    return supported_dtype(xp, device, request.param)

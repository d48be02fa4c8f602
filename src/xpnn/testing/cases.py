"""The backend-device cases of a run of ``xpnn.testing.plugin``.

What the plugin, its fixtures (``xpnn.testing._fixtures``) and a test
suite's ``conftest.py`` share: the case type :class:`XPCase`, case ids, the
dtypes the ``dtype`` fixtures go over, and the queries of the run
(:func:`matrix`, :func:`selected_cases`, :func:`resolve_case`). The plugin
stores its run under :data:`RUN` when it turns on; this module only reads
it, so both the plugin and its fixtures import from here and neither from
the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import pytest

from .matrix import BackendSpec, DeviceSpec

__all__ = [
    "FLOATING_DTYPES",
    "PLUGIN_NAME",
    "REAL_DTYPES",
    "RUN",
    "PluginRun",
    "XPCase",
    "case_id",
    "is_active",
    "matrix",
    "resolve_case",
    "selected_cases",
    "supported_dtype",
]

PLUGIN_NAME = "xpnn.testing.plugin"
#: The dtypes of the ``dtype`` fixture, where the device has them.
FLOATING_DTYPES = ("float32", "float64", "complex64", "complex128")
#: The dtypes of the ``real_dtype`` fixture, where the device has them.
REAL_DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class XPCase:
    """One backend-device pair of the matrix, imported and ready."""

    backend: str
    """Backend name in the matrix (``"torch"``)."""
    device_name: str
    """Device name in the matrix (``"cuda"``)."""
    xp: Any
    """The namespace under test."""
    device: Any
    """The device object under test."""

    @property
    def id(self) -> str:
        """The test id of the pair, ``backend-device``."""
        return f"{self.backend}-{self.device_name}"


def case_id(backend: BackendSpec, device: DeviceSpec) -> str:
    """Return the test id of a backend-device pair, ``"torch-cuda"``."""
    return f"{backend.name}-{device.name}"


class PluginRun(Protocol):
    """What the plugin keeps of a run once it is on, as this module reads it."""

    @property
    def matrix(self) -> dict[str, BackendSpec]:
        """The whole matrix, keyed by backend name."""
        ...

    @property
    def cases(self) -> list[tuple[BackendSpec, DeviceSpec]]:
        """The selected pairs, in matrix order."""
        ...

    def resolve(self, backend: BackendSpec, device: DeviceSpec) -> XPCase:
        """Import a pair once per run; skip or fail when it is missing."""
        ...


#: Where the plugin keeps its run in ``config.stash``; absent while it is off.
RUN = pytest.StashKey[PluginRun]()


def is_active(config: pytest.Config) -> bool:
    """Tell whether the plugin is on in this run."""
    return RUN in config.stash


def _run(config: pytest.Config) -> PluginRun:
    try:
        return config.stash[RUN]
    except KeyError:
        raise RuntimeError(
            f"{PLUGIN_NAME} is not on in this run; turn it on with -p {PLUGIN_NAME}, "
            "--xpnn, --xp-backend/--xp-device, XPNN_BACKEND/XPNN_DEVICE or the ini "
            "option xpnn_plugin = true"
        ) from None


def matrix(config: pytest.Config) -> dict[str, BackendSpec]:
    """Return the whole matrix the plugin reads in this run, keyed by backend name."""
    return _run(config).matrix


def selected_cases(config: pytest.Config) -> list[tuple[BackendSpec, DeviceSpec]]:
    """Return the backend-device pairs this run selected, in matrix order."""
    return list(_run(config).cases)


def resolve_case(config: pytest.Config, backend: BackendSpec, device: DeviceSpec) -> XPCase:
    """Import a backend-device pair once per run; skip or fail when it is missing.

    Parameters
    ----------
    config : pytest.Config
        The run's configuration (``request.config``).
    backend, device : BackendSpec, DeviceSpec
        A pair of :func:`matrix`, selected or not.

    Returns
    -------
    XPCase
        The namespace and the device object.

    Raises
    ------
    pytest.skip.Exception
        If the pair is missing and nothing requires it.
    pytest.fail.Exception
        If the pair is missing, was selected, and either the missing part
        was named explicitly or ``XPNN_REQUIRE_DEVICES=1`` is set.
    RuntimeError
        If the plugin is not on in this run.
    """
    return _run(config).resolve(backend, device)


def supported_dtype(xp: Any, device: Any, name: str) -> Any:
    """Return ``xp``'s dtype called ``name``, or skip if ``device`` lacks it.

    The inspection API (``xp.__array_namespace_info__().dtypes``) decides.

    Parameters
    ----------
    xp : namespace
        The namespace under test.
    device : device
        One of its devices.
    name : str
        A dtype name of the standard (``"float64"``).

    Returns
    -------
    dtype
        ``xp``'s dtype object.

    Raises
    ------
    pytest.skip.Exception
        If the device has no such dtype.
    """
    available = xp.__array_namespace_info__().dtypes(device=device)
    if name not in available:
        pytest.skip(f"device {device!r} has no {name} (inspection API)")
    return available[name]

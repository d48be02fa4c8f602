"""pytest plugin: array API tests over every backend and device of a matrix.

Installing xpnn registers this module with pytest (entry point
``xpnn.testing.plugin`` in the ``pytest11`` group), but it stays off: it adds
its command-line and ini options and nothing else, so a test suite that
does not ask for it runs exactly as before. It turns on when a run asks
for it in any of these ways:

- ``-p xpnn.testing.plugin`` (on the command line, in ``addopts`` or in
  ``PYTEST_ADDOPTS``), ``PYTEST_PLUGINS=xpnn.testing.plugin``, or
  ``pytest_plugins = ["xpnn.testing.plugin"]`` in the root ``conftest.py``;
- ``--xpnn``, ``--xp-backend NAME[,NAME]`` or ``--xp-device NAME[,NAME]``;
- the environment variables ``XPNN_BACKEND`` or ``XPNN_DEVICE``;
- ``xpnn_plugin = true`` in the pytest ini options.

Once on, it provides the fixtures ``xp``, ``device``, ``dtype``,
``real_dtype`` and ``xp_case``, parametrized over the backend-device pairs of
the matrix (the one shipped with xpnn, or the folder named by the ini option
``xpnn_matrix``), and the markers ``skip_xp_backends`` and
``xfail_xp_backends``. See ``docs/testing-plugin.md``.

Selection:

- ``--xp-backend`` / ``XPNN_BACKEND`` and ``--xp-device`` / ``XPNN_DEVICE``
  (comma-separated; an option takes precedence over its variable) keep the
  pairs whose backend and device are listed. Unknown names are a usage
  error that lists the known ones.
- A pair that is not installed or not present is skipped with the reason,
  unless the missing part was named explicitly (the backend, for a library
  that is not installed; the device, for a device that is not present): then
  the test fails, saying what is missing and how to install it.
- ``XPNN_REQUIRE_DEVICES=1`` makes every such skip a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from . import _fixtures
from .cases import (
    FLOATING_DTYPES,
    PLUGIN_NAME,
    REAL_DTYPES,
    RUN,
    XPCase,
    case_id,
    is_active,
    matrix,
    resolve_case,
    selected_cases,
    supported_dtype,
)
from .matrix import (
    BackendSpec,
    DeviceSpec,
    NotInstalled,
    Unavailable,
    default_directory,
    install_hint,
    load_matrix,
    resolve,
)

# The case queries live in .cases, which the fixtures import too; they are
# re-exported here, where conftest files have always found them.
__all__ = [
    "FLOATING_DTYPES",
    "PLUGIN_NAME",
    "REAL_DTYPES",
    "XPCase",
    "case_id",
    "is_active",
    "matrix",
    "resolve_case",
    "selected_cases",
    "supported_dtype",
]

MARKERS = ("skip_xp_backends", "xfail_xp_backends")

_MARKER_HELP = {
    "skip_xp_backends": (
        "skip_xp_backends(*backends, reason, devices=None): skip the test on these "
        "backends of the xpnn matrix (every backend if none is named), only on "
        "these device names if devices is given; reason is required"
    ),
    "xfail_xp_backends": (
        "xfail_xp_backends(*backends, reason, devices=None, strict=None, raises=None): "
        "expect the test to fail on these backends of the xpnn matrix, only on "
        "these device names if devices is given; reason is required"
    ),
}


def _split(value: str | None) -> list[str] | None:
    if not value:
        return None
    names = [part.strip() for part in value.split(",") if part.strip()]
    return names or None


def _named_in(values: Iterable[str] | str | None) -> bool:
    if not values:
        return False
    if isinstance(values, str):
        values = values.split(",")
    return any(value.strip() == PLUGIN_NAME for value in values)


def _requested(config: pytest.Config) -> bool:
    """Tell whether this run asked for the plugin, in any of the documented ways."""
    option = config.option
    if getattr(option, "xpnn", False) or option.xp_backend or option.xp_device:
        return True
    if os.environ.get("XPNN_BACKEND") or os.environ.get("XPNN_DEVICE"):
        return True
    if bool(config.getini("xpnn_plugin")):
        return True
    # An entry point loads this module in every run, so being registered
    # says nothing: look for an explicit request by name instead.
    if _named_in(getattr(config.known_args_namespace, "plugins", None)):
        return True
    if _named_in(os.environ.get("PYTEST_PLUGINS")):
        return True
    return any(
        _named_in(getattr(plugin, "pytest_plugins", None))
        for plugin in config.pluginmanager.get_plugins()
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the plugin's options; they do nothing until the plugin is on."""
    group = parser.getgroup("xpnn", "array API backend matrix (xpnn.testing.plugin)")
    group.addoption(
        "--xpnn",
        action="store_true",
        default=False,
        help="turn on the xp, device, dtype fixtures over every backend and device of the matrix",
    )
    group.addoption(
        "--xp-backend",
        dest="xp_backend",
        metavar="NAME[,NAME]",
        help="backends to test, comma-separated; turns the plugin on (env: XPNN_BACKEND)",
    )
    group.addoption(
        "--xp-device",
        dest="xp_device",
        metavar="NAME[,NAME]",
        help="devices to test, comma-separated; turns the plugin on (env: XPNN_DEVICE)",
    )
    parser.addini(
        "xpnn_plugin",
        type="bool",
        default=False,
        help="turn on xpnn.testing.plugin's fixtures and markers",
    )
    parser.addini(
        "xpnn_matrix",
        type="string",
        default="",
        help="folder of backend *.toml files, relative to the rootdir "
        "(default: the matrix shipped with xpnn)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Turn the plugin on when the run asks for it, and only then."""
    if not _requested(config):
        return
    run = _MatrixRun(config)
    config.stash[RUN] = run
    for name in MARKERS:
        config.addinivalue_line("markers", _MARKER_HELP[name])
    config.pluginmanager.register(run, f"{PLUGIN_NAME}:matrix")
    # Fixtures live in a module of their own: registering it is what makes
    # them exist, so a run that did not ask has no xp fixture at all.
    if not config.pluginmanager.is_registered(_fixtures):
        config.pluginmanager.register(_fixtures, _fixtures.__name__)


@dataclass(frozen=True)
class _Selection:
    backends: list[str] | None
    backends_from: str
    devices: list[str] | None
    devices_from: str


def _selection(config: pytest.Config, known: dict[str, BackendSpec]) -> _Selection:
    backends, backends_from = _split(config.option.xp_backend), "--xp-backend"
    if backends is None:
        backends, backends_from = _split(os.environ.get("XPNN_BACKEND")), "XPNN_BACKEND"
    devices, devices_from = _split(config.option.xp_device), "--xp-device"
    if devices is None:
        devices, devices_from = _split(os.environ.get("XPNN_DEVICE")), "XPNN_DEVICE"
    unknown = [name for name in backends or [] if name not in known]
    if unknown:
        raise pytest.UsageError(
            f"{backends_from}: unknown backend {', '.join(map(repr, unknown))}; "
            f"the matrix has {', '.join(known)}"
        )
    candidates = [known[name] for name in backends] if backends is not None else known.values()
    offered = {d.name for spec in candidates for d in spec.devices}
    unknown = [name for name in devices or [] if name not in offered]
    if unknown:
        if backends is None:
            scope = "the matrix has"
        elif len(backends) == 1:
            scope = f"backend {backends[0]} has"
        else:
            scope = f"backends {', '.join(backends)} have"
        raise pytest.UsageError(
            f"{devices_from}: unknown device {', '.join(map(repr, unknown))}; "
            f"{scope} {', '.join(sorted(offered))}"
        )
    return _Selection(backends, backends_from, devices, devices_from)


class _MatrixRun:
    """The plugin once on: the selected pairs, their fixtures and hooks."""

    def __init__(self, config: pytest.Config) -> None:
        folder = config.getini("xpnn_matrix")
        self.directory = (
            Path(config.rootpath, folder) if folder else default_directory()
        ).resolve()
        self.matrix = load_matrix(self.directory)
        self.selection = _selection(config, self.matrix)
        self.cases = [
            (spec, device)
            for spec in self.matrix.values()
            if self.selection.backends is None or spec.name in self.selection.backends
            for device in spec.devices
            if self.selection.devices is None or device.name in self.selection.devices
        ]
        if not self.cases:
            raise pytest.UsageError(
                f"no backend-device pair matches {self.selection.backends_from}="
                f"{','.join(self.selection.backends or [])} and "
                f"{self.selection.devices_from}={','.join(self.selection.devices or [])}"
            )
        self.require_all = os.environ.get("XPNN_REQUIRE_DEVICES") == "1"
        self._resolved: dict[str, XPCase | Unavailable] = {}
        # A backend's environment (JAX's x64) must be set before its import;
        # values the user set win, and the run's own are removed at its end.
        self._set_env: list[str] = []
        for spec in {spec.name: spec for spec, _ in self.cases}.values():
            for key, value in spec.env.items():
                if key not in os.environ:
                    os.environ[key] = value
                    self._set_env.append(key)

    # -- hooks ---------------------------------------------------------------

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        for key in self._set_env:
            os.environ.pop(key, None)

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        listing = ", ".join(case_id(*case) for case in self.cases)
        return [f"xpnn matrix ({self.directory}): {listing}"]

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "xp_case" in metafunc.fixturenames:
            metafunc.parametrize(
                "xp_case",
                self.cases,
                ids=[case_id(*case) for case in self.cases],
                indirect=True,
                scope="session",
            )

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[Any]) -> None:
        problems: list[str] = []
        for item in items:
            for name in MARKERS:
                for mark in item.iter_markers(name):
                    problem = self._apply(item, name, mark)
                    if problem:
                        problems.append(f"{item.nodeid}: @pytest.mark.{name}: {problem}")
        if problems:
            raise pytest.UsageError("\n".join(problems))

    # -- helpers -------------------------------------------------------------

    def resolve(self, backend: BackendSpec, device: DeviceSpec) -> XPCase:
        key = case_id(backend, device)
        if key not in self._resolved:
            try:
                xp, found = resolve(backend, device)
            except Unavailable as exc:
                self._resolved[key] = exc
            else:
                self._resolved[key] = XPCase(backend.name, device.name, xp, found)
        outcome = self._resolved[key]
        if isinstance(outcome, XPCase):
            return outcome
        why = self._required(backend, device, outcome)
        if why is None:
            pytest.skip(str(outcome))
        if isinstance(outcome, NotInstalled):
            pytest.fail(f"{outcome} ({why})", pytrace=False)
        pytest.fail(f"{outcome}; {install_hint(backend, device)} ({why})", pytrace=False)

    def _required(
        self, backend: BackendSpec, device: DeviceSpec, missing: Unavailable
    ) -> str | None:
        """Why a missing pair must fail rather than skip; ``None`` if it may skip."""
        if (backend, device) not in self.cases:
            return None
        selection = self.selection
        if isinstance(missing, NotInstalled):
            if selection.backends is not None and backend.name in selection.backends:
                return (
                    f"it was asked for with {selection.backends_from}; leave it out "
                    "of the selection to test without it"
                )
        elif selection.devices is not None and device.name in selection.devices:
            return (
                f"device {device.name} was asked for with {selection.devices_from}; "
                "leave it out of the selection to test without it"
            )
        if self.require_all:
            return "XPNN_REQUIRE_DEVICES=1 makes a missing backend or device a failure"
        return None

    def _apply(self, item: Any, name: str, mark: pytest.Mark) -> str | None:
        """Turn one skip/xfail marker into pytest's own; return a problem, if any."""
        allowed = {"reason", "devices"} | ({"strict", "raises"} if name == MARKERS[1] else set())
        extra = sorted(set(mark.kwargs) - allowed)
        if extra:
            return f"unknown argument {', '.join(extra)}; it takes {', '.join(sorted(allowed))}"
        reason = mark.kwargs.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            return "reason='...' is required: say why the backend cannot pass"
        backends = list(mark.args)
        unknown = [b for b in backends if not isinstance(b, str) or b not in self.matrix]
        if unknown:
            return (
                f"unknown backend {', '.join(map(repr, unknown))}; the matrix has "
                f"{', '.join(self.matrix)}"
            )
        devices = mark.kwargs.get("devices")
        if isinstance(devices, str):
            devices = [devices]
        if devices is not None:
            pool = [self.matrix[b] for b in backends] if backends else self.matrix.values()
            offered = {d.name for spec in pool for d in spec.devices}
            wrong = [d for d in devices if d not in offered]
            if wrong:
                return (
                    f"unknown device {', '.join(map(repr, wrong))}; "
                    f"{'they have' if backends else 'the matrix has'} {', '.join(sorted(offered))}"
                )
        if not backends and devices is None:
            return "name at least one backend, or devices=[...]"
        callspec = getattr(item, "callspec", None)
        case = callspec.params.get("xp_case") if callspec is not None else None
        if case is None:
            return "the test does not use the xp fixture (nor device, dtype, real_dtype)"
        backend, device = case
        if backends and backend.name not in backends:
            return None
        if devices is not None and device.name not in devices:
            return None
        if name == MARKERS[0]:
            item.add_marker(pytest.mark.skip(reason=reason))
        else:
            # Left out, strict takes the run's xfail_strict ini option.
            options = {
                k: mark.kwargs[k] for k in ("strict", "raises") if mark.kwargs.get(k) is not None
            }
            item.add_marker(pytest.mark.xfail(reason=reason, **options))
        return None

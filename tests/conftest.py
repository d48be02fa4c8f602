"""xpnn's own fixtures, on top of its pytest plugin.

``xp``, ``device``, ``dtype``, ``real_dtype`` and the selection by
``--xp-backend`` / ``--xp-device`` (or ``XPNN_BACKEND`` / ``XPNN_DEVICE``)
come from ``xpnn.testing.plugin``, which ``addopts`` in pyproject.toml turns
on with ``-p``. Only what xpnn alone needs lives here.
"""

from __future__ import annotations

from typing import Any

import pytest

from selection import require_backend
from xpnn.testing.plugin import case_id, matrix, resolve_case, selected_cases


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "backend(name): run only where the run selects backend name (tests of a"
        " framework's own machinery, which every session's environment can import)",
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    # The closest mark decides: a test's own overrides its module's ON_HOST.
    marker = item.get_closest_marker("backend")
    if marker is not None:
        require_backend(item.config, marker.args[0])


def _cpu_pairs(config: pytest.Config) -> list[tuple[Any, Any]]:
    """Ordered pairs of CPU backend-devices with at least one side selected."""
    selected = {case_id(*case) for case in selected_cases(config)}
    every = [(spec, dev) for spec in matrix(config).values() for dev in spec.devices if not dev.gpu]
    return [
        (a, b) for a in every for b in every if case_id(*a) in selected or case_id(*b) in selected
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cpu_pair" in metafunc.fixturenames:
        pairs = _cpu_pairs(metafunc.config)
        ids = [f"{case_id(*a)}-to-{case_id(*b)}" for a, b in pairs]
        metafunc.parametrize("cpu_pair", pairs, ids=ids, indirect=True, scope="session")


@pytest.fixture(scope="session")
def cpu_pair(request: pytest.FixtureRequest) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """``((xp, device, label), (xp, device, label))``: a source and a target on CPU.

    Every ordered pair of CPU backend-devices of the matrix with at least one
    side selected; a side that is not installed skips the pair (or fails it,
    as the plugin decides for a side that was asked for).
    """
    sides = []
    for spec, dev in request.param:
        case = resolve_case(request.config, spec, dev)
        sides.append((case.xp, case.device, case.id))
    return sides[0], sides[1]

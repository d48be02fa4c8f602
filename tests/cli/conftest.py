"""What the tests of the ``xpnn`` command share: running it, and one training run."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., subprocess.CompletedProcess[str]]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xpnn", *args], capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="session")
def xpnn_command() -> Run:
    """``xpnn_command(*args)``: run ``python -m xpnn`` in a new process, capturing its output."""
    return _run


@pytest.fixture(scope="session")
def numpy_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The output folder and the process of ``xpnn train`` with its defaults."""
    output = tmp_path_factory.mktemp("numpy")
    result = _run("train", "--output", str(output))
    assert result.returncode == 0, result.stderr
    return output, result

"""xpnn check: gradient checks and agreement with NumPy, and its failures."""

from __future__ import annotations

import pytest

from selection import ON_HOST
from xpnn import cli

pytestmark = ON_HOST  # the command line names its backend itself


def test_check_passes_on_numpy_and_strict(capsys):
    assert cli.main(["check", "--backend", "numpy,array_api_strict"]) == 0
    out = capsys.readouterr().out
    assert "numpy" in out
    assert "device1" in out
    assert "agrees with numpy float64" in out
    assert "FAIL" not in out
    assert out.strip().splitlines()[-1].endswith(" passed, 0 failed")


def test_check_fails_on_a_wrong_backward(monkeypatch, capsys):
    from xpnn.functional import activations

    monkeypatch.setattr(activations, "relu_backward", lambda dy, x: 2 * dy)
    assert cli.main(["check", "--backend", "numpy"]) == 1
    captured = capsys.readouterr()
    assert "FAIL" in captured.out
    assert "FAIL numpy-cpu float64 relu" in captured.err


def test_a_backend_that_cannot_be_checked_gives_the_reason(xpnn_command):
    from xpnn.cli.backends import describe_backends

    missing = [row["backend"] for row in describe_backends() if row["status"] == "not installed"]
    if not missing:
        pytest.skip("every backend of the matrix is installed here")
    result = xpnn_command("check", "--backend", f"numpy,{missing[0]}")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"xpnn check: error: {missing[0]} is not installed")
    assert "installed backends: numpy" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_a_backend_with_no_device_present_gives_each_reason(monkeypatch, capsys):
    from xpnn.cli import backends
    from xpnn.testing.matrix import Unavailable

    def absent(spec, device):
        raise Unavailable(f"{spec.name} {device.name}: no such device here")

    monkeypatch.setattr(backends, "resolve", absent)
    assert cli.main(["check", "--backend", "numpy"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "xpnn check: error: numpy cpu: no such device here\n"

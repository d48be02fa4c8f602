"""xpnn.cli.backends: backend, device and dtype by name, and what is missing."""

from __future__ import annotations

import pytest

from selection import ON_HOST
from xpnn import cli
from xpnn.cli import backends

pytestmark = ON_HOST  # the command line names its backend itself


def test_missing_device_and_missing_backend(monkeypatch, capsys):
    from xpnn.testing import matrix

    def unavailable(spec, device):
        raise matrix.Unavailable(f"{spec.name} is not installed (No module named x); install it")

    monkeypatch.setattr(backends, "resolve", unavailable)
    assert cli.main(["train", "--backend", "jax"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("xpnn train: error: jax is not installed")
    assert "installed backends:" in err


def test_absent_device_names_the_reason(xpnn_command):
    result = xpnn_command("train", "--backend", "torch", "--device", "cuda")
    if result.returncode == 0:
        pytest.skip("this machine has a CUDA device")
    assert result.returncode == 2
    assert "torch-cuda: not present" in result.stderr
    assert "other devices: cpu" in result.stderr


def test_choose_defaults_to_the_first_device_and_float32():
    choice = backends.choose("numpy")
    assert (choice.backend, choice.device_name, choice.dtype_name) == ("numpy", "cpu", "float32")
    assert choice.xp.asarray([1.0], dtype=choice.dtype).dtype == choice.dtype


def test_describe_backends_has_a_row_per_device():
    rows = backends.describe_backends()
    numpy_rows = [row for row in rows if row["backend"] == "numpy"]
    assert [row["device"] for row in numpy_rows] == ["cpu"]
    assert numpy_rows[0]["status"] == "ok"
    assert set(numpy_rows[0]) == {"backend", "device", "status", "detail", "version"}

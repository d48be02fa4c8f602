"""xpnn check: gradient checks and agreement with NumPy, and its failures."""

from __future__ import annotations

from xpnn import cli


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

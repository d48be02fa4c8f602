"""The xpnn command: train, info, check, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import xpnn
from xpnn import cli
from xpnn.optim import Adam


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xpnn", *args], capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def numpy_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("numpy")
    result = run("train", "--output", str(output))
    assert result.returncode == 0, result.stderr
    return output, result


def test_train_with_defaults_reaches_97_percent(numpy_run):
    output, result = numpy_run
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.97
    assert f"test accuracy {metrics['test_accuracy']:.4f}" in result.stdout
    assert metrics["backend"] == "numpy"
    assert metrics["device"] == "cpu"
    assert metrics["dtype"] == "float32"
    assert len(metrics["train_loss"]) == metrics["epochs"] == 20
    assert metrics["train_loss"][-1] < metrics["train_loss"][0]
    assert metrics["seconds"] > 0
    model = xpnn.load(output / "model.safetensors")
    names = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert names == {"0.weight": (64, 64), "0.bias": (64,), "2.weight": (64, 10), "2.bias": (10,)}
    # The saved model scores what the run reported, on the run's test split.
    _, _, x_test, y_test = cli._digits(metrics["seed"])
    predicted = np.argmax(model(x_test.astype(np.float32)), axis=1)
    assert np.mean(predicted == y_test) == metrics["test_accuracy"]
    optimizer = Adam(model)
    xpnn.load_optimizer(output / "model.safetensors", optimizer)
    assert optimizer.lr == metrics["lr"]
    assert (output / "curves.png").read_bytes().startswith(b"\x89PNG")


def test_train_on_torch_reaches_the_same_accuracy(numpy_run, tmp_path):
    output, _ = numpy_run
    result = run("train", "--backend", "torch", "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr
    ours = json.loads((tmp_path / "metrics.json").read_text())
    theirs = json.loads((output / "metrics.json").read_text())
    assert ours["backend"] == "torch"
    assert ours["test_accuracy"] == theirs["test_accuracy"]
    np.testing.assert_allclose(ours["train_loss"], theirs["train_loss"], rtol=1e-3)


def test_train_on_a_strict_fake_device(tmp_path):
    result = run(
        "train",
        "--backend",
        "array_api_strict",
        "--device",
        "device1",
        "--epochs",
        "2",
        "--output",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "metrics.json").read_text())["device"] == "device1"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--backend", "nope"], "unknown backend 'nope'; choose one of numpy,"),
        (
            ["train", "--backend", "torch", "--device", "tpu"],
            "has no device 'tpu'; it has cpu, cuda",
        ),
        (
            [
                "train",
                "--backend",
                "array_api_strict",
                "--device",
                "no_float64",
                "--dtype",
                "float64",
            ],
            "has no dtype 'float64'; it has float32",
        ),
        (["train", "--epochs", "0"], "expected a positive integer, got 0"),
        (["train", "--lr", "-1"], "expected a positive number, got -1.0"),
        (["train", "--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
        (["train", "--workers", "2"], "--workers need --backend dask, got --backend numpy"),
        (["check", "--backend", "nope"], "unknown backend 'nope'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(args, message):
    result = run(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_device_and_missing_backend(monkeypatch, capsys):
    from xpnn.testing import _matrix

    def unavailable(spec, device):
        raise _matrix.Unavailable(f"{spec.name} is not installed (No module named x); install it")

    monkeypatch.setattr("xpnn._backends.resolve", unavailable)
    assert cli.main(["train", "--backend", "jax"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("xpnn train: error: jax is not installed")
    assert "installed backends:" in err


def test_absent_device_names_the_reason():
    result = run("train", "--backend", "torch", "--device", "cuda")
    if result.returncode == 0:
        pytest.skip("this machine has a CUDA device")
    assert result.returncode == 2
    assert "torch-cuda: not present" in result.stderr
    assert "other devices: cpu" in result.stderr


def test_info_lists_backends_devices_and_dtypes():
    result = run("info")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    numpy_row = next(line for line in lines if line.startswith("numpy "))
    assert "cpu" in numpy_row
    assert "ok" in numpy_row
    assert "default float64, complex128" in numpy_row
    for backend in ("array_api_strict", "torch", "cupy", "jax", "dask"):
        assert any(line.startswith(backend) for line in lines)


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


# -- export ------------------------------------------------------------------------


def test_export_of_a_trained_run_predicts_every_test_digit_alike(numpy_run, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("ndonnx")
    output, _ = numpy_run
    onnx_path = tmp_path / "digits.onnx"
    result = run("export", str(output / "model.safetensors"), str(onnx_path))
    assert result.returncode == 0, result.stderr
    assert "input (batch, 64) float32 -> output (batch, 10) float32" in result.stdout
    assert "checked with onnxruntime on 7 random rows" in result.stdout
    metrics = json.loads((output / "metrics.json").read_text())
    _, _, x_test, y_test = cli._digits(metrics["seed"])
    x_test = x_test.astype(np.float32)
    model = xpnn.load(output / "model.safetensors")
    model.eval()
    expected = np.asarray(model(x_test))
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": x_test})[0]
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
    # Every one of the test digits gets the same class, at the run's accuracy.
    assert len(x_test) == 359
    np.testing.assert_array_equal(np.argmax(logits, axis=1), np.argmax(expected, axis=1))
    assert np.mean(np.argmax(logits, axis=1) == y_test) == metrics["test_accuracy"]


def test_export_with_a_fixed_batch_in_float64(numpy_run, tmp_path, capsys):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("ndonnx")
    output, _ = numpy_run
    onnx_path = tmp_path / "fixed.onnx"
    argv = ["export", str(output / "model.safetensors"), str(onnx_path)]
    assert cli.main([*argv, "--dtype", "float64", "--batch", "5"]) == 0
    assert "input (5, 64) float64 -> output (5, 10) float64" in capsys.readouterr().out
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (feed,) = session.get_inputs()
    assert (feed.shape, feed.type) == ([5, 64], "tensor(double)")
    x = np.random.default_rng(1).standard_normal((5, 64))
    model = xpnn.load(output / "model.safetensors", dtype="float64")
    model.eval()
    np.testing.assert_allclose(session.run(None, {"input": x})[0], model(x), rtol=1e-12)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda path: path.write_text('{"not": "a checkpoint"}'), "is not a valid safetensors"),
        (lambda path: None, "No such file or directory"),
    ],
)
def test_export_of_a_bad_checkpoint_gives_one_line_and_writes_nothing(tmp_path, make, message):
    pytest.importorskip("ndonnx")
    checkpoint = tmp_path / "model.safetensors"
    make(checkpoint)
    result = run("export", str(checkpoint), str(tmp_path / "model.onnx"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("xpnn export: error: cannot export")
    assert message in lines[0]
    assert not (tmp_path / "model.onnx").exists()


def test_export_of_dropout_in_a_checkpoint_is_traced_in_eval_mode(tmp_path, capsys):
    pytest.importorskip("ndonnx")
    model = xpnn.Sequential(xpnn.Linear(3, 4, seed=0), xpnn.Dropout(0.5), xpnn.Linear(4, 2))
    xpnn.save(model, tmp_path / "model.safetensors")
    argv = ["export", str(tmp_path / "model.safetensors"), str(tmp_path / "model.onnx")]
    assert cli.main(argv) == 0
    assert "largest difference" in capsys.readouterr().out


def test_export_without_ndonnx_says_how_to_install(monkeypatch, tmp_path, capsys):
    from xpnn import export

    def missing() -> None:
        raise ImportError('exporting to ONNX needs ndonnx and onnx; pip install "xpnn[onnx]"')

    monkeypatch.setattr(export, "_require", missing)
    argv = ["export", str(tmp_path / "model.safetensors"), str(tmp_path / "model.onnx")]
    assert cli.main(argv) == 2
    assert 'pip install "xpnn[onnx]"' in capsys.readouterr().err
    assert not (tmp_path / "model.onnx").exists()


def test_export_whose_graph_fails_the_check_keeps_the_previous_file(
    numpy_run, tmp_path, monkeypatch, capsys
):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("ndonnx")
    output, _ = numpy_run
    target = tmp_path / "model.onnx"
    target.write_bytes(b"the previous export")

    class Wrong(onnxruntime.InferenceSession):
        """Sessions of the exported graph give outputs off by one (ndonnx's own are left)."""

        def __init__(self, model, *args, **kwargs):
            super().__init__(model, *args, **kwargs)
            # Only the exported graph carries the model's structure as metadata.
            self.wrong = isinstance(model, bytes) and b"xpnn.config" in model

        def run(self, *args, **kwargs):
            outputs = super().run(*args, **kwargs)
            return [value + 1 for value in outputs] if self.wrong else outputs

    monkeypatch.setattr(onnxruntime, "InferenceSession", Wrong)
    assert cli.main(["export", str(output / "model.safetensors"), str(target)]) == 2
    err = capsys.readouterr().err
    assert "the written graph disagrees with the model on 7 random rows" in err
    assert target.read_bytes() == b"the previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]

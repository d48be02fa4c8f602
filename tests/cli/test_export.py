"""xpnn export: a checkpoint of xpnn train to ONNX, checked in onnxruntime before writing."""

from __future__ import annotations

import json

import numpy as np
import pytest

import xpnn
from selection import ON_HOST
from xpnn import cli
from xpnn.cli import data

pytestmark = ON_HOST  # the command line names its backend itself


def test_export_of_a_trained_run_predicts_every_test_digit_alike(xpnn_command, numpy_run, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("ndonnx")
    output, _ = numpy_run
    onnx_path = tmp_path / "digits.onnx"
    result = xpnn_command("export", str(output / "model.safetensors"), str(onnx_path))
    assert result.returncode == 0, result.stderr
    assert "input (batch, 64) float32 -> output (batch, 10) float32" in result.stdout
    assert "checked with onnxruntime on 7 random rows" in result.stdout
    metrics = json.loads((output / "metrics.json").read_text())
    digits = data.digits(metrics["seed"])
    x_test = digits.x_test.astype(np.float32)
    model = xpnn.load(output / "model.safetensors")
    model.eval()
    expected = np.asarray(model(x_test))
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": x_test})[0]
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
    # Every one of the test digits gets the same class, at the run's accuracy.
    assert len(x_test) == 359
    np.testing.assert_array_equal(np.argmax(logits, axis=1), np.argmax(expected, axis=1))
    assert np.mean(np.argmax(logits, axis=1) == digits.y_test) == metrics["test_accuracy"]


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


def test_fixed_batch_needs_a_leading_linear_or_unflatten(tmp_path, capsys):
    pytest.importorskip("ndonnx")
    xpnn.save(xpnn.Sequential(xpnn.Tanh(), xpnn.Tanh()), tmp_path / "model.safetensors")
    argv = ["export", str(tmp_path / "model.safetensors"), str(tmp_path / "model.onnx")]
    assert cli.main([*argv, "--batch", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("xpnn export: error: cannot export")
    assert "--batch needs a model that starts with a Linear or an Unflatten" in err
    assert not (tmp_path / "model.onnx").exists()
    # Images given as rows: the Unflatten tells the width.
    images = xpnn.Sequential(xpnn.Unflatten(1, (2, 3)), xpnn.Flatten(), xpnn.Tanh())
    xpnn.save(images, tmp_path / "images.safetensors")
    argv = ["export", str(tmp_path / "images.safetensors"), str(tmp_path / "images.onnx")]
    assert cli.main([*argv, "--batch", "3"]) == 0
    assert "input (3, 6) float32 -> output (3, 6) float32" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda path: path.write_text('{"not": "a checkpoint"}'), "is not a valid safetensors"),
        (lambda path: None, "No such file or directory"),
    ],
)
def test_export_of_a_bad_checkpoint_gives_one_line_and_writes_nothing(
    xpnn_command, tmp_path, make, message
):
    pytest.importorskip("ndonnx")
    checkpoint = tmp_path / "model.safetensors"
    make(checkpoint)
    result = xpnn_command("export", str(checkpoint), str(tmp_path / "model.onnx"))
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

    monkeypatch.setattr(export, "require_onnx", missing)
    argv = ["export", str(tmp_path / "model.safetensors"), str(tmp_path / "model.onnx")]
    assert cli.main(argv) == 2
    assert 'pip install "xpnn[onnx]"' in capsys.readouterr().err
    assert not (tmp_path / "model.onnx").exists()


def test_without_onnxruntime_the_graph_is_not_checked(monkeypatch):
    pytest.importorskip("ndonnx")
    import sys

    from xpnn.cli.export import check_with_onnxruntime
    from xpnn.export import build_onnx

    model = xpnn.Linear(3, 2, seed=0)
    proto = build_onnx(model)
    # After tracing: ndonnx itself imports onnxruntime.
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    message = check_with_onnxruntime(model, proto)
    assert message == "not checked: onnxruntime is not installed (pip install 'xpnn[onnx]')"


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
    argv = ["export", str(output / "model.safetensors"), str(target), "--force"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "the written graph disagrees with the model on 7 random rows" in err
    assert target.read_bytes() == b"the previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def _checkpoint(folder):
    path = folder / "model.safetensors"
    xpnn.save(xpnn.Linear(3, 2, seed=0), path)
    return path, path.read_bytes()


@pytest.mark.parametrize("link", [None, "symlink", "hardlink"])
def test_export_never_writes_over_its_checkpoint(xpnn_command, tmp_path, link):
    checkpoint, saved = _checkpoint(tmp_path)
    output = tmp_path / "same.safetensors"
    if link == "symlink":
        output.symlink_to(checkpoint)
    elif link == "hardlink":
        output.hardlink_to(checkpoint)
    else:
        output = tmp_path / "." / checkpoint.name
    result = xpnn_command("export", str(checkpoint), str(output), "--force")
    assert result.returncode == 2
    assert result.stderr == (
        f"xpnn export: error: the output {output} is the checkpoint being exported; give "
        f"another path, such as {checkpoint.with_suffix('.onnx')}\n"
    )
    assert checkpoint.read_bytes() == saved


def test_export_keeps_an_existing_output_unless_forced(xpnn_command, tmp_path):
    checkpoint, _ = _checkpoint(tmp_path)
    output = tmp_path / "model.onnx"
    output.write_bytes(b"the previous export")
    result = xpnn_command("export", str(checkpoint), str(output))
    assert result.returncode == 2
    assert result.stderr == (
        f"xpnn export: error: the output {output} exists; give another path, or --force "
        "to replace it\n"
    )
    assert output.read_bytes() == b"the previous export"
    pytest.importorskip("ndonnx")
    onnx = pytest.importorskip("onnx")
    result = xpnn_command("export", str(checkpoint), str(output), "--force")
    assert result.returncode == 0, result.stderr
    assert [value.name for value in onnx.load(output).graph.input] == ["input"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.safetensors"]


@pytest.mark.parametrize("where", ["folder", "missing folder"])
def test_export_refuses_an_output_it_could_not_write_before_exporting(
    xpnn_command, tmp_path, where
):
    checkpoint, _ = _checkpoint(tmp_path)
    output = tmp_path / "exports"
    if where == "folder":
        output.mkdir()
        expected = f"the output {output} is a folder, expected a file path"
    else:
        output = output / "model.onnx"
        expected = f"the output's folder {output.parent} does not exist"
    result = xpnn_command("export", str(checkpoint), str(output), "--force")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"xpnn export: error: {expected}")
    assert ".tmp" not in line


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory):
    """The run folder of ``xpnn train --task mnist --model cnn-bn``, built through the library.

    The model of the command (:func:`xpnn.cli.models.cnn`) after one training step on random
    images rather than epochs of MNIST (so that its running statistics are no longer the
    initial ones), saved with its optimizer as the command saves it.
    """
    from xpnn.cli.backends import choose
    from xpnn.cli.models import cnn

    folder = tmp_path_factory.mktemp("cnn-run")
    model = cnn(choose("numpy"), (1, 28, 28), 10, seed=0, batch_norm=True)
    optimizer = xpnn.optim.Adam(model, lr=1e-3)
    rng = np.random.default_rng(0)
    x = rng.random((8, 784), dtype=np.float32)
    y = rng.integers(0, 10, size=8)
    loss = xpnn.CrossEntropyLoss()
    xpnn.fit(model, loss, optimizer, x, y, epochs=1, batch_size=8, progress=False)
    xpnn.save(model, folder / "model.safetensors", optimizer=optimizer)
    return folder


def test_export_of_a_cnn_run(cnn_run, tmp_path, capsys):
    """The command runs the graph against the model before writing: that is the comparison."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("ndonnx")
    checkpoint = cnn_run / "model.safetensors"
    model = xpnn.load(checkpoint)
    assert [type(layer).__name__ for layer in model.children()][:3] == [
        "Unflatten",
        "Conv2d",
        "BatchNorm2d",
    ]
    running_mean = np.asarray(dict(model.named_buffers())["2.running_mean"])
    assert np.any(running_mean != 0)  # stepped: the statistics moved towards the batch's
    onnx_path = tmp_path / "cnn.onnx"
    assert cli.main(["export", str(checkpoint), str(onnx_path)]) == 0
    out = capsys.readouterr().out
    assert "input (batch, 784) float32 -> output (batch, 10) float32" in out
    assert "checked with onnxruntime on 7 random rows: largest difference" in out
    stored = {i.name: i for i in onnx.load(onnx_path).graph.initializer}
    np.testing.assert_array_equal(
        onnx.numpy_helper.to_array(stored["2.running_mean"]), running_mean
    )

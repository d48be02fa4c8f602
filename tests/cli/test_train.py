"""xpnn train: the digits run, its outputs and their checks, its backends and cluster options."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import xpnn
from xpnn.cli import cluster, data, train
from xpnn.cli.backends import SelectionError, choose
from xpnn.optim import SGD, Adam, AdamW
from xpnn.training import History


def test_train_with_defaults_reaches_97_percent(numpy_run):
    output, result = numpy_run
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.97
    assert f"test accuracy {metrics['test_accuracy']:.4f}" in result.stdout
    assert "training 64-unit MLP on 1438 digits with numpy (cpu, float32)" in result.stdout
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
    digits = data.digits(metrics["seed"])
    predicted = np.argmax(model(digits.x_test.astype(np.float32)), axis=1)
    assert np.mean(predicted == digits.y_test) == metrics["test_accuracy"]
    optimizer = Adam(model)
    xpnn.load_optimizer(output / "model.safetensors", optimizer)
    assert optimizer.lr == metrics["lr"]
    assert (output / "curves.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.backend("torch")
def test_train_on_torch_reaches_the_same_accuracy(xpnn_command, numpy_run, tmp_path):
    output, _ = numpy_run
    result = xpnn_command("train", "--backend", "torch", "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr
    ours = json.loads((tmp_path / "metrics.json").read_text())
    theirs = json.loads((output / "metrics.json").read_text())
    assert ours["backend"] == "torch"
    assert ours["test_accuracy"] == theirs["test_accuracy"]
    np.testing.assert_allclose(ours["train_loss"], theirs["train_loss"], rtol=1e-3)


def test_train_on_a_strict_fake_device(xpnn_command, tmp_path):
    result = xpnn_command(
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


def test_digits_split_is_the_seeds():
    first, again, other = data.digits(0), data.digits(0), data.digits(1)
    assert (first.features, first.classes, first.name) == (64, 10, "digits")
    assert len(first.x_train) + len(first.x_test) == 1797
    np.testing.assert_array_equal(first.x_test, again.x_test)
    assert not np.array_equal(first.y_test, other.y_test)
    assert first.x_train.min() >= 0.0
    assert first.x_train.max() <= 1.0


def test_digits_without_scikit_learn_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(SelectionError, match=r"needs scikit-learn.*pip install 'xpnn\[demo\]'"):
        data.digits(0)


@pytest.mark.parametrize(("name", "kind"), [("sgd", SGD), ("adam", Adam), ("adamw", AdamW)])
def test_every_optimizer_name(name, kind):
    assert set(train.OPTIMIZERS) == {"sgd", "adam", "adamw"}
    model = xpnn.Linear(2, 2, seed=0)
    optimizer = train.make_optimizer(name, model, 0.1)
    assert type(optimizer) is kind
    assert optimizer.lr == 0.1


def test_labels_go_to_the_index_dtype():
    choice = choose("numpy", dtype="float32")
    x = train.to_device(choice, np.zeros((2, 3)))
    y = train.to_device(choice, np.array([1, 2]), integral=True)
    assert (x.dtype, y.dtype) == (np.float32, np.int64)


@pytest.mark.parametrize(
    ("backend", "options", "message"),
    [
        ("numpy", {"workers": 2}, "--workers need --backend dask, got --backend numpy"),
        (
            "torch",
            {"scheduler": "tcp://x:1", "threads": 1},
            "--scheduler and --threads need --backend dask",
        ),
        ("dask", {"scheduler": "tcp://x:1", "workers": 2}, "with --scheduler the cluster"),
    ],
)
def test_cluster_options_that_do_not_fit(backend, options, message):
    given = {"scheduler": None, "workers": None, "threads": None, **options}
    with pytest.raises(SelectionError, match=message):
        cluster.check_options(backend, **given)


def test_cluster_options_that_fit():
    cluster.check_options("numpy", None, None, None)
    cluster.check_options("dask", None, 3, 2)
    cluster.check_options("dask", "tcp://x:1", None, None)


def test_cluster_description_and_metrics():
    found = cluster.Cluster("tcp://127.0.0.1:1", workers=2, threads=2, joined=False)
    assert found.describe() == "on a local Dask cluster at tcp://127.0.0.1:1: 2 workers, 2 threads"
    assert found.as_dict() == {"scheduler": "tcp://127.0.0.1:1", "workers": 2, "threads": 2}


# The output folder: checked before any training, refused with one line and exit 2.


def _one_error_line(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("xpnn train: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    # Refused before the data were loaded or a step was taken.
    assert "training" not in result.stdout


def test_output_that_is_a_file_is_refused_before_training(xpnn_command, tmp_path):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    result = xpnn_command("train", "--epochs", "1", "--output", str(target))
    _one_error_line(result, f"--output {target} is a file, expected a directory")
    assert target.read_text() == "not a folder"


def test_output_under_a_file_is_refused_before_training(xpnn_command, tmp_path):
    (tmp_path / "file").write_text("")
    target = tmp_path / "file" / "run"
    result = xpnn_command("train", "--epochs", "1", "--output", str(target))
    _one_error_line(result, "lies under a file, expected a directory path")


def test_output_that_cannot_be_written_is_refused_before_training(xpnn_command, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("this user (root?) may write into a folder of mode 0o500")
        result = xpnn_command("train", "--epochs", "1", "--output", str(locked / "run"))
        _one_error_line(result, "cannot be created", "give a folder you can write to")
        result = xpnn_command("train", "--epochs", "1", "--output", str(locked))
        _one_error_line(result, "is not writable")
    finally:
        locked.chmod(0o700)


def test_output_whose_model_file_is_a_folder_is_refused(xpnn_command, tmp_path):
    (tmp_path / "model.safetensors").mkdir()
    result = xpnn_command("train", "--epochs", "1", "--output", str(tmp_path))
    _one_error_line(result, "model.safetensors is not a regular file")


def test_empty_output_is_refused(xpnn_command, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "xpnn", "train", "--epochs", "1", "--output", ""],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    _one_error_line(result, "expected a directory path, got ''")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_holding_a_run_needs_force_and_force_overwrites(xpnn_command, tmp_path):
    first = xpnn_command("train", "--epochs", "1", "--output", str(tmp_path))
    assert first.returncode == 0, first.stderr
    before = (tmp_path / "model.safetensors").read_bytes()
    refused = xpnn_command("train", "--epochs", "2", "--output", str(tmp_path))
    _one_error_line(refused, "already holds a run", "--force", f"--resume {tmp_path}")
    assert (tmp_path / "model.safetensors").read_bytes() == before
    forced = xpnn_command("train", "--epochs", "2", "--force", "--output", str(tmp_path))
    assert forced.returncode == 0, forced.stderr
    metrics = train.read_run(tmp_path)
    assert (metrics["status"], metrics["epochs_done"], metrics["epochs"]) == ("complete", 2, 2)


# The set of files: metrics.json last, naming the others by size and digest.


def test_the_files_of_a_run_are_one_set(numpy_run):
    output, _ = numpy_run
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["status"] == "complete"
    assert metrics["epochs_done"] == metrics["epochs"]
    assert set(metrics["files"]) == {"model.safetensors", "curves.png"}
    for name, record in metrics["files"].items():
        content = (output / name).read_bytes()
        assert record == {"bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
    assert sorted(p.name for p in output.iterdir()) == sorted(train.RUN_FILES)


def test_a_mismatched_set_is_told_apart(tmp_path, xpnn_command):
    result = xpnn_command("train", "--epochs", "1", "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert train.read_run(tmp_path)["epochs_done"] == 1
    # A model from another run, as a reader would see between two renames.
    with (tmp_path / "model.safetensors").open("ab") as file:
        file.write(b" ")
    with pytest.raises(SelectionError, match=r"model.safetensors does not match metrics.json"):
        train.read_run(tmp_path)


def test_leftovers_of_a_killed_save_are_cleaned_up_by_the_next_run(xpnn_command, tmp_path):
    stale = tmp_path / ".model.safetensors.0123456789abcdef.tmp"
    stale.write_bytes(b"half a checkpoint")
    staging = tmp_path / ".xpnn-staging-0123456789abcdef"
    staging.mkdir()
    (staging / "model.safetensors").write_bytes(b"never committed")
    mine = tmp_path / ".notes.txt.0123456789abcdef.tmp"
    mine.write_text("not ours")
    result = xpnn_command("train", "--epochs", "1", "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert not stale.exists()
    assert not staging.exists()
    assert mine.exists()


def test_metrics_json_is_strict_json_with_null_for_non_finite_numbers(tmp_path):
    model = xpnn.Linear(2, 2, seed=0)
    metrics = {"test_loss": float("nan"), "train_loss": [1.0, float("inf")], "epochs": 2}
    train.write_outputs(tmp_path, metrics, model, Adam(model), History())

    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    written = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=refuse)
    assert written["test_loss"] is None
    assert written["train_loss"] == [1.0, None]


# Divergence: non-finite settings refused, a diverging run stops with exit 1.


@pytest.mark.parametrize("value", ["inf", "nan", "1e400", "Infinity"])
def test_non_finite_learning_rates_are_refused(xpnn_command, tmp_path, value):
    result = xpnn_command("train", f"--lr={value}", "--output", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "argument --lr: expected a positive finite number" in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_diverging_run_exits_1_and_keeps_the_good_run(xpnn_command, tmp_path):
    good = xpnn_command("train", "--epochs", "1", "--output", str(tmp_path))
    assert good.returncode == 0, good.stderr
    before = {name: (tmp_path / name).read_bytes() for name in train.RUN_FILES}
    result = xpnn_command(
        "train", "--epochs", "3", "--lr", "1e308", "--force", "--output", str(tmp_path)
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "RuntimeWarning" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("xpnn train: error: training diverged: the mean loss of epoch 1 is ")
    assert "lower the learning rate" in line
    assert f"nothing written to {tmp_path}" in line
    after = {name: (tmp_path / name).read_bytes() for name in train.RUN_FILES}
    assert after == before


def test_the_writability_check_says_what_failed(tmp_path, monkeypatch):
    # The same checks as the chmod test above, by a failing file system, so
    # that they run as root too.
    import tempfile

    def refuse(*args, **options):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    with pytest.raises(SelectionError, match=r"is not writable \(Permission denied\); give a"):
        train.prepare_output(tmp_path)
    monkeypatch.setattr(type(tmp_path), "mkdir", refuse)
    with pytest.raises(SelectionError, match=r"cannot be created \(Permission denied\)"):
        train.prepare_output(tmp_path / "new")

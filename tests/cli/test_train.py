"""xpnn train: the digits run, its outputs and their checks, its backends and cluster options."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import xpnn
from selection import ON_HOST
from xpnn.cli import cluster, data, run_files, train
from xpnn.cli.backends import SelectionError, choose, to_device
from xpnn.optim import SGD, Adam, AdamW

pytestmark = ON_HOST  # the command line names its backend itself


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
    x = to_device(choice, np.zeros((2, 3)))
    y = to_device(choice, np.array([1, 2]), integral=True)
    assert (x.dtype, y.dtype) == (np.float32, np.int64)


@pytest.mark.parametrize(
    ("backend", "options", "message"),
    [
        ("numpy", {"workers": 2}, "--workers needs --backend dask, got --backend numpy"),
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
    # A digits run: every run file but words.png, which belongs to runs on texts.
    drawn = [name for name in run_files.RUN_FILES if name != "words.png"]
    before = {name: (tmp_path / name).read_bytes() for name in drawn}
    result = xpnn_command(
        "train", "--epochs", "3", "--lr", "1e308", "--force", "--output", str(tmp_path)
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "RuntimeWarning" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("xpnn train: error: training diverged: the loss of step ")
    assert " of epoch 1 is " in line
    assert "lower the learning rate" in line
    assert f"nothing written to {tmp_path}" in line
    after = {name: (tmp_path / name).read_bytes() for name in drawn}
    assert after == before

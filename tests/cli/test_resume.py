"""xpnn train --resume: an interrupted run, continued, ends where the uninterrupted one does.

The interruption is a real SIGINT that the run sends itself at an exact
step boundary: :func:`xpnn.cli.train.fit` is wrapped so that its
``should_stop`` question number N raises the signal first. The oracle is
the same run, uninterrupted.
"""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
from safetensors.numpy import load_file

from selection import ON_HOST
from xpnn.cli import main, run_files, train

pytestmark = ON_HOST  # the command line names its backend itself

# 1438 training rows in batches of 32: 45 steps an epoch. fit asks
# should_stop before each epoch and after each step, so question 70 falls
# in the middle of epoch 2.
MID_EPOCH_2 = 70


def _interrupt_at(monkeypatch, question):
    real_fit = train.fit

    def fit(*args, should_stop, **options):
        asked = 0

        def stop():
            nonlocal asked
            asked += 1
            if asked == question:
                os.kill(os.getpid(), signal.SIGINT)
            return should_stop()

        return real_fit(*args, should_stop=stop, **options)

    monkeypatch.setattr(train, "fit", fit)


def _metrics(directory):
    return json.loads((directory / "metrics.json").read_text())


def _run(*args):
    return main(["train", "--no-progress", *args])


def _compare(resumed, whole, rtol):
    ours, theirs = _metrics(resumed), _metrics(whole)
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss"):
        if rtol == 0:
            assert ours[key] == theirs[key], key
        else:
            np.testing.assert_allclose(ours[key], theirs[key], rtol=rtol, err_msg=key)
    assert (ours["status"], ours["epochs_done"]) == ("complete", theirs["epochs"])
    # Parameters and optimizer buffers alike.
    tensors, reference = (
        load_file(resumed / "model.safetensors"),
        load_file(whole / "model.safetensors"),
    )
    assert tensors.keys() == reference.keys()
    for name, value in reference.items():
        if rtol == 0:
            np.testing.assert_array_equal(tensors[name], value, err_msg=name)
        else:
            np.testing.assert_allclose(tensors[name], value, rtol=rtol, atol=1e-7, err_msg=name)


def _interrupted_then_resumed(monkeypatch, tmp_path, capsys, *settings):
    whole, parted = tmp_path / "whole", tmp_path / "parted"
    # What SIGINT did before (a shell's background job starts with it ignored).
    before = signal.getsignal(signal.SIGINT)
    assert _run(*settings, "--epochs", "3", "--output", str(whole)) == 0
    with monkeypatch.context() as patch:
        _interrupt_at(patch, MID_EPOCH_2)
        assert _run(*settings, "--epochs", "3", "--output", str(parted)) == 130
    said = capsys.readouterr().err
    assert f"continue with: xpnn train --resume {parted}" in said
    stopped = _metrics(parted)
    assert (stopped["status"], stopped["epochs_done"], stopped["epochs"]) == ("interrupted", 1, 3)
    assert len(stopped["train_loss"]) == 1
    # The handlers from before are back once the run returns.
    assert signal.getsignal(signal.SIGINT) is before
    assert _run("--resume", str(parted)) == 0
    return parted, whole


def test_interrupted_and_resumed_equals_the_whole_run_bit_for_bit(monkeypatch, tmp_path, capsys):
    parted, whole = _interrupted_then_resumed(monkeypatch, tmp_path, capsys, "--dtype", "float64")
    _compare(parted, whole, rtol=0)


@pytest.mark.backend("torch")
def test_interrupted_and_resumed_on_torch_float32(monkeypatch, tmp_path, capsys):
    parted, whole = _interrupted_then_resumed(
        monkeypatch, tmp_path, capsys, "--backend", "torch", "--device", "cpu"
    )
    assert _metrics(parted)["backend"] == "torch"
    _compare(parted, whole, rtol=1e-6)


def test_a_complete_run_trained_further_equals_the_longer_run(tmp_path):
    longer, extended = tmp_path / "longer", tmp_path / "extended"
    assert _run("--dtype", "float64", "--epochs", "3", "--output", str(longer)) == 0
    assert _run("--dtype", "float64", "--epochs", "2", "--output", str(extended)) == 0
    assert _run("--resume", str(extended), "--epochs", "3") == 0
    _compare(extended, longer, rtol=0)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A complete 1-epoch run, to resume in the wrong ways."""
    output = tmp_path_factory.mktemp("finished")
    assert _run("--epochs", "1", "--lr", "0.01", "--output", str(output)) == 0
    return output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ((), "is complete (1 of 1 epochs); pass --epochs N with N above 1"),
        (("--epochs", "2", "--lr", "0.1"), "--lr 0.1 conflicts with the run in"),
        (("--epochs", "2", "--optimizer", "sgd"), "--optimizer sgd conflicts"),
        (("--epochs", "2", "--force"), "--force and --resume do not go together"),
        (("--epochs", "2", "--output", "elsewhere"), "leave --output out"),
    ],
)
def test_resume_refuses_what_does_not_fit_the_run(xpnn_command, finished, options, message):
    before = (finished / "metrics.json").read_bytes()
    result = xpnn_command("train", "--resume", str(finished), *options)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("xpnn train: error: ")
    assert message in line
    assert (finished / "metrics.json").read_bytes() == before


def test_resume_of_a_folder_without_a_run_is_refused(xpnn_command, tmp_path):
    result = xpnn_command("train", "--resume", str(tmp_path))
    assert result.returncode == 2
    assert "no metrics.json there, so no run to continue" in result.stderr
    assert "Traceback" not in result.stderr


def test_resume_takes_the_settings_of_the_run(finished, tmp_path, capsys):
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in run_files.RUN_FILES:
        if (finished / name).exists():  # words.png belongs to the runs on texts
            (copy / name).write_bytes((finished / name).read_bytes())
    assert _run("--resume", str(copy), "--epochs", "2") == 0
    said = capsys.readouterr().out
    assert f"resuming the run in {copy} after epoch 1 of 2" in said
    assert "adam lr=0.01, 2 epochs" in said
    metrics = _metrics(copy)
    assert (metrics["lr"], metrics["epochs"], metrics["epochs_done"]) == (0.01, 2, 2)
    assert metrics["train_loss"][0] == _metrics(finished)["train_loss"][0]


def test_an_option_given_with_its_default_value_counts_as_given(tmp_path):
    # 20 is --epochs' default: given, it still sets the new total.
    run = tmp_path / "run"
    assert _run("--epochs", "19", "--output", str(run)) == 0
    assert _run("--resume", str(run), "--epochs", "20") == 0
    assert _metrics(run)["epochs_done"] == 20
    # And a default --seed given against the run's is a conflict.
    assert _run("--resume", str(run), "--epochs", "21", "--seed", "0") == 0
    other = tmp_path / "other"
    assert _run("--epochs", "1", "--seed", "5", "--output", str(other)) == 0
    assert _run("--resume", str(other), "--epochs", "2", "--seed", "0") == 2


@pytest.mark.parametrize(
    "damage",
    [
        lambda m: m.pop("epochs_done"),
        lambda m: m.update(files=[1]),
        lambda m: m.pop("files"),
        lambda m: m.pop("hidden"),
        lambda m: m.update(train_loss=None),
        lambda m: m.update(hidden=128),  # the checkpoint no longer fits the model
    ],
)
def test_a_damaged_record_is_refused_in_one_line(xpnn_command, finished, damage, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    metrics = _metrics(copy)
    damage(metrics)
    (copy / "metrics.json").write_text(json.dumps(metrics))
    result = xpnn_command("train", "--resume", str(copy), "--epochs", "2")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("xpnn train: error: ")

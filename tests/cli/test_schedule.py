"""xpnn train --schedule: recorded, saved with the checkpoint, and continued by --resume.

The interruption is a real SIGINT that the run sends itself at an exact
step boundary, as in test_resume.py: fit's ``should_stop`` question number
N raises the signal first. The oracle is the same run, uninterrupted.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file

from xpnn.cli import main, train
from xpnn.cli.parser import build_parser

# 1438 training rows in batches of 32: 45 steps an epoch. fit asks
# should_stop before each epoch and after each step, so question 70 falls
# in the middle of epoch 2.
STEPS_PER_EPOCH = 45
MID_EPOCH_2 = 70

# The xpnn command trains on NumPy whatever the session: one session runs these.
pytestmark = pytest.mark.backend("numpy")


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


def _run(*args):
    return main(["train", "--no-progress", *args])


def _metrics(directory):
    return json.loads((directory / "metrics.json").read_text())


def _records(directory):
    """The checkpoint's optimizer and scheduler records (None where absent)."""
    with safe_open(str(directory / "model.safetensors"), framework="numpy") as file:
        metadata = file.metadata()
    return tuple(
        json.loads(metadata[key]) if key in metadata else None for key in ("optimizer", "scheduler")
    )


def test_the_option_and_its_default():
    parser = build_parser()
    assert parser.parse_args(["train"]).schedule == "none"
    assert parser.parse_args(["train", "--schedule", "onecycle"]).schedule == "onecycle"
    assert train.SCHEDULES == ("none", "cosine", "onecycle")


def test_an_unknown_schedule_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        _run("--schedule", "linear")
    assert exit_.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "argument --schedule: invalid choice: 'linear'" in line


def test_none_is_the_run_without_the_option(tmp_path):
    plain, none = tmp_path / "plain", tmp_path / "none"
    assert _run("--epochs", "2", "--output", str(plain)) == 0
    assert _run("--epochs", "2", "--schedule", "none", "--output", str(none)) == 0
    ours, theirs = _metrics(none), _metrics(plain)
    for key in ("train_loss", "val_loss", "test_loss", "test_accuracy"):
        assert ours[key] == theirs[key], key
    assert ours["schedule"] == theirs["schedule"] == "none"
    optimizer, scheduler = _records(none)
    assert scheduler is None
    assert optimizer["hyperparameters"]["lr"] == 3e-3


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_the_schedule_is_recorded_and_saved(tmp_path, capsys, schedule):
    assert _run("--epochs", "3", "--schedule", schedule, "--output", str(tmp_path)) == 0
    assert f"adam lr=0.003 with a {schedule} schedule, 3 epochs" in capsys.readouterr().out
    assert _metrics(tmp_path)["schedule"] == schedule
    optimizer, scheduler = _records(tmp_path)
    if schedule == "cosine":
        assert scheduler["scheduler"] == "CosineAnnealingLR"
        assert (scheduler["T_max"], scheduler["eta_min"], scheduler["last_epoch"]) == (3, 0.0, 3)
        assert scheduler["base_lr"] == 3e-3
    else:
        total = 3 * STEPS_PER_EPOCH
        assert scheduler["scheduler"] == "OneCycleLR"
        assert (scheduler["max_lr"], scheduler["total_steps"]) == (3e-3, total)
        assert scheduler["last_epoch"] == total
    assert optimizer["hyperparameters"]["lr"] == scheduler["last_lr"]


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_the_rates_are_torchs(tmp_path, schedule):
    torch = pytest.importorskip("torch")
    epochs = 3
    assert _run("--epochs", str(epochs), "--schedule", schedule, "--output", str(tmp_path)) == 0
    parameter = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    optimizer = torch.optim.Adam([parameter], lr=3e-3)
    if schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        steps = epochs
    else:
        steps = epochs * STEPS_PER_EPOCH
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=3e-3, total_steps=steps, cycle_momentum=False
        )
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
    _, record = _records(tmp_path)
    np.testing.assert_allclose(
        record["last_lr"], optimizer.param_groups[0]["lr"], rtol=1e-12, atol=1e-18
    )


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_interrupted_and_resumed_equals_the_whole_run(monkeypatch, tmp_path, capsys, schedule):
    whole, parted = tmp_path / "whole", tmp_path / "parted"
    settings = ("--dtype", "float64", "--epochs", "3", "--schedule", schedule)
    assert _run(*settings, "--output", str(whole)) == 0
    with monkeypatch.context() as patch:
        _interrupt_at(patch, MID_EPOCH_2)
        assert _run(*settings, "--output", str(parted)) == 130
    stopped = _metrics(parted)
    assert (stopped["status"], stopped["epochs_done"], stopped["schedule"]) == (
        "interrupted",
        1,
        schedule,
    )
    # Saved at the end of epoch 1, the schedule with it.
    _, scheduler = _records(parted)
    assert scheduler["last_epoch"] == (1 if schedule == "cosine" else STEPS_PER_EPOCH)
    assert _run("--resume", str(parted)) == 0
    assert "resuming the run" in capsys.readouterr().out

    ours, theirs = _metrics(parted), _metrics(whole)
    assert (ours["status"], ours["epochs_done"], ours["schedule"]) == ("complete", 3, schedule)
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss"):
        assert ours[key] == theirs[key], key
    # The same schedule state and learning rate at the end, and the same tensors.
    assert _records(parted) == _records(whole)
    tensors, reference = (
        load_file(parted / "model.safetensors"),
        load_file(whole / "model.safetensors"),
    )
    assert tensors.keys() == reference.keys()
    for name, value in reference.items():
        np.testing.assert_array_equal(tensors[name], value, err_msg=name)


@pytest.fixture(scope="module")
def scheduled(tmp_path_factory):
    """A complete 1-epoch run with a cosine schedule, to resume in the wrong ways."""
    output = tmp_path_factory.mktemp("scheduled")
    assert _run("--epochs", "1", "--schedule", "cosine", "--output", str(output)) == 0
    return output


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ("--epochs", "2"),
            "--epochs 2 conflicts with the run in {run}: its cosine schedule was made for "
            "--epochs 1; leave --epochs out to finish it, or start a new run with --force",
        ),
        (
            (),
            "the run in {run} is complete (1 of 1 epochs), and its cosine schedule with it; "
            "start a new run with --force to train longer",
        ),
        (
            ("--schedule", "onecycle"),
            "--schedule onecycle conflicts with the run in {run} (--schedule cosine)",
        ),
    ],
)
def test_resume_refuses_what_does_not_fit_the_schedule(scheduled, capsys, options, message):
    capsys.readouterr()
    before = (scheduled / "metrics.json").read_bytes()
    assert _run("--resume", str(scheduled), *options) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("xpnn train: error: ")
    assert message.format(run=scheduled) in line
    assert (scheduled / "metrics.json").read_bytes() == before


def test_a_schedule_against_a_run_without_one_is_refused(tmp_path, capsys):
    assert _run("--epochs", "1", "--output", str(tmp_path)) == 0
    capsys.readouterr()
    assert _run("--resume", str(tmp_path), "--epochs", "2", "--schedule", "cosine") == 2
    assert "--schedule cosine conflicts with the run in" in capsys.readouterr().err


def test_a_run_recorded_before_schedules_resumes_without_one(tmp_path):
    assert _run("--dtype", "float64", "--epochs", "1", "--output", str(tmp_path)) == 0
    metrics = _metrics(tmp_path)
    del metrics["schedule"]  # as xpnn wrote it before --schedule came
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    assert _run("--resume", str(tmp_path), "--epochs", "2") == 0
    resumed = _metrics(tmp_path)
    assert (resumed["schedule"], resumed["epochs_done"]) == ("none", 2)
    assert resumed["train_loss"][0] == metrics["train_loss"][0]


def test_a_scheduled_run_whose_checkpoint_lost_its_schedule_is_refused(tmp_path, capsys):
    from safetensors.numpy import save_file

    assert _run("--epochs", "2", "--schedule", "cosine", "--output", str(tmp_path)) == 0
    metrics = _metrics(tmp_path)
    metrics.update(status="interrupted", epochs_done=1)
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        metrics[key] = metrics[key][:1]
    path = tmp_path / "model.safetensors"
    with safe_open(str(path), framework="numpy") as file:
        metadata = file.metadata()
    del metadata["scheduler"]
    save_file(load_file(path), str(path), metadata=metadata)
    content = path.read_bytes()  # the record read_run checks
    metrics["files"]["model.safetensors"] = {
        "bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    }
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    capsys.readouterr()
    assert _run("--resume", str(tmp_path)) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "does not fit this run" in line
    assert "holds no learning-rate schedule" in line

"""Signals to a running ``xpnn train`` process: the last finished epoch is kept, nothing is torn."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from xpnn.cli import run_files

# Far more epochs than any test waits for: the signal always lands mid-run.
LONG = "5000"

# The xpnn command trains on NumPy whatever the session: one session runs these.
pytestmark = pytest.mark.backend("numpy")


def _start(output, *options):
    process = subprocess.Popen(
        [sys.executable, "-m", "xpnn", "train", "--no-progress", "--output", str(output), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # "training ..." is printed (and flushed) just before the first step.
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("training "), line + process.stderr.read()
    time.sleep(0.3)
    return process


def _finish(process):
    try:
        out, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return process.returncode, out, err


def _no_leftovers(output):
    hidden = [p.name for p in output.iterdir() if p.name.startswith(".")]
    assert hidden == []


@pytest.mark.parametrize(("sent", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_the_last_finished_epoch_and_says_how_to_resume(tmp_path, sent, status):
    process = _start(tmp_path, "--epochs", LONG)
    process.send_signal(sent)
    code, _, err = _finish(process)
    assert code == status, err
    assert "Traceback" not in err
    assert "KeyboardInterrupt" not in err
    assert f"saved to {tmp_path}; continue with: xpnn train --resume {tmp_path}" in err
    metrics = run_files.read_run(tmp_path)  # the set checks out
    assert metrics["status"] == "interrupted"
    # Usually some epochs in; 0 on a slow machine is a valid save too.
    assert 0 <= metrics["epochs_done"] < int(LONG)
    assert len(metrics["train_loss"]) == len(metrics["val_loss"]) == metrics["epochs_done"]
    _no_leftovers(tmp_path)

    # And it resumes, here with a shorter total: one more epoch.
    more = str(metrics["epochs_done"] + 1)
    resumed = subprocess.run(
        [sys.executable, "-m", "xpnn", "train", "--resume", str(tmp_path), "--epochs", more],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    after = run_files.read_run(tmp_path)
    assert (after["status"], after["epochs_done"]) == ("complete", int(more))
    assert after["train_loss"][:-1] == metrics["train_loss"]


# The second signal: at once (the two may arrive as one), a little later, or
# once the first has been heard, while the run stops and saves.
@pytest.mark.parametrize("gap", [0.0, 0.05, "heard"])
def test_a_second_ctrl_c_aborts_at_once_and_tears_nothing(xpnn_command, tmp_path, gap):
    # A complete earlier run in the folder, overwritten with --force.
    earlier = xpnn_command("train", "--epochs", "1", "--output", str(tmp_path))
    assert earlier.returncode == 0, earlier.stderr
    process = _start(tmp_path, "--epochs", LONG, "--force")
    process.send_signal(signal.SIGINT)
    if gap == "heard":
        assert process.stderr is not None
        assert "stopping after this step" in process.stderr.readline()
    else:
        time.sleep(gap)
    process.send_signal(signal.SIGINT)
    code, _, err = _finish(process)
    assert code == 130, err
    assert "Traceback" not in err
    # Either the earlier run, whole, or the interrupted one, whole.
    metrics = run_files.read_run(tmp_path)
    assert (metrics["status"], metrics["epochs_done"]) in {("complete", 1)} | {
        ("interrupted", n) for n in range(int(LONG))
    }
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    _no_leftovers(tmp_path)


def test_a_second_signal_inside_the_commit_waits_for_its_end():
    from xpnn.cli.interrupt import StopRequest, signals_held

    request = StopRequest()
    done = []
    with request.installed():
        signal.raise_signal(signal.SIGINT)  # the first: stop at the next step
        assert request.requested()

        def commit():
            with signals_held():
                signal.raise_signal(signal.SIGTERM)  # the second, mid-commit
                done.append("renamed")
                done.append("metrics.json")

        with pytest.raises(KeyboardInterrupt):
            commit()
        assert done == ["renamed", "metrics.json"]
        assert request.aborted_by == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):  # outside the commit: at once
            signal.raise_signal(signal.SIGINT)


def test_a_failure_after_the_abort_is_the_abort(monkeypatch, capsys):
    # A second Ctrl-C inside a library's import can be swallowed there, and
    # the run then fails on the half-imported module: still the abort, 130.
    import argparse
    import contextlib

    from xpnn.cli import train as command

    def swallowed(args, choice, on, previous, request):
        request(signal.SIGINT, None)
        with contextlib.suppress(KeyboardInterrupt):
            request(signal.SIGINT, None)
        raise AttributeError("module 'matplotlib' has no attribute 'get_data_path'")

    def plain_failure(args, choice, on, previous, request):
        raise AttributeError("a bug, not an abort")

    args = argparse.Namespace(output="run")
    monkeypatch.setattr(command, "_train", swallowed)
    assert command.train(args, None) == 130
    assert "aborted" in capsys.readouterr().err
    monkeypatch.setattr(command, "_train", plain_failure)
    with pytest.raises(AttributeError, match="a bug"):
        command.train(args, None)

"""xpnn.cli.run_files: the output folder checked first, and a run's files written as one set."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

import xpnn
from xpnn.cli import run_files
from xpnn.cli.backends import SelectionError
from xpnn.optim import Adam
from xpnn.training import History

# The xpnn command trains on NumPy whatever the session: one session runs these.
pytestmark = pytest.mark.backend("numpy")


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
    metrics = run_files.read_run(tmp_path)
    assert (metrics["status"], metrics["epochs_done"], metrics["epochs"]) == ("complete", 2, 2)


def test_the_files_of_a_run_are_one_set(numpy_run):
    output, _ = numpy_run
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["status"] == "complete"
    assert metrics["epochs_done"] == metrics["epochs"]
    assert set(metrics["files"]) == {
        "model.safetensors",
        "curves.png",
        "confusion.png",
        "mistakes.png",
    }
    for name, record in metrics["files"].items():
        content = (output / name).read_bytes()
        assert record == {"bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
    # Every file of a digits run; words.png belongs to the runs on texts.
    drawn = set(run_files.RUN_FILES) - {"words.png"}
    assert sorted(p.name for p in output.iterdir()) == sorted(drawn)


def test_a_mismatched_set_is_told_apart(tmp_path, xpnn_command):
    result = xpnn_command("train", "--epochs", "1", "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert run_files.read_run(tmp_path)["epochs_done"] == 1
    # A model from another run, as a reader would see between two renames.
    with (tmp_path / "model.safetensors").open("ab") as file:
        file.write(b" ")
    with pytest.raises(SelectionError, match=r"model.safetensors does not match metrics.json"):
        run_files.read_run(tmp_path)


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
    run_files.write_outputs(tmp_path, metrics, model, Adam(model), History())

    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    written = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=refuse)
    assert written["test_loss"] is None
    assert written["train_loss"] == [1.0, None]


def test_the_writability_check_says_what_failed(tmp_path, monkeypatch):
    # The same checks as the chmod test above, by a failing file system, so
    # that they run as root too.
    import tempfile

    def refuse(*args, **options):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    with pytest.raises(SelectionError, match=r"is not writable \(Permission denied\); give a"):
        run_files.prepare_output(tmp_path)
    monkeypatch.setattr(type(tmp_path), "mkdir", refuse)
    with pytest.raises(SelectionError, match=r"cannot be created \(Permission denied\)"):
        run_files.prepare_output(tmp_path / "new")

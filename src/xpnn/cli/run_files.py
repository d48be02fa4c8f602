"""The folder of a run and its files, written and read as one set.

A run's files are :data:`RUN_FILES`. :func:`prepare_output` checks and
creates the folder before any work; :func:`write_outputs` writes each file
in full under a hidden staging folder, moves them into place by renames,
and writes ``metrics.json`` last, naming the others with their sizes and
SHA-256 digests, as the commit record; :func:`read_run` checks a folder's
set against it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..checkpoint import save
from ..files import atomic_write, sync_directory
from ..layers import Module
from ..optim import LRScheduler, Optimizer
from ..training import History
from .backends import SelectionError
from .interrupt import signals_held
from .plot import Predictions, plot_confusion, plot_curves, plot_mistakes

__all__ = [
    "HISTORY_KEYS",
    "RUN_FILES",
    "output_directory",
    "prepare_output",
    "read_run",
    "write_outputs",
]

#: The files of a run; ``metrics.json`` is the commit record naming the others.
RUN_FILES = (
    "metrics.json",
    "model.safetensors",
    "curves.png",
    "confusion.png",
    "mistakes.png",
    "words.png",
)

#: The per-epoch lists of ``metrics.json``, which ``--resume`` extends.
HISTORY_KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")

#: The hidden folder a run's files are written into before they move into place.
_STAGING_PREFIX = ".xpnn-staging-"


def output_directory(text: str) -> Path:
    """Parse ``--output`` or ``--resume``, for ``type=`` of the argument.

    Parameters
    ----------
    text : str
        The folder as given on the command line.

    Returns
    -------
    pathlib.Path
        The folder.

    Raises
    ------
    argparse.ArgumentTypeError
        For an empty string, which ``Path`` would take for the current
        folder.

    Examples
    --------
    >>> output_directory("runs/a")
    PosixPath('runs/a')
    """
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"expected a directory path, got {text!r}; give a folder such as xpnn-run "
            "(or . for the current folder)"
        )
    return Path(text)


def prepare_output(output: Path, *, resume: bool = False, force: bool = False) -> None:
    """Check that ``output`` can take a run's files, create it, and clean up leftovers.

    Everything is checked before training starts, so that a bad folder
    costs nothing: a file (or a path under one), a folder that cannot be
    created or written, a run file that is not a regular file, or a folder
    that already holds a run.

    Parameters
    ----------
    output : pathlib.Path
        The folder of ``--output``, created with its parents if missing.
    resume : bool, default False
        The run in ``output`` is being continued (``--resume``): it may
        hold one.
    force : bool, default False
        Overwrite a run already in ``output`` (``--force``).

    Raises
    ------
    SelectionError
        For any of the above, with what to do instead.

    Notes
    -----
    Temporary files of a killed earlier run (``.metrics.json.<hex>.tmp``,
    ``.model.safetensors.<hex>.tmp``, ``.curves.png.<hex>.tmp``, the names
    :func:`xpnn.files.atomic_write` gives) and its staging folders
    (``.xpnn-staging-<hex>``) are removed: no complete file is ever among
    them. Two runs into one folder at once are not supported.
    """
    shown = f"--output {output}"
    if output.exists() and not output.is_dir():
        raise SelectionError(
            f"{shown} is a file, expected a directory; give a folder path (missing folders "
            "are created)"
        )
    try:
        output.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise SelectionError(
            f"{shown} lies under a file, expected a directory path; give a folder path whose "
            "parents are folders"
        ) from None
    except OSError as exc:
        raise SelectionError(
            f"{shown} cannot be created ({exc.strerror}); give a folder you can write to"
        ) from None
    try:
        with tempfile.TemporaryFile(dir=output):
            pass
    except OSError as exc:
        raise SelectionError(
            f"{shown} is not writable ({exc.strerror}); give a folder you can write to"
        ) from None
    for name in RUN_FILES:
        path = output / name
        if (path.exists() or path.is_symlink()) and not path.is_file():
            raise SelectionError(
                f"{shown}: {path} is not a regular file (a folder?); remove it or give "
                "another --output"
            )
    held = [name for name in RUN_FILES[:2] if (output / name).exists()]
    if held and not resume and not force:
        raise SelectionError(
            f"{shown} already holds a run ({', '.join(held)}); pass --force to overwrite it, "
            f"--resume {output} to continue it, or give another --output"
        )
    try:
        _remove_leftovers(output)
    except OSError as exc:
        raise SelectionError(
            f"{shown} cannot be listed ({exc.strerror}); give a folder you can read and write"
        ) from None


def _remove_leftovers(output: Path) -> None:
    names = "|".join(re.escape(name) for name in RUN_FILES)
    temporary = re.compile(rf"\.({names})\.[0-9a-f]{{16}}\.tmp")
    for entry in output.iterdir():
        if temporary.fullmatch(entry.name) and entry.is_file():
            entry.unlink(missing_ok=True)
        elif entry.name.startswith(_STAGING_PREFIX) and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def read_run(directory: Path) -> dict[str, Any]:
    """Return the ``metrics.json`` of the run in ``directory``, once its files check out.

    Parameters
    ----------
    directory : pathlib.Path
        A folder written by ``xpnn train``.

    Returns
    -------
    dict
        The run's metrics and settings: ``"status"`` (``"complete"`` or
        ``"interrupted"``), ``"epochs_done"``, ``"epochs"``, the histories,
        ``"files"`` (each other file's ``"bytes"`` and ``"sha256"``), ...

    Raises
    ------
    SelectionError
        If ``metrics.json`` is missing or unreadable, records no status, or
        a file it names is missing or differs from its record (a run killed
        while its files moved into place, or a file changed since).
    """
    shown = f"--resume {directory}"
    path = directory / "metrics.json"
    try:
        metrics = json.loads(path.read_text())
    except FileNotFoundError:
        raise SelectionError(
            f"{shown}: no metrics.json there, so no run to continue; give the --output folder "
            "of an xpnn train run"
        ) from None
    except (OSError, ValueError) as exc:
        raise SelectionError(f"{shown}: metrics.json cannot be read ({exc})") from None
    if not isinstance(metrics, dict) or metrics.get("status") not in ("complete", "interrupted"):
        raise SelectionError(
            f"{shown}: metrics.json records no run status (written by an older xpnn?); only "
            "runs of this version can be continued"
        )
    files = metrics.get("files")
    done = metrics.get("epochs_done")
    if (
        not isinstance(files, dict)
        or "model.safetensors" not in files
        or not isinstance(done, int)
        or isinstance(done, bool)
        or any(not isinstance(metrics.get(key), list) for key in HISTORY_KEYS)
    ):
        raise SelectionError(
            f"{shown}: metrics.json is not the record of an xpnn train run (its 'files', "
            "'epochs_done' or histories are missing or malformed); start a new run with --force"
        )
    for name, record in files.items():
        if _digest(directory / name) != record:
            raise SelectionError(
                f"{shown}: {name} does not match metrics.json (its size or SHA-256 differs, or "
                "it is missing): the run's files are not one set; start a new run with --force"
            )
    return metrics


def _digest(path: Path) -> dict[str, Any] | None:
    try:
        content = path.read_bytes()
    except OSError:
        return None
    return {"bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}


def _strict_json(value: Any) -> Any:
    """Return ``value`` with every NaN or infinite float replaced by None (JSON's null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _strict_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_strict_json(item) for item in value]
    return value


def write_outputs(
    output: Path,
    metrics: dict[str, Any],
    model: Module,
    optimizer: Optimizer,
    history: History,
    *,
    scheduler: LRScheduler | None = None,
    predictions: Predictions | None = None,
    task: dict[str, Any] | None = None,
    pictures: Mapping[str, Callable[[Path], bool]] | None = None,
) -> None:
    """Write the run's files into ``output`` as one set: ``metrics.json`` last, naming the rest.

    ``model.safetensors`` and ``curves.png`` are written in full, each
    synced to disk, into a hidden staging folder in ``output``, then moved
    into place by renames; ``metrics.json`` follows, written atomically,
    with each of them under ``"files"`` (``"bytes"`` and ``"sha256"``). A
    reader sees the previous run's files or the new ones, each complete;
    only in the instant between the renames can it see a mix, which the
    digests in ``metrics.json`` reveal (:func:`read_run`). SIGINT and
    SIGTERM wait for the end of that commit, so a second Ctrl-C never
    stops it halfway. A file of the
    previous run that the new set lacks (``curves.png`` without
    matplotlib) is removed after the commit.

    Parameters
    ----------
    output : pathlib.Path
        The folder, which must exist (:func:`prepare_output`).
    metrics : dict
        What ``metrics.json`` holds; NaN and infinite floats are written as
        ``null``, so the file is strict JSON.
    model, optimizer : Module, Optimizer
        Saved together: :func:`xpnn.load` rebuilds the model on any
        backend, and :func:`xpnn.load_optimizer` resumes training.
    history : History
        The learning curves to draw.
    scheduler : LRScheduler, optional
        The run's learning-rate schedule, saved with the optimizer, for
        :func:`xpnn.checkpoint.load_scheduler`.
    predictions : Predictions, optional
        The test split's labels and probabilities, for ``confusion.png`` and
        (for images) ``mistakes.png``.
    task : dict, optional
        The task's record saved in the checkpoint (``xpnn.save(task=...)``):
        its name, classes and the preparation of its input, for
        ``xpnn predict``.
    pictures : mapping of str to callable, optional
        More pictures of the task, by file name (one of :data:`RUN_FILES`):
        ``draw(path) -> bool``, False when nothing was drawn.
    """
    staging = output / f"{_STAGING_PREFIX}{secrets.token_hex(8)}"
    staging.mkdir()
    try:
        save(
            model,
            staging / "model.safetensors",
            optimizer=optimizer,
            scheduler=scheduler,
            task=task,
        )
        written = ["model.safetensors"]
        if plot_curves(history, staging / "curves.png"):
            written.append("curves.png")
        if predictions is not None:
            if plot_confusion(predictions, staging / "confusion.png"):
                written.append("confusion.png")
            if plot_mistakes(predictions, staging / "mistakes.png"):
                written.append("mistakes.png")
        for name, draw in (pictures or {}).items():
            if draw(staging / name):
                written.append(name)
        files = {name: _digest(staging / name) for name in written}
        record = _strict_json({**metrics, "files": files})
        text = json.dumps(record, indent=2, allow_nan=False) + "\n"
        with signals_held():
            for name in written:
                os.replace(staging / name, output / name)
            sync_directory(output)
            atomic_write(output / "metrics.json", lambda file: file.write(text.encode()))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for name in RUN_FILES[1:]:
        if name not in written:
            (output / name).unlink(missing_ok=True)
    print(f"wrote {', '.join(['metrics.json', *written])} to {output}")

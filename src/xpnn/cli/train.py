"""``xpnn train``: train a model on a data set, then write its metrics, checkpoint and curves.

The data set comes from :func:`load_data` and the model from
:func:`build_model`, so that another task is another function in
:mod:`~xpnn.cli.data` or :mod:`~xpnn.cli.models` and a branch there. With
``--backend dask`` the run happens on a cluster (:mod:`~xpnn.cli.cluster`).

A run's files are a set (:data:`RUN_FILES`), written by
:func:`write_outputs`: each one is written in full under a hidden staging
folder, moved into place by renames, and ``metrics.json``, which names the
others with their sizes and SHA-256 digests, comes last, as the commit
record; :func:`read_run` checks a folder's set against it. Ctrl-C
(SIGINT) or SIGTERM stops training at the next step and saves the last
finished epoch, marked ``"status": "interrupted"``; ``xpnn train --resume
DIR`` continues it to the same end as an uninterrupted run
(:func:`resume_settings`).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from .._version import __version__
from ..checkpoint import CheckpointError, load, load_optimizer, save
from ..files import atomic_write, sync_directory
from ..layers import Module
from ..losses import CrossEntropyLoss
from ..optim import SGD, Adam, AdamW, Optimizer
from ..training import DivergedError, History, evaluate, fit
from . import cluster
from .backends import Choice, SelectionError, choose
from .data import Dataset, digits
from .models import mlp
from .plot import plot_curves

__all__ = [
    "OPTIMIZERS",
    "RESUMED_SETTINGS",
    "RUN_FILES",
    "StopRequest",
    "build_model",
    "load_data",
    "make_optimizer",
    "output_directory",
    "prepare_output",
    "read_run",
    "resume_settings",
    "run",
    "to_device",
    "train",
    "write_outputs",
]

#: The names ``--optimizer`` takes.
OPTIMIZERS = ("sgd", "adam", "adamw")

#: The files of a run; ``metrics.json`` is the commit record naming the others.
RUN_FILES = ("metrics.json", "model.safetensors", "curves.png")

#: The options that ``--resume`` takes from the run's ``metrics.json``
#: (argparse names: ``batch_size`` is ``--batch-size``).
RESUMED_SETTINGS = (
    "backend",
    "device",
    "dtype",
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "hidden",
    "seed",
)

#: The signals that stop a run at the next step; it then exits with 128 +
#: the signal's number, as shells report it (130 for Ctrl-C, 143 for SIGTERM).
_SIGNALS = (signal.SIGINT, signal.SIGTERM)

#: The hidden folder a run's files are written into before they move into place.
_STAGING_PREFIX = ".xpnn-staging-"


def run(args: argparse.Namespace) -> int:
    """Run ``xpnn train`` with the parsed arguments; return the exit status.

    Parameters
    ----------
    args : argparse.Namespace
        The arguments of ``xpnn train`` (see :mod:`xpnn.cli.parser`).

    Returns
    -------
    int
        0 once the run is written; 1 when training diverged (nothing
        written); 128 + the signal's number (130 for Ctrl-C) when a signal
        stopped it.

    Raises
    ------
    SelectionError
        For a backend, device, dtype, cluster or output option that cannot
        be had, or a ``--resume`` folder that holds no run to continue;
        raised before any training, and before the output folder is
        created.
    """
    previous = None
    if getattr(args, "resume", None) is not None:
        previous = read_run(args.resume)
        resume_settings(args, previous)
    choice = choose(args.backend, args.device, args.dtype)
    cluster.check_options(choice.backend, args.scheduler, args.workers, args.threads)
    prepare_output(args.output, resume=previous is not None, force=getattr(args, "force", False))
    if choice.backend != "dask":
        return train(args, choice, previous=previous)
    with cluster.connect(args.scheduler, args.workers, args.threads) as found:
        print(found.describe())
        return train(args, choice, found, previous=previous)


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
    _remove_leftovers(output)


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
    for name, record in metrics.get("files", {}).items():
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


def resume_settings(args: argparse.Namespace, previous: dict[str, Any]) -> None:
    """Give ``args`` the settings of the run being resumed, refusing options that conflict.

    Each of :data:`RESUMED_SETTINGS` is taken from ``previous``. An option
    given with a value other than its default and other than the run's is
    refused, except ``--epochs``, which sets a new total (above the epochs
    done) to train a run further. An option given with its default value
    cannot be told from one left out, so it takes the run's value.
    ``--output`` must be left out or name the same folder, and ``--force``
    does not go with ``--resume``.

    Parameters
    ----------
    args : argparse.Namespace
        The arguments of ``xpnn train --resume DIR``; changed in place, its
        ``output`` set to ``DIR``.
    previous : dict
        What :func:`read_run` returned for ``DIR``.

    Raises
    ------
    SelectionError
        For a conflicting option, or nothing left to train.
    """
    directory: Path = args.resume
    defaults: dict[str, Any] = getattr(args, "option_defaults", {})
    if getattr(args, "force", False):
        raise SelectionError(
            "--force and --resume do not go together: --resume continues the run in its "
            "folder, --force starts a new one over it; give one of them"
        )
    output_given = "output" in defaults and args.output != defaults["output"]
    if output_given and args.output.resolve() != directory.resolve():
        raise SelectionError(
            f"--resume {directory} writes back into {directory}, got --output {args.output}; "
            "leave --output out"
        )
    done = int(previous["epochs_done"])
    for name in RESUMED_SETTINGS:
        given, recorded = getattr(args, name), previous[name]
        explicit = name in defaults and given != defaults[name]
        if name == "epochs" and explicit:
            if given <= done:
                raise SelectionError(
                    f"--epochs {given} is not above the {done} epochs the run in {directory} "
                    "has done; give a larger total, or leave --epochs out"
                )
            continue
        if explicit and given != recorded:
            option = "--" + name.replace("_", "-")
            raise SelectionError(
                f"{option} {given} conflicts with the run in {directory} ({option} {recorded}); "
                "leave it out to continue with the run's settings"
            )
        setattr(args, name, recorded)
    if args.epochs <= done:
        raise SelectionError(
            f"the run in {directory} is complete ({done} of {args.epochs} epochs); pass "
            f"--epochs N with N above {done} to train it further"
        )
    args.output = directory


class StopRequest:
    """A signal handler that asks training to stop at the next step, then to abort.

    The first SIGINT (Ctrl-C) or SIGTERM sets :attr:`signal`, which
    :meth:`requested` reports to :func:`xpnn.fit` (its ``should_stop``); a
    second one raises ``KeyboardInterrupt`` at once. Writes are atomic, so
    aborting leaves the output folder with its previous files or the
    complete new set.

    Attributes
    ----------
    signal : int or None
        The number of the first signal received.
    """

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        """Handle ``signum``: note the first, abort on the second."""
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum
        line = (
            "xpnn train: stopping after this step, then saving the last finished epoch "
            "(press Ctrl-C again to abort without saving)\n"
        )
        # Straight to the descriptor: the signal may have come in the middle
        # of a write to sys.stderr (the progress bar's), and a buffered
        # stream refuses a write from inside its own.
        try:
            os.write(sys.stderr.fileno(), line.encode())
        except (AttributeError, ValueError, OSError):
            print(line, end="", file=sys.stderr, flush=True)

    def requested(self) -> bool:
        """Tell whether a signal asked training to stop."""
        return self.signal is not None

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Handle SIGINT and SIGTERM with this object inside the block; restore the old handlers.

        Outside the main thread, where Python cannot set handlers, nothing
        is installed.
        """
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        old = {number: signal.signal(number, self) for number in _SIGNALS}
        try:
            yield self
        finally:
            for number, handler in old.items():
                signal.signal(number, handler)


def load_data(args: argparse.Namespace) -> Dataset:
    """Return the data set of the run, on the host."""
    return digits(args.seed)


def build_model(args: argparse.Namespace, choice: Choice, data: Dataset) -> Module:
    """Return the model of the run, sized for ``data``, on ``choice``'s backend."""
    return mlp(choice, data.features, data.classes, hidden=args.hidden, seed=args.seed)


def make_optimizer(name: str, model: Module, lr: float) -> Optimizer:
    """Return the optimizer called ``name`` (one of :data:`OPTIMIZERS`) for ``model``.

    SGD gets momentum 0.9: plain SGD at the same learning rate as Adam
    would barely move in the default 20 epochs.
    """
    if name == "sgd":
        return SGD(model, lr=lr, momentum=0.9)
    return (Adam if name == "adam" else AdamW)(model, lr=lr)


def to_device(choice: Choice, host: np.ndarray, integral: bool = False) -> Any:
    """Copy a host array to ``choice``'s backend and device.

    Features take the chosen dtype; labels (``integral=True``) the
    device's default index dtype, which the losses take as class indices.
    """
    info = choice.xp.__array_namespace_info__()
    dtype = info.default_dtypes(device=choice.device)["indexing"] if integral else choice.dtype
    return choice.xp.asarray(host, dtype=dtype, device=choice.device)


def train(
    args: argparse.Namespace,
    choice: Choice,
    on: cluster.Cluster | None = None,
    *,
    previous: dict[str, Any] | None = None,
) -> int:
    """Train, evaluate on the test split, and write the outputs; return the exit status.

    Parameters
    ----------
    args : argparse.Namespace
        The arguments of ``xpnn train``, checked (see :func:`run`).
    choice : Choice
        The backend, device and dtype to train on.
    on : Cluster, optional
        The Dask cluster that ``--backend dask`` trains on.
    previous : dict, optional
        The ``metrics.json`` of the run that ``--resume`` continues; its
        checkpoint is in ``args.output``.

    Returns
    -------
    int
        0 once the run is written; 1 when training diverged (nothing
        written, the folder keeps its previous files); 128 + the signal's
        number (130 for Ctrl-C) when a signal stopped it, after saving the
        last finished epoch, or at once on a second signal.
    """
    request = StopRequest()
    try:
        with request.installed():
            return _train(args, choice, on, previous, request)
    except KeyboardInterrupt:
        print(
            f"xpnn train: aborted; {args.output} holds its previous files or the complete new "
            "run, never part of one",
            file=sys.stderr,
        )
        return 128 + signal.SIGINT


def _train(
    args: argparse.Namespace,
    choice: Choice,
    on: cluster.Cluster | None,
    previous: dict[str, Any] | None,
    request: StopRequest,
) -> int:
    data = load_data(args)
    train_data = to_device(choice, data.x_train), to_device(choice, data.y_train, integral=True)
    test_data = to_device(choice, data.x_test), to_device(choice, data.y_test, integral=True)
    if on is not None:
        # The data live on the workers from here on, sent once.
        train_data, test_data = cluster.persist(*train_data), cluster.persist(*test_data)
    model = build_model(args, choice, data)
    loss = CrossEntropyLoss()
    optimizer = make_optimizer(args.optimizer, model, args.lr)
    history, done, seconds_before = History(), 0, 0.0
    if previous is not None:
        checkpoint = args.output / "model.safetensors"
        _restore(checkpoint, choice, model, optimizer)
        history = _history_of(previous)
        done, seconds_before = int(previous["epochs_done"]), float(previous["seconds"])
        print(f"resuming the run in {args.output} after epoch {done} of {args.epochs}")
    print(
        f"training {args.hidden}-unit MLP on {data.x_train.shape[0]} {data.name} with "
        f"{choice.backend} ({choice.device_name}, {choice.dtype_name}), {args.optimizer} "
        f"lr={args.lr:g}, {args.epochs} epochs of batch {args.batch_size}",
        flush=True,
    )
    start = time.perf_counter()
    try:
        # A diverging NumPy run warns at each overflow; DivergedError says it once.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            new = fit(
                model,
                loss,
                optimizer,
                *train_data,
                epochs=args.epochs,
                batch_size=args.batch_size,
                seed=args.seed,
                validation_data=test_data,
                progress=False if args.no_progress else None,
                initial_epoch=done,
                should_stop=request.requested,
            )
    except DivergedError as exc:
        print(
            f"xpnn train: error: {exc}; nothing written to {args.output}",
            file=sys.stderr,
        )
        return 1
    seconds = seconds_before + time.perf_counter() - start
    history = _joined(history, new)
    done = len(history.loss)
    complete = done == args.epochs
    test_loss, test_accuracy = evaluate(model, loss, *test_data)
    # Integer labels always give an accuracy.
    assert test_accuracy is not None
    rows = data.x_test.shape[0]
    print(
        f"test accuracy {test_accuracy:.4f} ({round(test_accuracy * rows)}/{rows}), "
        f"test loss {test_loss:.4f}, {seconds:.1f} s"
    )
    metrics = {
        "status": "complete" if complete else "interrupted",
        "epochs_done": done,
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "train_loss": history.loss,
        "train_accuracy": history.accuracy,
        "val_loss": history.val_loss,
        "val_accuracy": history.val_accuracy,
        "backend": choice.backend,
        "device": choice.device_name,
        "dtype": choice.dtype_name,
        "seconds": seconds,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "optimizer": args.optimizer,
        "hidden": args.hidden,
        "seed": args.seed,
        "xpnn_version": __version__,
    }
    if on is not None:
        metrics["cluster"] = on.as_dict()
    write_outputs(args.output, metrics, model, optimizer, history)
    if complete:
        return 0
    assert request.signal is not None
    print(
        f"xpnn train: interrupted after epoch {done} of {args.epochs}; saved to {args.output}; "
        f"continue with: xpnn train --resume {args.output}",
        file=sys.stderr,
    )
    return 128 + request.signal


def _restore(checkpoint: Path, choice: Choice, model: Module, optimizer: Optimizer) -> None:
    """Put the parameters and optimizer state of ``checkpoint`` into the run's own."""
    try:
        saved = load(checkpoint)
        for name, value in saved.named_parameters():
            model.set_parameter(name, to_device(choice, np.asarray(value)))
        load_optimizer(checkpoint, optimizer)
    except (CheckpointError, KeyError) as exc:
        raise SelectionError(f"--resume: {checkpoint} does not fit this run: {exc}") from None


def _history_of(metrics: dict[str, Any]) -> History:
    def floats(values: list[float | None]) -> list[float]:
        # metrics.json holds null where a float was not finite.
        return [math.nan if v is None else float(v) for v in values]

    return History(
        loss=floats(metrics["train_loss"]),
        accuracy=list(metrics["train_accuracy"]),
        val_loss=floats(metrics["val_loss"]),
        val_accuracy=list(metrics["val_accuracy"]),
        # Per-epoch seconds are not kept in metrics.json, only the total.
        seconds=[],
    )


def _joined(first: History, second: History) -> History:
    return History(
        loss=first.loss + second.loss,
        accuracy=first.accuracy + second.accuracy,
        val_loss=first.val_loss + second.val_loss,
        val_accuracy=first.val_accuracy + second.val_accuracy,
        seconds=first.seconds + second.seconds,
    )


def _strict_json(value: Any) -> Any:
    """Return ``value`` with every NaN or infinite float replaced by None (JSON's null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _strict_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_strict_json(item) for item in value]
    return value


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back inside the block, and deliver them after it.

    The commit of a run (a few renames and a small ``metrics.json``) takes
    milliseconds; an abort in its middle would leave the new model beside
    the old metrics. Where signals cannot be blocked (Windows) the block
    runs as it is.
    """
    block = getattr(signal, "pthread_sigmask", None)
    if block is None:
        yield
        return
    previous = block(signal.SIG_BLOCK, set(_SIGNALS))
    try:
        yield
    finally:
        block(signal.SIG_SETMASK, previous)


def write_outputs(
    output: Path, metrics: dict[str, Any], model: Module, optimizer: Optimizer, history: History
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
    """
    staging = output / f"{_STAGING_PREFIX}{secrets.token_hex(8)}"
    staging.mkdir()
    try:
        save(model, staging / "model.safetensors", optimizer=optimizer)
        written = ["model.safetensors"]
        if plot_curves(history, staging / "curves.png"):
            written.append("curves.png")
        files = {name: _digest(staging / name) for name in written}
        record = _strict_json({**metrics, "files": files})
        text = json.dumps(record, indent=2, allow_nan=False) + "\n"
        with _signals_held():
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

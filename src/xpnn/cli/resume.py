"""Continuing a run: its settings from ``metrics.json``, its state from the checkpoint.

``xpnn train --resume DIR`` reads the run in ``DIR``
(:func:`xpnn.cli.run_files.read_run`), takes its settings
(:func:`resume_settings`), restores the parameters, the optimizer state and
the learning-rate schedule (:func:`restore`) and the history so far
(:func:`history_of`), and trains on from the last finished epoch.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import CheckpointError, load, load_optimizer, load_scheduler
from ..layers import Module
from ..optim import LRScheduler, Optimizer
from ..training import History
from .backends import Choice, SelectionError, to_device

__all__ = ["RESUMED_SETTINGS", "history_of", "joined", "restore", "resume_settings"]

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
    "schedule",
    "hidden",
    "seed",
    "task",
    "model",
)

#: Settings recorded only since a later version, with the value that runs
#: written before had: their metrics.json may lack them.
_ADDED_SETTINGS = {"schedule": "none", "task": "digits", "model": "mlp"}


def resume_settings(args: argparse.Namespace, previous: dict[str, Any]) -> None:
    """Give ``args`` the settings of the run being resumed, refusing options that conflict.

    Each of :data:`RESUMED_SETTINGS` is taken from ``previous``. An option
    given on the command line (``args.given``, noted by the parser) with a
    value other than the run's is refused, except ``--epochs``, which sets a
    new total (above the epochs done) to train a run further, unless the
    run has a learning-rate schedule, which is made for its own number of
    epochs (``--schedule`` is recorded since it came; a run without it had
    none). ``--output``
    must be left out or name the same folder, and ``--force`` does not go
    with ``--resume``.

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
    given_options: frozenset[str] = getattr(args, "given", frozenset())
    if getattr(args, "force", False):
        raise SelectionError(
            "--force and --resume do not go together: --resume continues the run in its "
            "folder, --force starts a new one over it; give one of them"
        )
    if "output" in given_options and args.output.resolve() != directory.resolve():
        raise SelectionError(
            f"--resume {directory} writes back into {directory}, got --output {args.output}; "
            "leave --output out"
        )
    done = int(previous["epochs_done"])
    previous = {**_ADDED_SETTINGS, **previous}
    missing = [name for name in RESUMED_SETTINGS if name not in previous]
    if missing:
        raise SelectionError(
            f"--resume {directory}: metrics.json records no {', '.join(missing)}; only runs of "
            "xpnn train can be continued, start a new one with --force"
        )
    schedule = previous["schedule"]
    for name in RESUMED_SETTINGS:
        value, recorded = getattr(args, name), previous[name]
        explicit = name in given_options
        if name == "epochs" and explicit and value != recorded and schedule != "none":
            raise SelectionError(
                f"--epochs {value} conflicts with the run in {directory}: its {schedule} "
                f"schedule was made for --epochs {recorded}; leave --epochs out to finish it, "
                "or start a new run with --force"
            )
        if name == "epochs" and explicit:
            if value <= done:
                raise SelectionError(
                    f"--epochs {value} is not above the {done} epochs the run in {directory} "
                    "has done; give a larger total, or leave --epochs out"
                )
            continue
        if explicit and value != recorded:
            option = "--" + name.replace("_", "-")
            raise SelectionError(
                f"{option} {value} conflicts with the run in {directory} ({option} {recorded}); "
                "leave it out to continue with the run's settings"
            )
        setattr(args, name, recorded)
    if args.epochs <= done and schedule != "none":
        raise SelectionError(
            f"the run in {directory} is complete ({done} of {args.epochs} epochs), and its "
            f"{schedule} schedule with it; start a new run with --force to train longer"
        )
    if args.epochs <= done:
        raise SelectionError(
            f"the run in {directory} is complete ({done} of {args.epochs} epochs); pass "
            f"--epochs N with N above {done} to train it further"
        )
    args.output = directory


def restore(
    checkpoint: Path,
    choice: Choice,
    model: Module,
    optimizer: Optimizer,
    scheduler: LRScheduler | None = None,
) -> None:
    """Put the parameters, optimizer state and schedule of ``checkpoint`` into the run's own.

    ``scheduler``, the run's schedule built anew, takes the saved one's
    state after the optimizer: it goes on from the last finished epoch.

    Raises
    ------
    SelectionError
        If the checkpoint does not load or does not fit the run's model.
    """
    try:
        saved = load(checkpoint)
        for name, value in saved.named_parameters():
            model.set_parameter(name, to_device(choice, np.asarray(value)))
        load_optimizer(checkpoint, optimizer)
        if scheduler is not None:
            load_scheduler(checkpoint, scheduler)
    except (CheckpointError, KeyError, OSError, TypeError, ValueError) as exc:
        raise SelectionError(f"--resume: {checkpoint} does not fit this run: {exc}") from None


def history_of(metrics: dict[str, Any]) -> History:
    """Return the history a run's ``metrics.json`` records (``null`` losses as NaN)."""

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


def joined(first: History, second: History) -> History:
    """Return the history of ``first``'s epochs followed by ``second``'s."""
    return History(
        loss=first.loss + second.loss,
        accuracy=first.accuracy + second.accuracy,
        val_loss=first.val_loss + second.val_loss,
        val_accuracy=first.val_accuracy + second.val_accuracy,
        seconds=first.seconds + second.seconds,
    )

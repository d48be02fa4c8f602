"""``xpnn train``: train a model on a data set, then write its metrics, checkpoint and curves.

The data set comes from :func:`load_data` and the model from
:func:`build_model`, so that another task is another function in
:mod:`~xpnn.cli.data` or :mod:`~xpnn.cli.models` and a branch there. With
``--backend dask`` the run happens on a cluster (:mod:`~xpnn.cli.cluster`).

The run's folder and its files, written as one set, are the business of
:mod:`~xpnn.cli.run_files`; Ctrl-C (SIGINT) or SIGTERM stops training at
the next step (:mod:`~xpnn.cli.interrupt`) and saves the last finished
epoch, marked ``"status": "interrupted"``; ``xpnn train --resume DIR``
continues it to the same end as an uninterrupted run
(:mod:`~xpnn.cli.resume`).
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..layers import Module
from ..losses import CrossEntropyLoss
from ..optim import SGD, Adam, AdamW, CosineAnnealingLR, LRScheduler, OneCycleLR, Optimizer
from ..testing import to_numpy
from ..training import DivergedError, History, evaluate, fit
from . import cluster
from .backends import Choice, SelectionError, choose, to_device
from .data import Dataset, digits, mnist_shifted, spoken_digits
from .interrupt import StopRequest
from .models import SEQUENCE_MODELS, SequenceClassifier, cnn, mlp, sequence_model
from .plot import Predictions
from .resume import history_of, joined, restore, resume_settings
from .run_files import prepare_output, read_run, write_outputs
from .sentiment import (
    TEXT_MODELS,
    TextDataset,
    preprocessing,
    sentiment,
    sentiment_for,
    words_picture,
)

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "TASK_DEFAULTS",
    "apply_task_defaults",
    "build_model",
    "load_data",
    "make_optimizer",
    "make_scheduler",
    "run",
    "train",
]

#: The names ``--optimizer`` takes.
OPTIMIZERS = ("sgd", "adam", "adamw")

#: The names ``--schedule`` takes; ``"none"`` keeps ``--lr`` throughout.
SCHEDULES = ("none", "cosine", "onecycle")


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
    else:
        apply_task_defaults(args)
    if args.task in SEQUENCE_TASKS and args.backend == "dask":
        raise SelectionError(
            f"--task {args.task} trains on sequences with their lengths, two inputs, which "
            "the Dask backend does not take; choose another --backend"
        )
    choice = choose(args.backend, args.device, args.dtype)
    cluster.check_options(choice.backend, args.scheduler, args.workers, args.threads)
    prepare_output(args.output, resume=previous is not None, force=getattr(args, "force", False))
    if choice.backend != "dask":
        return train(args, choice, previous=previous)
    with cluster.connect(args.scheduler, args.workers, args.threads) as found:
        print(found.describe())
        return train(args, choice, found, previous=previous)


#: The data sets of ``--task``, by name. MNIST trains on each training image
#: and a shifted copy of it (:func:`~xpnn.cli.data.with_shifted_copy`).
TASKS = {
    "digits": digits,
    "mnist": mnist_shifted,
    "spoken-digits": spoken_digits,
    "sentiment": sentiment,
}
#: The tasks whose samples are sequences, for the sequence models only.
SEQUENCE_TASKS = frozenset({"spoken-digits", "sentiment"})
#: The models of ``--model``; the default depends on the task (:data:`DEFAULT_MODELS`).
MODELS = (
    "mlp",
    "cnn",
    "cnn-bn",
    *SEQUENCE_MODELS,
    *(m for m in TEXT_MODELS if m not in SEQUENCE_MODELS),
)
DEFAULT_MODELS = {
    "digits": "mlp",
    "mnist": "cnn-bn",
    "spoken-digits": "gru",
    "sentiment": "bag",
}
#: The settings whose default depends on the task, where it is not the parser's.
#: For MNIST, chosen by measurement: batch norm, a 1cycle schedule and the
#: shifted copies take the CNN past 98% test accuracy in eight epochs, where
#: the plain CNN with a constant rate stays below it. For the spoken digits,
#: the GRU with a cosine schedule over 30 epochs ends at 99% test accuracy;
#: 20 epochs end at 98.5-99.3% by seed, a 1cycle schedule at 98.2%. For
#: the tweets, 16-wide token vectors, batches of 128 and a cosine schedule
#: over 6 epochs end at 75.9% test accuracy; the model overfits past them.
TASK_DEFAULTS: dict[str, dict[str, object]] = {
    "mnist": {"epochs": 8, "batch_size": 64, "schedule": "onecycle"},
    "spoken-digits": {"epochs": 30, "schedule": "cosine"},
    "sentiment": {"epochs": 6, "batch_size": 128, "schedule": "cosine", "hidden": 16},
}


def apply_task_defaults(args: argparse.Namespace) -> None:
    """Give ``args`` the task's defaults (:data:`TASK_DEFAULTS`) for the options left out."""
    given: frozenset[str] = getattr(args, "given", frozenset())
    for name, value in TASK_DEFAULTS.get(args.task, {}).items():
        if name not in given:
            setattr(args, name, value)


def load_data(args: argparse.Namespace) -> Dataset:
    """Return the data set of the run, on the host."""
    if args.task == "sentiment":
        # The bag model reads word pairs too; the transformer words alone.
        return sentiment_for(args.seed, model_name(args))
    return TASKS[args.task](args.seed)


def model_name(args: argparse.Namespace) -> str:
    """Return the run's model: ``--model``, or the task's default."""
    return str(args.model or DEFAULT_MODELS[args.task])


def build_model(args: argparse.Namespace, choice: Choice, data: Dataset) -> Module:
    """Return the model of the run, sized for ``data``, on ``choice``'s backend.

    Raises
    ------
    SelectionError
        For a convolutional model on data that are no images, or a model
        of sequences on data that are none, and the reverse.
    """
    name = model_name(args)
    if isinstance(data, TextDataset) and data.encoder is not None:
        if name not in TEXT_MODELS:
            raise SelectionError(
                f"--model {name} does not fit --task {args.task}, whose models are "
                f"{', '.join(TEXT_MODELS)}"
            )
        return TEXT_MODELS[name](
            choice, data.encoder.size, data.classes, args.hidden, seed=args.seed
        )
    sequences = data.lengths_train is not None
    if name in TEXT_MODELS and name not in SEQUENCE_MODELS:
        raise SelectionError(f"--model {name} reads texts; it trains on --task sentiment only")
    if (name in SEQUENCE_MODELS) != sequences:
        wanted = ", ".join(SEQUENCE_MODELS) if sequences else "mlp, cnn, cnn-bn"
        raise SelectionError(
            f"--model {name} does not fit --task {args.task}, whose models are {wanted}"
        )
    if sequences:
        return sequence_model(
            name, choice, data.features, data.classes, args.hidden, seed=args.seed
        )
    if name == "mlp":
        return mlp(choice, data.features, data.classes, hidden=args.hidden, seed=args.seed)
    if data.image_shape is None:
        raise SelectionError(f"--model {name} needs images; --task {args.task} has none")
    return cnn(
        choice,
        data.image_shape,
        data.classes,
        seed=args.seed,
        batch_norm=name == "cnn-bn",
    )


def make_optimizer(name: str, model: Module, lr: float) -> Optimizer:
    """Return the optimizer called ``name`` (one of :data:`OPTIMIZERS`) for ``model``.

    SGD gets momentum 0.9: plain SGD at the same learning rate as Adam
    would barely move in the default 20 epochs.
    """
    if name == "sgd":
        return SGD(model, lr=lr, momentum=0.9)
    return (Adam if name == "adam" else AdamW)(model, lr=lr)


def make_scheduler(
    name: str, optimizer: Optimizer, lr: float, epochs: int, steps_per_epoch: int
) -> tuple[LRScheduler | None, str]:
    """Return the schedule called ``name`` (one of :data:`SCHEDULES`) and when fit steps it.

    ``"cosine"`` anneals from ``lr`` to 0 over the run, stepped once per
    epoch (``CosineAnnealingLR(T_max=epochs)``, so epoch ``e`` trains at
    ``lr * (1 + cos(pi * (e - 1) / epochs)) / 2``); ``"onecycle"`` rises
    from ``lr / 25`` to ``lr`` over the first 30% of the steps and falls to
    ``lr / 25e4`` at the last one (``OneCycleLR(max_lr=lr,
    total_steps=epochs * steps_per_epoch)``), stepped after every optimizer
    step; ``"none"`` gives no schedule.

    Returns
    -------
    scheduler : LRScheduler or None
    interval : str
        ``"epoch"`` or ``"step"``, for :func:`xpnn.fit`'s ``scheduler_interval``.
    """
    if name == "cosine":
        return CosineAnnealingLR(optimizer, T_max=epochs), "epoch"
    if name == "onecycle":
        return OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch), "step"
    return None, "step"


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
    except Exception:
        # A second signal that lands inside a library's import (matplotlib's
        # while the pictures are drawn) can be swallowed there, and the run
        # then fails on the half-imported module: after an abort, that
        # failure is the abort's.
        if request.aborted_by is None:
            raise
        return _aborted(args, request)
    except KeyboardInterrupt:
        return _aborted(args, request)


def _aborted(args: argparse.Namespace, request: StopRequest) -> int:
    print(
        f"xpnn train: aborted; {args.output} holds its previous files or the complete new "
        "run, never part of one",
        file=sys.stderr,
    )
    return 128 + (request.aborted_by or signal.SIGINT)


def _train(
    args: argparse.Namespace,
    choice: Choice,
    on: cluster.Cluster | None,
    previous: dict[str, Any] | None,
    request: StopRequest,
) -> int:
    data = load_data(args)
    train_data = (
        _inputs(choice, data.x_train, data.lengths_train),
        to_device(choice, data.y_train, integral=True),
    )
    test_data = (
        _inputs(choice, data.x_test, data.lengths_test),
        to_device(choice, data.y_test, integral=True),
    )
    # Sequences come with their lengths, the second input: each batch is cut
    # to its longest sequence.
    lengths_input = None if data.lengths_train is None else 1
    if on is not None:
        # The data live on the workers from here on, sent once.
        train_data, test_data = cluster.persist(*train_data), cluster.persist(*test_data)
    model = build_model(args, choice, data)
    loss = CrossEntropyLoss()
    # What the optimizer steps and the checkpoint holds: a sequence
    # classifier's layers (xpnn.cli.models.SequenceClassifier), else the model.
    layers = model.body if isinstance(model, SequenceClassifier) else model
    optimizer = make_optimizer(args.optimizer, layers, args.lr)
    steps_per_epoch = math.ceil(data.x_train.shape[0] / args.batch_size)
    scheduler, interval = make_scheduler(
        args.schedule, optimizer, args.lr, args.epochs, steps_per_epoch
    )
    history, done, seconds_before = History(), 0, 0.0
    if previous is not None:
        checkpoint = args.output / "model.safetensors"
        restore(checkpoint, choice, layers, optimizer, scheduler)
        history = history_of(previous)
        done, seconds_before = int(previous["epochs_done"]), float(previous["seconds"])
        print(f"resuming the run in {args.output} after epoch {done} of {args.epochs}")
    print(
        f"training {_model_note(args)} on {data.x_train.shape[0]} {data.name}"
        f"{' (' + data.augmented + ')' if data.augmented else ''} with "
        f"{choice.backend} ({choice.device_name}, {choice.dtype_name}), {args.optimizer} "
        f"lr={args.lr:g}{_schedule_note(args.schedule)}, {args.epochs} epochs of batch "
        f"{args.batch_size}",
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
                scheduler=scheduler,
                scheduler_interval=interval,
                lengths_input=lengths_input,
            )
    except DivergedError as exc:
        print(
            f"xpnn train: error: {exc}; nothing written to {args.output}",
            file=sys.stderr,
        )
        return 1
    seconds = seconds_before + time.perf_counter() - start
    history = joined(history, new)
    done = len(history.loss)
    complete = done == args.epochs
    test_loss, test_accuracy = evaluate(model, loss, *test_data, lengths_input=lengths_input)
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
        "schedule": args.schedule,
        "hidden": args.hidden,
        "seed": args.seed,
        "task": args.task,
        "model": model_name(args),
        "xpnn_version": __version__,
    }
    if on is not None:
        metrics["cluster"] = on.as_dict()
    write_outputs(
        args.output,
        metrics,
        layers,
        optimizer,
        history,
        scheduler=scheduler,
        predictions=_predictions(model, data, test_data[0]),
        task=task_record(args, data),
        pictures=_pictures(args, model, data),
    )
    if complete:
        return 0
    assert request.signal is not None
    print(
        f"xpnn train: interrupted after epoch {done} of {args.epochs}; saved to {args.output}; "
        f"continue with: xpnn train --resume {args.output}",
        file=sys.stderr,
    )
    return 128 + request.signal


def task_record(args: argparse.Namespace, data: Dataset) -> dict[str, object]:
    """Return what the checkpoint records of the run's task, for ``xpnn predict``.

    The task, the model, the name of each class, and how an input is
    prepared: for texts the tokenizer and its word-pair buckets
    (:func:`xpnn.cli.sentiment.preprocessing`), for images their shape.
    """
    record: dict[str, object] = {"task": args.task, "model": model_name(args)}
    if isinstance(data, TextDataset) and data.encoder is not None:
        return {**record, **preprocessing(data.encoder)}
    record["classes"] = [str(label) for label in range(data.classes)]
    if data.image_shape is not None:
        record |= {"input": "image", "image_shape": list(data.image_shape)}
    else:
        record["input"] = "sequence"
    return record


def _pictures(
    args: argparse.Namespace, model: Module, data: Dataset
) -> dict[str, Callable[[Path], bool]]:
    """Return the task's own pictures: ``words.png`` for the bag model of texts."""
    if isinstance(data, TextDataset) and data.encoder is not None and model_name(args) == "bag":
        return {"words.png": words_picture(model, data.encoder)}
    return {}


def _schedule_note(schedule: str) -> str:
    return "" if schedule == "none" else f" with a {schedule} schedule"


def _inputs(choice: Choice, x: np.ndarray, lengths: np.ndarray | None) -> Any:
    """Return ``x`` on the run's device, with ``lengths`` as a second input where given."""
    # Token ids stay integers: the indices of an embedding.
    ids = np.issubdtype(x.dtype, np.integer)
    if lengths is None:
        return to_device(choice, x, integral=ids)
    return to_device(choice, x, integral=ids), to_device(choice, lengths, integral=True)


def _predictions(model: Module, data: Dataset, x_test: Any) -> Predictions:
    """Return the test split's labels and the model's softmax probabilities, on the host."""
    inputs = x_test if isinstance(x_test, tuple) else (x_test,)
    # In eval mode, as evaluate scores: no dropout, a batch norm's running
    # statistics, so the pictures count what the printed accuracy counts.
    was_training = model.training
    model.eval()
    try:
        logits = np.concatenate(
            [
                to_numpy(model(*chunk)).astype(np.float64)
                for chunk in _chunks(inputs, data.lengths_test)
            ]
        )
    finally:
        model.train(was_training)
    shifted = logits - logits.max(axis=1, keepdims=True)
    exps = np.exp(shifted)
    return Predictions(
        labels=data.y_test,
        probabilities=exps / exps.sum(axis=1, keepdims=True),
        images=data.x_test,
        image_shape=data.image_shape,
        # Token ids make no picture: no mistakes.png for texts.
        lengths=None if isinstance(data, TextDataset) else data.lengths_test,
        class_names=data.class_names,
    )


#: Rows of one forward pass of :func:`_predictions`.
PREDICTION_ROWS = 256


def _chunks(inputs: tuple[Any, ...], lengths: np.ndarray | None) -> list[tuple[Any, ...]]:
    """Return sequences in blocks of rows, each cut to its longest; other inputs whole.

    A transformer's attention over the whole test split at once would hold
    rows x heads x steps x steps scores.
    """
    if lengths is None:
        return [inputs]
    blocks = []
    for start in range(0, int(lengths.shape[0]), PREDICTION_ROWS):
        stop = min(start + PREDICTION_ROWS, int(lengths.shape[0]))
        longest = int(lengths[start:stop].max())
        blocks.append(
            tuple(x[start:stop, :longest] if x.ndim >= 2 else x[start:stop] for x in inputs)
        )
    return blocks


#: How the run's first line names each sequence model, given ``--hidden``.
SEQUENCE_NOTES = {
    "gru": "{}-unit GRU",
    "lstm": "{}-unit LSTM",
    "conv": "1-D CNN of {} channels",
    "transformer": "transformer encoder of width {}",
    "bag": "bag of {}-wide token vectors (fastText-style)",
}


def _model_note(args: argparse.Namespace) -> str:
    name = model_name(args)
    if name == "mlp":
        return f"{args.hidden}-unit MLP"
    if name in SEQUENCE_NOTES:
        return SEQUENCE_NOTES[name].format(args.hidden)
    return "LeNet-style CNN" + (" with batch norm" if name == "cnn-bn" else "")

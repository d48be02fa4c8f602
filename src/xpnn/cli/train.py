"""``xpnn train``: train a model on a data set, then write its metrics, checkpoint and curves.

The data set comes from :func:`load_data` and the model from
:func:`build_model`, so that another task is another function in
:mod:`~xpnn.cli.data` or :mod:`~xpnn.cli.models` and a branch there. With
``--backend dask`` the run happens on a cluster (:mod:`~xpnn.cli.cluster`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..checkpoint import save
from ..layers import Module
from ..losses import CrossEntropyLoss
from ..optim import SGD, Adam, AdamW, Optimizer
from ..training import History, evaluate, fit
from . import cluster
from .backends import Choice, choose
from .data import Dataset, digits
from .models import mlp
from .plot import plot_curves

__all__ = [
    "OPTIMIZERS",
    "build_model",
    "load_data",
    "make_optimizer",
    "run",
    "to_device",
    "train",
    "write_outputs",
]

#: The names ``--optimizer`` takes.
OPTIMIZERS = ("sgd", "adam", "adamw")


def run(args: argparse.Namespace) -> int:
    """Run ``xpnn train`` with the parsed arguments; return the exit status.

    Parameters
    ----------
    args : argparse.Namespace
        The arguments of ``xpnn train`` (see :mod:`xpnn.cli.parser`).

    Returns
    -------
    int
        0: failures raise.

    Raises
    ------
    SelectionError
        For a backend, device, dtype or cluster option that cannot be had.
    """
    choice = choose(args.backend, args.device, args.dtype)
    cluster.check_options(choice.backend, args.scheduler, args.workers, args.threads)
    if choice.backend != "dask":
        return train(args, choice)
    with cluster.connect(args.scheduler, args.workers, args.threads) as found:
        print(found.describe())
        return train(args, choice, found)


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


def train(args: argparse.Namespace, choice: Choice, on: cluster.Cluster | None = None) -> int:
    """Train, evaluate on the test split, and write the outputs; return 0.

    Parameters
    ----------
    args : argparse.Namespace
        The arguments of ``xpnn train``.
    choice : Choice
        The backend, device and dtype to train on.
    on : Cluster, optional
        The Dask cluster that ``--backend dask`` trains on.

    Returns
    -------
    int
        0: failures raise.
    """
    data = load_data(args)
    train_data = to_device(choice, data.x_train), to_device(choice, data.y_train, integral=True)
    test_data = to_device(choice, data.x_test), to_device(choice, data.y_test, integral=True)
    if on is not None:
        # The data live on the workers from here on, sent once.
        train_data, test_data = cluster.persist(*train_data), cluster.persist(*test_data)
    model = build_model(args, choice, data)
    loss = CrossEntropyLoss()
    optimizer = make_optimizer(args.optimizer, model, args.lr)
    print(
        f"training {args.hidden}-unit MLP on {data.x_train.shape[0]} {data.name} with "
        f"{choice.backend} ({choice.device_name}, {choice.dtype_name}), {args.optimizer} "
        f"lr={args.lr:g}, {args.epochs} epochs of batch {args.batch_size}"
    )
    start = time.perf_counter()
    history = fit(
        model,
        loss,
        optimizer,
        *train_data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        validation_data=test_data,
        progress=False if args.no_progress else None,
    )
    seconds = time.perf_counter() - start
    test_loss, test_accuracy = evaluate(model, loss, *test_data)
    # Integer labels always give an accuracy.
    assert test_accuracy is not None
    rows = data.x_test.shape[0]
    print(
        f"test accuracy {test_accuracy:.4f} ({round(test_accuracy * rows)}/{rows}), "
        f"test loss {test_loss:.4f}, {seconds:.1f} s"
    )
    metrics = {
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
    return 0


def write_outputs(
    output: Path, metrics: dict[str, Any], model: Module, optimizer: Optimizer, history: History
) -> None:
    """Write ``metrics.json``, ``model.safetensors`` and ``curves.png`` into ``output``.

    Parameters
    ----------
    output : pathlib.Path
        The folder, created if missing.
    metrics : dict
        What ``metrics.json`` holds.
    model, optimizer : Module, Optimizer
        Saved together: :func:`xpnn.load` rebuilds the model on any
        backend, and :func:`xpnn.load_optimizer` resumes training.
    history : History
        The learning curves to draw.
    """
    output.mkdir(parents=True, exist_ok=True)
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    save(model, output / "model.safetensors", optimizer=optimizer)
    written = ["metrics.json", "model.safetensors"]
    if plot_curves(history, output / "curves.png"):
        written.append("curves.png")
    print(f"wrote {', '.join(written)} to {output}")

"""A training loop with seeded shuffling that is identical on every backend."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from ._compat import Array, Namespace, array_namespace, device
from .layers import Module
from .losses import BCEWithLogitsLoss

__all__ = ["History", "evaluate", "fit"]

#: ``loss(prediction, target) -> (value, dprediction)``, as the classes in
#: :mod:`xpnn.losses` are.
Loss = Callable[[Array, Array], tuple[Array, Array]]


class Optimizer(Protocol):
    """What :func:`fit` needs of an optimizer."""

    def step(self) -> None:
        """Apply one update from the accumulated gradients."""

    def zero_grad(self) -> None:
        """Forget the accumulated gradients."""


@dataclass
class History:
    """Per-epoch record of a :func:`fit` run.

    ``accuracy`` entries are ``None`` unless the targets are integer class
    labels (accuracy of the argmax) or the loss is
    :class:`~xpnn.losses.BCEWithLogitsLoss` (accuracy of ``logit > 0``);
    ``val_*`` lists are empty without validation data.
    """

    loss: list[float] = field(default_factory=list)
    accuracy: list[float | None] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float | None] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[Any]]:
        """Return the lists in a plain dictionary (JSON-ready)."""
        return asdict(self)


def _rows(name: str, x: Array) -> int:
    rows = x.shape[0] if x.ndim else None
    if rows is None or (isinstance(rows, float) and math.isnan(rows)):
        raise ValueError(
            f"{name} needs a known number of rows, got shape {tuple(x.shape)}; for Dask "
            "arrays call compute_chunk_sizes() first"
        )
    return int(rows)


def _correct(xp: Namespace, loss: Loss, prediction: Array, target: Array) -> Array | None:
    """Count correct predictions as a 0-d array, or None if not a classifier."""
    if xp.isdtype(target.dtype, "integral"):
        hits = xp.argmax(prediction, axis=-1) == target
    elif isinstance(loss, BCEWithLogitsLoss):
        # Binary targets with logits: the decision threshold is logit 0.
        hits = (prediction > 0) == (target > 0.5)
    else:
        return None
    return xp.sum(xp.astype(hits, prediction.dtype))


def _batches(
    xp: Namespace, x: Array, y: Array, order: np.ndarray, batch_size: int
) -> Iterator[tuple[Array, Array]]:
    where = device(x)
    index_dtype = xp.__array_namespace_info__().default_dtypes(device=where)["indexing"]
    for start in range(0, order.shape[0], batch_size):
        # Indices travel from the host: the shuffle is NumPy's, identical
        # on every backend for a seed.
        index = xp.asarray(order[start : start + batch_size], dtype=index_dtype, device=where)
        yield xp.take(x, index, axis=0), xp.take(y, index, axis=0)


def evaluate(
    model: Module, loss: Loss, x: Array, y: Array, *, batch_size: int = 256
) -> tuple[float, float | None]:
    """Return the mean loss and accuracy of ``model`` on ``(x, y)``, in eval mode.

    Parameters
    ----------
    model : Module
        The model; its training mode is restored afterwards.
    loss : callable
        ``loss(prediction, target) -> (value, grad)`` with mean reduction.
    x : array of shape (n, ...)
        Inputs.
    y : array of shape (n, ...)
        Targets: integer class labels, binary targets, or values.
    batch_size : int, default 256
        Rows per forward pass.

    Returns
    -------
    loss : float
    accuracy : float or None
        ``None`` when ``y`` holds neither class labels nor binary targets.
    """
    xp = array_namespace(x=x, y=y)
    rows = _rows("x", x)
    was_training = model.training
    model.eval()
    try:
        total_loss, total_correct = None, None
        order = np.arange(rows)
        for xb, yb in _batches(xp, x, y, order, batch_size):
            prediction = model(xb)
            value, _ = loss(prediction, yb)
            part = value * xb.shape[0]
            total_loss = part if total_loss is None else total_loss + part
            correct = _correct(xp, loss, prediction, yb)
            if correct is not None:
                total_correct = correct if total_correct is None else total_correct + correct
    finally:
        model.train(was_training)
    mean_loss = float(total_loss) / rows if total_loss is not None else math.nan
    accuracy = float(total_correct) / rows if total_correct is not None else None
    return mean_loss, accuracy


def _progress(enabled: bool | None, epochs: int) -> Any:
    if enabled is False or (enabled is None and not sys.stderr.isatty()):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=epochs, unit="epoch", file=sys.stderr, leave=True)


def fit(
    model: Module,
    loss: Loss,
    optimizer: Optimizer,
    x: Array,
    y: Array,
    *,
    epochs: int,
    batch_size: int = 32,
    seed: int = 0,
    shuffle: bool = True,
    validation_data: tuple[Array, Array] | None = None,
    progress: bool | None = None,
) -> History:
    """Train ``model`` with mini-batches and return the per-epoch history.

    Parameters
    ----------
    model : Module
        The model, trained in place (its parameters are updated by
        ``optimizer``).
    loss : callable
        ``loss(prediction, target) -> (value, grad)`` with mean reduction,
        such as :class:`xpnn.losses.CrossEntropyLoss`.
    optimizer : object
        With ``step()`` and ``zero_grad()``, such as :class:`xpnn.optim.SGD`.
    x : array of shape (n, ...)
        Training inputs, in the model's namespace and on its device.
    y : array of shape (n, ...)
        Training targets.
    epochs : int
        Passes over the data.
    batch_size : int, default 32
        Rows per step; the last batch of an epoch may be smaller.
    seed : int, default 0
        Seed of the host generator that shuffles the rows each epoch. The
        order is the same on every backend for a seed.
    shuffle : bool, default True
        Whether to shuffle the rows each epoch.
    validation_data : (array, array), optional
        Held-out data, evaluated after every epoch.
    progress : bool, optional
        Show a progress bar (needs tqdm). By default, only when standard
        error is a terminal.

    Returns
    -------
    History
        Mean training loss and accuracy per epoch (accuracy measured during
        the epoch, as the batches go by), the same on validation data, and
        the seconds each epoch took.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative int, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    xp = array_namespace(x=x, y=y)
    rows = _rows("x", x)
    if _rows("y", y) != rows:
        raise ValueError(f"x and y must have the same number of rows, got {rows} and {y.shape[0]}")
    rng = np.random.default_rng(seed)
    history = History()
    bar = _progress(progress, epochs)
    model.train()
    try:
        for _ in range(epochs):
            start = time.perf_counter()
            order = rng.permutation(rows) if shuffle else np.arange(rows)
            total_loss, total_correct = None, None
            for xb, yb in _batches(xp, x, y, order, batch_size):
                prediction, backward = model.forward(xb)
                value, dprediction = loss(prediction, yb)
                optimizer.zero_grad()
                backward(dprediction)
                optimizer.step()
                part = value * xb.shape[0]
                total_loss = part if total_loss is None else total_loss + part
                correct = _correct(xp, loss, prediction, yb)
                if correct is not None:
                    total_correct = correct if total_correct is None else total_correct + correct
            history.loss.append(float(total_loss) / rows if total_loss is not None else math.nan)
            history.accuracy.append(
                float(total_correct) / rows if total_correct is not None else None
            )
            if validation_data is not None:
                val_loss, val_accuracy = evaluate(model, loss, *validation_data)
                history.val_loss.append(val_loss)
                history.val_accuracy.append(val_accuracy)
            history.seconds.append(time.perf_counter() - start)
            if bar is not None:
                shown = {"loss": f"{history.loss[-1]:.4f}"}
                if history.val_accuracy and history.val_accuracy[-1] is not None:
                    shown["val_acc"] = f"{history.val_accuracy[-1]:.3f}"
                bar.set_postfix(shown)
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return history

"""The training loop: one loop for every backend, with seeded shuffling.

:func:`fit` and :func:`evaluate` check their arguments, pick a batch source
for the data once (:func:`open_source`) and then run the same steps on
every backend. What differs between backends is the source's business
(:mod:`xpnn.training.sources`): an eager source gathers each batch by row
indices; the Dask source (:mod:`xpnn.training.dask_source`) cuts batches
from shuffled blocks of rows, persists the model and optimizer state after
every step, and reads the epoch's loss back once. The order of the rows is
drawn on the host (:mod:`xpnn.training.plan`) for every backend alike, so a
Dask run and a NumPy run with the same blocks see the same batches.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from .._compat import Array, Namespace, array_namespace, is_lazy, is_writeable, library_of
from ..functional.losses import check_label_values
from ..layers import Module, forward_on_data
from ..losses import BCEWithLogitsLoss, LabelLoss
from .plan import epoch_plan
from .sources import BatchSource, EagerSource, Inputs, add, first_input

__all__ = [
    "SCHEDULER_INTERVALS",
    "DivergedError",
    "History",
    "Loss",
    "Optimizer",
    "Scheduler",
    "evaluate",
    "fit",
    "open_source",
]

#: ``loss(prediction, target) -> (value, dprediction)``, as the classes in
#: :mod:`xpnn.losses` are.
Loss = Callable[[Array, Array], tuple[Array, Array]]


class Optimizer(Protocol):
    """What :func:`fit` needs of an optimizer."""

    def step(self) -> None:
        """Apply one update from the accumulated gradients."""

    def zero_grad(self) -> None:
        """Forget the accumulated gradients."""


class Scheduler(Protocol):
    """What :func:`fit` needs of a learning-rate schedule (any :mod:`xpnn.optim` one)."""

    def step(self) -> None:
        """Advance the schedule and set the optimizer's next learning rate."""

    def state_dict(self) -> dict[str, Any]:
        """Return the schedule's state, to roll back to."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


#: When :func:`fit` steps its ``scheduler``: after every optimizer step, or
#: after every epoch.
SCHEDULER_INTERVALS = ("step", "epoch")


class DivergedError(ValueError):
    """Training stopped: an epoch's loss is not finite (NaN or infinite).

    Raised by :func:`fit` once the epoch's summed loss, which it reads back
    anyway, is NaN or infinite. The parameters are then NaN or infinite
    too, so nothing of that run is worth saving; the message names the
    epoch and its steps, and suggests a lower learning rate.
    """


def _first_bad_step(epoch: int, step_losses: list[Array] | None, mean_loss: float) -> str:
    """Name the first step of ``epoch`` whose loss is not finite, reading the losses back."""
    for index, value in enumerate(step_losses or []):
        loss = float(value)
        if not math.isfinite(loss):
            return f"the loss of step {index + 1} of epoch {epoch} is {loss}"
    return f"the mean loss of epoch {epoch} is {mean_loss}"


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
        # The class axis of the loss (PyTorch's layout puts it on axis 1);
        # rows at ignore_index count as misses.
        axis = _class_axis(loss, prediction)
        hits = xp.argmax(prediction, axis=axis) == target
    elif isinstance(loss, BCEWithLogitsLoss):
        # Binary targets with logits: the decision threshold is logit 0.
        hits = (prediction > 0) == (target > 0.5)
    else:
        return None
    return xp.sum(xp.astype(hits, prediction.dtype))


def open_source(
    xp: Namespace,
    x: Inputs,
    y: Array,
    model: Module | None = None,
    optimizer: object | None = None,
    *,
    lengths_input: int | None = None,
) -> BatchSource:
    """Return the batch source for ``(x, y)``: the one place that tells backends apart.

    Parameters
    ----------
    xp : namespace
        The namespace of ``x`` and ``y``.
    x : array of shape (n, ...), or a tuple of them
        Inputs.
    y : array of shape (n, ...)
        Targets.
    model : Module, optional
        The model being trained, whose state the source may manage between
        steps; left out for evaluation.
    optimizer : object, optional
        Its optimizer.
    lengths_input : int, optional
        Which input of the tuple ``x`` holds the sequence lengths that cut
        each batch (see :class:`~xpnn.training.sources.EagerSource`).

    Returns
    -------
    BatchSource
        :class:`~xpnn.training.dask_source.DaskSource` for Dask arrays, else
        :class:`~xpnn.training.sources.EagerSource`.
    """
    # is_lazy first: it is cheap, and JAX, also lazy, trains like NumPy.
    first = first_input(x)
    if is_lazy(first) and library_of(first) == "dask":
        if isinstance(x, tuple):
            raise ValueError(
                f"fit and evaluate take one input array on Dask, got a tuple of {len(x)}; "
                "models of several inputs (such as sequences with their lengths) train on "
                "eager backends and JAX"
            )
        # Imported here: importing xpnn.training imports no Dask.
        from .dask_source import DaskSource

        return DaskSource(x, y, model, optimizer)
    return EagerSource(xp, x, y, lengths_input=lengths_input)


def _inputs(x: Inputs, y: Array, lengths_input: int | None) -> tuple[tuple[Array, ...], Namespace]:
    """Check the inputs of fit or evaluate; return them as a tuple, and their namespace."""
    if isinstance(x, tuple):
        if not x:
            raise ValueError("x must be an array or a non-empty tuple of arrays, got ()")
        named = {f"x[{i}]": a for i, a in enumerate(x)}
    else:
        named = {"x": x}
    xp = array_namespace(**named, y=y)
    inputs = tuple(named.values())
    rows = [_rows(name, a) for name, a in named.items()]
    if any(r != rows[0] for r in rows):
        raise ValueError(f"the inputs of x must share their first axis (the rows), got {rows} rows")
    if lengths_input is not None:
        if isinstance(lengths_input, bool) or not isinstance(lengths_input, int):
            raise TypeError(f"lengths_input must be an int or None, got {lengths_input!r}")
        if not isinstance(x, tuple) or not 0 <= lengths_input < len(x):
            count = len(x) if isinstance(x, tuple) else "no tuple"
            raise ValueError(
                f"lengths_input must name an input of the tuple x ({count}), got {lengths_input}"
            )
        lengths = x[lengths_input]
        xp = array_namespace(lengths=lengths)
        if lengths.ndim != 1 or not xp.isdtype(lengths.dtype, "integral"):
            raise ValueError(
                f"x[{lengths_input}] must hold the sequence lengths, an integer array (n,), got "
                f"{lengths.dtype} of shape {tuple(lengths.shape)}"
            )
    return inputs, xp


def _forward(model: Module, xb: Inputs) -> tuple[Any, Any]:
    """Return ``model.forward(*inputs, input_grad=False)`` for a batch of data.

    One array goes through :func:`~xpnn.layers.forward_on_data` (which also
    serves a user's module that takes no ``input_grad``); several are the
    arguments of a model that takes them, such as a sequence classifier's
    ``forward(x, lengths, *, input_grad=True)``.
    """
    if isinstance(xb, tuple):
        return model.forward(*xb, input_grad=False)
    return forward_on_data(model, xb)


def _predict(model: Module, xb: Inputs) -> Any:
    """Return ``model(*inputs)``: the prediction alone, nothing kept for a backward pass."""
    return model(*xb) if isinstance(xb, tuple) else model(xb)


def _check_count(name: str, value: object, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        allowed = "a positive int or None" if optional else "a positive int"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def evaluate(
    model: Module,
    loss: Loss,
    x: Inputs,
    y: Array,
    *,
    batch_size: int = 256,
    lengths_input: int | None = None,
) -> tuple[float, float | None]:
    """Return the mean loss and accuracy of ``model`` on ``(x, y)``, in eval mode.

    Parameters
    ----------
    model : Module
        The model; its training mode is restored afterwards.
    loss : callable
        ``loss(prediction, target) -> (value, grad)`` with mean reduction.
    x : array of shape (n, ...), or a tuple of them
        Inputs; a tuple of arrays sharing their first axis is given to a
        model of several inputs as ``model(*x)`` (not on Dask).
    y : array of shape (n, ...)
        Targets: integer class labels, binary targets, or values.
    batch_size : int, default 256
        Rows per forward pass. On Dask arrays the chunks of ``x`` are the
        forward passes instead, all in one computation.
    lengths_input : int, optional
        As for :func:`fit`: the input of the tuple ``x`` holding sequence
        lengths, each forward pass cut to its longest sequence.

    Returns
    -------
    loss : float
    accuracy : float or None
        ``None`` when ``y`` holds neither class labels nor binary targets.
    """
    _check_count("batch_size", batch_size)
    inputs, xp = _inputs(x, y, lengths_input)
    rows = _rows("x", inputs[0])
    source = open_source(xp, x, y, lengths_input=lengths_input)

    def score(xb: Inputs, yb: Array) -> tuple[Array, Array | None]:
        prediction = _predict(model, xb)
        value, _ = loss(prediction, yb)
        return value * yb.shape[0], _correct(xp, loss, prediction, yb)

    was_training = model.training
    model.eval()
    try:
        total_loss, total_correct = source.evaluate(score, batch_size)
    finally:
        model.train(was_training)
    mean_loss = total_loss / rows if total_loss is not None else math.nan
    accuracy = total_correct / rows if total_correct is not None else None
    return mean_loss, accuracy


#: Width of the progress bar when the terminal reports none (0 columns, as
#: some terminals and containers do): tqdm would otherwise draw nothing.
FALLBACK_COLUMNS = 80


def _progress(enabled: bool | None, epochs: int, initial: int = 0) -> Any:
    if enabled is False or (enabled is None and not sys.stderr.isatty()):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(
        total=epochs,
        initial=initial,
        unit="epoch",
        file=sys.stderr,
        leave=True,
        # A fixed width when the terminal reports none; else tqdm follows it.
        ncols=None if _terminal_columns() > 0 else FALLBACK_COLUMNS,
    )


def _terminal_columns() -> int:
    """Columns of the terminal on standard error, 0 when it reports none or is no terminal."""
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 0


class _Snapshot:
    """The parameters, buffers, optimizer and schedule state after an epoch, to roll back to."""

    def __init__(self, model: Module, optimizer: Any, scheduler: Scheduler | None) -> None:
        # Arrays that later steps update in place are copied; immutable ones
        # (JAX, Dask) are kept as they are, since no step changes them.
        self.parameters = {
            name: array_namespace(parameter=p).asarray(p, copy=True) if is_writeable(p) else p
            for name, p in model.named_parameters()
        }
        # Layers replace their buffers (a batch norm's running statistics)
        # rather than write into them: the arrays themselves are the copy.
        self.buffers = dict(model.named_buffers())
        self.optimizer_state = optimizer.state_dict()
        self.scheduler_state = scheduler.state_dict() if scheduler is not None else None

    def restore(self, model: Module, optimizer: Any, scheduler: Scheduler | None) -> None:
        for name, value in self.parameters.items():
            model.set_parameter(name, value)
        for name, value in self.buffers.items():
            model.set_buffer(name, value)
        optimizer.load_state_dict(self.optimizer_state)
        if scheduler is not None and self.scheduler_state is not None:
            # After the optimizer: the schedule sets the learning rate it had.
            scheduler.load_state_dict(self.scheduler_state)


def _check_labels_up_front(xp: Namespace, loss: Loss, y: Array, prediction: Array) -> None:
    """Check every class label of the data against the model's classes, before any update.

    Only class indices of a :class:`~xpnn.losses.LabelLoss`, whose number
    of classes is the size of the prediction's class axis; lazy labels are not
    read (see :func:`~xpnn.functional.losses.check_label_values`).
    """
    if isinstance(loss, LabelLoss) and xp.isdtype(y.dtype, "integral") and prediction.ndim:
        classes = int(prediction.shape[_class_axis(loss, prediction)])
        check_label_values(y, classes, loss.ignore_index)


def _class_axis(loss: Loss, prediction: Array) -> int:
    """Return the class axis of ``prediction`` for ``loss``: its own for label losses, else -1."""
    if isinstance(loss, LabelLoss) and prediction.ndim > 1:
        return loss.axis
    return -1


def fit(
    model: Module,
    loss: Loss,
    optimizer: Optimizer,
    x: Inputs,
    y: Array,
    *,
    epochs: int,
    batch_size: int = 32,
    seed: int = 0,
    shuffle: bool = True,
    block_rows: int | None = None,
    interleave: int = 1,
    validation_data: tuple[Inputs, Array] | None = None,
    progress: bool | None = None,
    initial_epoch: int = 0,
    should_stop: Callable[[], bool] | None = None,
    scheduler: Scheduler | None = None,
    scheduler_interval: str = "step",
    lengths_input: int | None = None,
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
    x : array of shape (n, ...), or a tuple of them
        Training inputs, in the model's namespace and on its device. A
        tuple of arrays sharing their first axis (such as ``(features,
        lengths)``) feeds a model of several inputs: each batch takes the
        same rows of every one, and the model is called as
        ``model.forward(*inputs, input_grad=False)``. Dask takes one array.
    y : array of shape (n, ...)
        Training targets.
    epochs : int
        Passes over the data.
    batch_size : int, default 32
        Rows per step; the last batch of an epoch may be smaller.
    seed : int, default 0
        Seed of the host generator that shuffles the rows each epoch. The
        order is the same on every backend for a seed (and ``block_rows``
        and ``interleave``).
    shuffle : bool, default True
        Whether to shuffle the rows each epoch.
    block_rows : int, optional
        Rows per shuffling block: each epoch shuffles the order of the
        blocks, then the rows within each block. By default the row chunks
        of a Dask array (the first chunk's length), so that a batch reads one
        chunk rather than every chunk; on other backends one block of all
        rows, a plain shuffle. Pass a Dask run's value to reproduce it on
        another backend.
    interleave : int, default 1
        Blocks whose rows are dealt into the batches together: each batch
        takes about ``batch_size / interleave`` rows from each of
        ``interleave`` consecutive blocks of the shuffled order. On Dask a
        batch then spans as many chunks, which the workers process in
        parallel.
    validation_data : (array, array), optional
        Held-out data, evaluated after every epoch.
    progress : bool, optional
        Show a progress bar (needs tqdm). By default, only when standard
        error is a terminal.
    initial_epoch : int, default 0
        Epochs already done, as Keras's ``initial_epoch``: training runs
        epochs ``initial_epoch + 1`` to ``epochs``. To continue a run that
        stopped after ``k`` epochs, restore its model and optimizer state
        (:func:`xpnn.load`, :func:`xpnn.load_optimizer`) and pass
        ``initial_epoch=k`` with the run's other arguments: the shuffle
        generator is advanced past the first ``k`` epochs' draws (host work
        only, no steps), so the continuation sees the batches the whole run
        would have seen, and ends where it would have ended.
    should_stop : callable, optional
        ``should_stop() -> bool``, asked after every step and before every
        epoch. Once it returns True, training stops there: the parameters,
        the model's buffers (running statistics) and the optimizer's state
        go back to the end of the last finished epoch (a partial epoch is
        dropped), and the history of the finished epochs is returned. It
        needs an optimizer with ``state_dict()`` and ``load_state_dict()``
        (every :mod:`xpnn.optim` optimizer), since each epoch's end is kept
        to roll back to. ``xpnn train`` passes a
        flag that its Ctrl-C (SIGINT) and SIGTERM handlers set. A
        ``scheduler`` goes back to the end of that epoch too.
    scheduler : LRScheduler, optional
        A learning-rate schedule of ``optimizer`` (any of
        :mod:`xpnn.optim.schedules`), whose ``step()`` ``fit`` calls after
        every ``optimizer.step()`` or after every epoch, as
        ``scheduler_interval`` says. ``fit`` steps it only: to continue a
        run with ``initial_epoch``, restore the schedule's state too
        (:func:`xpnn.checkpoint.load_scheduler`), and it goes on from
        where it stopped.
    scheduler_interval : {'step', 'epoch'}, default 'step'
        When to step ``scheduler``: after each optimizer step (as
        :class:`~xpnn.optim.OneCycleLR` expects, with ``total_steps`` =
        epochs x steps per epoch, ``ceil(rows / batch_size)``), or after
        each epoch, once its validation is done (as
        :class:`~xpnn.optim.CosineAnnealingLR` with ``T_max`` = epochs).
    lengths_input : int, optional
        For padded sequences: the position, in the tuple ``x``, of the
        integer array ``(n,)`` of each row's valid steps. Every batch (of
        training, and of ``validation_data``, which must then be a tuple
        of the same layout) cuts the other inputs of two axes or more to
        its longest sequence along axis 1, so that padding costs no more
        than the batch needs. The lengths are read to the host once, when
        training starts; no step reads anything back. The model must give
        a row the same result whatever padding follows it (a recurrent
        layer given ``lengths``, a masked mean).

    Returns
    -------
    History
        Mean training loss and accuracy per epoch (accuracy measured during
        the epoch, as the batches go by), the same on validation data, and
        the seconds each epoch took, for the epochs this call ran (from
        ``initial_epoch + 1``); fewer than asked when ``should_stop``
        stopped it.

    Raises
    ------
    ValueError
        For bad arguments, no rows of training data, or a class label out
        of range. Integer labels of :class:`~xpnn.losses.CrossEntropyLoss`
        are all checked after the first forward pass, before the first
        update, on eager arrays; lazy ones (JAX, Dask) are not read, and
        a bad label gives NaN losses instead, which end in
        :class:`DivergedError`.
    DivergedError
        When an epoch's loss is NaN or infinite. The loss is read back once
        per epoch (not every step, which would stall GPUs and lazy
        backends), so the error comes at the end of the epoch in which the
        loss went bad; the model's parameters are left as they are then.

    Notes
    -----
    On Dask arrays (see ``docs/distributed.md``) each step's batch is cut
    from blocks persisted on the workers; after each step the parameters,
    their gradients, the model's buffers (a batch norm's running
    statistics), the buffers of xpnn's optimizers and the running sums
    of loss and accuracy are persisted (on the cluster when a
    ``dask.distributed`` client is active), so no step recomputes earlier
    ones, and the sums are read back once per epoch.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative int, got {epochs!r}")
    if (
        isinstance(initial_epoch, bool)
        or not isinstance(initial_epoch, int)
        or not 0 <= initial_epoch <= epochs
    ):
        raise ValueError(
            f"initial_epoch must be an int from 0 to epochs ({epochs}), got {initial_epoch!r}"
        )
    if getattr(loss, "reduction", "mean") == "none":
        raise ValueError(
            f"fit needs a loss that returns one number per batch, got {loss!r}; use "
            "reduction='mean' (or 'sum'), and reduction='none' where the per-row losses "
            "themselves are wanted"
        )
    _check_count("batch_size", batch_size)
    _check_count("block_rows", block_rows, optional=True)
    _check_count("interleave", interleave)
    if should_stop is not None and not (
        hasattr(optimizer, "state_dict") and hasattr(optimizer, "load_state_dict")
    ):
        raise TypeError(
            "should_stop needs an optimizer with state_dict() and load_state_dict(), to roll "
            f"back to the last finished epoch; got {type(optimizer).__name__}"
        )
    if scheduler_interval not in SCHEDULER_INTERVALS:
        raise ValueError(
            f"scheduler_interval must be 'step' or 'epoch', got {scheduler_interval!r}"
        )
    if scheduler is not None and not callable(getattr(scheduler, "step", None)):
        raise TypeError(
            "scheduler must be a learning-rate schedule with step() (CosineAnnealingLR, "
            f"OneCycleLR, ...) or None, got {type(scheduler).__name__}"
        )
    if (
        scheduler is not None
        and should_stop is not None
        and not (hasattr(scheduler, "state_dict") and hasattr(scheduler, "load_state_dict"))
    ):
        raise TypeError(
            "should_stop needs a scheduler with state_dict() and load_state_dict(), to roll "
            f"back to the last finished epoch; got {type(scheduler).__name__}"
        )
    per_step = scheduler if scheduler_interval == "step" else None
    per_epoch = scheduler if scheduler_interval == "epoch" else None
    inputs, xp = _inputs(x, y, lengths_input)
    rows = _rows("x", inputs[0])
    if _rows("y", y) != rows:
        raise ValueError(f"x and y must have the same number of rows, got {rows} and {y.shape[0]}")
    if rows == 0:
        raise ValueError(
            f"fit needs at least one row of training data, got x of shape {tuple(inputs[0].shape)}"
        )
    source = open_source(xp, x, y, model, optimizer, lengths_input=lengths_input)
    if block_rows is None:
        block_rows = source.block_rows
    blocks = block_rows if block_rows is not None else max(rows, 1)
    rng = np.random.default_rng(seed)
    for _ in range(initial_epoch):
        # Draw and drop the plans of the epochs done: the generator then
        # stands where the whole run's stood after them.
        epoch_plan(rng, rows, blocks, interleave, batch_size, shuffle)
    history = History()
    step = 0
    labels_checked = False
    bar = _progress(progress, epochs, initial_epoch)
    model.train()
    try:
        for epoch in range(initial_epoch + 1, epochs + 1):
            if should_stop is not None and should_stop():
                break
            snapshot = _Snapshot(model, optimizer, scheduler) if should_stop is not None else None
            start = time.perf_counter()
            windows = epoch_plan(rng, rows, blocks, interleave, batch_size, shuffle)
            sums: tuple[Array | None, Array | None] = (None, None)
            # The epoch's step losses, read back only if the epoch diverges,
            # to name its first bad step. (Dask's are graphs: not kept.)
            step_losses: list[Array] | None = [] if isinstance(source, EagerSource) else None
            for xb, yb in source.batches(windows, batch_size):
                prediction, backward = _forward(model, xb)
                if not labels_checked:
                    _check_labels_up_front(xp, loss, y, prediction)
                    labels_checked = True
                value, dprediction = loss(prediction, yb)
                optimizer.zero_grad()
                backward(dprediction)
                optimizer.step()
                if per_step is not None:
                    per_step.step()
                step += 1
                if step_losses is not None:
                    step_losses.append(value)
                sums = (
                    add(sums[0], value * yb.shape[0]),
                    add(sums[1], _correct(xp, loss, prediction, yb)),
                )
                sums = source.after_step(*sums)
                if should_stop is not None and snapshot is not None and should_stop():
                    snapshot.restore(model, optimizer, scheduler)
                    return history
            total_loss, total_correct = source.end_epoch(*sums)
            mean_loss = total_loss / rows if total_loss is not None else math.nan
            if not math.isfinite(mean_loss):
                raise DivergedError(
                    f"training diverged: {_first_bad_step(epoch, step_losses, mean_loss)}; "
                    "lower the learning rate (or look for NaN or infinite values in the data)"
                )
            history.loss.append(mean_loss)
            history.accuracy.append(total_correct / rows if total_correct is not None else None)
            if validation_data is not None:
                val_loss, val_accuracy = evaluate(
                    model, loss, *validation_data, lengths_input=lengths_input
                )
                history.val_loss.append(val_loss)
                history.val_accuracy.append(val_accuracy)
            history.seconds.append(time.perf_counter() - start)
            if per_epoch is not None:
                per_epoch.step()
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

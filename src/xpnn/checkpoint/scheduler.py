"""Restoring a learning-rate schedule's state from a checkpoint: :func:`load_scheduler`."""

from __future__ import annotations

from typing import Any

from .._checks import check_exact_keys
from ..optim import LRScheduler, SequentialLR
from .format import Contents, PathLike, open_checkpoint

__all__ = ["load_scheduler"]


def load_scheduler(path: PathLike, scheduler: LRScheduler) -> None:
    """Restore the learning-rate schedule saved at ``path`` into ``scheduler``.

    As with PyTorch's ``scheduler.load_state_dict(...)``, make the schedule
    first, on the optimizer that :func:`~xpnn.checkpoint.load_optimizer`
    restored, then load its state: its settings and position are replaced
    by the saved ones, and the optimizer's learning rate is set to the
    saved schedule's last rate, so the next ``scheduler.step()`` gives what
    the saved schedule's would have given. The record's class and keys
    (those of the schedules inside a :class:`~xpnn.optim.SequentialLR` too)
    are checked against ``scheduler``, and its values by the schedule, all
    before the schedule or the optimizer changes.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`~xpnn.save` with ``scheduler=``.
    scheduler : xpnn.optim.LRScheduler
        A schedule of the class that was saved (a ``SequentialLR`` of the
        same classes, in the same order).

    Raises
    ------
    CheckpointError
        If the file is not a valid xpnn checkpoint, holds no schedule,
        holds one of another class, or one whose keys or values do not fit
        ``scheduler``.
    TypeError
        If ``scheduler`` is not an xpnn learning-rate schedule.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import xpnn
    >>> from xpnn.checkpoint import load_optimizer, load_scheduler
    >>> from xpnn.optim import SGD, CosineAnnealingLR
    >>> model = xpnn.Linear(3, 2, seed=0)
    >>> optimizer = SGD(model, lr=0.1)
    >>> scheduler = CosineAnnealingLR(optimizer, T_max=4)
    >>> scheduler.step()
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.safetensors"
    >>> xpnn.save(model, path, optimizer=optimizer, scheduler=scheduler)
    >>> restored_optimizer = SGD(xpnn.load(path), lr=0.1)
    >>> load_optimizer(path, restored_optimizer)
    >>> restored = CosineAnnealingLR(restored_optimizer, T_max=4)
    >>> load_scheduler(path, restored)
    >>> restored.last_epoch, restored_optimizer.lr == optimizer.lr
    (1, True)
    """
    if not isinstance(scheduler, LRScheduler):
        raise TypeError(
            f"scheduler must be an xpnn.optim learning-rate schedule (CosineAnnealingLR, "
            f"OneCycleLR, ...), got {type(scheduler).__name__}"
        )
    with open_checkpoint(path) as contents:
        saved = contents.scheduler
        if saved is None:
            raise contents.fail(
                "holds no learning-rate schedule; save it with xpnn.save(model, path, "
                "optimizer=..., scheduler=...)"
            )
        _check_record(contents, saved, scheduler, "metadata 'scheduler'")
    kind = type(scheduler).__name__
    try:
        scheduler.load_state_dict(saved)
    except (TypeError, ValueError) as exc:
        raise contents.fail(f"holds schedule state that does not fit {kind}: {exc}") from None


def _check_record(contents: Contents, saved: Any, scheduler: LRScheduler, where: str) -> None:
    """Check the class and the keys of ``saved`` (recursively) against ``scheduler``."""
    kind = type(scheduler).__name__
    if not isinstance(saved, dict):
        raise contents.fail(
            f"has {where} that is not a JSON object (got {type(saved).__name__}); the file is "
            f"corrupt"
        )
    found = saved.get("scheduler")
    if found != kind:
        raise contents.fail(
            f"holds the state of schedule class {found!r} in {where}, not {kind!r}; make an "
            f"xpnn.optim.{found} on the optimizer and load into that"
        )
    try:
        check_exact_keys(f"has {where}, which", saved, scheduler.state_keys())
    except ValueError as exc:
        raise contents.fail(f"{exc}; the file was changed by another tool, or is corrupt") from None
    if isinstance(scheduler, SequentialLR):
        inner, expected = saved["schedulers"], scheduler.schedulers
        if not isinstance(inner, list) or len(inner) != len(expected):
            count = len(inner) if isinstance(inner, list) else type(inner).__name__
            raise contents.fail(
                f"has {where}['schedulers'] of {count} schedules; the SequentialLR it is "
                f"loaded into runs {len(expected)} "
                f"({', '.join(type(s).__name__ for s in expected)})"
            )
        for index, (record, child) in enumerate(zip(inner, expected, strict=True)):
            _check_record(contents, record, child, f"{where}['schedulers'][{index}]")

"""Restoring an optimizer's state from a checkpoint: :func:`load_optimizer`."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .._compat import Array, array_namespace, dtype_name
from .._compat import device as device_of
from .._transfer import transfer
from ..optim import Optimizer
from .build import mismatch
from .format import Contents, PathLike, check_optimizer_record, name_list, open_checkpoint

__all__ = ["load_optimizer"]


def load_optimizer(path: PathLike, optimizer: Optimizer) -> None:
    """Restore the optimizer state saved at ``path`` into ``optimizer``.

    As with PyTorch's ``optimizer.load_state_dict(...)``, make the optimizer
    first, for the loaded model, then load its state: hyper-parameters, step
    counts and buffers are all replaced by the saved ones. Buffers are moved
    to the library, device and dtype of their parameters. Everything is
    checked before the optimizer changes.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save` with ``optimizer=``.
    optimizer : xpnn.optim.Optimizer
        An optimizer of the class that was saved, whose model has the saved
        parameter names and shapes (typically the model :func:`load` gave).

    Raises
    ------
    CheckpointError
        If the file is not a valid xpnn checkpoint, holds no optimizer state,
        holds the state of another optimizer class, or does not fit the
        optimizer's model.
    TypeError
        If ``optimizer`` is not an xpnn optimizer.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import xpnn
    >>> from xpnn.checkpoint import load_optimizer
    >>> model = xpnn.Linear(3, 2, seed=0)
    >>> optimizer = xpnn.optim.Adam(model, lr=1e-3)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.safetensors"
    >>> xpnn.save(model, path, optimizer=optimizer)
    >>> restored = xpnn.load(path)
    >>> restored_optimizer = xpnn.optim.Adam(restored, lr=1.0)
    >>> load_optimizer(path, restored_optimizer)
    >>> restored_optimizer.lr
    0.001
    """
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"optimizer must be an xpnn.optim optimizer (SGD, Adam, ...), got "
            f"{type(optimizer).__name__}"
        )
    with open_checkpoint(path) as contents:
        saved = contents.optimizer
        if saved is None:
            raise contents.fail(
                "holds no optimizer state; save it with xpnn.save(model, path, optimizer=...)"
            )
        kind = type(optimizer).__name__
        if saved["class"] != kind:
            raise contents.fail(
                f"holds the state of optimizer class {saved['class']!r}, not {kind!r}; make "
                f"an xpnn.optim.{saved['class']} for the model and load into that"
            )
        params = dict(optimizer.model.named_parameters())
        needed = {name: tuple(int(s) for s in param.shape) for name, param in params.items()}
        stored = {name: contents.shapes[name] for name in contents.parameters}
        if needed != stored:
            raise contents.fail(
                f"does not fit the optimizer's model: {mismatch(needed, stored)}; load the "
                f"model from the same checkpoint with xpnn.load"
            )
        check_optimizer_record(contents)
        known = optimizer.buffer_names
        state: dict[str, dict[str, Any]] = {}
        for name, param in params.items():
            entry: dict[str, Any] = {"step": saved["steps"][name], **dict.fromkeys(known)}
            for buffer, tensor in contents.buffers.get(name, {}).items():
                if buffer not in known:
                    raise contents.fail(
                        f"holds buffer {buffer!r} of {name!r}, which {kind} does not keep; "
                        f"it keeps {name_list(list(known)) or 'none'}"
                    )
                entry[buffer] = _like(contents, tensor, contents.array(tensor), param)
            state[name] = entry
    try:
        optimizer.load_state_dict(
            {"optimizer": kind, "hyperparameters": saved["hyperparameters"], "state": state}
        )
    except ValueError as exc:
        raise contents.fail(f"holds optimizer state that does not fit {kind}: {exc}") from None


def _like(contents: Contents, name: str, host: npt.NDArray[Any], param: Array) -> Array:
    """Move a host buffer to its parameter's library, device and dtype."""
    xp = array_namespace(parameter=param)
    if np.iscomplexobj(host) != xp.isdtype(param.dtype, "complex floating"):
        raise contents.fail(
            f"holds {host.dtype} tensor {name!r} for a parameter of dtype "
            f"{dtype_name(xp, param.dtype)}; a real buffer cannot become complex or the reverse"
        )
    return transfer(host, xp=xp, device=device_of(param), dtype=param.dtype)

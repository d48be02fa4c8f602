"""Writing a checkpoint: :func:`save`."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt
import safetensors.numpy

from .._compat import Array, array_namespace, describe_type, dtype_name, library_of
from .._transfer import to_numpy
from .._version import __version__
from ..files import atomic_write
from ..layers import LAYERS, Module
from ..optim import LRScheduler, Optimizer
from .format import (
    BUFFER_DTYPES,
    FORMAT,
    FORMAT_VERSION,
    HOST_DTYPES,
    OPTIMIZER_PREFIX,
    WEIGHT_LAYOUT,
    PathLike,
    tensor_digest,
)

__all__ = ["save"]


def save(
    model: Module,
    path: PathLike,
    *,
    optimizer: Optimizer | None = None,
    scheduler: LRScheduler | None = None,
    task: dict[str, Any] | None = None,
) -> None:
    """Save ``model``, and optionally ``optimizer``'s and ``scheduler``'s state, to ``path``.

    The file is written to a temporary file in the same directory, flushed
    to disk and renamed onto ``path`` (:func:`xpnn.files.atomic_write`), so
    ``path`` holds either its previous content or the complete new
    checkpoint, even if the process dies midway. On any error the temporary
    file is removed and an existing ``path`` is left untouched.

    Parameters
    ----------
    model : Module
        A model made of xpnn layers (:class:`~xpnn.Linear`,
        :class:`~xpnn.Sequential`, the activations, :class:`~xpnn.Dropout`),
        with parameters of any library and device, of dtype ``float32``,
        ``float64``, ``complex64`` or ``complex128``. Every dtype is checked
        before any tensor is copied to the host.
    path : str or os.PathLike
        Where to write; conventionally ending in ``.safetensors``.
    optimizer : xpnn.optim.Optimizer, optional
        An optimizer of ``model`` (``optimizer.model is model``) whose class,
        hyper-parameters, step counts and buffers are saved too.
    scheduler : xpnn.optim.LRScheduler, optional
        A learning-rate schedule of ``optimizer`` (``scheduler.optimizer is
        optimizer``, so ``optimizer=`` is needed too), whose
        :meth:`~xpnn.optim.LRScheduler.state_dict` (its class, settings and
        position; a :class:`~xpnn.optim.SequentialLR` with its schedules')
        is saved in the metadata, for :func:`~xpnn.checkpoint.load_scheduler`.
    task : dict, optional
        What the model is for and how its input is prepared (JSON values),
        saved as the metadata's ``"task"`` for
        :func:`~xpnn.checkpoint.load_task`: ``xpnn train`` records its task,
        classes and preprocessing (a tokenizer, an image size), so that
        ``xpnn predict`` needs the checkpoint alone.

    Raises
    ------
    TypeError
        If ``model`` is not a Module, ``optimizer`` not an Optimizer,
        ``scheduler`` not an LRScheduler, or a parameter or buffer has a
        dtype a checkpoint cannot hold.
    ValueError
        If the model holds a layer that is not one of xpnn's (it could not
        be built back), ``optimizer`` optimises another model, or
        ``scheduler`` comes without ``optimizer`` or drives another one.
    OSError
        If the file cannot be written.

    Notes
    -----
    Tensors are named as :meth:`Module.named_parameters` names them
    (``"0.weight"``); optimizer buffers as
    ``"optimizer.<parameter>.<buffer>"`` (``"optimizer.0.weight.exp_avg"``).
    The schedule's state is the metadata's ``"scheduler"``, as JSON.
    Gradients, the training mode and Dropout's random state are not saved.
    The metadata's ``"digests"`` records a SHA-256 digest of every tensor's
    stored bytes, which :func:`~xpnn.load` and
    :func:`~xpnn.checkpoint.load_optimizer` check as they read them.
    The file is built in memory by ``safetensors.numpy.save`` before it is
    written, so saving takes host memory of about twice the model's size
    (and its optimizer's).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import xpnn
    >>> model = xpnn.Sequential(xpnn.Linear(3, 4, seed=0), xpnn.ReLU(), xpnn.Linear(4, 2, seed=1))
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.safetensors"
    >>> xpnn.save(model, path)
    >>> xpnn.load(path)[2]
    Linear(in_features=4, out_features=2, bias=True, xp=numpy, device='cpu', dtype=float64)
    """
    if not isinstance(model, Module):
        raise TypeError(
            f"model must be an xpnn Module (Linear, Sequential, ...), got {type(model).__name__}"
        )
    if optimizer is not None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"optimizer must be an xpnn.optim optimizer (SGD, Adam, ...) or None, got "
                f"{type(optimizer).__name__}"
            )
        if optimizer.model is not model:
            raise ValueError(
                "optimizer must be an optimizer of this model (optimizer.model is model), got "
                "one of another model; save each model with its own optimizer"
            )
    if scheduler is not None:
        _check_scheduler(scheduler, optimizer)
    _check_layers(model, "model")

    # Every tensor with its xpnn dtype name, all checked before any is
    # copied to the host.
    tensors: dict[str, tuple[Array, str]] = {}
    params = dict(model.named_parameters())
    for name, param in params.items():
        tensors[name] = param, _dtype_of(f"parameter {name!r}", param)
    # The model's buffers (a BatchNorm's running statistics), by their dotted
    # names; the metadata's "buffers" tells them from parameters.
    buffer_names = []
    for name, buffer in model.named_buffers():
        tensors[name] = buffer, _dtype_of(f"buffer {name!r}", buffer, buffer=True)
        buffer_names.append(name)
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "xpnn_version": __version__,
        "config": _to_json(model.config(), "model.config()"),
        "weight_layout": WEIGHT_LAYOUT,
    }
    if buffer_names:  # files of models without buffers stay as they were
        metadata["buffers"] = json.dumps(buffer_names)
    if optimizer is not None:
        # The live buffers, not state_dict()'s snapshots: each is copied to
        # the host once, and never twice on its device.
        buffers = optimizer.buffers()
        for name in params:
            for buffer_name, buffer in buffers.get(name, {}).items():
                key = f"{OPTIMIZER_PREFIX}{name}.{buffer_name}"
                tensors[key] = buffer, _dtype_of(f"{buffer_name} of {name!r}", buffer)
        metadata["optimizer"] = _to_json(
            {
                "class": type(optimizer).__name__,
                "hyperparameters": optimizer.hyperparameters,
                "steps": optimizer.step_counts(),
            },
            "the optimizer's hyperparameters",
        )
    if scheduler is not None:
        metadata["scheduler"] = _to_json(scheduler.state_dict(), "the scheduler's state")
    if task is not None:
        metadata["task"] = _to_json(dict(task), "task")
    metadata["dtypes"] = json.dumps({name: dtype for name, (_, dtype) in tensors.items()})
    stored = {name: stored_array(array, dtype) for name, (array, dtype) in tensors.items()}
    # Hashed from the host arrays the file is built from, so the digests are
    # of exactly the bytes written.
    metadata["digests"] = json.dumps({name: tensor_digest(array) for name, array in stored.items()})
    data = safetensors.numpy.save(stored, metadata=metadata)
    atomic_write(path, lambda file: file.write(data))


def _check_scheduler(scheduler: object, optimizer: Optimizer | None) -> None:
    if not isinstance(scheduler, LRScheduler):
        raise TypeError(
            f"scheduler must be an xpnn.optim learning-rate schedule (CosineAnnealingLR, "
            f"OneCycleLR, ...) or None, got {type(scheduler).__name__}"
        )
    if optimizer is None:
        raise ValueError(
            "scheduler= needs optimizer= too: a schedule is restored with the optimizer it "
            "drives; pass xpnn.save(model, path, optimizer=optimizer, scheduler=scheduler)"
        )
    if scheduler.optimizer is not optimizer:
        raise ValueError(
            "scheduler must be a schedule of this optimizer (scheduler.optimizer is "
            "optimizer), got one of another optimizer"
        )


def _check_layers(module: Module, where: str) -> None:
    kind = type(module)
    if LAYERS.get(kind.__name__) is not kind:
        raise ValueError(
            f"{where} is a {describe_type(module)}, which a checkpoint cannot "
            f"build back; checkpoints hold models made of xpnn's layers ({', '.join(LAYERS)})"
        )
    for index, child in enumerate(module.children()):
        _check_layers(child, f"{where}[{index}]")


def _to_json(value: object, what: str) -> str:
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be made of finite JSON values to be saved: {exc}") from None


def _dtype_of(label: str, array: Array, *, buffer: bool = False) -> str:
    xp = array_namespace(**{label: array})
    if buffer and xp.isdtype(array.dtype, "integral"):
        return "int64"  # counters: stored as int64 whatever the library keeps
    try:
        name = dtype_name(xp, array.dtype)
    except TypeError:  # a dtype outside the standard's, such as float16
        name = str(array.dtype)
    if name not in (BUFFER_DTYPES if buffer else HOST_DTYPES):
        raise TypeError(
            f"{label} has dtype {name}; checkpoints hold {', '.join(HOST_DTYPES)} arrays, cast "
            f"it first (model.to(dtype=...))"
        )
    return name


def stored_array(array: Array, dtype: str) -> npt.NDArray[Any]:
    """Return ``array`` as the C-ordered host array the file stores for xpnn dtype ``dtype``.

    NumPy arrays are used as they are where their layout allows; other
    libraries' arrays are copied to the host. A complex128 array becomes
    float64 pairs with a trailing axis of 2 (real, imaginary), which the
    format can hold.
    """
    # safetensors.numpy.save reads each array's memory as one block, so
    # every array it gets must be C-contiguous.
    host = np.asarray(array if library_of(array) == "numpy" else to_numpy(array), order="C")
    if dtype == "int64":
        return np.asarray(host, dtype=np.int64, order="C")
    if dtype != "complex128":
        return host
    parts = np.empty((*host.shape, 2), dtype=np.float64)
    parts[..., 0] = host.real
    parts[..., 1] = host.imag
    return parts

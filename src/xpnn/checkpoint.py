"""Save and load models, and their optimizer's state, as safetensors files.

A checkpoint is a `safetensors <https://huggingface.co/docs/safetensors>`_
file: the parameters and optimizer buffers as raw tensors, and everything
else (the model's structure, the dtypes, the optimizer's settings and step
counts) as strings in the file's ``__metadata__``. Nothing is pickled, so
loading a file runs no code from it, and any safetensors reader can open it.

- :func:`save` writes a model, and optionally its optimizer, atomically.
- :func:`load` builds the model back, on any library, device and dtype.
- :func:`load_optimizer` restores the optimizer's state into an optimizer
  made for the loaded model, as ``torch.optim.Optimizer.load_state_dict``
  does in PyTorch.

Every problem with a file raises :class:`CheckpointError`.
"""

from __future__ import annotations

import contextlib
import json
import math
import operator
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from . import _safetensors
from ._compat import Array, Device, DType, array_namespace, dtype_name, library_of
from ._compat import device as device_of
from ._safetensors import Header, PendingTensor, SafetensorsError
from ._transfer import to_numpy, transfer
from .layers._config import LAYERS, from_config
from .layers._module import Module
from .optim._base import Optimizer

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CheckpointError",
    "load",
    "load_optimizer",
    "save",
]

#: The value of ``"format"`` in the metadata of every xpnn checkpoint.
FORMAT = "xpnn"

#: The version of the checkpoint layout this module writes and reads.
FORMAT_VERSION = 1

#: Optimizer buffers are stored as ``optimizer.<parameter name>.<buffer name>``.
OPTIMIZER_PREFIX = "optimizer."

#: Recorded in every checkpoint so that other tools read Linear weights right.
WEIGHT_LAYOUT = (
    "Linear.weight has shape (in_features, out_features) and y = x @ weight + bias; "
    "torch.nn.Linear.weight is its transpose, (out_features, in_features)"
)

# The dtypes a checkpoint holds, by standard name, as host NumPy dtypes and
# as the format's codes. The format has no complex128: it is stored as F64
# with a trailing axis of 2 (real, imaginary), and "dtypes" says so.
_HOST: dict[str, np.dtype[Any]] = {
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
    "complex64": np.dtype(np.complex64),
    "complex128": np.dtype(np.complex128),
}
_STORED = {"float32": "F32", "float64": "F64", "complex64": "C64", "complex128": "F64"}

PathLike = str | os.PathLike[str]


class CheckpointError(ValueError):
    """A file that is not a valid xpnn checkpoint, or does not fit what loads it.

    Raised for truncated or corrupt files, safetensors files written by
    other tools, checkpoints of a newer format version, and files whose
    tensors do not match the structure recorded with them or the optimizer
    they are loaded into. The message names the file, what was expected and
    what was found.
    """


# -- saving ------------------------------------------------------------------


def save(model: Module, path: PathLike, *, optimizer: Optimizer | None = None) -> None:
    """Save ``model``, and optionally ``optimizer``'s state, to ``path``.

    The file is written to a temporary file in the same directory, flushed
    to disk and renamed onto ``path``, so ``path`` holds either its previous
    content or the complete new checkpoint, even if the process dies
    midway. On any error the temporary file is removed and an existing
    ``path`` is left untouched.

    Parameters
    ----------
    model : Module
        A model made of xpnn layers (:class:`~xpnn.Linear`,
        :class:`~xpnn.Sequential`, the activations, :class:`~xpnn.Dropout`),
        with parameters of any library and device, of dtype ``float32``,
        ``float64``, ``complex64`` or ``complex128``. Each tensor is copied to
        the host only when its turn to be written comes.
    path : str or os.PathLike
        Where to write; conventionally ending in ``.safetensors``.
    optimizer : xpnn.optim.Optimizer, optional
        An optimizer of ``model`` (``optimizer.model is model``) whose class,
        hyper-parameters, step counts and buffers are saved too.

    Raises
    ------
    TypeError
        If ``model`` is not a Module, ``optimizer`` not an Optimizer, or a
        parameter or buffer has a dtype a checkpoint cannot hold.
    ValueError
        If the model holds a layer that is not one of xpnn's (it could not
        be built back), or ``optimizer`` optimises another model.
    OSError
        If the file cannot be written.

    Notes
    -----
    Tensors are named as :meth:`Module.named_parameters` names them
    (``"0.weight"``); optimizer buffers as
    ``"optimizer.<parameter>.<buffer>"`` (``"optimizer.0.weight.exp_avg"``).
    Gradients, the training mode and Dropout's random state are not saved.

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
    _check_layers(model, "model")
    from . import __version__  # at call time: the package sets it after importing this module

    tensors: dict[str, PendingTensor] = {}
    dtypes: dict[str, str] = {}
    params = dict(model.named_parameters())
    for name, param in params.items():
        tensors[name], dtypes[name] = _pending(f"parameter {name!r}", param)
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "xpnn_version": __version__,
        "config": _to_json(model.config(), "model.config()"),
        "weight_layout": WEIGHT_LAYOUT,
    }
    if optimizer is not None:
        # The live buffers, not state_dict()'s snapshots: each is copied to
        # the host once, when written, and never twice on its device.
        buffers = optimizer.buffers()
        steps = optimizer.step_counts()
        for name in params:
            for buffer_name, buffer in buffers.get(name, {}).items():
                key = f"{OPTIMIZER_PREFIX}{name}.{buffer_name}"
                tensors[key], dtypes[key] = _pending(f"{buffer_name} of {name!r}", buffer)
        metadata["optimizer"] = _to_json(
            {
                "class": type(optimizer).__name__,
                "hyperparameters": optimizer.hyperparameters,
                "steps": steps,
            },
            "the optimizer's hyperparameters",
        )
    metadata["dtypes"] = json.dumps(dtypes)
    _atomic_write(os.fspath(path), lambda file: _safetensors.write(file, tensors, metadata))


def _check_layers(module: Module, where: str) -> None:
    kind = type(module)
    if LAYERS.get(kind.__name__) is not kind:
        raise ValueError(
            f"{where} is a {kind.__module__}.{kind.__qualname__}, which a checkpoint cannot "
            f"build back; checkpoints hold models made of xpnn's layers ({', '.join(LAYERS)})"
        )
    for index, child in enumerate(module.children()):
        _check_layers(child, f"{where}[{index}]")


def _to_json(value: object, what: str) -> str:
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be made of finite JSON values to be saved: {exc}") from None


def _pending(label: str, array: Array) -> tuple[PendingTensor, str]:
    """Describe ``array`` for the header; its data are fetched when written."""
    xp = array_namespace(**{label: array})
    name = dtype_name(xp, array.dtype)
    if name not in _HOST:
        raise TypeError(
            f"{label} has dtype {name}; checkpoints hold {', '.join(_HOST)} arrays, cast it "
            f"first (model.to(dtype=...))"
        )
    shape = tuple(int(size) for size in array.shape)

    def fetch() -> npt.NDArray[Any]:
        # NumPy arrays are written from their own memory, without a copy.
        host = np.ascontiguousarray(array) if library_of(array) == "numpy" else to_numpy(array)
        return _stored(host, name)

    if name == "complex128":
        return PendingTensor(np.dtype(np.float64), (*shape, 2), fetch), name
    return PendingTensor(_HOST[name], shape, fetch), name


def _stored(host: npt.NDArray[Any], name: str) -> npt.NDArray[Any]:
    if name != "complex128":
        return host
    parts = np.empty((*host.shape, 2), dtype=np.float64)
    parts[..., 0] = host.real
    parts[..., 1] = host.imag
    return parts


def _atomic_write(path: str, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path``.

    The data are flushed to disk before the rename, and the rename after
    it; on any failure, interrupts included, the temporary file is removed
    and ``path`` is left as it was. Checkpoints and ONNX exports are
    written this way.
    """
    directory = os.path.dirname(os.path.abspath(path))
    descriptor, temporary = _create_temporary(directory, os.path.basename(path))
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)


def _create_temporary(directory: str, base: str) -> tuple[int, str]:
    # A hidden name that never ends in the target's name, so no tool that
    # looks for "*.safetensors" takes a leftover of a killed save for a
    # checkpoint. os.open with mode 0o666 lets the umask decide permissions,
    # as for any new file (tempfile.mkstemp would force 0o600).
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temporary = os.path.join(directory, f".{base}.{secrets.token_hex(8)}.tmp")
        try:
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file next to {base!r} in {directory!r}")


def _fsync_directory(directory: str) -> None:
    # Makes the rename itself durable. Not every platform can open a
    # directory (Windows cannot); the data are already on disk there.
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


# -- reading and checking ----------------------------------------------------


@dataclass
class _Contents:
    """What a checked checkpoint holds, before any tensor data are read."""

    where: str
    header: Header
    config: dict[str, Any]
    dtypes: dict[str, str]
    shapes: dict[str, tuple[int, ...]]
    parameters: list[str]
    optimizer: dict[str, Any] | None
    buffers: dict[str, dict[str, str]] = field(default_factory=dict)

    def fail(self, message: str) -> CheckpointError:
        return CheckpointError(f"{self.where} {message}")

    def array(self, file: IO[bytes], name: str) -> npt.NDArray[Any]:
        """Read tensor ``name`` as a host array of its recorded dtype and shape."""
        try:
            stored = _safetensors.read_tensor(file, self.header, name)
        except SafetensorsError as exc:
            raise self.fail(f"cannot be read: {exc}") from None
        if self.dtypes[name] == "complex128":
            return stored.view(np.complex128).reshape(stored.shape[:-1])
        return stored


def _describe(path: PathLike) -> str:
    return f"checkpoint {os.fspath(path)!r}"


def _inspect(file: IO[bytes], path: PathLike) -> _Contents:
    """Check the header, the format and the recorded dtypes of an open checkpoint.

    The parameters are checked against a model next (:func:`_build`, or the
    optimizer's model), then the optimizer's record (:func:`_check_optimizer`),
    all before any tensor data are read.
    """
    where = _describe(path)
    try:
        header = _safetensors.read_header(file)
    except SafetensorsError as exc:
        raise CheckpointError(
            f"{where} is not a valid safetensors file: {exc}. Use an intact copy of the "
            f"checkpoint, or save it again"
        ) from None
    metadata = header.metadata
    marker = metadata.get("format")
    if marker != FORMAT:
        raise CheckpointError(
            f"{where} is a safetensors file but not an xpnn checkpoint: its metadata "
            f"'format' is {marker!r}, expected {FORMAT!r}. Files written by other tools hold "
            f"tensors only; read them with safetensors.numpy.load_file"
        )
    version = metadata.get("format_version")
    if version != str(FORMAT_VERSION):
        from . import __version__

        if version is not None and version.isdigit() and int(version) > FORMAT_VERSION:
            advice = "it was written by a newer xpnn; upgrade xpnn to load it"
        else:
            advice = "the file is corrupt or was not written by xpnn"
        raise CheckpointError(
            f"{where} has checkpoint format version {version!r}; xpnn {__version__} reads "
            f"version {FORMAT_VERSION!r}: {advice}"
        )
    contents = _Contents(
        where=where,
        header=header,
        config=_from_json(metadata, "config", where, dict),
        dtypes=_from_json(metadata, "dtypes", where, dict),
        shapes={},
        parameters=[],
        optimizer=None,
    )
    _check_dtypes(contents)
    if "optimizer" in metadata:
        contents.optimizer = _from_json(metadata, "optimizer", where, dict)
    return contents


def _from_json(metadata: Mapping[str, str], key: str, where: str, kind: type) -> Any:
    if key not in metadata:
        raise CheckpointError(
            f"{where} has no {key!r} in its metadata; every xpnn checkpoint records it. The "
            f"file was changed by another tool, or is corrupt"
        )
    try:
        value = json.loads(metadata[key])
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(
            f"{where} has metadata {key!r} that is not valid JSON ({exc}); the file is corrupt"
        ) from None
    if not isinstance(value, kind):
        raise CheckpointError(
            f"{where} has metadata {key!r} that must be a JSON {kind.__name__}, got "
            f"{type(value).__name__}; the file is corrupt"
        )
    return value


def _names(names: list[str]) -> str:
    shown = ", ".join(map(repr, names[:5]))
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _check_dtypes(contents: _Contents) -> None:
    """Check ``"dtypes"`` against the header; fill in the logical shapes."""
    tensors = contents.header.tensors
    recorded = contents.dtypes
    unlisted = [name for name in tensors if name not in recorded]
    absent = [name for name in recorded if name not in tensors]
    if unlisted or absent:
        parts = []
        if unlisted:
            parts.append(f"holds tensors its metadata 'dtypes' does not list: {_names(unlisted)}")
        if absent:
            parts.append(f"lacks tensors its metadata 'dtypes' lists: {_names(absent)}")
        raise contents.fail(
            f"{' and '.join(parts)}; tensors were removed or added by another tool, or the "
            f"file is corrupt"
        )
    for name, info in tensors.items():
        dtype = recorded[name]
        if dtype not in _HOST:
            raise contents.fail(
                f"records dtype {dtype!r} for tensor {name!r}; checkpoints hold {', '.join(_HOST)}"
            )
        shape = info.shape
        if dtype == "complex128":
            # Stored as float64 pairs: the last axis holds (real, imaginary).
            if not shape or shape[-1] != 2:
                raise contents.fail(
                    f"stores complex128 tensor {name!r} with shape {shape}; expected a "
                    f"trailing axis of 2 (real, imaginary)"
                )
            shape = shape[:-1]
        if info.dtype != _STORED[dtype]:
            raise contents.fail(
                f"stores {dtype} tensor {name!r} as {info.dtype}; expected {_STORED[dtype]}"
            )
        contents.shapes[name] = shape
        if not name.startswith(OPTIMIZER_PREFIX):
            contents.parameters.append(name)


def _check_optimizer(contents: _Contents) -> None:
    """Check the optimizer's record and attach each buffer to its parameter."""
    parameters = set(contents.parameters)
    buffer_tensors = [name for name in contents.shapes if name.startswith(OPTIMIZER_PREFIX)]
    saved = contents.optimizer
    if saved is None:
        if buffer_tensors:
            raise contents.fail(
                f"holds optimizer tensors ({_names(buffer_tensors)}) but no 'optimizer' in its "
                f"metadata; the file is corrupt"
            )
        return
    if set(saved) != {"class", "hyperparameters", "steps"}:
        raise contents.fail(
            f"has metadata 'optimizer' with keys {sorted(saved)}; expected 'class', "
            f"'hyperparameters' and 'steps'"
        )
    if not isinstance(saved["class"], str) or not isinstance(saved["hyperparameters"], dict):
        raise contents.fail(
            "has metadata 'optimizer' whose 'class' is not a string or whose "
            "'hyperparameters' is not an object; the file is corrupt"
        )
    steps = saved["steps"]
    if (
        not isinstance(steps, dict)
        or set(steps) != parameters
        or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in steps.values()
        )
    ):
        raise contents.fail(
            "has metadata 'optimizer' whose 'steps' is not a count >= 0 for each parameter "
            f"({_names(contents.parameters)}); the file is corrupt"
        )
    for tensor in buffer_tensors:
        parameter, _, buffer = tensor[len(OPTIMIZER_PREFIX) :].rpartition(".")
        if parameter not in parameters or not buffer:
            raise contents.fail(
                f"holds optimizer tensor {tensor!r}, which names no parameter's buffer; "
                f"expected 'optimizer.<parameter>.<buffer>' with a parameter among "
                f"{_names(contents.parameters)}"
            )
        for what in ("shapes", "dtypes"):
            mine, theirs = getattr(contents, what)[tensor], getattr(contents, what)[parameter]
            if mine != theirs:
                raise contents.fail(
                    f"holds optimizer tensor {tensor!r} of {what[:-1]} {mine}, but its "
                    f"parameter {parameter!r} has {theirs}; the file is corrupt"
                )
        contents.buffers.setdefault(parameter, {})[buffer] = tensor


def _mismatch(needed: Mapping[str, tuple[int, ...]], stored: Mapping[str, tuple[int, ...]]) -> str:
    missing = [name for name in needed if name not in stored]
    unexpected = [name for name in stored if name not in needed]
    parts = []
    if missing:
        parts.append(f"it lacks parameters {_names(missing)}")
    if unexpected:
        parts.append(f"it holds unexpected tensors {_names(unexpected)}")
    for name, shape in needed.items():
        if name in stored and stored[name] != shape:
            parts.append(f"tensor {name!r} has shape {stored[name]} where {shape} is needed")
    return "; ".join(parts)


def _as_size(value: object) -> int:
    try:
        return max(operator.index(value), 0)  # type: ignore[arg-type]
    except TypeError:
        return 0


def _declared_shapes(config: object, prefix: str = "") -> dict[str, tuple[int, ...]]:
    """Return the parameter shapes ``config`` declares, without building anything.

    Only :class:`~xpnn.Linear` holds parameters among xpnn's layers. Knowing
    their shapes up front keeps a forged structure (a Linear of 10**9 by
    10**9) from allocating before it is compared with the file's tensors.
    Malformed entries count for nothing here: ``from_config`` rejects them
    before allocating.
    """
    if not isinstance(config, Mapping):
        return {}
    kind, settings, children = config.get("type"), config.get("settings"), config.get("children")
    if kind == "Linear" and isinstance(settings, Mapping):
        fan_in = _as_size(settings.get("in_features"))
        fan_out = _as_size(settings.get("out_features"))
        shapes: dict[str, tuple[int, ...]] = {f"{prefix}weight": (fan_in, fan_out)}
        if settings.get("bias", True):
            shapes[f"{prefix}bias"] = (fan_out,)
        return shapes
    shapes = {}
    if kind == "Sequential" and isinstance(children, list):
        for index, child in enumerate(children):
            shapes.update(_declared_shapes(child, f"{prefix}{index}."))
    return shapes


def _build(contents: _Contents) -> Module:
    """Build the model the checkpoint describes, with placeholder parameters."""
    stored = {name: contents.shapes[name] for name in contents.parameters}
    try:
        declared = _declared_shapes(contents.config)
    except RecursionError:
        raise contents.fail(
            "has metadata 'config' nested too deeply to be an xpnn model; the file is corrupt"
        ) from None
    if sum(math.prod(shape) for shape in declared.values()) > sum(
        math.prod(shape) for shape in stored.values()
    ):
        raise contents.fail(
            f"does not hold the parameters of the model its metadata 'config' describes: "
            f"{_mismatch(declared, stored)}"
        )
    try:
        model = from_config(contents.config)
    except (TypeError, ValueError, RecursionError) as exc:
        raise contents.fail(
            f"has metadata 'config' that does not describe an xpnn model: {exc}"
        ) from None
    needed = {name: tuple(int(s) for s in param.shape) for name, param in model.named_parameters()}
    if needed != stored:
        raise contents.fail(
            f"does not hold the parameters of the model its metadata 'config' describes: "
            f"{_mismatch(needed, stored)}"
        )
    return model


# -- loading -----------------------------------------------------------------


def load(
    path: PathLike,
    *,
    xp: object | None = None,
    device: Device | str | None = None,
    dtype: DType | str | None = None,
) -> Module:
    """Build the model saved at ``path``, on the library, device and dtype asked.

    The whole file is checked before anything is built: the safetensors
    header against the file's size, the xpnn format marker and version, the
    recorded structure, and every tensor's name, dtype and shape against the
    model that structure describes. A checkpoint saved from any library or
    device loads onto any other.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save`.
    xp : module, optional
        The library of the parameters (``numpy``, ``torch``, ``jax.numpy``,
        ``array_api_strict``, ...). NumPy when omitted.
    device : device or str, optional
        Where the parameters go; the library's default device when omitted.
    dtype : dtype or str, optional
        A floating dtype for every parameter (``"float32"``, ``torch.float64``,
        ...). When omitted each parameter keeps the dtype it was saved with.

    Returns
    -------
    Module
        A new model with the saved structure and parameters, in training
        mode, with no gradients. Optimizer state in the file is left for
        :func:`load_optimizer`.

    Raises
    ------
    CheckpointError
        If the file is not a valid xpnn checkpoint (truncated, corrupt,
        another tool's safetensors file, a newer format version, tensors that
        do not match the recorded structure). It is a ``ValueError``.
    OSError
        If the file cannot be opened (``FileNotFoundError``, ...).
    TypeError, ValueError
        For an ``xp``, ``device`` or ``dtype`` that cannot hold the
        parameters, as :meth:`Module.to` raises them.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import array_api_strict as xps
    >>> import xpnn
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.safetensors"
    >>> xpnn.save(xpnn.Linear(3, 2, seed=0), path)
    >>> layer = xpnn.load(path, xp=xps, dtype="float32")
    >>> layer.weight.dtype
    array_api_strict.float32
    """
    with open(path, "rb") as file:
        contents = _inspect(file, path)
        model = _build(contents)
        _check_optimizer(contents)
        for name in contents.parameters:
            model.set_parameter(name, contents.array(file, name))
    return model.to(xp, device, dtype)


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
    with open(path, "rb") as file:
        contents = _inspect(file, path)
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
                f"does not fit the optimizer's model: {_mismatch(needed, stored)}; load the "
                f"model from the same checkpoint with xpnn.load"
            )
        _check_optimizer(contents)
        known = type(optimizer).buffer_names
        state: dict[str, dict[str, Any]] = {}
        for name, param in params.items():
            entry: dict[str, Any] = {"step": saved["steps"][name], **dict.fromkeys(known)}
            for buffer, tensor in contents.buffers.get(name, {}).items():
                if buffer not in known:
                    raise contents.fail(
                        f"holds buffer {buffer!r} of {name!r}, which {kind} does not keep; "
                        f"it keeps {_names(list(known)) or 'none'}"
                    )
                entry[buffer] = _like(contents, tensor, contents.array(file, tensor), param)
            state[name] = entry
    try:
        optimizer.load_state_dict(
            {"optimizer": kind, "hyperparameters": saved["hyperparameters"], "state": state}
        )
    except ValueError as exc:
        raise contents.fail(f"holds optimizer state that does not fit {kind}: {exc}") from None


def _like(contents: _Contents, name: str, host: npt.NDArray[Any], param: Array) -> Array:
    """Move a host buffer to its parameter's library, device and dtype."""
    xp = array_namespace(parameter=param)
    if np.iscomplexobj(host) != xp.isdtype(param.dtype, "complex floating"):
        raise contents.fail(
            f"holds {host.dtype} tensor {name!r} for a parameter of dtype "
            f"{dtype_name(xp, param.dtype)}; a real buffer cannot become complex or the reverse"
        )
    return transfer(host, xp=xp, device=device_of(param), dtype=param.dtype)

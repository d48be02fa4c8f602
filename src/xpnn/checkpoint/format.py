"""The checkpoint format: its constants and error, and the checks of a file's header.

A checkpoint is a safetensors file, read and written with the ``safetensors``
package. Its ``__metadata__`` holds the format marker and version, the
model's structure, each tensor's xpnn dtype and digest, the optimizer's
record and the learning-rate schedule's state. :func:`open_checkpoint`
opens a file and checks all of that, before any tensor data are read;
:meth:`Contents.array` checks each tensor's data against its digest as it
reads them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from safetensors import SafetensorError, safe_open

from .._version import __version__

__all__ = [
    "BUFFER_DTYPES",
    "DIGEST_ALGORITHM",
    "FORMAT",
    "FORMAT_VERSION",
    "HOST_DTYPES",
    "OPTIMIZER_PREFIX",
    "STORED_DTYPES",
    "WEIGHT_LAYOUT",
    "CheckpointError",
    "Contents",
    "PathLike",
    "check_optimizer_record",
    "name_list",
    "open_checkpoint",
    "tensor_digest",
]

#: The value of ``"format"`` in the metadata of every xpnn checkpoint.
FORMAT = "xpnn"

#: The version of the checkpoint layout this package writes and reads.
FORMAT_VERSION = 1

#: The hash of each tensor's stored bytes in the metadata's ``"digests"``.
#: SHA-256 runs on the SHA extensions of current x86 and ARM processors, and
#: any tool can recompute it (``sha256sum`` on the tensor's byte range).
DIGEST_ALGORITHM = "sha256"

# A digest as the metadata records it: "sha256:" and 64 lower-case hex digits.
_DIGEST = re.compile(rf"{DIGEST_ALGORITHM}:[0-9a-f]{{64}}")

#: Optimizer buffers are stored as ``optimizer.<parameter name>.<buffer name>``.
OPTIMIZER_PREFIX = "optimizer."

#: Recorded in every checkpoint so that other tools read Linear weights right.
WEIGHT_LAYOUT = (
    "Linear.weight has shape (in_features, out_features) and y = x @ weight + bias; "
    "torch.nn.Linear.weight is its transpose, (out_features, in_features)"
)

#: The dtypes a checkpoint holds, by standard name, as host NumPy dtypes.
HOST_DTYPES: dict[str, np.dtype[Any]] = {
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
    "complex64": np.dtype(np.complex64),
    "complex128": np.dtype(np.complex128),
}

#: The dtypes a buffer may have besides: a counter (``num_batches_tracked``) is int64.
BUFFER_DTYPES: dict[str, np.dtype[Any]] = {**HOST_DTYPES, "int64": np.dtype(np.int64)}

#: How each is stored, as the format's dtype codes. The format has no
#: complex128: it is stored as F64 with a trailing axis of 2 (real,
#: imaginary), and the metadata's "dtypes" says so.
STORED_DTYPES = {
    "float32": "F32",
    "float64": "F64",
    "complex64": "C64",
    "complex128": "F64",
    "int64": "I64",
}

PathLike = str | os.PathLike[str]


class CheckpointError(ValueError):
    """A file that is not a valid xpnn checkpoint, or does not fit what loads it.

    Raised for truncated or corrupt files, safetensors files written by
    other tools, checkpoints of a newer format version, and files whose
    tensors do not match the structure recorded with them or the optimizer
    they are loaded into. The message names the file, what was expected and
    what was found.
    """


def name_list(names: list[str]) -> str:
    """Return the first few of ``names`` for a message: ``'a', 'b' and 3 more``."""
    shown = ", ".join(map(repr, names[:5]))
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


@dataclass
class Contents:
    """What an open, checked checkpoint holds, before any tensor data are read.

    Attributes
    ----------
    where : str
        ``"checkpoint '<path>'"``, the start of every error message.
    file : safetensors.safe_open
        The open file, whose tensors :meth:`array` reads.
    config : dict
        The model's structure, as ``Module.config()`` gave it.
    dtypes : dict of str to str
        The xpnn dtype of every tensor, by name.
    shapes : dict of str to tuple of int
        The shape of every tensor as xpnn holds it (complex128 without its
        trailing axis of 2).
    parameters : list of str
        The names of the tensors that are parameters, not optimizer buffers
        nor the model's buffers.
    model_buffers : list of str
        The names of the tensors that are the model's buffers (a BatchNorm's
        running statistics), as the metadata's ``"buffers"`` lists them;
        empty for files written before xpnn had buffers.
    optimizer : dict or None
        The optimizer's record, unchecked until :func:`check_optimizer_record`.
    scheduler : dict or None
        The learning-rate schedule's state dict, unchecked until
        :func:`~xpnn.checkpoint.load_scheduler` checks it against a schedule.
    buffers : dict
        Filled in by :func:`check_optimizer_record`: the tensor name of each
        buffer, by parameter name then buffer name.
    digests : dict of str to str or None
        The recorded digest of every tensor, by name, each checked to be
        well formed; None when the file records none (written before xpnn
        recorded digests, or by another tool) or when verification is off.
    task : dict or None
        What the model was trained for and how its input is prepared (the
        task's name, its classes, a tokenizer, an image size), as
        :func:`~xpnn.checkpoint.save` got it in ``task=``; None when the
        file records none.
    """

    where: str
    file: Any
    config: dict[str, Any]
    dtypes: dict[str, str]
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    parameters: list[str] = field(default_factory=list)
    model_buffers: list[str] = field(default_factory=list)
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    buffers: dict[str, dict[str, str]] = field(default_factory=dict)
    digests: dict[str, str] | None = None
    task: dict[str, Any] | None = None
    _digest_names_checked: bool = field(default=False, repr=False)

    def fail(self, message: str) -> CheckpointError:
        """Return the error to raise, ``message`` prefixed with the file's name."""
        return CheckpointError(f"{self.where} {message}")

    def array(self, name: str) -> npt.NDArray[Any]:
        """Read tensor ``name`` as a writeable host array of its xpnn dtype and shape.

        When the file records digests, the bytes read are hashed and
        compared with the digest of ``name`` before the array is returned.
        The first read also checks that the digests name exactly the
        file's tensors: after the structure and the optimizer's record,
        whose errors say more about a file that was edited.

        Raises
        ------
        CheckpointError
            If the tensor cannot be read, or its data do not match its digest.
        """
        if self.digests is not None and not self._digest_names_checked:
            self._check_digest_names(self.digests)
        try:
            stored: npt.NDArray[Any] = self.file.get_tensor(name)
        except SafetensorError as exc:
            raise self.fail(f"cannot be read: {_one_line(exc)}") from None
        if self.digests is not None:
            # The array holds the very bytes read from the file, so hashing
            # it streams: each tensor is hashed once, as it is read, and no
            # second copy of the file is ever in memory.
            found = tensor_digest(stored)
            if found != self.digests[name]:
                raise self.fail(
                    f"holds tensor {name!r} whose data do not match its recorded digest "
                    f"({self.digests[name]}, read {found}): the data are corrupt. Use an intact "
                    f"copy of the checkpoint, or save it again"
                )
        if self.dtypes[name] == "complex128":
            return stored.view(np.complex128).reshape(stored.shape[:-1])
        return stored

    def _check_digest_names(self, digests: Mapping[str, str]) -> None:
        self._digest_names_checked = True
        undigested = [name for name in self.shapes if name not in digests]
        absent = [name for name in digests if name not in self.shapes]
        parts = []
        if undigested:
            parts.append(f"holds tensors without a digest: {name_list(undigested)}")
        if absent:
            parts.append(f"has digests of tensors it does not hold: {name_list(absent)}")
        if parts:
            raise self.fail(
                f"{' and '.join(parts)} (metadata 'digests'); tensors were removed or added by "
                f"another tool, or the file is corrupt"
            )


def tensor_digest(array: npt.NDArray[Any]) -> str:
    """Return the digest a checkpoint records for ``array``: ``"sha256:<hex>"``.

    The hash is of the bytes the file stores for the array: C order,
    little-endian, as :data:`DIGEST_ALGORITHM` over the tensor's byte range
    in the data section. A NumPy array in that layout is hashed where it
    lies, without a copy.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.checkpoint.format import tensor_digest
    >>> tensor_digest(np.zeros(0, np.float32))
    'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    """
    stored = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    digest = hashlib.new(DIGEST_ALGORITHM, stored.reshape(-1).view(np.uint8).data)
    return f"{DIGEST_ALGORITHM}:{digest.hexdigest()}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


@contextmanager
def open_checkpoint(path: PathLike, *, verify: bool = True) -> Iterator[Contents]:
    """Open the checkpoint at ``path``; check its header, format, dtypes and digests.

    The parameters are checked against a model next (the model the recorded
    structure describes, or an optimizer's model), then the optimizer's
    record (:func:`check_optimizer_record`), all before any tensor data are
    read with :meth:`Contents.array`, inside the ``with`` block.

    With ``verify`` (the default) a file that records digests has them
    checked for form here, and each tensor's data against its digest as
    :meth:`Contents.array` reads it; a file without digests is read
    unchecked. Without ``verify`` the digests are ignored.

    Raises
    ------
    OSError
        If the file cannot be opened (``FileNotFoundError``, ...).
    CheckpointError
        If it is not a safetensors file, not an xpnn checkpoint, of another
        format version, or its metadata (digests included) are missing,
        malformed or disagree with its tensors.
    """
    where = f"checkpoint {os.fspath(path)!r}"
    # Python's own open() raises the usual OSError subclasses, with errno
    # and file name; the safetensors package reports any failure to open as
    # FileNotFoundError, without either.
    with open(path, "rb"):
        pass
    try:
        # pread, not the default mmap: a file cut short while it is read
        # then raises SafetensorError, where a memory map would crash the
        # process with SIGBUS.
        handle = safe_open(os.fspath(path), framework="numpy", backend="pread")
    except SafetensorError as exc:
        raise CheckpointError(
            f"{where} is not a valid safetensors file ({_one_line(exc)}); it is truncated, "
            f"corrupt or of another kind. Use an intact copy of the checkpoint, or save it again"
        ) from None
    with handle as file:
        yield _inspect(file, where, verify=verify)


def _inspect(file: Any, where: str, *, verify: bool) -> Contents:
    metadata: dict[str, str] = file.metadata() or {}
    marker = metadata.get("format")
    if marker != FORMAT:
        raise CheckpointError(
            f"{where} is a safetensors file but not an xpnn checkpoint: its metadata "
            f"'format' is {marker!r}, expected {FORMAT!r}. Files written by other tools hold "
            f"tensors only; read them with safetensors.numpy.load_file"
        )
    version = metadata.get("format_version")
    if version != str(FORMAT_VERSION):
        if version is not None and version.isdigit() and int(version) > FORMAT_VERSION:
            advice = "it was written by a newer xpnn; upgrade xpnn to load it"
        else:
            advice = "the file is corrupt or was not written by xpnn"
        raise CheckpointError(
            f"{where} has checkpoint format version {version!r}; xpnn {__version__} reads "
            f"version {FORMAT_VERSION!r}: {advice}"
        )
    contents = Contents(
        where=where,
        file=file,
        config=_from_json(metadata, "config", where, dict),
        dtypes=_from_json(metadata, "dtypes", where, dict),
    )
    if "buffers" in metadata:
        names = _from_json(metadata, "buffers", where, list)
        if not all(isinstance(name, str) for name in names) or len(set(names)) != len(names):
            raise CheckpointError(
                f"{where} has metadata 'buffers' that is not a list of distinct tensor names; "
                f"the file is corrupt"
            )
        contents.model_buffers = names
    _check_dtypes(contents)
    if verify and "digests" in metadata:
        contents.digests = _check_digest_values(_from_json(metadata, "digests", where, dict), where)
    if "optimizer" in metadata:
        contents.optimizer = _from_json(metadata, "optimizer", where, dict)
    if "scheduler" in metadata:
        contents.scheduler = _from_json(metadata, "scheduler", where, dict)
    if "task" in metadata:
        contents.task = _from_json(metadata, "task", where, dict)
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


def _check_digest_values(digests: dict[str, object], where: str) -> dict[str, str]:
    """Check that every recorded digest is ``"sha256:"`` and 64 lower-case hex digits."""
    checked: dict[str, str] = {}
    for name, digest in digests.items():
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise CheckpointError(
                f"{where} has a malformed digest {digest!r} for tensor {name!r} in its metadata "
                f"'digests'; expected '{DIGEST_ALGORITHM}:' and 64 hex digits. The file is "
                f"corrupt: use an intact copy of the checkpoint, or save it again"
            )
        checked[name] = digest
    return checked


def _check_dtypes(contents: Contents) -> None:
    """Check ``"dtypes"`` against the stored tensors; fill in the shapes xpnn holds."""
    stored = {name: contents.file.get_slice(name) for name in contents.file.offset_keys()}
    recorded = contents.dtypes
    unlisted = [name for name in stored if name not in recorded]
    absent = [name for name in recorded if name not in stored]
    if unlisted or absent:
        parts = []
        if unlisted:
            parts.append(
                f"holds tensors its metadata 'dtypes' does not list: {name_list(unlisted)}"
            )
        if absent:
            parts.append(f"lacks tensors its metadata 'dtypes' lists: {name_list(absent)}")
        raise contents.fail(
            f"{' and '.join(parts)}; tensors were removed or added by another tool, or the "
            f"file is corrupt"
        )
    buffers = set(contents.model_buffers)
    missing = [name for name in contents.model_buffers if name not in stored]
    if missing:
        raise contents.fail(
            f"lists buffers it does not hold: {name_list(missing)} (metadata 'buffers'); "
            f"the file is corrupt"
        )
    for name, tensor in stored.items():
        dtype = recorded[name]
        allowed = BUFFER_DTYPES if name in buffers else HOST_DTYPES
        if dtype not in allowed:
            raise contents.fail(
                f"records dtype {dtype!r} for tensor {name!r}; checkpoints hold "
                f"{', '.join(allowed)}"
            )
        shape = tuple(int(size) for size in tensor.get_shape())
        if dtype == "complex128":
            # Stored as float64 pairs: the last axis holds (real, imaginary).
            if not shape or shape[-1] != 2:
                raise contents.fail(
                    f"stores complex128 tensor {name!r} with shape {shape}; expected a "
                    f"trailing axis of 2 (real, imaginary)"
                )
            shape = shape[:-1]
        code = tensor.get_dtype()
        if code != STORED_DTYPES[dtype]:
            raise contents.fail(
                f"stores {dtype} tensor {name!r} as {code}; expected {STORED_DTYPES[dtype]}"
            )
        contents.shapes[name] = shape
        if not name.startswith(OPTIMIZER_PREFIX) and name not in buffers:
            contents.parameters.append(name)


def check_optimizer_record(contents: Contents) -> None:
    """Check the optimizer's record and attach each buffer tensor to its parameter.

    Raises
    ------
    CheckpointError
        For optimizer tensors without a record, a record without its class,
        hyper-parameters or a step count for each parameter, or a buffer
        tensor that names no parameter or differs from it in shape or dtype.
    """
    parameters = set(contents.parameters)
    buffer_tensors = [name for name in contents.shapes if name.startswith(OPTIMIZER_PREFIX)]
    saved = contents.optimizer
    if saved is None:
        if buffer_tensors:
            raise contents.fail(
                f"holds optimizer tensors ({name_list(buffer_tensors)}) but no 'optimizer' in "
                f"its metadata; the file is corrupt"
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
            f"({name_list(contents.parameters)}); the file is corrupt"
        )
    for tensor in buffer_tensors:
        parameter, _, buffer = tensor[len(OPTIMIZER_PREFIX) :].rpartition(".")
        if parameter not in parameters or not buffer:
            raise contents.fail(
                f"holds optimizer tensor {tensor!r}, which names no parameter's buffer; "
                f"expected 'optimizer.<parameter>.<buffer>' with a parameter among "
                f"{name_list(contents.parameters)}"
            )
        for what in ("shapes", "dtypes"):
            mine, theirs = getattr(contents, what)[tensor], getattr(contents, what)[parameter]
            if mine != theirs:
                raise contents.fail(
                    f"holds optimizer tensor {tensor!r} of {what[:-1]} {mine}, but its "
                    f"parameter {parameter!r} has {theirs}; the file is corrupt"
                )
        contents.buffers.setdefault(parameter, {})[buffer] = tensor

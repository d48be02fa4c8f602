"""A strict reader and writer of the safetensors format, on the stdlib and NumPy.

A safetensors file is::

    u64 N (little-endian) | N bytes of UTF-8 JSON header | data section

The header maps each tensor name to ``{"dtype": "F32", "shape": [...],
"data_offsets": [begin, end]}`` and may hold ``"__metadata__"``, a map of
strings to strings. Offsets count bytes from the start of the data section;
the tensors tile it exactly, with no gap and no overlap. Data are raw,
little-endian and in C order. Writers pad the header with spaces to a
multiple of 8 bytes so that the data section starts aligned.

The reader trusts nothing it reads. :func:`read_header` checks the whole
header against the real size of the file before any tensor is read, so a
declared size can never make it allocate more than the file holds, and it
reads with bounded calls only. Every problem is reported as
:class:`SafetensorsError` (a ``ValueError``) naming what was expected and
what was found.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "DTYPES",
    "MAX_HEADER_BYTES",
    "Header",
    "PendingTensor",
    "SafetensorsError",
    "TensorInfo",
    "encode_header",
    "read",
    "read_header",
    "read_tensor",
    "write",
]

#: The largest header accepted, as in the reference implementation: enough
#: for millions of tensors, small enough to refuse a forged length at once.
MAX_HEADER_BYTES = 100_000_000

#: NumPy's limit on the number of axes; a deeper shape cannot become an array.
MAX_NDIM = 64

#: The format's dtype codes this module reads and writes, as little-endian
#: NumPy dtypes. ``BF16`` and the ``F8`` codes have no NumPy dtype.
DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "U8": np.dtype("u1"),
    "I8": np.dtype("i1"),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F16": np.dtype("<f2"),
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "C64": np.dtype("<c8"),
}

_CODES: dict[tuple[str, int], str] = {
    (dtype.kind, dtype.itemsize): code for code, dtype in DTYPES.items()
}

_ENTRY_KEYS = frozenset({"dtype", "shape", "data_offsets"})

# Reads of tensor data go through the file in pieces of this size, so a
# short file is noticed without one huge read.
_CHUNK = 1 << 24


class SafetensorsError(ValueError):
    """A file, or a header, that is not valid safetensors."""


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as the header declares it.

    Attributes
    ----------
    dtype : str
        The format's dtype code (``"F32"``, ...), one of :data:`DTYPES`.
    shape : tuple of int
        The shape; ``()`` for a scalar.
    begin, end : int
        Byte offsets of the data, relative to the data section.
    """

    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class Header:
    """A checked header.

    Attributes
    ----------
    tensors : dict of str to TensorInfo
        Every tensor, in the order of their data in the file.
    metadata : dict of str to str
        The ``"__metadata__"`` entry (empty when the file has none).
    data_start : int
        Where the data section starts in the file: ``8 + N``.
    """

    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]
    data_start: int


@dataclass(frozen=True)
class PendingTensor:
    """A tensor to write whose data are fetched only when its turn comes.

    The header needs only the dtype and the shape, so a writer can stream a
    model from a device one tensor at a time.

    Attributes
    ----------
    dtype : numpy.dtype
        The dtype ``fetch`` returns; one the format has (see :data:`DTYPES`).
    shape : tuple of int
        The shape ``fetch`` returns.
    fetch : callable
        ``fetch() -> numpy.ndarray``, called once, when the data are written.
    """

    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    fetch: Callable[[], npt.NDArray[Any]]


# -- writing -----------------------------------------------------------------


def _code(dtype: np.dtype[Any], name: str) -> str:
    code = _CODES.get((dtype.kind, dtype.itemsize))
    if code is None:
        raise TypeError(
            f"tensor {name!r} has dtype {dtype}, which safetensors does not store; "
            f"supported: {', '.join(str(d) for d in DTYPES.values())}"
        )
    return code


def _pending(name: str, tensor: npt.NDArray[Any] | PendingTensor) -> PendingTensor:
    if isinstance(tensor, PendingTensor):
        return tensor
    if not isinstance(tensor, np.ndarray):
        raise TypeError(f"tensor {name!r} must be a numpy.ndarray, got {type(tensor).__name__}")
    return PendingTensor(tensor.dtype, tuple(tensor.shape), lambda: tensor)


def encode_header(
    tensors: Mapping[str, PendingTensor], metadata: Mapping[str, str] | None = None
) -> bytes:
    """Return the length prefix and the padded JSON header for ``tensors``.

    Parameters
    ----------
    tensors : mapping of str to PendingTensor
        The tensors in the order their data will follow.
    metadata : mapping of str to str, optional
        Stored as ``"__metadata__"``.

    Returns
    -------
    bytes
        ``8 + N`` bytes, ``N`` a multiple of 8.

    Raises
    ------
    TypeError
        For a dtype the format cannot hold, or metadata that are not strings.
    ValueError
        For a reserved or duplicate name, or a header above
        :data:`MAX_HEADER_BYTES`.
    """
    header: dict[str, Any] = {}
    if metadata:
        for key, value in metadata.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(
                    f"metadata must map str to str, got {type(key).__name__} {key!r}: "
                    f"{type(value).__name__}"
                )
        header["__metadata__"] = dict(metadata)
    offset = 0
    for name, tensor in tensors.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise ValueError(f"tensor names must be str other than '__metadata__', got {name!r}")
        code = _code(tensor.dtype, name)
        shape = [int(size) for size in tensor.shape]
        if any(size < 0 for size in shape):
            raise ValueError(f"tensor {name!r} has a negative size in shape {tuple(shape)}")
        size = math.prod(shape) * DTYPES[code].itemsize
        header[name] = {"dtype": code, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    encoded = text.encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    if len(encoded) > MAX_HEADER_BYTES:
        raise ValueError(
            f"the header would take {len(encoded)} bytes, above the format's limit of "
            f"{MAX_HEADER_BYTES}; store fewer tensors or shorter metadata"
        )
    return len(encoded).to_bytes(8, "little") + encoded


def write(
    file: IO[bytes],
    tensors: Mapping[str, npt.NDArray[Any] | PendingTensor],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``tensors`` to ``file`` in the safetensors format.

    Parameters
    ----------
    file : binary file
        Open for writing, at the position where the file starts.
    tensors : mapping of str to numpy.ndarray or PendingTensor
        The tensors, written in this order. A :class:`PendingTensor` is
        fetched when its data are written.
    metadata : mapping of str to str, optional
        Stored as ``"__metadata__"``.

    Raises
    ------
    TypeError, ValueError
        As :func:`encode_header`, or when a fetched array does not have the
        dtype and shape announced for it (the file is then incomplete: write
        to a temporary file and discard it on error).
    """
    pending = {name: _pending(name, tensor) for name, tensor in tensors.items()}
    file.write(encode_header(pending, metadata))
    for name, tensor in pending.items():
        array = tensor.fetch()
        if not isinstance(array, np.ndarray):
            raise TypeError(f"tensor {name!r} must be a numpy.ndarray, got {type(array).__name__}")
        if array.dtype != tensor.dtype or tuple(array.shape) != tuple(tensor.shape):
            raise ValueError(
                f"tensor {name!r} was announced as {tensor.dtype} {tuple(tensor.shape)} but is "
                f"{array.dtype} {tuple(array.shape)}; it changed while being written"
            )
        little = DTYPES[_code(array.dtype, name)]
        data = np.ascontiguousarray(array, dtype=little)
        if data.size:
            file.write(data.reshape(-1).view(np.uint8).data)


# -- reading -----------------------------------------------------------------


def _file_size(file: IO[bytes]) -> int:
    try:
        return os.fstat(file.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        # In-memory files (io.BytesIO) have no descriptor.
        position = file.tell()
        size = file.seek(0, os.SEEK_END)
        file.seek(position)
        return size


def _read_exact(file: IO[bytes], size: int, what: str) -> bytes:
    parts = []
    left = size
    while left:
        part = file.read(min(left, _CHUNK))
        if not part:
            raise SafetensorsError(
                f"the file ends {left} bytes before the end of its {what}; it is truncated"
            )
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise SafetensorsError(f"the header names {key!r} twice")
        result[key] = value
    return result


def _no_constant(token: str) -> Any:
    raise SafetensorsError(f"the header holds {token}, which is not JSON")


def _check_text(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise SafetensorsError(f"{what} {text!r} is not valid Unicode text") from None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_json(raw: bytes) -> dict[str, Any]:
    if not raw.startswith(b"{"):
        raise SafetensorsError(
            f"the header must be a JSON object starting with '{{', got {raw[:16]!r}; this is "
            f"not a safetensors file"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SafetensorsError(f"the header is not valid UTF-8 ({exc})") from None
    try:
        parsed = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except SafetensorsError:
        raise
    except (ValueError, RecursionError) as exc:
        # ValueError: malformed JSON, or an integer too long to convert;
        # RecursionError: nesting deeper than the parser's stack.
        raise SafetensorsError(f"the header is not valid JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise SafetensorsError(f"the header must be a JSON object, got {type(parsed).__name__}")
    return parsed


def _metadata(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SafetensorsError(
            f"'__metadata__' must be an object of strings, got {type(value).__name__}"
        )
    for key, text in value.items():
        if not isinstance(text, str):
            raise SafetensorsError(
                f"'__metadata__'[{key!r}] must be a string, got {type(text).__name__}"
            )
        _check_text(key, "metadata key")
        _check_text(text, f"metadata value of {key!r}")
    return dict(value)


def _count(shape: tuple[int, ...], itemsize: int, name: str) -> int:
    """Return the number of elements, refusing shapes NumPy cannot hold.

    The product stops growing once it passes the limit, so a forged shape of
    huge sizes costs no more than a handful of multiplications.
    """
    limit = sys.maxsize // itemsize
    nonzero = 1
    for size in shape:
        if size:
            nonzero *= size
            if nonzero > limit:
                raise SafetensorsError(
                    f"tensor {name!r} has shape {shape}, more elements than any array can hold"
                )
    return 0 if 0 in shape else nonzero


def _entry(name: str, entry: object, data_size: int) -> TensorInfo:
    _check_text(name, "tensor name")
    if not isinstance(entry, dict):
        raise SafetensorsError(
            f"tensor {name!r} must be described by an object, got {type(entry).__name__}"
        )
    if set(entry) != _ENTRY_KEYS:
        raise SafetensorsError(
            f"tensor {name!r} must have exactly the keys 'dtype', 'shape' and 'data_offsets', "
            f"got {sorted(entry)}"
        )
    code = entry["dtype"]
    if not isinstance(code, str) or code not in DTYPES:
        raise SafetensorsError(
            f"tensor {name!r} has dtype {code!r}; this reader knows {', '.join(DTYPES)}"
        )
    raw_shape = entry["shape"]
    if (
        not isinstance(raw_shape, list)
        or len(raw_shape) > MAX_NDIM
        or not all(_is_int(size) and size >= 0 for size in raw_shape)
    ):
        raise SafetensorsError(
            f"tensor {name!r} must have a shape of at most {MAX_NDIM} non-negative integers, "
            f"got {_short(raw_shape)}"
        )
    shape = tuple(raw_shape)
    offsets = entry["data_offsets"]
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_int(offset) for offset in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        raise SafetensorsError(
            f"tensor {name!r} must have data_offsets [begin, end] with 0 <= begin <= end, "
            f"got {_short(offsets)}"
        )
    begin, end = offsets
    if end > data_size:
        raise SafetensorsError(
            f"tensor {name!r} ends at byte {end} of the data section, but the file holds "
            f"{data_size} bytes of data; the file is truncated or the header is corrupt"
        )
    itemsize = DTYPES[code].itemsize
    count = _count(shape, itemsize, name)
    if end - begin != count * itemsize:
        raise SafetensorsError(
            f"tensor {name!r} of dtype {code} and shape {shape} needs {count * itemsize} bytes, "
            f"but its data_offsets [{begin}, {end}] span {end - begin}"
        )
    return TensorInfo(code, shape, begin, end)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def read_header(file: IO[bytes]) -> Header:
    """Read and check the header of a safetensors file.

    Parameters
    ----------
    file : binary file
        Open for reading, positioned at the start of the file, and seekable.

    Returns
    -------
    Header
        Tensors in the order of their data, with offsets that tile the data
        section exactly; the data section's size is that of the file.

    Raises
    ------
    SafetensorsError
        For anything that is not valid safetensors: a file too short for the
        length prefix, a header length of 0, above :data:`MAX_HEADER_BYTES`
        or beyond the end of the file, a header that is not a UTF-8 JSON
        object, a name given twice, an unknown dtype, a bad shape, offsets
        out of bounds, overlapping or leaving gaps, or data of another size
        than the file's data section.
    """
    size = _file_size(file)
    prefix = file.read(8)
    if len(prefix) < 8:
        raise SafetensorsError(
            f"the file holds {size} bytes, fewer than the 8 of the header length; it is empty "
            f"or truncated"
        )
    length = int.from_bytes(prefix, "little")
    if length == 0:
        raise SafetensorsError("the header length is 0; a header holds at least '{}'")
    if length > MAX_HEADER_BYTES:
        raise SafetensorsError(
            f"the header length is {length} bytes, above the limit of {MAX_HEADER_BYTES}; "
            f"this is not a safetensors file, or it is corrupt"
        )
    if length > size - 8:
        raise SafetensorsError(
            f"the header length is {length} bytes, but only {size - 8} follow the length; "
            f"the file is truncated or corrupt"
        )
    parsed = _parse_json(_read_exact(file, length, "header"))
    data_size = size - 8 - length
    metadata = _metadata(parsed.pop("__metadata__", None))
    infos = [_entry(name, entry, data_size) for name, entry in parsed.items()]
    names = list(parsed)
    order = sorted(range(len(infos)), key=lambda i: (infos[i].begin, infos[i].end))
    expected = 0
    for index in order:
        info = infos[index]
        if info.begin != expected:
            problem = "overlaps the tensor before it" if info.begin < expected else "leaves a gap"
            raise SafetensorsError(
                f"tensor {names[index]!r} starts at byte {info.begin} of the data section and "
                f"{problem} (expected {expected}); tensors must tile the data section"
            )
        expected = info.end
    if expected != data_size:
        raise SafetensorsError(
            f"the tensors take {expected} bytes but the data section holds {data_size}; the "
            f"file has trailing bytes or is corrupt"
        )
    return Header(
        tensors={names[i]: infos[i] for i in order},
        metadata=metadata,
        data_start=8 + length,
    )


def read_tensor(file: IO[bytes], header: Header, name: str) -> npt.NDArray[Any]:
    """Read one tensor that ``header`` (from :func:`read_header`) describes.

    Parameters
    ----------
    file : binary file
        The file the header was read from.
    header : Header
        Its checked header.
    name : str
        The tensor to read.

    Returns
    -------
    numpy.ndarray
        A new, writeable, C-ordered array in native byte order, of the
        declared dtype and shape.

    Raises
    ------
    KeyError
        If the header has no tensor ``name``.
    SafetensorsError
        If the file ends early (it changed after its header was read).
    """
    info = header.tensors[name]
    dtype = DTYPES[info.dtype]
    count = (info.end - info.begin) // dtype.itemsize
    # The size was checked against the file's real size by read_header.
    array = np.empty(count, dtype=dtype)
    buffer = array.view(np.uint8).data
    file.seek(header.data_start + info.begin)
    filled = 0
    while filled < len(buffer):
        got = file.readinto(buffer[filled : filled + _CHUNK])  # type: ignore[attr-defined]
        if not got:
            raise SafetensorsError(
                f"the file ends inside tensor {name!r}; it is truncated (or was changed while "
                f"being read)"
            )
        filled += got
    if not dtype.isnative:
        array = array.astype(dtype.newbyteorder("="))
    return array.reshape(info.shape)


def read(
    file: IO[bytes], names: Iterable[str] | None = None
) -> tuple[dict[str, npt.NDArray[Any]], dict[str, str]]:
    """Read a whole safetensors file (or the tensors ``names``) and its metadata.

    Parameters
    ----------
    file : binary file
        Open for reading at its start, seekable.
    names : iterable of str, optional
        The tensors to read; all of them when omitted.

    Returns
    -------
    tensors : dict of str to numpy.ndarray
    metadata : dict of str to str

    Raises
    ------
    SafetensorsError
        As :func:`read_header` and :func:`read_tensor`, or for a name the
        file does not hold.
    """
    header = read_header(file)
    wanted = list(header.tensors) if names is None else list(names)
    missing = [name for name in wanted if name not in header.tensors]
    if missing:
        raise SafetensorsError(f"the file holds no tensor {', '.join(map(repr, missing))}")
    return {name: read_tensor(file, header, name) for name in wanted}, header.metadata

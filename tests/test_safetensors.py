"""Checkpoint files and the safetensors package: agreement both ways, and files never trusted.

xpnn reads and writes checkpoints with the ``safetensors`` package; these
tests look at the result through ``xpnn.save``, ``xpnn.load`` and
``load_optimizer`` only:

- what xpnn writes, the reference reader reads, and what the reference
  writer makes (with xpnn's metadata), xpnn loads, bit for bit;
- a hostile file (random bytes, forged headers, sizes, shapes and offsets,
  flipped header bytes, every truncation of a real checkpoint) gives a
  one-line ``CheckpointError`` that names the file, or a clean load: never
  another exception, a hang or a large allocation. xpnn calls a file "not
  a valid safetensors file" exactly when the reference reader refuses it.
"""

from __future__ import annotations

import json
import struct
import tracemalloc
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xpnn
import xpnn.checkpoint.build
import xpnn.checkpoint.writer
from selection import ON_HOST
from xpnn.checkpoint import CheckpointError, load_optimizer
from xpnn.optim import Adam

pytestmark = ON_HOST  # files are read on the host, whatever the session

safetensors = pytest.importorskip("safetensors")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

FUZZ = settings(
    max_examples=50,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

DTYPES = ["float32", "float64", "complex64", "complex128"]

# A loader that allocated more than this for a file of a few kilobytes
# trusted a declared size.
ALLOCATION_LIMIT = 2_000_000

INVALID = "is not a valid safetensors file"


# -- helpers -------------------------------------------------------------------------


def raw_file(header: object, data: bytes = b"", *, pad: bool = True) -> bytes:
    """A file with a hand-written header, to forge what no writer would."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def split(data: bytes) -> tuple[dict[str, Any], bytes]:
    """The parsed header and the data section of a valid file."""
    length = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def reference_accepts(data: bytes) -> bool:
    """Whether the reference implementation takes ``data`` as a valid safetensors file."""
    try:
        safetensors.deserialize(data)
    except safetensors.SafetensorError:
        return False
    return True


def as_stored(array: np.ndarray) -> np.ndarray:
    """What a checkpoint stores for ``array``: complex128 as float64 (real, imaginary) pairs."""
    if array.dtype == np.complex128:
        return np.stack([array.real, array.imag], axis=-1)
    return array


def assert_same_arrays(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> None:
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert ours[name].dtype == theirs[name].dtype, name
        assert ours[name].shape == theirs[name].shape, name
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


def stored_by_xpnn(model: xpnn.Module, optimizer: Any = None) -> dict[str, np.ndarray]:
    """The tensors a checkpoint of ``model`` (and ``optimizer``) must hold."""
    tensors = {name: as_stored(param) for name, param in model.named_parameters()}
    if optimizer is not None:
        for name, buffers in optimizer.buffers().items():
            for buffer, value in buffers.items():
                tensors[f"optimizer.{name}.{buffer}"] = as_stored(value)
    return tensors


def metadata_of(path: Path) -> dict[str, str]:
    with safetensors.safe_open(path, "numpy") as file:
        return dict(file.metadata())


def bounded(load: Any, *args: Any) -> Any:
    """Run ``load``; fail if it allocated more than ALLOCATION_LIMIT bytes."""
    tracemalloc.start()
    try:
        return load(*args)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < ALLOCATION_LIMIT, f"loading allocated {peak} bytes"


def load_everything(path: Path) -> xpnn.Module:
    """Load the model and, if the file holds one, Adam's state."""
    model = xpnn.load(path)
    if "optimizer" in metadata_of(path):
        load_optimizer(path, Adam(model, lr=1.0))
    return model


def verdict(data: bytes, path: Path) -> str | None:
    """Write ``data`` to ``path`` and load it: None if it loaded, else the error message.

    An error must be a one-line CheckpointError naming the file, which
    calls the file invalid safetensors exactly when the reference does. A
    file that loads must hold what the reference reads from it.
    """
    path.write_bytes(data)
    try:
        model = bounded(load_everything, path)
    except CheckpointError as exc:
        message = str(exc)
        assert repr(str(path)) in message
        assert "\n" not in message
        assert (INVALID in message) == (not reference_accepts(data)), message
        return message
    theirs = safetensors_numpy.load(data)
    ours = {name: as_stored(param) for name, param in model.named_parameters()}
    assert_same_arrays(ours, {name: theirs[name] for name in ours})
    return None


def model_of(spec: list[tuple[int, str, bool]], inputs: int) -> xpnn.Sequential:
    layers: list[xpnn.Module] = []
    for index, (width, dtype, bias) in enumerate(spec):
        layers.append(xpnn.Linear(inputs, width, bias=bias, dtype=dtype, seed=index))
        layers.append(xpnn.Tanh())
        inputs = width
    return xpnn.Sequential(*layers)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real checkpoint, small enough to corrupt at every byte: model and Adam state."""
    model = xpnn.Sequential(xpnn.Linear(3, 4, seed=0), xpnn.Tanh(), xpnn.Linear(4, 2, seed=1))
    optimizer = Adam(model, lr=0.01)
    for name, param in model.named_parameters():
        model.set_gradient(name, np.ones_like(param))
    optimizer.step()
    path = tmp_path_factory.mktemp("fuzz") / "model.safetensors"
    xpnn.save(model, path, optimizer=optimizer)
    return path.read_bytes()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scratch") / "corrupt.safetensors"


# -- agreement with the reference implementation ---------------------------------------


LAYER_SPECS = st.lists(
    st.tuples(st.integers(1, 4), st.sampled_from(DTYPES), st.booleans()), min_size=1, max_size=3
)


@given(LAYER_SPECS, st.integers(1, 4), st.booleans())
@FUZZ
def test_the_reference_reads_what_xpnn_writes(tmp_path, spec, inputs, with_optimizer):
    model = model_of(spec, inputs)
    optimizer = Adam(model, lr=0.1) if with_optimizer else None
    if optimizer is not None:
        for name, param in model.named_parameters():
            model.set_gradient(name, np.ones_like(param))
        optimizer.step()
    path = tmp_path / "ours.safetensors"
    xpnn.save(model, path, optimizer=optimizer)
    assert_same_arrays(safetensors_numpy.load_file(path), stored_by_xpnn(model, optimizer))
    metadata = metadata_of(path)
    assert json.loads(metadata["config"]) == model.config()
    dtypes = {name: param.dtype.name for name, param in model.named_parameters()}
    for name, buffers in optimizer.buffers().items() if optimizer is not None else ():
        dtypes.update({f"optimizer.{name}.{buffer}": dtypes[name] for buffer in buffers})
    assert json.loads(metadata["dtypes"]) == dtypes
    assert struct.unpack("<Q", path.read_bytes()[:8])[0] % 8 == 0


@given(LAYER_SPECS, st.integers(1, 4))
@FUZZ
def test_xpnn_loads_what_the_reference_writes(tmp_path, spec, inputs):
    model = model_of(spec, inputs)
    ours = tmp_path / "ours.safetensors"
    xpnn.save(model, ours)
    theirs = tmp_path / "theirs.safetensors"
    safetensors_numpy.save_file(stored_by_xpnn(model), theirs, metadata=metadata_of(ours))
    loaded = xpnn.load(theirs)
    assert loaded.config() == model.config()
    for (name, got), want in zip(loaded.named_parameters(), model.parameters(), strict=True):
        assert got.dtype == want.dtype, name
        assert got.flags.writeable, name
        np.testing.assert_array_equal(got, want, err_msg=name)


def test_any_memory_layout_is_written_as_the_values(tmp_path):
    # The reference writer takes each array's memory as one block: views
    # that are not C-contiguous must reach it as copies.
    base = np.arange(48.0).reshape(8, 6)
    model = xpnn.Sequential(xpnn.Linear(6, 4, seed=0), xpnn.Linear(4, 3, seed=1))
    model.set_parameter("0.weight", base.T[:, :4])
    model.set_parameter("0.bias", base[::2, 0])
    model.set_parameter("1.weight", base[:4, ::2])
    model.set_parameter("1.bias", base[1, ::-2])
    assert not any(param.flags.c_contiguous for param in model.parameters())
    path = tmp_path / "views.safetensors"
    xpnn.save(model, path)
    assert_same_arrays(safetensors_numpy.load_file(path), stored_by_xpnn(model))
    for got, want in zip(xpnn.load(path).parameters(), model.parameters(), strict=True):
        np.testing.assert_array_equal(got, want)


def test_every_dtype_is_checked_before_any_tensor_is_copied(tmp_path, monkeypatch):
    copied = []
    real = xpnn.checkpoint.writer.stored_array

    def spy(*args: Any) -> np.ndarray:
        copied.append(1)
        return real(*args)

    monkeypatch.setattr(xpnn.checkpoint.writer, "stored_array", spy)
    model = xpnn.Sequential(xpnn.Linear(2, 3, seed=0), xpnn.Linear(3, 2, seed=1))
    model.set_parameter("1.bias", np.zeros(2, np.float16))
    with pytest.raises(TypeError, match="parameter '1.bias' has dtype float16"):
        xpnn.save(model, tmp_path / "model.safetensors")
    assert copied == []
    assert list(tmp_path.iterdir()) == []


def test_each_tensor_is_copied_to_the_host_once(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    copies = []
    real = xpnn.checkpoint.writer.to_numpy

    def spy(array: Any) -> np.ndarray:
        copies.append(array)
        return real(array)

    model = xpnn.Sequential(
        xpnn.Linear(2, 3, seed=0, xp=torch), xpnn.Linear(3, 2, seed=1, xp=torch)
    )
    optimizer = Adam(model, lr=0.1)
    for name, param in model.named_parameters():
        model.set_gradient(name, torch.ones_like(param))
    optimizer.step()
    monkeypatch.setattr(xpnn.checkpoint.writer, "to_numpy", spy)
    xpnn.save(model, tmp_path / "run.safetensors", optimizer=optimizer)
    assert len(copies) == 4 * 3  # four parameters, each with two Adam buffers
    assert len({id(array) for array in copies}) == len(copies)


# -- the checks, one by one ------------------------------------------------------------

ENTRY = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
DATA = b"\x00" * 8

DEFECTS = [
    (b"", "empty"),
    (b"\x01\x02\x03", "shorter than the length"),
    (struct.pack("<Q", 0), "header length 0"),
    (struct.pack("<Q", 2**64 - 1) + b"{}", "header length 2**64 - 1"),
    (struct.pack("<Q", 100_000_001) + b"{}", "header length above 100 MB"),
    (struct.pack("<Q", 64) + b"{}      ", "header length beyond the file"),
    (raw_file(b"[1, 2]"), "header not an object"),
    (raw_file(b"{\xff\xfe}"), "not UTF-8"),
    (raw_file(b'{"a": '), "not JSON"),
    (raw_file(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"), "nested too deeply"),
    (raw_file(b'{"a": 1' + b"0" * 5000 + b"}"), "huge integer"),
    (raw_file(b'{"a": NaN}'), "NaN"),
    (raw_file(b'{"a": {}, "a": {}}'), "a name twice, empty entries"),
    (raw_file({"a": [1]}), "entry not an object"),
    (raw_file({"a": {"dtype": "F32", "shape": [2]}}, DATA), "entry without offsets"),
    (raw_file({"a": {**ENTRY, "dtype": "BF17"}}, DATA), "unknown dtype"),
    (raw_file({"a": {**ENTRY, "dtype": "BF16"}}, DATA), "dtype of another size"),
    (raw_file({"a": {**ENTRY, "dtype": 4}}, DATA), "dtype not a string"),
    (raw_file({"a": {**ENTRY, "shape": [-2]}}, DATA), "negative size"),
    (raw_file({"a": {**ENTRY, "shape": [2.0]}}, DATA), "float size"),
    (raw_file({"a": {**ENTRY, "shape": [True, 2]}}, DATA), "boolean size"),
    (raw_file({"a": {**ENTRY, "shape": 2}}, DATA), "shape not a list"),
    (raw_file({"a": {**ENTRY, "shape": [2**62, 2**62]}}, DATA), "huge shape"),
    (raw_file({"a": {**ENTRY, "shape": [3]}}, DATA), "shape larger than its bytes"),
    (raw_file({"a": {**ENTRY, "data_offsets": [0]}}, DATA), "one offset"),
    (raw_file({"a": {**ENTRY, "data_offsets": [8, 0]}}, DATA), "reversed offsets"),
    (raw_file({"a": {**ENTRY, "data_offsets": [-8, 0]}}, DATA), "negative offset"),
    (raw_file({"a": {**ENTRY, "data_offsets": [0, 2**70]}}, DATA), "huge offset"),
    (raw_file({"a": {**ENTRY, "data_offsets": [8, 16]}}, DATA * 2), "gap"),
    (raw_file({"a": ENTRY, "b": {**ENTRY, "data_offsets": [4, 12]}}, DATA * 2), "overlap"),
    (raw_file({"a": ENTRY}, DATA + b"\x00"), "trailing byte"),
    (raw_file({"a": ENTRY}, DATA[:-1]), "truncated data"),
    (raw_file({"__metadata__": {"k": 1}}), "metadata value not a string"),
    (raw_file({"__metadata__": [1]}), "metadata not an object"),
    (raw_file(b'{"\\ud800": {}}'), "lone surrogate"),
]


@pytest.mark.parametrize(("data", "what"), DEFECTS, ids=[what for _, what in DEFECTS])
def test_each_defect_is_a_one_line_checkpoint_error(scratch, data, what):
    message = verdict(data, scratch)
    assert message is not None
    assert INVALID in message, what


def rebuilt(checkpoint: bytes, change: Any = None, *, pad: bool = True) -> bytes:
    header, data = split(checkpoint)
    if change is not None:
        change(header)
    return raw_file(header, data, pad=pad)


def retyped(code: str, shape: list[int]) -> Any:
    def change(header: dict[str, Any]) -> None:
        header["0.weight"].update(dtype=code, shape=shape)

    return change


# Valid safetensors files that the reference reads, and xpnn refuses before
# reading any tensor: 0.weight is float64 (3, 4), 96 bytes.
NOT_CHECKPOINTS = {
    "65 axes": (retyped("F64", [1] * 63 + [3, 4]), "has shape (1, 1, 1,"),
    "int64 for float64": (retyped("I64", [3, 4]), "stores float64 tensor '0.weight' as I64"),
    "float8, which NumPy lacks": (retyped("F8_E4M3", [3, 4, 8]), "as F8_E4M3; expected F64"),
    "bfloat16, which NumPy lacks": (retyped("BF16", [3, 4, 4]), "as BF16; expected F64"),
}


@pytest.mark.parametrize(
    ("change", "pattern"), NOT_CHECKPOINTS.values(), ids=NOT_CHECKPOINTS.keys()
)
def test_valid_safetensors_with_tensors_unlike_their_record(checkpoint, scratch, change, pattern):
    data = rebuilt(checkpoint, change)
    assert reference_accepts(data)
    message = verdict(data, scratch)
    assert message is not None
    assert pattern in message


def test_what_the_format_allows_loads(checkpoint, scratch):
    def reverse(header: dict[str, Any]) -> None:
        items = list(header.items())[::-1]
        header.clear()
        header.update(items)

    assert verdict(rebuilt(checkpoint, pad=False), scratch) is None
    assert verdict(rebuilt(checkpoint, reverse), scratch) is None
    # A model without parameters stores no tensors at all.
    path = scratch.with_name("empty.safetensors")
    xpnn.save(xpnn.Sequential(xpnn.ReLU(), xpnn.Dropout(0.5)), path)
    assert verdict(path.read_bytes(), scratch) is None
    assert safetensors_numpy.load(path.read_bytes()) == {}


def test_what_the_reference_tolerates_xpnn_tolerates(checkpoint, scratch):
    # Leniencies of the reference reader, not of xpnn: a header that starts
    # with a space, an entry with an extra key, a name given twice alike.
    length = struct.unpack("<Q", checkpoint[:8])[0]
    text = checkpoint[8 : 8 + length]
    spaced = struct.pack("<Q", length + 8) + b" " * 8 + text + checkpoint[8 + length :]

    def extra(header: dict[str, Any]) -> None:
        header["0.bias"]["extra"] = 0

    name = next(name for name in split(checkpoint)[0] if name != "__metadata__")
    entry = json.dumps(split(checkpoint)[0][name]).encode()
    twice = text.replace(b"{", b"{" + json.dumps(name).encode() + b":" + entry + b",", 1)
    twice += b" " * (-len(twice) % 8)
    doubled = struct.pack("<Q", len(twice)) + twice + checkpoint[8 + length :]
    for data in (spaced, rebuilt(checkpoint, extra), doubled):
        assert reference_accepts(data)
        assert verdict(data, scratch) is None


def test_a_file_cut_while_it_is_read(checkpoint, scratch, monkeypatch):
    # Another process may shorten a file in place after its header was
    # checked: the tensor reads notice, and the process survives.
    real = xpnn.checkpoint.build.build_model

    def build_then_cut(contents: Any) -> xpnn.Module:
        scratch.write_bytes(checkpoint[: len(checkpoint) // 2])
        return real(contents)

    scratch.write_bytes(checkpoint)
    monkeypatch.setattr(xpnn.checkpoint.build, "build_model", build_then_cut)
    with pytest.raises(CheckpointError, match="cannot be read") as info:
        xpnn.load(scratch)
    assert repr(str(scratch)) in str(info.value)
    assert "\n" not in str(info.value)


# -- fuzzing ---------------------------------------------------------------------------


@given(st.binary(max_size=300))
@FUZZ
def test_random_bytes_are_rejected_cleanly(scratch, data):
    assert verdict(data, scratch) is not None


@given(st.integers(0, 2**64 - 1), st.binary(max_size=64))
@FUZZ
def test_any_declared_header_length_is_checked_before_reading(scratch, length, rest):
    assert verdict(struct.pack("<Q", length) + rest, scratch) is not None


SIZES = st.one_of(st.integers(0, 8), st.integers(0, 2**64), st.integers(-(2**64), -1))


@given(
    st.lists(SIZES, max_size=8),
    st.tuples(SIZES, SIZES),
    st.sampled_from(["F32", "F64", "U8", "C64", "BOOL"]),
    st.integers(0, 64),
)
@FUZZ
def test_forged_shapes_and_offsets_never_allocate(scratch, shape, offsets, dtype, data_size):
    entry = {"dtype": dtype, "shape": shape, "data_offsets": list(offsets)}
    assert verdict(raw_file({"x": entry}, b"\x01" * data_size), scratch) is not None


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # A named function, not a lambda: hypothesis reads a lambda's source to
    # check that it recurses, which fails when the file changed after import.
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner)


HEADER_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 40) | st.text(max_size=5),
    _containers,
    max_leaves=8,
)
ENTRIES = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(["F32", "F16", "I8", "C64", "BF16", "f32"]) | HEADER_VALUES,
        "shape": st.lists(st.integers(0, 3), max_size=3) | HEADER_VALUES,
        "data_offsets": st.lists(st.integers(0, 40), min_size=2, max_size=2) | HEADER_VALUES,
    },
    optional={"extra": HEADER_VALUES},
)


@given(
    st.dictionaries(st.sampled_from(["a", "b", "c", "__metadata__"]), ENTRIES | HEADER_VALUES),
    st.binary(max_size=48),
)
@FUZZ
def test_structured_headers_are_rejected_cleanly(scratch, header, data):
    assert verdict(raw_file(header, data), scratch) is not None


CODES = ["F32", "F64", "C64", "F16", "BF16", "I64", "U64", "I8", "BOOL", "F8_E4M3", "F4"]
MUTATIONS = ["none", "dtype", "shape", "begin", "end", "drop_key", "add_key", "data_byte"]


@given(st.sampled_from(MUTATIONS), st.data())
@FUZZ
def test_mutated_checkpoint_headers_are_rejected_or_load_cleanly(
    checkpoint, scratch, mutation, data
):
    header, payload = split(checkpoint)
    names = sorted(name for name in header if name != "__metadata__")
    entry = header[data.draw(st.sampled_from(names))]
    small = st.integers(-2, len(payload) + 2)
    if mutation == "dtype":
        entry["dtype"] = data.draw(st.sampled_from(CODES))
    elif mutation == "shape":
        entry["shape"] = data.draw(st.lists(st.integers(-1, 4), max_size=4))
    elif mutation == "begin":
        entry["data_offsets"][0] = data.draw(small)
    elif mutation == "end":
        entry["data_offsets"][1] = data.draw(small)
    elif mutation == "drop_key":
        del entry[data.draw(st.sampled_from(sorted(entry)))]
    elif mutation == "add_key":
        entry["extra"] = 0
    elif mutation == "data_byte":
        payload = payload + b"\x00" if data.draw(st.booleans()) else payload[:-1]
    message = verdict(raw_file(header, payload), scratch)
    if mutation == "none":
        assert message is None


# -- fuzzing a whole checkpoint ---------------------------------------------------------


def test_the_intact_checkpoint_loads(checkpoint, scratch):
    assert verdict(checkpoint, scratch) is None


def test_truncation_at_every_offset_is_a_checkpoint_error(checkpoint, scratch):
    assert len(checkpoint) < 5000  # keep this loop quick
    for size in range(len(checkpoint)):
        scratch.write_bytes(checkpoint[:size])
        with pytest.raises(CheckpointError, match=INVALID) as info:
            xpnn.load(scratch)
        assert repr(str(scratch)) in str(info.value)
        assert "\n" not in str(info.value)


@given(st.data())
@FUZZ
def test_flipped_header_bytes_are_rejected_or_load_cleanly(checkpoint, scratch, data):
    length = struct.unpack("<Q", checkpoint[:8])[0]
    corrupt = bytearray(checkpoint)
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, 8 + length - 1))
        corrupt[position] ^= data.draw(st.integers(1, 255))
    verdict(bytes(corrupt), scratch)


@given(st.data())
@FUZZ
def test_corrupted_data_bytes_are_caught_by_the_digests(checkpoint, scratch, data):
    # safetensors has no checksum; xpnn's per-tensor digests catch a flipped
    # data byte wherever it lies.
    length = struct.unpack("<Q", checkpoint[:8])[0]
    corrupt = bytearray(checkpoint)
    position = data.draw(st.integers(8 + length, len(checkpoint) - 1))
    corrupt[position] ^= 0xFF
    message = verdict(bytes(corrupt), scratch)
    assert message is not None
    assert "do not match its recorded digest" in message

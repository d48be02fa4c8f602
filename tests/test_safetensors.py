"""xpnn._safetensors: agreement with the reference library, and a reader that never trusts a file.

The reference implementation (the ``safetensors`` package) is the oracle for
valid files, both ways. The fuzz tests feed the reader random bytes, every
truncation of a real checkpoint, corrupted headers and forged sizes: each
must give ``SafetensorsError`` (``CheckpointError`` through ``xpnn.load``) or
a clean load, never another exception, a hang or a large allocation.
"""

from __future__ import annotations

import io
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
from xpnn import _safetensors
from xpnn._safetensors import SafetensorsError
from xpnn.checkpoint import CheckpointError, load_optimizer
from xpnn.optim import Adam

safetensors_numpy = pytest.importorskip("safetensors.numpy")

FUZZ = settings(
    max_examples=200,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow],
)

# Every dtype both this module and the reference support.
ALL_DTYPES = ["?", "u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f2", "f4", "f8", "c8"]

# A loader that allocated more than this for a file of a few kilobytes
# trusted a declared size.
ALLOCATION_LIMIT = 2_000_000


def sample(dtype: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=shape) * 50
    if np.dtype(dtype).kind == "c":
        values = values + 1j * rng.normal(size=shape)
    if np.dtype(dtype).kind == "b":
        return np.asarray(values > 0)
    return np.asarray(values).astype(dtype)


def write_bytes(tensors: dict[str, Any], metadata: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    _safetensors.write(buffer, tensors, metadata)
    return buffer.getvalue()


def read_bytes(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    return _safetensors.read(io.BytesIO(data))


def raw_file(header: object, data: bytes = b"", *, pad: bool = True) -> bytes:
    """A file with a hand-written header, to forge what no writer would."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def assert_same_arrays(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> None:
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert ours[name].dtype == theirs[name].dtype, name
        assert ours[name].shape == theirs[name].shape, name
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


def small_arrays() -> dict[str, np.ndarray]:
    shapes = [(3, 4), (5,), (), (2, 0, 3), (2, 3, 2)]
    return {
        f"t.{dtype}.{index}": sample(dtype, shape, seed=index)
        for index, (dtype, shape) in enumerate(
            (dtype, shapes[i % len(shapes)]) for i, dtype in enumerate(ALL_DTYPES)
        )
    }


# -- agreement with the reference implementation ---------------------------------


def test_files_we_write_load_with_the_reference(tmp_path: Path):
    arrays = small_arrays()
    metadata = {"note": "héllo", "empty": ""}
    path = tmp_path / "ours.safetensors"
    with open(path, "wb") as file:
        _safetensors.write(file, arrays, metadata)
    assert_same_arrays(safetensors_numpy.load_file(path), arrays)
    assert_same_arrays(safetensors_numpy.load(path.read_bytes()), arrays)
    from safetensors import safe_open

    with safe_open(path, "np") as file:
        assert file.metadata() == metadata


def test_files_the_reference_writes_load_with_ours(tmp_path: Path):
    arrays = small_arrays()
    path = tmp_path / "theirs.safetensors"
    safetensors_numpy.save_file(arrays, path, metadata={"a": "1"})
    with open(path, "rb") as file:
        tensors, metadata = _safetensors.read(file)
    assert_same_arrays(tensors, arrays)
    assert metadata == {"a": "1"}
    # Without metadata, too; and one tensor at a time.
    data = safetensors_numpy.save(arrays)
    header = _safetensors.read_header(io.BytesIO(data))
    assert header.metadata == {}
    for name, expected in arrays.items():
        got = _safetensors.read_tensor(io.BytesIO(data), header, name)
        assert got.flags.c_contiguous
        assert got.flags.writeable
        np.testing.assert_array_equal(got, expected)


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=12).filter(lambda s: s != "__metadata__"),
        st.tuples(
            st.sampled_from(ALL_DTYPES),
            st.lists(st.integers(0, 4), max_size=4).map(tuple),
            st.integers(0, 2**16),
        ),
        max_size=6,
    )
)
@FUZZ
def test_round_trips_agree_with_the_reference_for_any_tensors(spec):
    arrays = {name: sample(dtype, shape, seed) for name, (dtype, shape, seed) in spec.items()}
    ours = write_bytes(arrays, {"k": "v"})
    assert (struct.unpack("<Q", ours[:8])[0]) % 8 == 0
    assert_same_arrays(safetensors_numpy.load(ours), arrays)
    assert_same_arrays(read_bytes(safetensors_numpy.save(arrays))[0], arrays)
    assert_same_arrays(read_bytes(ours)[0], arrays)


def test_writer_takes_any_layout_and_byte_order():
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    arrays = {
        "transposed": base.T,
        "strided": base[::2, 1::2],
        "big_endian": base.astype(">f4"),
    }
    tensors, _ = read_bytes(write_bytes(arrays))
    for name, array in arrays.items():
        np.testing.assert_array_equal(tensors[name], array)
        assert tensors[name].dtype.isnative
    assert tensors["big_endian"].dtype == np.float32


def test_pending_tensors_are_fetched_once_when_written():
    calls = []

    def fetch() -> np.ndarray:
        calls.append(1)
        return np.ones((2, 2), np.float32)

    pending = _safetensors.PendingTensor(np.dtype(np.float32), (2, 2), fetch)
    data = write_bytes({"a": pending})
    assert calls == [1]
    np.testing.assert_array_equal(read_bytes(data)[0]["a"], np.ones((2, 2)))
    wrong = _safetensors.PendingTensor(np.dtype(np.float32), (3,), fetch)
    with pytest.raises(ValueError, match="announced as float32"):
        write_bytes({"a": wrong})


def test_writer_refuses_what_the_format_cannot_hold():
    with pytest.raises(TypeError, match="complex128"):
        write_bytes({"z": np.zeros(2, np.complex128)})
    with pytest.raises(TypeError, match="numpy.ndarray"):
        write_bytes({"z": [1.0, 2.0]})
    with pytest.raises(ValueError, match="__metadata__"):
        write_bytes({"__metadata__": np.zeros(2)})
    with pytest.raises(TypeError, match="str to str"):
        write_bytes({}, {"k": 1})  # type: ignore[dict-item]


# -- the checks, one by one ------------------------------------------------------

ENTRY = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
DATA = b"\x00" * 8


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "fewer than the 8"),
        (b"\x01\x02\x03", "fewer than the 8"),
        (struct.pack("<Q", 0), "header length is 0"),
        (struct.pack("<Q", 2**64 - 1) + b"{}", "above the limit"),
        (struct.pack("<Q", 100_000_001) + b"{}", "above the limit"),
        (struct.pack("<Q", 64) + b"{}      ", "only 8 follow"),
        (raw_file(b" {}"), "starting with '{'"),
        (raw_file(b"[1, 2]"), "starting with '{'"),
        (raw_file(b"{\xff\xfe}"), "not valid UTF-8"),
        (raw_file(b'{"a": '), "not valid JSON"),
        (raw_file(b"{" + b'"a":' * 1 + b"[" * 100_000 + b"]" * 100_000 + b"}"), "not valid JSON"),
        (raw_file(b'{"a": 1' + b"0" * 5000 + b"}"), "not valid JSON"),
        (raw_file(b'{"a": NaN}'), "NaN, which is not JSON"),
        (raw_file(b'{"a": {}, "a": {}}'), "names 'a' twice"),
        (raw_file({"a": [1]}), "described by an object"),
        (raw_file({"a": {**ENTRY, "extra": 1}}, DATA), "exactly the keys"),
        (raw_file({"a": {"dtype": "F32", "shape": [2]}}, DATA), "exactly the keys"),
        (raw_file({"a": {**ENTRY, "dtype": "BF16"}}, DATA), "dtype 'BF16'"),
        (raw_file({"a": {**ENTRY, "dtype": 4}}, DATA), "dtype 4"),
        (raw_file({"a": {**ENTRY, "shape": [-2]}}, DATA), "non-negative integers"),
        (raw_file({"a": {**ENTRY, "shape": [2.0]}}, DATA), "non-negative integers"),
        (raw_file({"a": {**ENTRY, "shape": [True, 2]}}, DATA), "non-negative integers"),
        (raw_file({"a": {**ENTRY, "shape": 2}}, DATA), "non-negative integers"),
        (raw_file({"a": {**ENTRY, "shape": [1] * 65}}, DATA), "at most 64"),
        (raw_file({"a": {**ENTRY, "shape": [2**62, 2**62]}}, DATA), "more elements than"),
        (raw_file({"a": {**ENTRY, "shape": [3]}}, DATA), "needs 12 bytes"),
        (raw_file({"a": {**ENTRY, "data_offsets": [0]}}, DATA), "data_offsets"),
        (raw_file({"a": {**ENTRY, "data_offsets": [8, 0]}}, DATA), "data_offsets"),
        (raw_file({"a": {**ENTRY, "data_offsets": [-8, 0]}}, DATA), "data_offsets"),
        (raw_file({"a": {**ENTRY, "data_offsets": [0, 2**70]}}, DATA), "truncated"),
        (raw_file({"a": {**ENTRY, "data_offsets": [8, 16]}}, DATA * 2), "leaves a gap"),
        (
            raw_file({"a": ENTRY, "b": {**ENTRY, "data_offsets": [4, 12]}}, DATA * 2),
            "overlaps",
        ),
        (raw_file({"a": ENTRY}, DATA + b"\x00"), "trailing bytes"),
        (raw_file({"a": ENTRY}, DATA[:-1]), "truncated"),
        (raw_file({"__metadata__": {"k": 1}}), "must be a string"),
        (raw_file({"__metadata__": [1]}), "object of strings"),
        (raw_file(b'{"\\ud800": {}}'), "not valid Unicode"),
    ],
)
def test_each_defect_is_named(data, message):
    with pytest.raises(SafetensorsError, match=message):
        read_bytes(data)


def test_what_the_format_allows_is_read():
    # Null metadata, no tensors, unpadded headers, zero-size tensors sharing
    # an offset, and tensors listed out of data order.
    assert read_bytes(raw_file({"__metadata__": None}, pad=False)) == ({}, {})
    empty = {"dtype": "F64", "shape": [0, 5], "data_offsets": [8, 8]}
    header = {"b": {**ENTRY, "data_offsets": [0, 8]}, "z": empty, "y": {**empty}, "a": ENTRY}
    header["a"] = {**ENTRY, "data_offsets": [8, 16]}
    tensors, _ = read_bytes(raw_file(header, DATA + struct.pack("<2f", 1.5, -2.0)))
    np.testing.assert_array_equal(tensors["a"], [1.5, -2.0])
    assert tensors["z"].shape == (0, 5)
    assert list(_safetensors.read_header(io.BytesIO(raw_file(header, DATA * 2))).tensors) == [
        "b",
        "z",
        "y",
        "a",
    ]


def test_a_file_cut_after_its_header_was_read_is_caught():
    data = write_bytes({"a": np.arange(1000.0)})
    header = _safetensors.read_header(io.BytesIO(data))
    with pytest.raises(SafetensorsError, match="ends inside tensor 'a'"):
        _safetensors.read_tensor(io.BytesIO(data[:-1]), header, "a")


# -- fuzzing ---------------------------------------------------------------------


def bounded(load: Any, *args: Any) -> Any:
    """Run ``load``; fail if it allocated more than ALLOCATION_LIMIT bytes."""
    tracemalloc.start()
    try:
        return load(*args)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < ALLOCATION_LIMIT, f"the reader allocated {peak} bytes"


def read_or_reject(data: bytes) -> dict[str, np.ndarray] | None:
    """Read ``data``; None if rejected. An accepted file must agree with the reference."""
    try:
        tensors, _ = bounded(read_bytes, data)
    except SafetensorsError:
        return None
    assert_same_arrays(tensors, safetensors_numpy.load(data))
    return tensors


@given(st.binary(max_size=300))
@FUZZ
def test_random_bytes_are_rejected_cleanly(data):
    read_or_reject(data)


@given(st.integers(0, 2**64 - 1), st.binary(max_size=64))
@FUZZ
def test_any_declared_header_length_is_checked_before_reading(length, rest):
    read_or_reject(struct.pack("<Q", length) + rest)


SIZES = st.one_of(st.integers(0, 8), st.integers(0, 2**64), st.integers(-(2**64), -1))


@given(
    st.lists(SIZES, max_size=8),
    st.tuples(SIZES, SIZES),
    st.sampled_from(["F32", "F64", "U8", "C64", "BOOL"]),
    st.integers(0, 64),
)
@FUZZ
def test_forged_shapes_and_offsets_never_allocate(shape, offsets, dtype, data_size):
    entry = {"dtype": dtype, "shape": shape, "data_offsets": list(offsets)}
    read_or_reject(raw_file({"x": entry}, b"\x01" * data_size))


HEADER_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 40) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
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
def test_structured_headers_are_rejected_or_agree_with_the_reference(header, data):
    read_or_reject(raw_file(header, data))


MUTATIONS = ["none", "dtype", "shape", "begin", "end", "drop_key", "add_key", "data_byte"]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["F32", "F16", "I8", "C64", "BOOL"]),
            st.lists(st.integers(0, 3), max_size=3),
        ),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from(MUTATIONS),
    st.data(),
)
@FUZZ
def test_mutated_valid_headers_are_rejected_or_agree_with_the_reference(spec, mutation, data):
    header: dict[str, Any] = {}
    offset = 0
    for index, (dtype, shape) in enumerate(spec):
        size = int(np.prod(shape)) * _safetensors.DTYPES[dtype].itemsize
        header[f"t{index}"] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [offset, offset + size],
        }
        offset += size
    payload = bytes(range(256)) * (offset // 256 + 1)
    payload = payload[:offset]
    entry = header[data.draw(st.sampled_from(sorted(header)))]
    small = st.integers(-2, offset + 2)
    if mutation == "dtype":
        entry["dtype"] = data.draw(st.sampled_from([*_safetensors.DTYPES, "BF16", "F8_E4M3"]))
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
        payload = payload + b"\x00" if data.draw(st.booleans()) or not payload else payload[:-1]
    tensors = read_or_reject(raw_file(header, payload))
    if mutation == "none":
        assert tensors is not None


# -- fuzzing whole checkpoints through xpnn.load ----------------------------------


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


def load_everything(path: Path) -> bool:
    """Load model and optimizer; True if it worked, False on CheckpointError."""
    try:
        model = xpnn.load(path)
        load_optimizer(path, Adam(model, lr=1.0))
    except CheckpointError as exc:
        message = str(exc)
    else:
        return True
    assert str(path) in message
    return False


def test_the_uncorrupted_checkpoint_loads(checkpoint, scratch):
    scratch.write_bytes(checkpoint)
    assert load_everything(scratch)


def test_truncation_at_every_offset_is_a_checkpoint_error(checkpoint, scratch):
    assert len(checkpoint) < 4000  # keep this loop quick
    for size in range(len(checkpoint)):
        scratch.write_bytes(checkpoint[:size])
        with pytest.raises(CheckpointError):
            xpnn.load(scratch)


@given(st.data())
@FUZZ
def test_flipped_header_bytes_are_rejected_or_load_cleanly(checkpoint, scratch, data):
    length = struct.unpack("<Q", checkpoint[:8])[0]
    corrupt = bytearray(checkpoint)
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, 8 + length - 1))
        corrupt[position] ^= data.draw(st.integers(1, 255))
    scratch.write_bytes(bytes(corrupt))
    bounded(load_everything, scratch)


@given(st.data())
@FUZZ
def test_corrupted_data_bytes_still_load(checkpoint, scratch, data):
    # The format has no checksum: a flipped data byte changes a value, and
    # the file stays valid.
    length = struct.unpack("<Q", checkpoint[:8])[0]
    corrupt = bytearray(checkpoint)
    position = data.draw(st.integers(8 + length, len(checkpoint) - 1))
    corrupt[position] ^= 0xFF
    scratch.write_bytes(bytes(corrupt))
    assert load_everything(scratch)

"""Checkpoint digests: every tensor's bytes are hashed at save and checked as they are read.

The damaged files are real files on disk with real bytes flipped, at offsets
taken from the safetensors header, written without any help from xpnn.
"""

from __future__ import annotations

import hashlib
import json
import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn import CheckpointError, Linear, Sequential, Tanh
from xpnn.checkpoint import load_optimizer
from xpnn.optim import Adam

safetensors = pytest.importorskip("safetensors")
safetensors_numpy = pytest.importorskip("safetensors.numpy")


def trained() -> tuple[Sequential, Adam]:
    """A float32 and a complex128 layer (stored as float64 pairs), after one Adam step."""
    model = Sequential(
        Linear(3, 4, dtype=np.float32, seed=0), Tanh(), Linear(4, 2, dtype=np.complex128, seed=1)
    )
    optimizer = Adam(model, lr=0.01)
    for name, param in model.named_parameters():
        model.set_gradient(name, np.full_like(param, 0.5))
    optimizer.step()
    return model, optimizer


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "run.safetensors"
    model, optimizer = trained()
    xpnn.save(model, path, optimizer=optimizer)
    return path


def header_of(data: bytes) -> tuple[dict[str, Any], int]:
    """The parsed safetensors header and where the data section starts."""
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length]), 8 + length


def byte_ranges(data: bytes) -> dict[str, tuple[int, int]]:
    """Each tensor's byte range in the file, from the header's data_offsets."""
    header, start = header_of(data)
    return {
        name: (start + entry["data_offsets"][0], start + entry["data_offsets"][1])
        for name, entry in header.items()
        if name != "__metadata__"
    }


def load_everything(path: Path) -> None:
    load_optimizer(path, Adam(xpnn.load(path), lr=1.0))


def expect_error(path: Path, *patterns: str, loader: Callable[[Path], Any] = xpnn.load) -> None:
    with pytest.raises(CheckpointError) as info:
        loader(path)
    message = str(info.value)
    assert repr(str(path)) in message
    assert "\n" not in message
    for pattern in patterns:
        assert pattern in message, f"{pattern!r} not in {message!r}"


def metadata_of(path: Path) -> dict[str, str]:
    with safetensors.safe_open(path, "np") as file:
        return dict(file.metadata())


def rewrite(source: Path, change: Callable[[dict[str, str]], Any]) -> Path:
    """Write ``source``'s tensors again with the reference library, its metadata changed."""
    meta = metadata_of(source)
    change(meta)
    target = source.with_name("edited.safetensors")
    safetensors_numpy.save_file(safetensors_numpy.load_file(source), target, metadata=meta)
    return target


def edit_digests(change: Callable[[dict[str, str]], Any]) -> Callable[[dict[str, str]], None]:
    def edit(meta: dict[str, str]) -> None:
        digests = json.loads(meta["digests"])
        change(digests)
        meta["digests"] = json.dumps(digests)

    return edit


def test_the_file_records_the_sha256_of_each_tensors_bytes(saved):
    data = saved.read_bytes()
    digests = json.loads(metadata_of(saved)["digests"])
    ranges = byte_ranges(data)
    assert set(digests) == set(ranges)
    assert any(name.startswith("optimizer.") for name in ranges)
    for name, (begin, end) in ranges.items():
        # Any tool can check a tensor: sha256 of its byte range in the file.
        assert digests[name] == "sha256:" + hashlib.sha256(data[begin:end]).hexdigest()


def test_a_good_file_round_trips_exactly(saved, tmp_path):
    model, optimizer = trained()
    loaded = xpnn.load(saved)
    for (name, ours), (_, theirs) in zip(
        loaded.named_parameters(), model.named_parameters(), strict=True
    ):
        assert ours.dtype == theirs.dtype, name
        np.testing.assert_array_equal(ours, theirs, err_msg=name)
    restored = Adam(loaded)
    load_optimizer(saved, restored)
    assert restored.step_counts() == optimizer.step_counts()
    for name, buffers in optimizer.buffers().items():
        for buffer, value in buffers.items():
            np.testing.assert_array_equal(restored.buffers()[name][buffer], value)
    # Saved again, the loaded state gives the same digests.
    again = tmp_path / "again.safetensors"
    xpnn.save(loaded, again, optimizer=restored)
    assert json.loads(metadata_of(again)["digests"]) == json.loads(metadata_of(saved)["digests"])


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_flipped_byte_in_any_tensor_names_that_tensor(saved, where):
    data = saved.read_bytes()
    ranges = byte_ranges(data)
    assert len(ranges) == 12  # 4 parameters, and Adam's 2 buffers of each
    for name, (begin, end) in ranges.items():
        position = {"first": begin, "middle": (begin + end) // 2, "last": end - 1}[where]
        corrupt = bytearray(data)
        corrupt[position] ^= 0x01
        saved.write_bytes(corrupt)
        expect_error(saved, f"tensor {name!r}", "digest", "corrupt", loader=load_everything)
        if name.startswith("optimizer."):
            # load reads the parameters only, each checked, and so loads; the
            # buffers are checked by load_optimizer, which reads them.
            xpnn.load(saved)
        else:
            expect_error(saved, f"tensor {name!r}", "do not match its recorded digest")


def test_verify_false_skips_the_check(saved):
    data = bytearray(saved.read_bytes())
    begin, _ = byte_ranges(bytes(data))["0.bias"]
    intact = xpnn.load(saved)
    data[begin + 3] ^= 0x80  # the sign bit of the first little-endian float32
    saved.write_bytes(data)
    expect_error(saved, "tensor '0.bias'")
    loaded = xpnn.load(saved, verify=False)
    assert loaded[0].bias[0] == -intact[0].bias[0]


def test_a_flipped_digest_in_the_header(saved):
    data = saved.read_bytes()
    digest = json.loads(metadata_of(saved)["digests"])["2.weight"].removeprefix("sha256:")
    position = data.index(digest.encode())
    assert data.count(digest.encode()) == 1
    for replacement, pattern in [
        # Another hex digit: a well-formed digest that the data do not match.
        ("0" if digest[5] != "0" else "1", "tensor '2.weight' whose data do not match"),
        # No hex digit: a malformed digest, refused before any data are read.
        ("g", "malformed digest"),
        ("A", "malformed digest"),
    ]:
        corrupt = bytearray(data)
        corrupt[position + 5] = ord(replacement)
        saved.write_bytes(corrupt)
        expect_error(saved, "'2.weight'", pattern)


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (lambda d: d.pop("0.bias"), "holds tensors without a digest: '0.bias'"),
        (
            lambda d: d.update(extra="sha256:" + "0" * 64),
            "has digests of tensors it does not hold: 'extra'",
        ),
        (lambda d: d.update({"0.bias": "sha256:" + "0" * 63}), "malformed digest"),
        (lambda d: d.update({"0.bias": "md5:" + "0" * 32}), "malformed digest"),
        (lambda d: d.update({"0.bias": 7}), "malformed digest 7"),
    ],
)
def test_digests_that_do_not_fit_the_tensors(saved, change, pattern):
    expect_error(rewrite(saved, edit_digests(change)), pattern)


def test_digests_that_are_not_a_json_object(saved):
    expect_error(rewrite(saved, lambda m: m.update(digests="[]")), "'digests'", "JSON dict")
    expect_error(rewrite(saved, lambda m: m.update(digests="{")), "'digests'", "not valid JSON")


def test_a_file_without_digests_loads_unchecked(saved):
    # As an xpnn checkpoint written before digests, by the plain reference writer.
    older = rewrite(saved, lambda m: m.pop("digests"))
    assert "digests" not in metadata_of(older)
    model, _ = trained()
    loaded = xpnn.load(older)
    for ours, theirs in zip(loaded.parameters(), model.parameters(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    load_optimizer(older, Adam(loaded))
    # Nothing to check a flipped byte against: the file loads as it is.
    data = bytearray(older.read_bytes())
    data[byte_ranges(bytes(data))["0.weight"][0]] ^= 0x01
    older.write_bytes(data)
    load_everything(older)


def test_verification_keeps_no_second_copy(tmp_path):
    path = tmp_path / "big.safetensors"
    xpnn.save(Linear(1000, 1000, seed=0), path)  # 8 MB of float64
    peaks = {}
    for verify in (False, True):
        tracemalloc.start()
        try:
            xpnn.load(path, verify=verify)
            peaks[verify] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peaks[True] - peaks[False] < 1_000_000, peaks

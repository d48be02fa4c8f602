"""xpnn.save / xpnn.load / load_optimizer: round trips, any backend to any other, errors, atomicity.

The ``safetensors`` package reads what is recorded and writes the damaged
files the error tests need, directly, without xpnn's checks.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnn
import xpnn.checkpoint.writer
import xpnn.files
from xpnn import (
    GELU,
    CheckpointError,
    Dropout,
    LayerNorm,
    LeakyReLU,
    Linear,
    LogSoftmax,
    Module,
    ReLU,
    RMSNorm,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from xpnn._compat import array_namespace, dtype_name, resolve_namespace
from xpnn._compat import device as device_of
from xpnn.checkpoint import load_optimizer
from xpnn.layers import LAYERS
from xpnn.layers.embedding import Embedding
from xpnn.optim import SGD, Adam, AdamW
from xpnn.testing import assert_close, random_array, to_numpy

safetensors = pytest.importorskip("safetensors")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

OPTIMIZERS: dict[str, Callable[[Module], Any]] = {
    "sgd-momentum": lambda model: SGD(model, lr=0.1, momentum=0.9, weight_decay=0.01),
    "sgd-nesterov": lambda model: SGD(model, lr=0.1, momentum=0.5, nesterov=True),
    "adam": lambda model: Adam(model, lr=1e-2, betas=(0.8, 0.99), weight_decay=0.01),
    "adamw": lambda model: AdamW(model, lr=1e-2),
}


def make_model(xp: Any = None, device: Any = None, dtype: Any = None, seed: int = 0) -> Sequential:
    """Linear layers, every activation and Dropout (the complex-capable ones for complex)."""
    where = {"xp": xp, "device": device, "dtype": dtype}
    namespace = resolve_namespace(xp)
    if dtype is not None and dtype_name(namespace, dtype).startswith("complex"):
        return Sequential(
            Linear(5, 6, seed=seed, **where),
            Tanh(),
            Dropout(0.25),
            Linear(6, 4, bias=False, seed=seed + 1, **where),
            Sigmoid(),
            Linear(4, 3, seed=seed + 2, **where),
        )
    return Sequential(
        Linear(5, 8, seed=seed, **where),
        ReLU(),
        Linear(8, 8, seed=seed + 1, **where),
        LeakyReLU(0.2),
        Tanh(),
        Linear(8, 6, bias=False, seed=seed + 2, **where),
        Sigmoid(),
        GELU(),
        Dropout(0.3),
        Linear(6, 4, seed=seed + 3, **where),
        Softmax(axis=-1),
        LogSoftmax(axis=1),
    )


def predictions(model: Module, xp: Any, device: Any, dtype: Any) -> Any:
    model.eval()
    x = random_array(xp, (7, 5), dtype=dtype, device=device, seed=99)
    return model(x)


def assert_same_parameters(loaded: Module, original: Module, **expected: Any) -> None:
    """Same names, values bit for bit, and the namespace/device/dtype in ``expected``."""
    got = dict(loaded.named_parameters())
    want = dict(original.named_parameters())
    assert list(got) == list(want)
    for name, param in got.items():
        reference = want[name]
        if expected:
            xp = expected["xp"]
            assert array_namespace(p=param) is xp, name
            assert device_of(param) == expected["device"], name
            assert dtype_name(xp, param.dtype) == dtype_name(
                array_namespace(r=reference), reference.dtype
            ), name
        else:
            assert_close(param, reference, rtol=0, atol=0, err_msg=name)
        np.testing.assert_array_equal(to_numpy(param), to_numpy(reference), err_msg=name)


def feed(model: Module, step: int) -> None:
    """Give every parameter a deterministic gradient of its own library, device and dtype."""
    for index, (name, param) in enumerate(model.named_parameters()):
        xp = array_namespace(p=param)
        grad = random_array(
            xp,
            tuple(param.shape),
            dtype=param.dtype,
            device=device_of(param),
            seed=100 * step + index,
        )
        model.set_gradient(name, grad)


# -- round trips -------------------------------------------------------------


def test_round_trip_on_the_session_backend(xp, device, dtype, tmp_path):
    model = make_model(xp, device, dtype)
    expected = predictions(model, xp, device, dtype)
    path = tmp_path / "model.safetensors"
    xpnn.save(model, path)

    loaded = xpnn.load(path, xp=xp, device=device)
    assert loaded.config() == model.config()
    assert repr(loaded) == repr(model)
    assert_same_parameters(loaded, model)
    assert loaded.training
    assert all(grad is None for _, grad in loaded.named_gradients())
    assert_close(predictions(loaded, xp, device, dtype), expected)


def test_load_defaults_to_numpy_with_the_saved_dtypes(xp, device, dtype, tmp_path):
    model = make_model(xp, device, dtype)
    path = tmp_path / "model.safetensors"
    xpnn.save(model, path)
    loaded = xpnn.load(path)
    numpy = resolve_namespace(np)
    assert_same_parameters(loaded, model, xp=numpy, device="cpu")
    for param in loaded.parameters():
        assert isinstance(param, np.ndarray)
        assert param.flags.writeable


@pytest.mark.parametrize("target", ["numpy", "array_api_strict", "torch"])
def test_load_onto_another_backend(xp, device, dtype, target, tmp_path):
    module = pytest.importorskip(target)
    model = make_model(xp, device, dtype)
    expected = to_numpy(predictions(model, xp, device, dtype))
    path = tmp_path / "model.safetensors"
    xpnn.save(model, path)

    other = resolve_namespace(module)
    default = other.__array_namespace_info__().default_device()
    loaded = xpnn.load(path, xp=module)
    assert_same_parameters(loaded, model, xp=other, device=default)
    saved_dtype = dtype_name(xp, dtype)
    got = predictions(
        loaded, other, default, other.__array_namespace_info__().dtypes()[saved_dtype]
    )
    tolerance = 1e-9 if saved_dtype in ("float64", "complex128") else 1e-4
    np.testing.assert_allclose(to_numpy(got), expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("name", ["float32", "float64"])
def test_every_cpu_backend_loads_what_every_other_saved(cpu_pair, name, tmp_path):
    (source_xp, source_device, _), (target_xp, target_device, _) = cpu_pair
    dtypes = [
        ns.__array_namespace_info__().dtypes(device=where)
        for ns, where in ((source_xp, source_device), (target_xp, target_device))
    ]
    if any(name not in available for available in dtypes):
        pytest.skip(f"one side has no {name}")
    model = make_model(source_xp, source_device, dtypes[0][name])
    expected = to_numpy(predictions(model, source_xp, source_device, dtypes[0][name]))
    path = tmp_path / "model.safetensors"
    xpnn.save(model, path)

    loaded = xpnn.load(path, xp=target_xp, device=target_device)
    assert_same_parameters(loaded, model, xp=target_xp, device=target_device)
    got = predictions(loaded, target_xp, target_device, dtypes[1][name])
    tolerance = 1e-9 if name == "float64" else 1e-4
    np.testing.assert_allclose(to_numpy(got), expected, rtol=tolerance, atol=tolerance)


def test_load_onto_a_device_and_dtype(tmp_path):
    xps = pytest.importorskip("array_api_strict")
    model = make_model(seed=3)
    path = tmp_path / "model.safetensors"
    xpnn.save(model, path)
    loaded = xpnn.load(path, xp=xps, device="device1", dtype="float32")
    for param in loaded.parameters():
        assert param.dtype == xps.float32
        assert str(param.device) == "array_api_strict.Device('device1')"
    for got, want in zip(loaded.parameters(), model.parameters(), strict=True):
        np.testing.assert_array_equal(to_numpy(got), want.astype(np.float32))
    # A float64 checkpoint cannot land as is on a device without float64.
    with pytest.raises(ValueError, match="pass dtype="):
        xpnn.load(path, xp=xps, device="no_float64")
    assert xpnn.load(path, xp=xps, device="no_float64", dtype="float32")[0].weight.dtype == (
        xps.float32
    )


def test_load_refuses_to_turn_complex_parameters_real(tmp_path):
    path = tmp_path / "model.safetensors"
    xpnn.save(make_model(dtype=np.complex128), path)
    with pytest.raises(ValueError, match="would turn the complex128 parameter"):
        xpnn.load(path, dtype="float64")
    assert xpnn.load(path, dtype="complex64")[0].weight.dtype == np.complex64


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_complex_values_survive_exactly(dtype, tmp_path):
    model = Sequential(Linear(3, 4, dtype=dtype, seed=0), Linear(4, 2, dtype=dtype, seed=1))
    special = np.array(
        [complex(np.inf, -0.0), complex(-0.0, np.nan), complex(1e-300, -np.inf), 1 + 2j],
        dtype=dtype,
    )
    model[0].weight[0] = special
    path = tmp_path / "model.safetensors"
    xpnn.save(model, path)
    loaded = xpnn.load(path)
    for got, want in zip(loaded.parameters(), model.parameters(), strict=True):
        assert got.dtype == dtype
        np.testing.assert_array_equal(got.view(got.real.dtype), want.view(want.real.dtype))

    stored = safetensors_numpy.load_file(path)
    metadata = read_metadata(path)
    assert json.loads(metadata["dtypes"])["0.weight"] == np.dtype(dtype).name
    if dtype == np.complex128:
        # The format has no complex128: float64 (real, imaginary) pairs.
        assert stored["0.weight"].dtype == np.float64
        assert stored["0.weight"].shape == (3, 4, 2)
        np.testing.assert_array_equal(stored["0.weight"][..., 0], model[0].weight.real)
        np.testing.assert_array_equal(stored["0.weight"][..., 1], model[0].weight.imag)
    else:
        assert stored["0.weight"].dtype == np.complex64
        np.testing.assert_array_equal(stored["0.weight"], model[0].weight)


def test_single_layers_and_models_without_parameters(tmp_path):
    path = tmp_path / "layer.safetensors"
    layer = Linear(1, 1, dtype=np.complex128, seed=4)
    xpnn.save(layer, path)
    loaded = xpnn.load(path)
    assert isinstance(loaded, Linear)
    assert loaded.weight.shape == (1, 1)
    np.testing.assert_array_equal(loaded.weight, layer.weight)
    xpnn.save(Sequential(ReLU(), Dropout(0.5)), path)
    assert xpnn.load(path).config() == Sequential(ReLU(), Dropout(0.5)).config()


def test_sequence_layers_round_trip(xp, device, tmp_path):
    where = {"xp": xp, "device": device, "dtype": xp.float32}
    model = Sequential(
        Embedding(6, 4, padding_idx=-1, seed=1, **where),
        LayerNorm(4, bias=False, **where),
        RMSNorm((3, 4), eps=1e-3, **where),
    )
    for index, (name, param) in enumerate(model.named_parameters()):
        shape = tuple(param.shape)
        value = random_array(xp, shape, dtype=xp.float32, device=device, seed=index)
        model.set_parameter(name, value)
    xpnn.save(model, tmp_path / "sequence.safetensors")
    loaded = xpnn.load(tmp_path / "sequence.safetensors", xp=xp, device=device)
    assert loaded.config() == model.config()
    assert_same_parameters(loaded, model)
    integral = xp.__array_namespace_info__().default_dtypes(device=device)["indexing"]
    indices = xp.asarray([[0, 5, 2], [1, 1, 3]], dtype=integral, device=device)
    assert_close(loaded(indices), model(indices), rtol=0, atol=0)


def test_mixed_dtypes_are_kept_per_tensor(tmp_path):
    model = Sequential(Linear(2, 3, dtype=np.float32, seed=0), Linear(3, 2, seed=1))
    model[1].bias = model[1].bias.astype(np.float32)
    path = tmp_path / "mixed.safetensors"
    xpnn.save(model, path)
    loaded = xpnn.load(path)
    assert [p.dtype for p in loaded.parameters()] == [p.dtype for p in model.parameters()]


# -- what the file records ------------------------------------------------------


def read_metadata(path: Path) -> dict[str, str]:
    with safetensors.safe_open(path, "np") as file:
        return dict(file.metadata())


def test_the_file_records_format_structure_layout_dtypes_and_optimizer(tmp_path):
    model = Sequential(Linear(3, 4, seed=0), Tanh(), Linear(4, 2, dtype=np.float32, seed=1))
    optimizer = Adam(model, lr=0.05)
    feed(model, 0)
    model.set_gradient("2.bias", None)
    optimizer.step()
    path = tmp_path / "run.safetensors"
    xpnn.save(model, path, optimizer=optimizer)

    metadata = read_metadata(path)
    assert metadata["format"] == "xpnn"
    assert metadata["format_version"] == "1"
    assert metadata["xpnn_version"] == xpnn.__version__
    assert json.loads(metadata["config"]) == model.config()
    assert "(in_features, out_features)" in metadata["weight_layout"]
    assert json.loads(metadata["dtypes"]) == {
        "0.weight": "float64",
        "0.bias": "float64",
        "2.weight": "float32",
        "2.bias": "float32",
        "optimizer.0.weight.exp_avg": "float64",
        "optimizer.0.weight.exp_avg_sq": "float64",
        "optimizer.0.bias.exp_avg": "float64",
        "optimizer.0.bias.exp_avg_sq": "float64",
        "optimizer.2.weight.exp_avg": "float32",
        "optimizer.2.weight.exp_avg_sq": "float32",
    }
    assert json.loads(metadata["optimizer"]) == {
        "class": "Adam",
        "hyperparameters": {
            "lr": 0.05,
            "betas": [0.9, 0.999],
            "eps": 1e-8,
            "weight_decay": 0.0,
            "amsgrad": False,
            "maximize": False,
        },
        "steps": {"0.weight": 1, "0.bias": 1, "2.weight": 1, "2.bias": 0},
    }
    stored = safetensors_numpy.load_file(path)
    assert set(stored) == set(json.loads(metadata["dtypes"]))
    # Weights as xpnn holds them: (in_features, out_features).
    np.testing.assert_array_equal(stored["0.weight"], model[0].weight)
    assert stored["2.weight"].shape == (4, 2)
    state = optimizer.state_dict()["state"]
    np.testing.assert_array_equal(
        stored["optimizer.0.weight.exp_avg"], state["0.weight"]["exp_avg"]
    )
    length = int.from_bytes(path.read_bytes()[:8], "little")
    assert length % 8 == 0


def test_every_other_layer_holds_no_parameters():
    # load() bounds what it allocates by the Linear (and batch norm) shapes a
    # structure declares, which is right only while no other layer has parameters.
    # The layers whose constructor needs settings, as torch's do.
    settings: dict[str, dict[str, Any]] = {
        "MaxPool1d": {"kernel_size": 2},
        "MaxPool2d": {"kernel_size": 2},
        "AvgPool1d": {"kernel_size": 2},
        "AvgPool2d": {"kernel_size": 2},
        "AdaptiveAvgPool1d": {"output_size": 1},
        "AdaptiveAvgPool2d": {"output_size": 1},
        "Unflatten": {"dim": 1, "unflattened_size": (2, 2)},
    }
    for name, cls in LAYERS.items():
        with_parameters = ("BatchNorm1d", "BatchNorm2d", "Conv1d", "Conv2d", "Embedding")
        with_parameters += ("MultiheadAttention", "TransformerEncoderLayer", "TransformerEncoder")
        with_parameters += ("RNN", "GRU", "LSTM")
        if name not in ("Linear", "Sequential", "LayerNorm", "RMSNorm", *with_parameters):
            assert cls(**settings.get(name, {})).params == {}, name


# -- optimizer state ---------------------------------------------------------------


def host_state(optimizer: Any) -> dict[str, Any]:
    saved = optimizer.state_dict()
    return {
        "optimizer": saved["optimizer"],
        "hyperparameters": saved["hyperparameters"],
        "state": {
            name: {k: v if k == "step" or v is None else to_numpy(v) for k, v in entry.items()}
            for name, entry in saved["state"].items()
        },
    }


def assert_same_state(a: dict[str, Any], b: dict[str, Any], **tolerance: float) -> None:
    assert a["optimizer"] == b["optimizer"]
    assert a["hyperparameters"] == b["hyperparameters"]
    assert a["state"].keys() == b["state"].keys()
    for name, entry in a["state"].items():
        assert entry.keys() == b["state"][name].keys()
        for key, value in entry.items():
            other = b["state"][name][key]
            if value is None or key == "step":
                assert value == other, f"{name}.{key}"
            elif tolerance:
                np.testing.assert_allclose(value, other, err_msg=f"{name}.{key}", **tolerance)
            else:
                np.testing.assert_array_equal(value, other, err_msg=f"{name}.{key}")


@pytest.mark.parametrize("factory", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_a_step_after_load_equals_a_step_without_save_and_load(
    xp, device, real_dtype, factory, tmp_path
):
    model = make_model(xp, device, real_dtype)
    optimizer = factory(model)
    for step in range(3):
        feed(model, step)
        if step == 1:
            model.set_gradient("2.bias", None)  # a parameter that skips a step
        optimizer.step()
    path = tmp_path / "run.safetensors"
    xpnn.save(model, path, optimizer=optimizer)

    restored = xpnn.load(path, xp=xp, device=device)
    restored_optimizer = type(optimizer)(restored, lr=123.0)
    load_optimizer(path, restored_optimizer)
    assert_same_state(host_state(restored_optimizer), host_state(optimizer))
    for step in (3, 4):
        for run, opt in ((model, optimizer), (restored, restored_optimizer)):
            feed(run, step)
            opt.step()
    assert_same_parameters(restored, model)
    assert_same_state(host_state(restored_optimizer), host_state(optimizer))


@pytest.mark.parametrize("target", ["numpy", "array_api_strict", "torch"])
def test_optimizer_state_moves_to_another_backend(xp, device, real_dtype, target, tmp_path):
    module = pytest.importorskip(target)
    model = make_model(xp, device, real_dtype)
    optimizer = Adam(model, lr=1e-2)
    for step in range(2):
        feed(model, step)
        optimizer.step()
    path = tmp_path / "run.safetensors"
    xpnn.save(model, path, optimizer=optimizer)

    restored = xpnn.load(path, xp=module)
    restored_optimizer = Adam(restored, lr=1.0)
    load_optimizer(path, restored_optimizer)
    other = resolve_namespace(module)
    for entry in restored_optimizer.state_dict()["state"].values():
        assert array_namespace(b=entry["exp_avg"]) is other
    for run, opt in ((model, optimizer), (restored, restored_optimizer)):
        feed(run, 2)
        opt.step()
    rtol = 1e-12 if dtype_name(xp, real_dtype) == "float64" else 1e-5
    for got, want in zip(restored.parameters(), model.parameters(), strict=True):
        np.testing.assert_allclose(to_numpy(got), to_numpy(want), rtol=rtol, atol=rtol)


def test_optimizer_buffers_follow_the_loaded_dtype(tmp_path):
    model = make_model(seed=1)
    optimizer = SGD(model, lr=0.1, momentum=0.9)
    feed(model, 0)
    optimizer.step()
    path = tmp_path / "run.safetensors"
    xpnn.save(model, path, optimizer=optimizer)
    restored = xpnn.load(path, dtype="float32")
    restored_optimizer = SGD(restored, lr=0.1, momentum=0.9)
    load_optimizer(path, restored_optimizer)
    buffer = restored_optimizer.state_dict()["state"]["0.weight"]["momentum_buffer"]
    assert buffer.dtype == np.float32
    feed(restored, 1)
    restored_optimizer.step()


@pytest.mark.parametrize(
    "factory",
    [lambda m: Adam(m, lr=0.1), lambda m: SGD(m, lr=0.1), lambda m: SGD(m, lr=0.1, momentum=0.5)],
    ids=["adam-before-any-step", "sgd-without-momentum", "sgd-before-any-step"],
)
def test_optimizers_without_buffers_round_trip(factory, tmp_path):
    model = make_model(seed=2)
    optimizer = factory(model)
    if isinstance(optimizer, SGD) and optimizer.hyperparameters["momentum"] == 0:
        feed(model, 0)
        optimizer.step()
    path = tmp_path / "run.safetensors"
    xpnn.save(model, path, optimizer=optimizer)
    assert not any(name.startswith("optimizer.") for name in safetensors_numpy.load_file(path))
    restored = xpnn.load(path)
    restored_optimizer = factory(restored)
    load_optimizer(path, restored_optimizer)
    assert_same_state(host_state(restored_optimizer), host_state(optimizer))


# -- errors when loading ---------------------------------------------------------


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    """A checkpoint of a two-layer model with Adam state after one step."""
    model = Sequential(Linear(3, 4, seed=0), ReLU(), Linear(4, 2, seed=1))
    optimizer = Adam(model, lr=0.01)
    feed(model, 0)
    optimizer.step()
    path = tmp_path / "good.safetensors"
    xpnn.save(model, path, optimizer=optimizer)
    return path


def rewrite(
    source: Path,
    *,
    tensors: Callable[[dict[str, np.ndarray]], Any] | None = None,
    metadata: Callable[[dict[str, str]], Any] | None = None,
    config: Callable[[dict[str, Any]], Any] | None = None,
) -> Path:
    """Rewrite ``source`` with the reference library after changing what it holds."""
    arrays = safetensors_numpy.load_file(source)
    meta = read_metadata(source)
    if tensors is not None:
        tensors(arrays)
    if config is not None:
        structure = json.loads(meta["config"])
        config(structure)
        meta["config"] = json.dumps(structure)
    if metadata is not None:
        metadata(meta)
    target = source.with_name("damaged.safetensors")
    safetensors_numpy.save_file(arrays, target, metadata=meta)
    return target


def edit_json(key: str, change: Callable[[Any], Any]) -> Callable[[dict[str, str]], None]:
    def edit(meta: dict[str, str]) -> None:
        value = json.loads(meta[key])
        change(value)
        meta[key] = json.dumps(value)

    return edit


def expect_error(path: Path, *patterns: str, loader: Callable[[Path], Any] = xpnn.load) -> str:
    with pytest.raises(CheckpointError) as info:
        loader(path)
    message = str(info.value)
    assert repr(str(path)) in message
    for pattern in patterns:
        assert pattern in message, f"{pattern!r} not in {message!r}"
    return message


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)
    assert xpnn.CheckpointError is xpnn.checkpoint.CheckpointError
    assert {"save", "load", "CheckpointError"} <= set(xpnn.__all__)


def test_the_intact_checkpoint_loads(saved):
    load_optimizer(saved, Adam(xpnn.load(saved), lr=1.0))


def test_a_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.safetensors"):
        xpnn.load(tmp_path / "absent.safetensors")
    with pytest.raises(FileNotFoundError, match="absent.safetensors"):
        load_optimizer(tmp_path / "absent.safetensors", Adam(Linear(2, 2), lr=0.1))
    with pytest.raises(IsADirectoryError):
        xpnn.load(tmp_path)


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (b"", "not a valid safetensors file"),
        (b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00}\x94.", "not a valid safetensors file"),
        (b"hello, world\n" * 10, "not a valid safetensors file"),
    ],
    ids=["empty", "pickle", "text"],
)
def test_files_that_are_not_safetensors(tmp_path, content, pattern):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    expect_error(path, pattern)


def test_a_truncated_checkpoint(saved):
    data = saved.read_bytes()
    for cut in (4, 100, len(data) - 1):
        saved.write_bytes(data[:cut])
        expect_error(saved, "not a valid safetensors file")
    saved.write_bytes(data[:-1])
    expect_error(saved, "truncated")


def test_another_tools_safetensors_file(tmp_path):
    path = tmp_path / "hf.safetensors"
    safetensors_numpy.save_file({"weight": np.zeros((2, 2), np.float32)}, path)
    expect_error(path, "not an xpnn checkpoint", "'format' is None", "load_file")
    safetensors_numpy.save_file({"w": np.zeros(2)}, path, metadata={"format": "pt"})
    expect_error(path, "not an xpnn checkpoint", "'pt'")


def test_a_newer_format_version(saved):
    damaged = rewrite(saved, metadata=lambda m: m.update(format_version="2"))
    expect_error(damaged, "format version '2'", "newer xpnn", "upgrade xpnn")


@pytest.mark.parametrize("version", ["0", "1.0", "one", None])
def test_an_unknown_format_version(saved, version):
    def change(meta: dict[str, str]) -> None:
        if version is None:
            del meta["format_version"]
        else:
            meta["format_version"] = version

    expect_error(rewrite(saved, metadata=change), "format version", "corrupt")


@pytest.mark.parametrize("key", ["config", "dtypes"])
def test_missing_or_broken_metadata(saved, key):
    expect_error(rewrite(saved, metadata=lambda m: m.pop(key)), f"no {key!r} in its metadata")
    expect_error(rewrite(saved, metadata=lambda m: m.update({key: "{not json"})), "not valid JSON")
    expect_error(rewrite(saved, metadata=lambda m: m.update({key: "[1]"})), "JSON dict")


def test_a_structure_that_declares_bigger_layers(saved):
    def wider(config: dict[str, Any]) -> None:
        config["children"][0]["settings"]["out_features"] = 5

    expect_error(rewrite(saved, config=wider), "'0.weight' has shape (3, 4) where (3, 5)")


def test_a_structure_that_declares_smaller_layers(saved):
    def narrower(config: dict[str, Any]) -> None:
        config["children"][2]["settings"]["out_features"] = 1

    expect_error(rewrite(saved, config=narrower), "'2.weight' has shape (4, 2) where (4, 1)")


def test_a_structure_without_a_bias_the_file_holds(saved):
    def no_bias(config: dict[str, Any]) -> None:
        config["children"][2]["settings"]["bias"] = False

    expect_error(rewrite(saved, config=no_bias), "unexpected tensors '2.bias'")


def test_a_structure_that_is_no_model(saved):
    def conv(config: dict[str, Any]) -> None:
        config["children"][1]["type"] = "Conv2d"

    expect_error(rewrite(saved, config=conv), "does not describe an xpnn model", "Conv2d")


def test_a_forged_huge_structure_is_refused_before_allocating(saved):
    def huge(config: dict[str, Any]) -> None:
        config["children"][0]["settings"].update(in_features=10**12, out_features=10**12)

    damaged = rewrite(saved, config=huge)
    tracemalloc.start()
    try:
        expect_error(damaged, "'0.weight' has shape (3, 4) where (1000000000000, 1000000000000)")
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < 2_000_000


@pytest.mark.parametrize("depth", [200, 5000])
def test_a_structure_nested_deeply(saved, depth):
    linear = json.dumps(Linear(3, 4).config())
    nested = '{"type": "Sequential", "settings": {}, "children": [' * depth + linear + "]}" * depth
    damaged = rewrite(saved, metadata=lambda m: m.update(config=nested))
    expect_error(damaged)


def test_a_missing_tensor(saved):
    def drop(arrays: dict[str, np.ndarray]) -> None:
        del arrays["0.bias"]

    # Listed in "dtypes" but absent.
    expect_error(
        rewrite(saved, tensors=drop), "lacks tensors its metadata 'dtypes' lists: '0.bias'"
    )
    # Gone from both: the structure still needs it.
    damaged = rewrite(saved, tensors=drop, metadata=edit_json("dtypes", lambda d: d.pop("0.bias")))
    expect_error(damaged, "lacks parameters '0.bias'")


def test_an_unexpected_tensor(saved):
    def add(arrays: dict[str, np.ndarray]) -> None:
        arrays["extra"] = np.zeros(3)

    expect_error(rewrite(saved, tensors=add), "does not list: 'extra'")
    damaged = rewrite(
        saved, tensors=add, metadata=edit_json("dtypes", lambda d: d.update(extra="float64"))
    )
    expect_error(damaged, "unexpected tensors 'extra'")


def test_a_tensor_of_the_wrong_shape(saved):
    def transpose(arrays: dict[str, np.ndarray]) -> None:
        arrays["0.weight"] = np.ascontiguousarray(arrays["0.weight"].T)

    expect_error(rewrite(saved, tensors=transpose), "'0.weight' has shape (4, 3) where (3, 4)")


def test_a_tensor_of_the_wrong_dtype(saved):
    def single(arrays: dict[str, np.ndarray]) -> None:
        arrays["0.weight"] = arrays["0.weight"].astype(np.float32)

    expect_error(rewrite(saved, tensors=single), "stores float64 tensor '0.weight' as F32")
    damaged = rewrite(saved, metadata=edit_json("dtypes", lambda d: d.update({"0.bias": "int8"})))
    expect_error(damaged, "records dtype 'int8' for tensor '0.bias'")
    damaged = rewrite(
        saved, metadata=edit_json("dtypes", lambda d: d.update({"0.bias": "complex128"}))
    )
    expect_error(damaged, "trailing axis of 2")


def test_optimizer_tensors_that_fit_no_parameter(saved):
    def rename(arrays: dict[str, np.ndarray]) -> None:
        arrays["optimizer.9.weight.exp_avg"] = arrays.pop("optimizer.0.weight.exp_avg")

    def rename_dtype(dtypes: dict[str, str]) -> None:
        dtypes["optimizer.9.weight.exp_avg"] = dtypes.pop("optimizer.0.weight.exp_avg")

    damaged = rewrite(saved, tensors=rename, metadata=edit_json("dtypes", rename_dtype))
    expect_error(damaged, "'optimizer.9.weight.exp_avg', which names no parameter's buffer")
    damaged = rewrite(saved, metadata=lambda m: m.pop("optimizer"))
    expect_error(damaged, "no 'optimizer' in its metadata")


# -- errors when loading optimizer state -----------------------------------------------


def adam_for(path: Path) -> Callable[[Path], None]:
    return lambda damaged: load_optimizer(damaged, Adam(xpnn.load(path), lr=1.0))


def test_load_optimizer_without_saved_state(tmp_path):
    path = tmp_path / "model.safetensors"
    model = Linear(2, 2, seed=0)
    xpnn.save(model, path)
    expect_error(path, "holds no optimizer state", "optimizer=", loader=adam_for(path))


def test_load_optimizer_into_another_class(saved):
    model = xpnn.load(saved)
    with pytest.raises(CheckpointError, match="optimizer class 'Adam', not 'SGD'"):
        load_optimizer(saved, SGD(model, lr=0.1))
    with pytest.raises(TypeError, match="xpnn.optim optimizer"):
        load_optimizer(saved, "adam")  # type: ignore[arg-type]


def test_load_optimizer_for_another_model(saved):
    other = Sequential(Linear(3, 4, seed=0), Linear(4, 3, seed=1))
    with pytest.raises(CheckpointError, match="does not fit the optimizer's model"):
        load_optimizer(saved, Adam(other, lr=0.1))


def test_load_optimizer_with_state_that_does_not_fit_leaves_it_unchanged(saved):
    model = xpnn.load(saved)
    optimizer = Adam(model, lr=0.5)
    feed(model, 5)
    optimizer.step()
    before = host_state(optimizer)

    def drop(arrays: dict[str, np.ndarray]) -> None:
        del arrays["optimizer.0.weight.exp_avg"]

    def forget(meta: dict[str, str]) -> None:
        # The buffer leaves the file with its dtype and its digest, so that
        # what fails is the optimizer state, not the file's integrity.
        for key in ("dtypes", "digests"):
            edit_json(key, lambda d: d.pop("optimizer.0.weight.exp_avg"))(meta)

    damaged = rewrite(saved, tensors=drop, metadata=forget)
    with pytest.raises(CheckpointError, match="must be an array at step 1"):
        load_optimizer(damaged, optimizer)
    damaged = rewrite(
        saved, metadata=edit_json("optimizer", lambda o: o["hyperparameters"].update(lr=-1))
    )
    with pytest.raises(CheckpointError, match="lr must be >= 0"):
        load_optimizer(damaged, optimizer)
    damaged = rewrite(saved, metadata=edit_json("optimizer", lambda o: o["steps"].pop("0.bias")))
    with pytest.raises(CheckpointError, match="'steps'"):
        load_optimizer(damaged, optimizer)
    assert_same_state(host_state(optimizer), before)


# -- saving: errors leave the previous file, writes are atomic ---------------------------


def snapshot(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


class Custom(Module):
    pass


def test_failed_saves_leave_the_existing_file_byte_identical(saved):
    before = snapshot(saved.parent)
    model = Linear(3, 4, seed=0)
    with pytest.raises(TypeError, match="xpnn Module"):
        xpnn.save("not a model", saved)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot build back"):
        xpnn.save(Sequential(Linear(2, 2), Custom()), saved)
    with pytest.raises(ValueError, match="optimizer of this model"):
        xpnn.save(model, saved, optimizer=Adam(Linear(3, 4), lr=0.1))
    with pytest.raises(TypeError, match="xpnn.optim optimizer"):
        xpnn.save(model, saved, optimizer="adam")  # type: ignore[arg-type]
    model.set_parameter("bias", np.zeros(4, np.float16))
    with pytest.raises(TypeError):
        xpnn.save(model, saved)
    assert snapshot(saved.parent) == before


def stopping_fdopen(stop: Callable[[], None]) -> Callable[..., Any]:
    """An os.fdopen whose files write half of what they get, flush, then call ``stop``."""
    real = os.fdopen

    def fdopen(*args: Any, **kwargs: Any) -> Any:
        file = real(*args, **kwargs)
        write = file.write

        def half(data: Any) -> int:
            view = memoryview(data)
            written = write(view[: len(view) // 2])
            file.flush()
            stop()
            return written

        file.write = half
        return file

    return fdopen


@pytest.mark.parametrize("where", ["convert", "write", "fsync", "replace", "interrupt"])
def test_a_save_failing_midway_removes_its_temporary_file(saved, monkeypatch, where):
    before = snapshot(saved.parent)
    model = make_model(seed=7)
    error: type[BaseException] = KeyboardInterrupt if where == "interrupt" else OSError

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise error("injected failure")

    calls = []
    real_stored = xpnn.checkpoint.writer.stored_array

    def fail_on_third(*args: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise error("injected failure")
        return real_stored(*args)

    if where == "convert":
        monkeypatch.setattr(xpnn.checkpoint.writer, "stored_array", fail_on_third)
    elif where in ("write", "interrupt"):
        monkeypatch.setattr(xpnn.files.os, "fdopen", stopping_fdopen(fail))
    else:
        monkeypatch.setattr(xpnn.files.os, where, fail)
    with pytest.raises(error, match="injected failure"):
        xpnn.save(model, saved)
    monkeypatch.undo()
    assert snapshot(saved.parent) == before
    xpnn.save(model, saved)
    assert_same_parameters(xpnn.load(saved), model)
    assert sorted(p.name for p in saved.parent.iterdir()) == sorted(before)


def test_a_save_into_a_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        xpnn.save(Linear(2, 2), tmp_path / "absent" / "model.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_a_new_checkpoint_gets_ordinary_permissions(tmp_path):
    ordinary = tmp_path / "ordinary"
    ordinary.write_bytes(b"")
    path = tmp_path / "model.safetensors"
    xpnn.save(Linear(2, 2), path)
    assert path.stat().st_mode == ordinary.stat().st_mode


KILLED_SAVE = """
import os, sys, time
import xpnn

real = os.fdopen

def fdopen(*args, **kwargs):
    file = real(*args, **kwargs)
    write = file.write

    def half(data):
        # Half of the 4 MB file is in the temporary file: stop until killed.
        view = memoryview(data)
        write(view[: len(view) // 2])
        file.flush()
        print("writing", flush=True)
        time.sleep(600)

    file.write = half
    return file

os.fdopen = fdopen
model = xpnn.Sequential(xpnn.Linear(512, 512, seed=3), xpnn.Linear(512, 512, seed=4))
xpnn.save(model, sys.argv[1])
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_save_killed_midway_leaves_the_previous_checkpoint(saved):
    before = saved.read_bytes()
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_SAVE, str(saved)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline() if child.stdout else ""
        assert line == "writing\n", child.stderr.read() if child.stderr else ""
        temporary = [p for p in saved.parent.iterdir() if p.name.endswith(".tmp")]
        assert len(temporary) == 1
        # Wait until the first half has reached the file.
        deadline = time.monotonic() + 30
        while temporary[0].stat().st_size < 512 * 512 * 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.communicate()
    assert child.returncode == -signal.SIGKILL

    assert saved.read_bytes() == before
    model = xpnn.load(saved)
    assert model.config() == Sequential(Linear(3, 4), ReLU(), Linear(4, 2)).config()
    load_optimizer(saved, Adam(model, lr=1.0))
    # The leftover is hidden, not named like a checkpoint, and not loadable.
    (leftover,) = (p for p in saved.parent.iterdir() if p != saved)
    assert leftover.name.startswith(f".{saved.name}.")
    assert leftover.suffix == ".tmp"
    assert 512 * 512 * 8 <= leftover.stat().st_size < 2 * 512 * 512 * 8
    assert list(saved.parent.glob("*.safetensors")) == [saved]
    with pytest.raises(CheckpointError, match="truncated"):
        xpnn.load(leftover)
    # A later save is not disturbed by the leftover.
    xpnn.save(Linear(2, 2, seed=0), saved)
    assert isinstance(xpnn.load(saved), Linear)


def test_gradients_training_mode_and_dropout_state_are_not_saved(tmp_path):
    model = make_model(seed=5)
    feed(model, 0)
    model.eval()
    path = tmp_path / "model.safetensors"
    xpnn.save(model, path)
    loaded = xpnn.load(path)
    assert loaded.training
    assert all(grad is None for _, grad in loaded.named_gradients())
    assert math.isclose(loaded[8].p, 0.3)


LOAD_FLOAT64_WITHOUT_X64 = """
import sys
import jax
import jax.numpy as jnp
import xpnn

assert not jax.config.jax_enable_x64
try:
    xpnn.load(sys.argv[1], xp=jnp)
except ValueError as exc:
    print(f"ValueError: {exc}")
else:
    print("loaded")
print(xpnn.load(sys.argv[1], xp=jnp, dtype=jnp.float32).weight.dtype)
"""


@pytest.mark.backend("jax")
def test_float64_on_jax_without_x64_says_what_to_pass(tmp_path):
    # The test sessions enable x64 for the whole process: a child without it.
    pytest.importorskip("jax")
    path = tmp_path / "model.safetensors"
    xpnn.save(Linear(3, 2, seed=0, dtype="float64"), path)
    env = {key: value for key, value in os.environ.items() if key != "JAX_ENABLE_X64"}
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run(
        [sys.executable, "-c", LOAD_FLOAT64_WITHOUT_X64, str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    refused, cast = done.stdout.splitlines()
    assert refused.startswith("ValueError: parameter 'weight' is float64")
    assert "dtype=jnp.float32" in refused
    assert "JAX_ENABLE_X64=1" in refused
    assert cast == "float32"


@pytest.mark.backend("torch")
def test_load_onto_a_device_that_is_not_available_names_it(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    path = tmp_path / "model.safetensors"
    xpnn.save(Linear(3, 2, seed=0), path)
    with pytest.raises(ValueError, match=r"device 'cuda' is not available here \(CUDA is not"):
        xpnn.load(path, xp=torch, device="cuda")
    with pytest.raises(ValueError, match=r"device 'cuda' is not available here"):
        xpnn.load(path, xp=torch, device="cuda", dtype="float32")

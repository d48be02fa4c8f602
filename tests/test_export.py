"""xpnn.export: ONNX graphs traced through ndonnx, checked and run in onnxruntime.

The oracle is the same model on NumPy: the graph must give its outputs, to
the dtype's tolerance, for one row, an odd number of rows and many (the
batch axis is symbolic), in float32 and float64.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ndonnx = pytest.importorskip("ndonnx")
onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

import xpnn  # noqa: E402
from selection import ON_HOST  # noqa: E402
from xpnn import (  # noqa: E402
    GELU,
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AvgPool1d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv1d,
    Conv2d,
    Dropout,
    Flatten,
    LayerNorm,
    LeakyReLU,
    Linear,
    LogSoftmax,
    MaxPool1d,
    MaxPool2d,
    Module,
    ReLU,
    RMSNorm,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
    Unflatten,
)
from xpnn.export import (  # noqa: E402
    BATCH,
    ExportError,
    build_onnx,
    default_input_shape,
    export_checkpoint,
    require_onnx,
    to_onnx,
    write_onnx,
)
from xpnn.optim import SGD, Adam  # noqa: E402
from xpnn.testing import assert_close  # noqa: E402

pytestmark = ON_HOST  # ONNX export runs on NumPy and onnxruntime, whatever the session

DTYPES = ("float32", "float64")
BATCHES = (1, 7, 256)


def session(path: Path) -> Any:
    options = onnxruntime.SessionOptions()
    # The machines that run the tests are shared: one thread per session.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run(path: Path, x: np.ndarray, name: str = "input") -> np.ndarray:
    return np.asarray(session(path).run(None, {name: x})[0])


def inputs(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    # Wide enough to reach every activation's saturated ends.
    return (3 * np.random.default_rng(seed).standard_normal(shape)).astype(dtype)


def on_numpy(model: Module, dtype: str) -> Module:
    """A copy of ``model`` with NumPy parameters of ``dtype``: the oracle."""
    return copy.deepcopy(model).to(np, dtype=dtype)


def every_activation(seed: int = 0) -> Sequential:
    return Sequential(
        Linear(6, 16, seed=seed),
        ReLU(),
        Linear(16, 16, seed=seed + 1),
        LeakyReLU(0.2),
        Dropout(0.5, seed=seed),
        Linear(16, 16, seed=seed + 2),
        Tanh(),
        Linear(16, 16, seed=seed + 3),
        Sigmoid(),
        Linear(16, 16, seed=seed + 4),
        GELU(),
        Linear(16, 5, seed=seed + 5),
        Softmax(),
        LogSoftmax(),
    ).eval()


MODELS = {
    "linear": lambda: Linear(6, 5, seed=0),
    "linear-no-bias": lambda: Linear(6, 5, bias=False, seed=0),
    "sequential-every-activation": every_activation,
    "dropout-eval": lambda: Sequential(Linear(6, 5, seed=0), Dropout(0.3, seed=1)).eval(),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_graph_matches_numpy_for_any_batch(tmp_path: Path, kind: str, dtype: str) -> None:
    model = MODELS[kind]()
    path = tmp_path / "model.onnx"
    proto = to_onnx(model, path, dtype=dtype)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    assert proto.SerializeToString() == path.read_bytes()
    oracle = on_numpy(model, dtype)
    sess = session(path)
    for rows in BATCHES:
        x = inputs((rows, 6), dtype, seed=rows)
        y = sess.run(None, {"input": x})[0]
        assert_close(np.asarray(y), oracle(x), err_msg=f"{kind}, {rows} rows")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "layer",
    [ReLU(), LeakyReLU(0.3), Tanh(), Sigmoid(), GELU(), Softmax(), LogSoftmax(), Softmax(axis=1)],
    ids=repr,
)
def test_each_activation_alone(tmp_path: Path, layer: Module, dtype: str) -> None:
    path = tmp_path / "act.onnx"
    to_onnx(layer, path, input_shape=(None, 3, 4), dtype=dtype)
    for rows in BATCHES:
        x = inputs((rows, 3, 4), dtype, seed=rows)
        assert_close(run(path, x), layer(x))


def test_graph_shape_names_and_initializers(tmp_path: Path) -> None:
    model = Sequential(Linear(4, 8, seed=0), Tanh(), Linear(8, 3, seed=1))
    proto = to_onnx(model, tmp_path / "m.onnx", dtype="float32")
    graph = proto.graph
    assert [i.name for i in graph.input] == ["input"]
    assert [o.name for o in graph.output] == ["output"]
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == [BATCH, 4]
    dims = [d.dim_param or d.dim_value for d in graph.output[0].type.tensor_type.shape.dim]
    assert dims == [BATCH, 3]
    stored = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    assert list(stored) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    for name, value in model.named_parameters():
        np.testing.assert_array_equal(stored[name], value.astype(np.float32))
    assert proto.producer_name == "xpnn"
    metadata = {p.key: p.value for p in proto.metadata_props}
    assert xpnn.layers.from_config(__import__("json").loads(metadata["xpnn.config"])).config() == (
        model.config()
    )


def test_static_batch(tmp_path: Path) -> None:
    model = Linear(4, 2, seed=0)
    path = tmp_path / "m.onnx"
    proto = to_onnx(model, path, input_shape=(3, 4), dynamic_batch=False)
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [3, 4]
    x = inputs((3, 4), "float64")
    assert_close(run(path, x), model(x))
    with pytest.raises(Exception, match="[Dd]imension|shape|Got invalid"):
        run(path, inputs((5, 4), "float64"))


def test_default_dtype_and_input_from_parameters(tmp_path: Path) -> None:
    model = Sequential(Linear(4, 3, seed=0), ReLU()).to(dtype="float32")
    proto = to_onnx(model, tmp_path / "m.onnx")
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [BATCH, 4]


def test_example_from_another_library(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    model = Sequential(Linear(4, 3, seed=0), GELU()).to(torch, dtype="float32")
    path = tmp_path / "m.onnx"
    proto = to_onnx(model, path, example=torch.zeros(2, 5, 4, dtype=torch.float32))
    assert len(proto.graph.input[0].type.tensor_type.shape.dim) == 3
    x = inputs((9, 5, 4), "float32")
    assert_close(run(path, x), on_numpy(model, "float32")(x))


def test_parameters_of_any_library(tmp_path: Path) -> None:
    xps = pytest.importorskip("array_api_strict")
    model = every_activation().to(xps, dtype="float64")
    path = tmp_path / "m.onnx"
    to_onnx(model, path)
    x = inputs((7, 6), "float64")
    assert_close(run(path, x), on_numpy(model, "float64")(x))


def test_a_layer_used_twice_is_stored_once(tmp_path: Path) -> None:
    shared = Linear(4, 4, seed=0)
    model = Sequential(shared, Tanh(), shared)
    path = tmp_path / "m.onnx"
    proto = to_onnx(model, path, dtype="float64")
    assert [i.name for i in proto.graph.initializer] == ["0.weight", "0.bias"]
    x = inputs((5, 4), "float64")
    assert_close(run(path, x), model(x))


def test_model_is_left_as_it_was(tmp_path: Path) -> None:
    model = every_activation()
    x = inputs((3, 6), "float64")
    before = model(x)
    params = {name: value for name, value in model.named_parameters()}
    state = [dict(vars(module)) for module in model.modules()]
    to_onnx(model, tmp_path / "m.onnx", dtype="float32")
    assert all(value is params[name] for name, value in model.named_parameters())
    after = [dict(vars(module)) for module in model.modules()]
    assert [set(a) for a in after] == [set(b) for b in state]
    for old, new in zip(state, after, strict=True):
        assert all(new[key] is old[key] for key in old)
    assert all(grad is None for _, grad in model.named_gradients())
    np.testing.assert_array_equal(model(x), before)
    assert not model.training


def test_dropout_in_training_is_refused_before_writing(tmp_path: Path) -> None:
    model = Sequential(Linear(4, 4, seed=0), Dropout(0.5, seed=0))
    path = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match=r"Dropout\(p=0.5\) \(layer '1'\).*model.eval\(\)"):
        to_onnx(model, path)
    assert list(tmp_path.iterdir()) == []
    # p == 0 is the identity in both modes.
    to_onnx(Sequential(Linear(4, 4, seed=0), Dropout(0.0)), path)
    assert path.exists()


def test_dropout_deep_inside_is_named_by_its_path(tmp_path: Path) -> None:
    inner = Sequential(Tanh(), Dropout(0.2, seed=0))
    model = Sequential(Linear(4, 4, seed=0), Sequential(ReLU(), inner))
    with pytest.raises(ExportError, match=r"Dropout\(p=0.2\) \(layer '1.1.1'\)"):
        to_onnx(model, tmp_path / "m.onnx")


def test_build_then_write_is_to_onnx(tmp_path: Path) -> None:
    model = every_activation()
    require_onnx()
    proto = build_onnx(model, dtype="float32")
    assert list(tmp_path.iterdir()) == []
    write_onnx(proto, tmp_path / "two-steps.onnx")
    whole = to_onnx(model, tmp_path / "one-step.onnx", dtype="float32")
    assert proto.SerializeToString() == whole.SerializeToString()
    assert (tmp_path / "two-steps.onnx").read_bytes() == (tmp_path / "one-step.onnx").read_bytes()


def test_require_onnx_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ndonnx", None)
    with pytest.raises(ImportError, match=r'pip install "xpnn\[onnx\]"'):
        require_onnx()
    with pytest.raises(ImportError, match="exporting to ONNX needs ndonnx and onnx"):
        build_onnx(Linear(4, 2, seed=0))


def test_failed_export_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous")
    with pytest.raises(ExportError, match=r"expected last dimension 4 \(in_features\), got 5"):
        to_onnx(Linear(4, 2, seed=0), path, input_shape=(None, 5))
    assert path.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_write_failure_leaves_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        to_onnx(Linear(4, 2, seed=0), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dtype": "complex64"}, "dtype must be one of float32, float64"),
        ({"dtype": "int32"}, "dtype must be one of float32, float64"),
        ({"input_shape": (4,)}, r"has 1 axis; give the batch axis too"),
        ({"input_shape": (None, -1)}, r"input_shape\[1\] must be a size"),
        ({"input_shape": "4"}, "input_shape must be a tuple"),
        (
            {"input_shape": (None, 4), "example": np.zeros((1, 4))},
            "pass input_shape or example, not both",
        ),
        ({"example": np.zeros((1, 4), dtype=np.int64)}, "example has dtype int64"),
        ({"input_name": "output"}, "input_name and output_name must differ"),
        ({"input_name": "weight"}, "'weight' names a parameter"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ExportError, match=message):
        to_onnx(Linear(4, 2, seed=0), tmp_path / "m.onnx", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_complex_parameters_are_refused(tmp_path: Path) -> None:
    model = Linear(4, 2, seed=0, dtype="complex128")
    with pytest.raises(ExportError, match="'weight' is complex128.*no complex dtypes"):
        to_onnx(model, tmp_path / "m.onnx")


def test_not_a_module() -> None:
    with pytest.raises(TypeError, match="to_onnx takes an xpnn Module"):
        to_onnx(object(), "unused.onnx")  # type: ignore[arg-type]


class Double(Module):
    """A layer of the user's, written on the standard: xpnn cannot tell its input shape."""

    def forward(self, x: Any) -> Any:
        return 2 * x, lambda dy: 2 * dy


def test_input_shape_needed_without_a_leading_linear(tmp_path: Path) -> None:
    for model in (Tanh(), Sequential(Double(), Linear(4, 2, seed=0))):
        with pytest.raises(ExportError, match="pass input_shape"):
            to_onnx(model, tmp_path / "m.onnx")
    # Activations and Dropout keep the shape: the first Linear tells it.
    proto = to_onnx(Sequential(Tanh(), Dropout(0.0), Linear(4, 2, seed=0)), tmp_path / "n.onnx")
    assert proto.graph.input[0].type.tensor_type.shape.dim[1].dim_value == 4
    # A layer of the user's exports as well as xpnn's own; xpnn does not
    # claim that it keeps the batch axis.
    model = Sequential(Double(), Linear(4, 2, seed=0))
    proto = to_onnx(model, tmp_path / "m.onnx", input_shape=(None, 4))
    assert proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param != BATCH
    x = inputs((3, 4), "float64")
    assert_close(run(tmp_path / "m.onnx", x), model(x))


def test_a_layer_that_leaves_the_standard(tmp_path: Path) -> None:
    class Host(Module):
        def forward(self, x: Any) -> Any:
            return np.asarray(x, dtype=np.float64), lambda dy: dy

    with pytest.raises(ExportError, match="tracing Sequential through ndonnx failed|not an ndonnx"):
        to_onnx(Sequential(Linear(4, 2, seed=0), Host()), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_importing_xpnn_export_imports_no_onnx_library() -> None:
    code = (
        "import sys, xpnn, xpnn.export; "
        "print(sorted(m for m in ('ndonnx', 'onnx', 'onnxruntime', 'spox') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


# -- a trained model, and checkpoints -----------------------------------------------


@pytest.fixture(scope="module")
def digits() -> dict[str, Any]:
    """A small MLP trained on scikit-learn's digits by xpnn.fit, and its test split."""
    datasets = pytest.importorskip("sklearn.datasets")
    data = datasets.load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:1400], order[1400:]
    model = Sequential(
        Linear(64, 32, seed=0), ReLU(), Dropout(0.1, seed=0), Linear(32, 10, seed=1)
    ).to(dtype="float32")
    optimizer = Adam(model, lr=1e-2)
    history = xpnn.fit(
        model,
        xpnn.CrossEntropyLoss(),
        optimizer,
        x[train],
        y[train],
        epochs=4,
        batch_size=64,
        progress=False,
    )
    model.eval()
    return {
        "model": model,
        "optimizer": optimizer,
        "x": x[test],
        "y": y[test],
        "history": history,
    }


def test_trained_digits_model_predicts_the_same_classes(
    tmp_path: Path, digits: dict[str, Any]
) -> None:
    model, x = digits["model"], digits["x"]
    path = tmp_path / "digits.onnx"
    to_onnx(model, path)
    expected = np.argmax(model(x), axis=-1)
    assert np.mean(expected == digits["y"]) > 0.85  # trained, not chance
    logits = run(path, x)
    assert_close(logits, model(x))
    np.testing.assert_array_equal(np.argmax(logits, axis=-1), expected)
    # One row at a time too, as a service would send them.
    sess = session(path)
    singles = [sess.run(None, {"input": x[i : i + 1]})[0] for i in range(0, len(x), 37)]
    np.testing.assert_array_equal(
        np.argmax(np.concatenate(singles), axis=-1), expected[::37][: len(singles)]
    )


def test_export_checkpoint_round_trip(tmp_path: Path, digits: dict[str, Any]) -> None:
    checkpoint = tmp_path / "model.safetensors"
    xpnn.save(digits["model"], checkpoint, optimizer=digits["optimizer"])
    path = tmp_path / "model.onnx"
    proto = export_checkpoint(checkpoint, path)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    loaded = xpnn.load(checkpoint).eval()
    x = digits["x"]
    assert_close(run(path, x), loaded(x))
    np.testing.assert_array_equal(
        np.argmax(run(path, x), axis=-1), np.argmax(digits["model"](x), axis=-1)
    )
    # Another dtype on request.
    export_checkpoint(checkpoint, tmp_path / "f64.onnx", dtype="float64")
    assert_close(run(tmp_path / "f64.onnx", x.astype(np.float64)), loaded.to(dtype="float64")(x))


def test_export_checkpoint_of_a_model_trained_in_training_mode(tmp_path: Path) -> None:
    """A checkpoint loads in training mode; the export is of its inference path."""
    model = Sequential(Linear(3, 4, seed=0), Dropout(0.5, seed=0), Linear(4, 2, seed=1))
    SGD(model, lr=0.1)
    checkpoint = tmp_path / "model.safetensors"
    xpnn.save(model, checkpoint)
    export_checkpoint(checkpoint, tmp_path / "m.onnx")
    x = inputs((5, 3), "float64")
    assert_close(run(tmp_path / "m.onnx", x), model.eval()(x))


def test_export_checkpoint_of_a_bad_file_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(xpnn.CheckpointError):
        export_checkpoint(bad, tmp_path / "m.onnx")
    with pytest.raises(FileNotFoundError):
        export_checkpoint(tmp_path / "missing.safetensors", tmp_path / "m.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.safetensors"]


# -- image layers: traced at two fixed batch sizes, one graph for any ---------------


def dims(value: Any) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def with_statistics(model: Module, seed: int = 0) -> Module:
    """``model`` in eval mode, its batch norms' running statistics and affine parameters not
    the initial ones (set, not trained: cheaper, and further from the identity)."""
    rng = np.random.default_rng(seed)
    for name, value in dict(model.named_buffers()).items():
        if name.endswith("running_mean"):
            model.set_buffer(name, rng.standard_normal(value.shape))
        elif name.endswith("running_var"):
            model.set_buffer(name, rng.uniform(0.5, 2.0, value.shape))
    for name, owner, local in model.parameter_slots():
        if isinstance(owner, BatchNorm1d | BatchNorm2d):
            model.set_parameter(name, rng.uniform(0.5, 1.5, owner.params[local].shape))
    return model.eval()


def scaled(layer: Module, seed: int = 0) -> Module:
    """``layer`` with parameters drawn away from their initial ones and zeros."""
    rng = np.random.default_rng(seed)
    for name, value in dict(layer.named_parameters()).items():
        layer.set_parameter(name, rng.uniform(0.5, 1.5, value.shape))
    return layer


def lenet() -> Sequential:
    """LeNet on 1x12x12 images given as rows of 144, as ``xpnn train --model cnn-bn``."""
    return with_statistics(
        Sequential(
            Unflatten(1, (1, 12, 12)),
            Conv2d(1, 4, 5, padding=2, seed=0),
            BatchNorm2d(4),
            ReLU(),
            MaxPool2d(2),
            Conv2d(4, 6, 3, seed=1),
            ReLU(),
            AvgPool2d(2),
            Flatten(),
            Linear(6 * 2 * 2, 10, seed=2),
        )
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_lenet_matches_numpy_for_any_batch(tmp_path: Path, dtype: str) -> None:
    model = lenet()
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    path = tmp_path / "lenet.onnx"
    proto = to_onnx(model, path, dtype=dtype)  # the input width from the Unflatten
    graph = proto.graph
    assert (dims(graph.input[0]), dims(graph.output[0])) == ([BATCH, 144], [BATCH, 10])
    stored = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    # The running statistics are initializers; the batch count is not read.
    assert set(stored) == {*params, "2.running_mean", "2.running_var"}
    for name in ("2.running_mean", "2.running_var"):
        np.testing.assert_array_equal(stored[name], buffers[name].astype(dtype))
    oracle = on_numpy(model, dtype)
    sess = session(path)
    for rows in (1, 7, 0):
        x = inputs((rows, 144), dtype, seed=rows)
        assert_close(np.asarray(sess.run(None, {"input": x})[0]), oracle(x), err_msg=f"{rows}")
    # Left as it was: the same arrays, in eval mode.
    assert all(value is params[name] for name, value in model.named_parameters())
    assert all(value is buffers[name] for name, value in model.named_buffers())
    assert not model.training
    metadata = {p.key: p.value for p in proto.metadata_props}
    config = __import__("json").loads(metadata["xpnn.config"])
    assert xpnn.layers.from_config(config).config() == model.config()


# Each new layer alone, with the options whose graphs differ; dtypes alternate.
IMAGE_LAYERS: dict[str, tuple[Any, tuple[int, ...], str]] = {
    "conv2d-stride2-padding": (
        lambda: Conv2d(2, 3, 3, stride=2, padding=1, seed=0),
        (2, 7, 7),
        "float64",
    ),
    "conv2d-groups=channels-dilation-same-no-bias": (
        lambda: Conv2d(3, 6, (3, 2), dilation=2, groups=3, padding="same", bias=False, seed=1),
        (3, 5, 6),
        "float32",
    ),
    "conv1d-stride-padding-dilation-groups": (
        lambda: Conv1d(4, 2, 3, stride=2, padding=2, dilation=2, groups=2, seed=3),
        (4, 11),
        "float32",
    ),
    "maxpool2d-ceil-padding": (
        lambda: MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
        (2, 6, 7),
        "float64",
    ),
    "maxpool1d-dilation-ceil": (
        lambda: MaxPool1d(2, stride=2, dilation=2, ceil_mode=True),
        (2, 8),
        "float32",
    ),
    "avgpool2d-padding-count_include_pad=False": (
        lambda: AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
        (2, 7, 6),
        "float64",
    ),
    "avgpool1d-ceil-count_include_pad=False": (
        lambda: AvgPool1d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        (2, 8),
        "float64",
    ),
    "adaptive-avgpool2d-uneven-none": (
        lambda: AdaptiveAvgPool2d((3, None)),
        (2, 7, 5),
        "float32",
    ),
    "adaptive-avgpool1d": (lambda: AdaptiveAvgPool1d(4), (2, 7), "float64"),
    "batchnorm2d": (lambda: with_statistics(BatchNorm2d(3)), (3, 4, 5), "float32"),
    "batchnorm1d-3d": (lambda: with_statistics(BatchNorm1d(3)), (3, 5), "float64"),
    "batchnorm1d-2d-no-affine": (
        lambda: with_statistics(BatchNorm1d(3, affine=False, eps=0.1)),
        (3,),
        "float32",
    ),
    "layernorm-last2": (lambda: scaled(LayerNorm((3, 4), eps=1e-3)), (3, 4), "float32"),
    "layernorm-plain": (lambda: LayerNorm(5, elementwise_affine=False), (2, 5), "float64"),
    "rmsnorm": (lambda: scaled(RMSNorm(4)), (2, 4), "float64"),
    "flatten": (lambda: Flatten(), (2, 3, 4), "float64"),
    "flatten-inner": (lambda: Flatten(2, 3), (2, 3, 4), "float32"),
    "unflatten": (lambda: Unflatten(1, (3, -1)), (12,), "float64"),
}


@pytest.mark.parametrize("kind", list(IMAGE_LAYERS))
def test_each_image_layer_alone(tmp_path: Path, kind: str) -> None:
    make, item, dtype = IMAGE_LAYERS[kind]
    layer = make()
    path = tmp_path / "layer.onnx"
    proto = to_onnx(layer, path, input_shape=(None, *item), dtype=dtype)
    assert dims(proto.graph.input[0]) == [BATCH, *item]
    oracle = on_numpy(layer, dtype)
    sess = session(path)
    for rows in (1, 5, 0):
        x = inputs((rows, *item), dtype, seed=rows)
        expected = oracle(x)
        assert dims(proto.graph.output[0])[0] == BATCH
        assert_close(np.asarray(sess.run(None, {"input": x})[0]), expected, err_msg=f"{rows}")


def test_embedding_forward_traces_through_ndonnx() -> None:
    # to_onnx takes a floating input; the lookup itself traces and runs.
    from xpnn.functional import embedding

    weight = np.random.default_rng(0).standard_normal((5, 3))
    indices = ndonnx.argument(shape=("N", 2), dtype=ndonnx.int64)
    graph = ndonnx.build({"indices": indices}, {"y": embedding(indices, ndonnx.asarray(weight))})
    runner = onnxruntime.InferenceSession(
        graph.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    host = np.array([[4, 0], [1, 1], [3, 4]])
    np.testing.assert_array_equal(runner.run(None, {"indices": host})[0], weight[host])


def test_batchnorm_in_training_is_refused_before_writing(tmp_path: Path) -> None:
    model = Sequential(Conv2d(1, 4, 3, seed=0), BatchNorm2d(4), ReLU())
    path = tmp_path / "m.onnx"
    message = r"BatchNorm2d\(4\) \(layer '1'\) is in training mode.*call model.eval\(\)"
    with pytest.raises(ExportError, match=message):
        to_onnx(model, path, input_shape=(None, 1, 5, 5))
    nested = Sequential(Linear(3, 3, seed=0), Sequential(Tanh(), BatchNorm1d(3)))
    with pytest.raises(ExportError, match=r"BatchNorm1d\(3\) \(layer '1.1'\) is in training"):
        to_onnx(nested, path)
    assert list(tmp_path.iterdir()) == []


def test_batchnorm_without_running_statistics_normalises_each_call(tmp_path: Path) -> None:
    """In eval mode without tracking, the batch's statistics normalise, in xpnn as in the graph."""
    model = with_statistics(BatchNorm1d(3, track_running_stats=False))
    path = tmp_path / "m.onnx"
    proto = to_onnx(model, path, input_shape=(None, 3), dtype="float64")
    assert [i.name for i in proto.graph.initializer] == ["weight", "bias"]
    x = inputs((6, 3), "float64")
    assert_close(run(path, x), model(x))


def test_input_shape_of_image_models(tmp_path: Path) -> None:
    assert default_input_shape(Sequential(ReLU(), Unflatten(-1, (2, 3)), Flatten())) == (None, 6)
    assert default_input_shape(Sequential(BatchNorm1d(5), Linear(5, 2))) == (None, 5)
    for model in (Conv2d(1, 2, 3), Sequential(Unflatten(1, (2, -1))), MaxPool1d(2)):
        assert default_input_shape(model) is None
    with pytest.raises(ExportError, match=r"input_shape=\(None, channels, height, width\)"):
        to_onnx(Sequential(Conv2d(1, 2, 3), Flatten()), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_a_batch_merged_into_another_axis(tmp_path: Path) -> None:
    """Flatten(0) merges the batch: the output's first axis is a multiple of it, unnamed."""
    model = Sequential(Flatten(0), Unflatten(0, (-1, 6)), Tanh())
    path = tmp_path / "m.onnx"
    proto = to_onnx(model, path, input_shape=(None, 2, 3), dtype="float64")
    assert dims(proto.graph.output[0]) == [BATCH, 6]  # (rows * 6) / 6 rows: the batch again
    inner = to_onnx(Flatten(0), tmp_path / "f.onnx", input_shape=(None, 2, 3), dtype="float64")
    assert inner.graph.output[0].type.tensor_type.shape.dim[0].dim_param == ""
    for rows in (1, 4):
        x = inputs((rows, 2, 3), "float64")
        assert_close(run(path, x), model(x))
        assert_close(run(tmp_path / "f.onnx", x), np.reshape(x, (-1,)))


def test_a_failed_trace_names_the_layer(tmp_path: Path) -> None:
    model = Sequential(ReLU(), Sequential(Conv2d(3, 4, 3, seed=0), MaxPool2d(2)))
    message = (
        r"failed in layer '1.0' \(Conv2d\) for an input of shape \('batch', 2, 6, 6\) "
        r"\(traced with 2 rows, for layers that need every size\).*expected 3 channels"
    )
    with pytest.raises(ExportError, match=message):
        to_onnx(model, tmp_path / "m.onnx", input_shape=(None, 2, 6, 6))
    assert list(tmp_path.iterdir()) == []


class BatchMean(Module):
    """A layer of the user's that needs a known batch size and divides by it."""

    def forward(self, x: Any) -> Any:
        rows = x.shape[0]
        if rows is None:
            raise ValueError("BatchMean needs a known number of rows")
        return x - x.__array_namespace__().sum(x, axis=0) / rows, lambda dy: dy


def test_a_graph_that_depends_on_the_batch_size_needs_a_fixed_batch(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match=r"depends on the batch size.*dynamic_batch=False"):
        to_onnx(BatchMean(), path, input_shape=(None, 3), dtype="float64")
    assert list(tmp_path.iterdir()) == []
    to_onnx(BatchMean(), path, input_shape=(4, 3), dynamic_batch=False, dtype="float64")
    x = inputs((4, 3), "float64")
    assert_close(run(path, x), BatchMean()(x))


def test_value_propagation_backends_build_the_same_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tracing propagates constants with ONNX's reference evaluator; onnxruntime's are alike."""
    import contextlib

    from xpnn.export import trace

    model = with_statistics(Sequential(BatchNorm1d(2), MaxPool1d(2, padding=1), Flatten()))
    # One trace each (a fixed batch): what the backend changes is any trace's constants.
    fixed = {"input_shape": (2, 2, 4), "dynamic_batch": False, "dtype": "float32"}
    fast = build_onnx(model, **fixed)
    monkeypatch.setattr(trace, "_reference_value_propagation", contextlib.nullcontext)
    default = build_onnx(model, **fixed)
    assert fast.SerializeToString() == default.SerializeToString()


def test_transformer_encoder_classifier(tmp_path: Path) -> None:
    from xpnn import LayerNorm, TransformerEncoder, TransformerEncoderLayer

    layer = TransformerEncoderLayer(8, 2, 16, dropout=0.1, batch_first=True, seed=1)
    model = Sequential(
        Linear(3, 8, seed=0),
        TransformerEncoder(layer, 2, norm=LayerNorm(8)),
        Flatten(),
        Linear(32, 2, seed=2),
    ).eval()
    path = tmp_path / "transformer.onnx"
    to_onnx(model, path, input_shape=(None, 4, 3), dtype="float32")
    oracle = on_numpy(model, "float32")
    for rows in (1, 5):
        x = inputs((rows, 4, 3), "float32", seed=rows)
        assert_close(run(path, x), oracle(x), err_msg=f"{rows} rows")


class _SequenceClassifier(Module):
    """A bidirectional GRU, its output at the last step, a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = xpnn.GRU(3, 4, bidirectional=True, batch_first=True, seed=0)
        self.head = Linear(8, 2, seed=1)

    def children(self) -> list[Module]:
        return [self.gru, self.head]

    def named_children(self) -> list[tuple[str, Module]]:
        return [("gru", self.gru), ("head", self.head)]

    def forward(self, x: Any, *, input_grad: bool = True) -> tuple[Any, Any]:
        output, _ = self.gru(x)
        return self.head(output[:, -1, :]), None


def test_gru_unrolls_over_a_fixed_number_of_steps(tmp_path: Path) -> None:
    """The time loop unrolls at export: the steps are fixed, the batch is not."""
    model = _SequenceClassifier().eval()
    path = tmp_path / "gru.onnx"
    to_onnx(model, path, input_shape=(None, 4, 3), dtype="float32")
    oracle = on_numpy(model, "float32")
    for rows in (1, 7):
        x = inputs((rows, 4, 3), "float32", seed=rows)
        assert_close(run(path, x), oracle(x))

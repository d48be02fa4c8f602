"""xpnn.Module: moving a model with ``to``, and its structure with ``config``."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn import GELU, Dropout, LeakyReLU, Linear, LogSoftmax, ReLU, Sequential, Sigmoid, Tanh
from xpnn.layers import from_config
from xpnn.optim import SGD, Adam
from xpnn.testing import assert_close, random_array, to_numpy


def _dtype_or_skip(xp, device, name):
    available = xp.__array_namespace_info__().dtypes(device=device)
    if name not in available:
        pytest.skip(f"device {device!r} has no {name}")
    return available[name]


def _model(xp, device, dtype):
    where = {"xp": xp, "device": device, "dtype": dtype}
    return Sequential(
        Linear(5, 7, seed=0, **where), Tanh(), Linear(7, 3, seed=1, **where), LogSoftmax()
    )


def _same_place(model, xp, device, dtype):
    for name, param in model.named_parameters():
        assert xpnn._compat.array_namespace(p=param) is xp, name
        assert xpnn._compat.device(param) == device, name
        assert param.dtype == dtype, name


@pytest.mark.parametrize("name", ["float32", "float64"])
def test_predictions_survive_every_move(cpu_pair, name):
    (source_xp, source_device, _), (target_xp, target_device, _) = cpu_pair
    source_dtype = _dtype_or_skip(source_xp, source_device, name)
    target_dtype = _dtype_or_skip(target_xp, target_device, name)
    model = _model(source_xp, source_device, source_dtype)
    x = random_array(source_xp, (4, 5), dtype=source_dtype, device=source_device, seed=3)
    before = to_numpy(model(x))

    assert model.to(target_xp, device=target_device) is model
    _same_place(model, target_xp, target_device, target_dtype)
    x_there = random_array(target_xp, (4, 5), dtype=target_dtype, device=target_device, seed=3)
    after = model(x_there)
    assert_close(after, before, xp=target_xp, device=target_device, dtype=target_dtype)


def test_dtype_change_through_standard_names(cpu_pair):
    (source_xp, source_device, _), (target_xp, target_device, _) = cpu_pair
    source_dtype = _dtype_or_skip(source_xp, source_device, "float64")
    target_dtype = _dtype_or_skip(target_xp, target_device, "float32")
    model = _model(source_xp, source_device, source_dtype)
    expected = to_numpy(model.parameters()[0]).astype(np.float32)
    model.to(target_xp, device=target_device, dtype="float32")
    _same_place(model, target_xp, target_device, target_dtype)
    np.testing.assert_array_equal(to_numpy(model.parameters()[0]), expected)


def test_moved_arrays_share_no_memory(xp, device, real_dtype):
    model = _model(xp, device, real_dtype)
    kept = [to_numpy(p) for p in model.parameters()]
    held = model.parameters()
    target = np if xp.__name__ != "array_api_compat.numpy" else pytest.importorskip("torch")
    model.to(target)
    x = to_numpy(random_array(xp, (4, 5), dtype=real_dtype, device=device, seed=3))
    x = target.asarray(x)
    y, back = model.forward(x)
    back(y * 0 + 1)
    SGD(model, lr=0.5).step()  # in place on NumPy and PyTorch
    for old, value in zip(held, kept, strict=True):
        np.testing.assert_array_equal(to_numpy(old), value)


def test_nothing_to_change_keeps_the_arrays(xp, device, real_dtype):
    model = _model(xp, device, real_dtype)
    held = model.parameters()
    model.to()
    model.to(xp, device=device, dtype=real_dtype)
    assert all(a is b for a, b in zip(held, model.parameters(), strict=True))


def test_gradients_and_optimizer_state_move(xp, device, real_dtype):
    import array_api_strict as xps

    def train(model, optimizer, x, steps):
        for _ in range(steps):
            optimizer.zero_grad()
            y, back = model.forward(x)
            back(y)  # the gradient of sum(y**2) / 2
            optimizer.step()

    moved, reference = _model(xp, device, real_dtype), _model(xp, device, real_dtype)
    moved_opt, reference_opt = Adam(moved, lr=0.01), Adam(reference, lr=0.01)
    x = random_array(xp, (6, 5), dtype=real_dtype, device=device, seed=4)
    train(moved, moved_opt, x, 2)
    train(reference, reference_opt, x, 2)
    moved_opt.zero_grad()
    y, back = moved.forward(x)
    back(y)  # a pending gradient moves too
    target_device = xps.Device("device1")
    moved.to(xps, device=target_device, optimizer=moved_opt)
    strict_dtype = getattr(xps, xpnn._compat.dtype_name(xp, real_dtype))
    _same_place(moved, xps, target_device, strict_dtype)
    for name, grad in moved.named_gradients():
        assert grad is not None, name
        assert grad.device == target_device, name
    for name, entry in moved_opt.state_dict()["state"].items():
        assert entry["exp_avg"].device == target_device, name
        assert entry["step"] == 2
    moved_opt.step()
    reference_opt.zero_grad()
    y, back = reference.forward(x)
    back(y)
    reference_opt.step()
    train(moved, moved_opt, xps.asarray(to_numpy(x), device=target_device), 1)
    train(reference, reference_opt, x, 1)
    for (name, a), (_, b) in zip(
        moved.named_parameters(), reference.named_parameters(), strict=True
    ):
        assert_close(a, to_numpy(b), xp=xps, device=target_device, dtype=strict_dtype, err_msg=name)


def test_failed_moves_change_nothing(xp, device, real_dtype):
    import array_api_strict as xps

    model = _model(xp, device, real_dtype)
    optimizer = SGD(model, lr=0.1, momentum=0.9)
    held = model.parameters()
    with pytest.raises(TypeError, match="floating dtype"):
        model.to(dtype="int32")
    with pytest.raises(TypeError, match="array library"):
        model.to("numpy")
    with pytest.raises(ValueError, match="optimizer of this module"):
        model.to(xps, optimizer=SGD(_model(xp, device, real_dtype), lr=0.1))
    complex_name = {"float32": "complex64", "float64": "complex128"}[
        xpnn._compat.dtype_name(xp, real_dtype)
    ]
    with pytest.raises(ValueError, match="would turn the .* parameter '0.weight' complex"):
        model.to(dtype=complex_name)
    if xpnn._compat.dtype_name(xp, real_dtype) == "float64":
        with pytest.raises(ValueError, match="pass dtype= as well"):
            model.to(xps, device="no_float64", optimizer=optimizer)
    assert all(a is b for a, b in zip(held, model.parameters(), strict=True))


def test_complex_parameters_stay_complex(xp, device):
    dtype = _dtype_or_skip(xp, device, "complex64")
    layer = Linear(3, 2, xp=xp, device=device, dtype=dtype, seed=0)
    x = random_array(xp, (2, 3), dtype=dtype, device=device, seed=1)
    before = to_numpy(layer(x))
    with pytest.raises(ValueError, match="would turn the complex64 parameter 'weight' real"):
        layer.to(dtype="float32")
    layer.to(np)
    assert layer.weight.dtype == np.complex64
    assert_close(layer(np.asarray(to_numpy(x))), before)


ALL_LAYERS = [
    lambda where: Linear(4, 6, bias=False, seed=0, **where),
    lambda where: ReLU(),
    lambda where: LeakyReLU(0.2),
    lambda where: Dropout(0.25),
    lambda where: GELU(),
    lambda where: Sigmoid(),
    lambda where: Linear(6, 3, seed=1, **where),
    lambda where: LogSoftmax(axis=-1),
]


def test_config_rebuilds_the_structure(xp, device, real_dtype):
    where = {"xp": xp, "device": device, "dtype": real_dtype}
    model = Sequential(*(make(where) for make in ALL_LAYERS), Sequential(Tanh()))
    config = model.config()
    assert config["type"] == "Sequential"
    assert config["children"][0] == {
        "type": "Linear",
        "settings": {"in_features": 4, "out_features": 6, "bias": False},
        "children": [],
    }
    rebuilt = from_config(config, **where)
    assert repr(rebuilt) == repr(model)
    assert rebuilt.config() == config
    assert [n for n, _ in rebuilt.named_parameters()] == [n for n, _ in model.named_parameters()]
    for _, param in rebuilt.named_parameters():
        assert not np.any(to_numpy(param))  # parameters start at zero, for the caller to set


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([], r"config must be a dict, got list"),
        ({"type": "Linear"}, r"exactly the keys"),
        ({"type": "Conv3d", "settings": {}, "children": []}, r"\['type'\] must name an xpnn"),
        (
            {"type": "Linear", "settings": {"in_features": 0, "out_features": 2}, "children": []},
            r"\['settings'\] do not fit Linear: in_features",
        ),
        (
            {"type": "ReLU", "settings": {"slope": 1}, "children": []},
            r"\['settings'\] do not fit ReLU",
        ),
        (
            {
                "type": "Sequential",
                "settings": {},
                "children": [{"type": "Tanh", "settings": {}, "children": {}}],
            },
            r"config\['children'\]\[0\]\['children'\] must be a list",
        ),
        (
            {"type": "Tanh", "settings": {}, "children": [{}]},
            r"must be empty for Tanh",
        ),
    ],
)
def test_bad_configs_name_the_entry(config, message):
    with pytest.raises(ValueError, match=message):
        from_config(config)


# -- replacing parameters -----------------------------------------------------


def test_a_parameter_of_another_shape_is_refused(xp, device, tmp_path):
    model = Sequential(Linear(3, 2, xp=xp, device=device, seed=0))
    layer = model[0]
    weight, bias = layer.weight, layer.bias
    wrong = xp.ones((5, 5), dtype=weight.dtype, device=device)
    with pytest.raises(
        ValueError, match=r"parameter 'weight' must have shape \(3, 2\).*got shape \(5, 5\)"
    ):
        layer.weight = wrong
    with pytest.raises(
        ValueError, match=r"parameter '0.bias' must have shape \(2,\).*got shape \(3,\)"
    ):
        model.set_parameter("0.bias", xp.ones((3,), dtype=bias.dtype, device=device))
    with pytest.raises(ValueError, match=r"parameter 'weight' must have shape \(3, 2\)"):
        layer.weight = xp.ones((2, 3), dtype=weight.dtype, device=device)  # the transpose
    assert layer.weight is weight
    assert layer.bias is bias
    # The same shape is taken as it is, and what the model holds saves and loads.
    new = xp.zeros((3, 2), dtype=weight.dtype, device=device)
    layer.weight = new
    assert layer.weight is new
    xpnn.save(model, tmp_path / "model.safetensors")
    loaded = xpnn.load(tmp_path / "model.safetensors")
    np.testing.assert_array_equal(loaded[0].weight, np.zeros((3, 2)))


NOT_PARAMETERS = {
    "list": ([[1.0, 1.0]] * 3, TypeError, r"must be an array .* got builtins\.list"),
    "None": (None, TypeError, r"must be an array .* got None"),
    "integer": (np.ones((3, 2), dtype=np.int64), TypeError, "floating dtype, got int64"),
    "other library": (
        "strict",
        TypeError,
        r"parameter 'weight' must be an array of numpy, like the parameter it replaces, got "
        r"an array of array_api_strict; .*module\.to\(xp=\.\.\.\)",
    ),
}


@pytest.mark.parametrize("case", NOT_PARAMETERS.values(), ids=NOT_PARAMETERS.keys())
def test_something_that_cannot_be_the_parameter_is_refused(case):
    value, error, message = case
    if isinstance(value, str):
        strict = pytest.importorskip("array_api_strict")
        value = strict.ones((3, 2), dtype=strict.float64)
    layer = Linear(3, 2, seed=0)
    weight = layer.weight
    with pytest.raises(error, match=message):
        layer.weight = value
    with pytest.raises(error, match=message):
        layer.set_parameter("weight", value)
    assert layer.weight is weight


def test_a_new_dtype_of_the_same_shape_is_taken():
    layer = Linear(3, 2, seed=0)
    layer.bias = np.zeros(2, dtype=np.float32)
    assert layer.bias.dtype == np.float32


def test_sizes_unknown_until_computed_are_taken():
    da = pytest.importorskip("dask.array")
    layer = Linear(3, 2, xp=da, seed=0)
    bias = layer.bias[layer.bias > -10.0]  # a boolean mask: size nan
    layer.bias = bias
    assert layer.bias is bias
    with pytest.raises(ValueError, match=r"parameter 'weight' must have shape \(3, 2\)"):
        layer.weight = layer.bias

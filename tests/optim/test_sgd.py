"""xpnn.optim.SGD against torch.optim.SGD, and how updates reach the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xpnn
from oracles import assert_matches_twin, feed_gradients, make_model, torch_twin
from xpnn import Linear
from xpnn._compat import is_writeable
from xpnn.layers.sequential import Sequential
from xpnn.optim import SGD, Adam, AdamW, Optimizer
from xpnn.testing import assert_close, random_array, to_numpy

STEPS = 5


CASES = {
    "plain": {"lr": 0.1},
    "momentum": {"lr": 0.1, "momentum": 0.9},
    "nesterov": {"lr": 0.1, "momentum": 0.9, "nesterov": True},
    "dampening": {"lr": 0.1, "momentum": 0.9, "dampening": 0.3},
    "weight_decay": {"lr": 0.1, "weight_decay": 0.05},
    "everything": {"lr": 0.05, "momentum": 0.8, "weight_decay": 0.05, "nesterov": True},
}


@pytest.mark.parametrize("kind", ["linear", "sequential"])
@pytest.mark.parametrize("settings", CASES.values(), ids=CASES.keys())
def test_matches_torch_optim_sgd(xp, device, real_dtype, kind, settings):
    model = make_model(kind, xp, device, real_dtype)
    twin = torch_twin(model)
    ours, theirs = SGD(model, **settings), torch.optim.SGD(twin.parameters(), **settings)
    for step in range(1, STEPS + 1):
        feed_gradients(model, twin, xp, device, step)
        ours.step()
        theirs.step()
        assert_matches_twin(model, twin, xp, device, step)
        for name, param in model.named_parameters():
            assert param.dtype == real_dtype, name


def test_complex_parameters_match_torch(xp, device, dtype):
    model = make_model("linear", xp, device, dtype)
    twin = torch_twin(model)
    settings = {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.05}
    ours, theirs = SGD(model, **settings), torch.optim.SGD(twin.parameters(), **settings)
    for step in range(1, 4):
        feed_gradients(model, twin, xp, device, step)
        ours.step()
        theirs.step()
        assert_matches_twin(model, twin, xp, device, step)


def test_training_loop_matches_torch_autograd(xp, device, real_dtype):
    """Gradients from forward/backward, not set by hand, on a two-layer model."""
    model = make_model("sequential", xp, device, real_dtype)
    twin = torch_twin(model)
    ours = SGD(model, lr=0.05, momentum=0.9)
    theirs = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9)
    for step in range(1, 4):
        x = random_array(xp, (6, 4), dtype=real_dtype, device=device, seed=step)
        dy = random_array(xp, (6, 3), dtype=real_dtype, device=device, seed=10 + step)
        _, backward = model.forward(x)
        backward(dy)
        twin(torch.from_numpy(to_numpy(x))).backward(torch.from_numpy(to_numpy(dy)))
        ours.step()
        theirs.step()
        ours.zero_grad()
        theirs.zero_grad()
        assert_matches_twin(model, twin, xp, device, step)
    assert all(grad is None for _, grad in model.named_gradients())


# -- where the update goes ---------------------------------------------------


def test_parameters_updated_in_place_or_written_back(xp, device, real_dtype):
    model = make_model("sequential", xp, device, real_dtype)
    before = dict(model.named_parameters())
    values = {name: to_numpy(p) for name, p in before.items()}
    grads = {}
    for index, (name, param) in enumerate(before.items()):
        grads[name] = random_array(
            xp, tuple(param.shape), dtype=real_dtype, device=device, seed=index
        )
        model.set_gradient(name, grads[name])
    SGD(model, lr=0.5).step()
    for name, param in model.named_parameters():
        if is_writeable(before[name]):
            assert param is before[name], f"{name} was not updated in place"
        else:
            assert param is not before[name], f"{name} was not written back"
            # The old array is untouched: JAX arrays are immutable.
            np.testing.assert_array_equal(to_numpy(before[name]), values[name])
        expected = values[name] - 0.5 * to_numpy(grads[name])
        assert_close(param, expected, xp=xp, device=device, dtype=real_dtype)
    # Containers hand the new values to the layers that own them.
    assert model[0].weight is dict(model.named_parameters())["0.weight"]


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_numpy_and_torch_keep_the_same_objects(library):
    module = np if library == "numpy" else torch
    layer = Linear(3, 2, xp=module, seed=0)
    weight, bias = layer.weight, layer.bias
    optimizer = SGD(layer, lr=0.1, momentum=0.9)
    buffer = None
    for step in range(3):
        layer.grads["weight"] = module.ones((3, 2), dtype=weight.dtype) * (step + 1)
        layer.grads["bias"] = module.ones((2,), dtype=weight.dtype)
        optimizer.step()
        assert layer.weight is weight
        assert layer.bias is bias
        current = optimizer._state["weight"]["momentum_buffer"]
        assert buffer is None or current is buffer  # the buffer is updated in place too
        buffer = current
    # The buffer was copied from the first gradient, not aliased to it.
    assert layer.grads["weight"] is not buffer


def test_jax_parameters_are_written_back():
    jnp = pytest.importorskip("jax.numpy")
    model = Sequential(Linear(3, 2, xp=jnp, seed=0), Linear(2, 2, xp=jnp, seed=1))
    optimizer = SGD(model, lr=0.1, momentum=0.9)
    old = dict(model.named_parameters())
    for name, param in old.items():
        model.set_gradient(name, jnp.ones_like(param))
    optimizer.step()
    optimizer.step()
    for name, param in model.named_parameters():
        assert param is not old[name]
        # Two steps with momentum 0.9 and a gradient of ones: 0.1 * (1 + 1.9).
        np.testing.assert_allclose(np.asarray(param), np.asarray(old[name]) - 0.29, rtol=1e-6)
    assert model[1].bias is dict(model.named_parameters())["1.bias"]


def test_read_only_numpy_parameter_is_written_back():
    layer = Linear(3, 2, seed=0)
    frozen = layer.weight.copy()
    frozen.setflags(write=False)
    layer.weight = frozen
    layer.grads["weight"] = np.ones((3, 2))
    SGD(layer, lr=0.25).step()
    assert layer.weight is not frozen
    np.testing.assert_array_equal(frozen, Linear(3, 2, seed=0).weight)  # untouched
    np.testing.assert_allclose(layer.weight, frozen - 0.25)
    assert layer.weight.dtype == frozen.dtype


def test_none_gradients_are_skipped(xp, device):
    layer = Linear(3, 2, xp=xp, device=device, seed=0)
    bias = to_numpy(layer.bias)
    layer.set_gradient("weight", xp.ones_like(layer.weight))
    optimizer = SGD(layer, lr=0.1, momentum=0.9)
    optimizer.step()
    np.testing.assert_array_equal(to_numpy(layer.bias), bias)
    state = optimizer.state_dict()["state"]
    assert state["bias"] == {"step": 0, "momentum_buffer": None}
    assert state["weight"]["step"] == 1


def test_optimizer_reads_the_model_at_each_step():
    layer = Linear(3, 2, seed=0)
    optimizer = SGD(layer, lr=1.0)
    layer.weight = np.zeros((3, 2))  # replaced after the optimizer was made
    layer.grads["weight"] = np.ones((3, 2))
    optimizer.step()
    np.testing.assert_array_equal(layer.weight, -np.ones((3, 2)))


def test_mixed_dtypes_keep_each_parameter_dtype(xp, device):
    available = xp.__array_namespace_info__().dtypes(device=device, kind="real floating")
    if "float64" not in available:
        pytest.skip(f"device {device!r} has no float64")
    f32, f64 = available["float32"], available["float64"]
    model = Sequential(
        Linear(3, 2, xp=xp, device=device, dtype=f32, seed=0),
        Linear(2, 2, xp=xp, device=device, dtype=f64, seed=1),
    )
    before = {name: to_numpy(p) for name, p in model.named_parameters()}
    for name, param in model.named_parameters():
        # float64 gradients for every parameter, float32 ones included.
        model.set_gradient(name, xp.ones(tuple(param.shape), dtype=f64, device=device))
    SGD(model, lr=0.1, momentum=0.5, weight_decay=0.1).step()
    for name, param in model.named_parameters():
        assert param.dtype == (f32 if name.startswith("0.") else f64), name
        expected = before[name] - 0.1 * (1 + 0.1 * before[name])
        assert_close(param, expected, xp=xp, device=device, dtype=param.dtype, err_msg=name)


def test_step_computes_nothing_on_dask():
    dask = pytest.importorskip("dask")
    da = pytest.importorskip("dask.array")
    model = Sequential(Linear(3, 2, xp=da, seed=0), Linear(2, 2, xp=da, seed=1))
    optimizer = SGD(model, lr=0.1, momentum=0.9, weight_decay=0.1, nesterov=True)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("step() computed a Dask array")

    for step in range(3):
        for name, param in model.named_parameters():
            model.set_gradient(name, da.ones_like(param) * step)
        with dask.config.set(scheduler=forbidden):
            optimizer.step()
    assert optimizer.state_dict()["state"]["0.weight"]["step"] == 3
    assert all(xpnn._compat.is_lazy(p) for p in model.parameters())


# -- errors ----------------------------------------------------------------


def test_bad_gradient_changes_nothing(xp, device):
    model = make_model("sequential", xp, device, None)
    before = {name: to_numpy(p) for name, p in model.named_parameters()}
    optimizer = SGD(model, lr=0.1, momentum=0.9)
    for name, param in model.named_parameters():
        model.set_gradient(name, xp.ones_like(param))
    # The last parameter's gradient is wrong; the first ones must not move.
    model.set_gradient("1.bias", xp.ones((4,), dtype=model[1].dtype, device=device))
    with pytest.raises(ValueError, match=r"gradient of '1.bias' must have the parameter's shape"):
        optimizer.step()
    for name, param in model.named_parameters():
        np.testing.assert_array_equal(to_numpy(param), before[name], err_msg=name)
    assert optimizer.state_dict()["state"]["0.weight"]["step"] == 0


def test_gradient_of_another_library_raises_type_error():
    layer = Linear(3, 2, seed=0)
    layer.grads["weight"] = torch.ones(3, 2, dtype=torch.float64)
    with pytest.raises(TypeError, match="arrays from different libraries"):
        SGD(layer, lr=0.1).step()


def test_gradient_dtype_errors(xp, device):
    layer = Linear(3, 2, xp=xp, device=device, seed=0)
    optimizer = SGD(layer, lr=0.1)
    layer.set_gradient("weight", xp.ones((3, 2), dtype=xp.int32, device=device))
    with pytest.raises(TypeError, match=r"gradient of 'weight' must have a real floating dtype"):
        optimizer.step()
    layer.set_gradient("weight", xp.ones((3, 2), dtype=xp.complex64, device=device))
    with pytest.raises(TypeError, match=r"to update a .*float.* parameter, got .*complex64"):
        optimizer.step()


def test_gradient_on_another_device_raises_value_error():
    import array_api_strict as strict

    layer = Linear(3, 2, xp=strict, device="device1", seed=0)
    layer.grads["weight"] = strict.ones((3, 2), device=strict.Device("device2"))
    with pytest.raises(ValueError, match=r"gradient of 'weight' is on device .*device2.*device1"):
        SGD(layer, lr=0.1).step()


def test_buffer_that_no_longer_fits_raises_value_error():
    layer = Linear(3, 2, seed=0)
    optimizer = SGD(layer, lr=0.1, momentum=0.9)
    layer.grads["weight"] = np.ones((3, 2))
    optimizer.step()
    layer.params["weight"] = np.zeros((4, 2))  # past set_parameter's shape check
    layer.grads["weight"] = np.ones((4, 2))
    with pytest.raises(
        ValueError, match=r"momentum_buffer of parameter 'weight' no longer fits.*\(4, 2\)"
    ):
        optimizer.step()


@pytest.mark.parametrize(
    ("settings", "error", "match"),
    [
        ({"lr": -0.1}, ValueError, r"lr must be >= 0, got -0.1"),
        ({"lr": float("nan")}, ValueError, r"lr must be >= 0, got nan"),
        ({"lr": "0.1"}, TypeError, r"lr must be a real number .*, got str '0.1'"),
        ({"lr": True}, TypeError, r"lr must be a real number .*, got bool True"),
        ({"lr": 0.1, "momentum": -1}, ValueError, r"momentum must be >= 0, got -1.0"),
        ({"lr": 0.1, "dampening": -0.5}, ValueError, r"dampening must be >= 0, got -0.5"),
        ({"lr": 0.1, "weight_decay": -1e-3}, ValueError, r"weight_decay must be >= 0"),
        ({"lr": 0.1, "nesterov": 1}, TypeError, r"nesterov must be a bool, got int 1"),
        (
            {"lr": 0.1, "nesterov": True},
            ValueError,
            r"nesterov=True requires momentum > 0 and dampening == 0, got momentum=0.0",
        ),
        (
            {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "nesterov": True},
            ValueError,
            r"requires momentum > 0 and dampening == 0, got momentum=0.9, dampening=0.1",
        ),
    ],
)
def test_constructor_checks_arguments(settings, error, match):
    with pytest.raises(error, match=match):
        SGD(Linear(2, 2, seed=0), **settings)


def test_lr_is_required_and_model_must_be_a_module():
    with pytest.raises(TypeError, match="lr"):
        SGD(Linear(2, 2, seed=0))
    with pytest.raises(TypeError, match=r"model must be an xpnn Module .*, got list"):
        SGD([np.ones(2)], lr=0.1)


def test_lr_can_be_changed_between_steps():
    layer = Linear(2, 2, seed=0)
    optimizer = SGD(layer, lr=0.1)
    optimizer.lr = 0.5
    assert optimizer.lr == 0.5
    assert optimizer.hyperparameters["lr"] == 0.5
    before = layer.weight.copy()
    layer.grads["weight"] = np.ones((2, 2))
    optimizer.step()
    np.testing.assert_allclose(layer.weight, before - 0.5)
    with pytest.raises(ValueError, match="lr must be >= 0, got -1.0"):
        optimizer.lr = -1


def test_zero_grad_clears_the_model_gradients():
    model = Sequential(Linear(2, 2, seed=0), Linear(2, 1, seed=1))
    for name, param in model.named_parameters():
        model.set_gradient(name, np.ones_like(param))
    SGD(model, lr=0.1).zero_grad()
    assert all(grad is None for _, grad in model.named_gradients())


def test_exports_and_repr():
    optimizers = {"SGD", "Adam", "AdamW", "RMSprop", "Adagrad"}
    assert optimizers | {"Optimizer"} <= set(xpnn.optim.__all__)  # schedules and clipping too
    assert all(issubclass(getattr(xpnn.optim, name), Optimizer) for name in optimizers)
    assert all(issubclass(cls, Optimizer) for cls in (SGD, Adam, AdamW))
    text = repr(SGD(Linear(2, 2, seed=0), lr=0.1, momentum=0.9))
    assert text == (
        "SGD(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False)"
    )

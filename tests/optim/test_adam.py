"""xpnn.optim.Adam and AdamW against torch.optim.Adam and AdamW."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from oracles import assert_matches_twin, feed_gradients, make_model, torch_twin
from xpnn import Linear
from xpnn._compat import is_lazy, is_writeable
from xpnn.layers.sequential import Sequential
from xpnn.optim import Adam, AdamW
from xpnn.testing import assert_close, to_numpy

STEPS = 5


def run_against_torch(ours: Any, theirs: Any, model: Any, twin: Any, xp: Any, device: Any) -> None:
    for step in range(1, STEPS + 1):
        feed_gradients(model, twin, xp, device, step)
        ours.step()
        theirs.step()
        assert_matches_twin(model, twin, xp, device, step)


CASES = {
    "adam": (Adam, torch.optim.Adam, {"lr": 1e-2}),
    "adam-weight-decay": (Adam, torch.optim.Adam, {"lr": 1e-2, "weight_decay": 0.1}),
    "adam-betas-eps": (Adam, torch.optim.Adam, {"lr": 5e-2, "betas": (0.5, 0.8), "eps": 1e-3}),
    "adamw": (AdamW, torch.optim.AdamW, {"lr": 1e-2}),
    "adamw-weight-decay": (AdamW, torch.optim.AdamW, {"lr": 1e-2, "weight_decay": 0.3}),
}


@pytest.mark.parametrize("kind", ["linear", "sequential"])
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_matches_torch_optim(xp, device, real_dtype, kind, case):
    ours_class, theirs_class, settings = case
    model = make_model(kind, xp, device, real_dtype)
    twin = torch_twin(model)
    ours, theirs = ours_class(model, **settings), theirs_class(twin.parameters(), **settings)
    run_against_torch(ours, theirs, model, twin, xp, device)
    for name, param in model.named_parameters():
        assert param.dtype == real_dtype, name


@pytest.mark.parametrize("classes", [(Adam, torch.optim.Adam), (AdamW, torch.optim.AdamW)])
def test_complex_parameters_match_torch(xp, device, dtype, classes):
    """Like torch, a complex parameter is a pair of real numbers per element."""
    model = make_model("linear", xp, device, dtype)
    twin = torch_twin(model)
    settings = {"lr": 1e-2, "weight_decay": 0.1}
    run_against_torch(
        classes[0](model, **settings),
        classes[1](twin.parameters(), **settings),
        model,
        twin,
        xp,
        device,
    )


def test_defaults_are_torch_defaults():
    layer = Linear(2, 2, seed=0)
    adam, adamw = Adam(layer), AdamW(layer)
    theirs = torch.optim.Adam([torch.zeros(1)]).defaults
    theirs_w = torch.optim.AdamW([torch.zeros(1)]).defaults
    for ours, reference in ((adam, theirs), (adamw, theirs_w)):
        for key, value in ours.hyperparameters.items():
            assert value == reference[key], key


def test_buffers_follow_the_parameter(xp, device, real_dtype):
    """Buffers live in the parameter's library, device and dtype; in place where allowed."""
    layer = Linear(3, 2, xp=xp, device=device, dtype=real_dtype, seed=0)
    weight = layer.weight
    optimizer = Adam(layer, lr=0.1)
    layer.set_gradient("weight", xp.ones_like(weight))
    optimizer.step()
    first = optimizer._state["weight"]["exp_avg"]
    layer.set_gradient("weight", xp.ones_like(weight))
    optimizer.step()
    second = optimizer._state["weight"]["exp_avg"]
    assert (second is first) == is_writeable(first)
    assert (layer.weight is weight) == is_writeable(weight)
    for name in ("exp_avg", "exp_avg_sq"):
        buffer = optimizer._state["weight"][name]
        assert_close(
            buffer,
            np.full((3, 2), 1 - 0.9**2 if name == "exp_avg" else 1 - 0.999**2),
            xp=xp,
            device=device,
            dtype=real_dtype,
        )
    # A gradient of ones moves every element by lr at every step.
    expected = to_numpy(Linear(3, 2, xp=xp, device=device, dtype=real_dtype, seed=0).weight) - 0.2
    assert_close(layer.weight, expected, xp=xp, device=device, dtype=real_dtype, rtol=1e-6)
    assert optimizer._state.get("bias") is None  # no gradient, no state


def test_jax_parameters_and_buffers_are_new_arrays():
    jnp = pytest.importorskip("jax.numpy")
    layer = Linear(3, 2, xp=jnp, seed=0)
    weight = layer.weight
    optimizer = AdamW(layer, lr=0.1)
    layer.grads["weight"] = jnp.ones((3, 2), dtype=weight.dtype)
    optimizer.step()
    assert layer.weight is not weight
    expected = np.asarray(weight) * (1 - 1e-3) - 0.1
    np.testing.assert_allclose(np.asarray(layer.weight), expected, rtol=1e-6)  # float32 without x64
    assert not is_writeable(optimizer._state["weight"]["exp_avg"])


def test_read_only_numpy_parameter_is_written_back():
    layer = Linear(3, 2, seed=0)
    frozen = layer.weight.copy()
    frozen.setflags(write=False)
    layer.weight = frozen
    layer.grads["weight"] = -np.ones((3, 2))
    Adam(layer, lr=0.5).step()
    assert layer.weight is not frozen
    np.testing.assert_allclose(layer.weight, frozen + 0.5, atol=1e-7)  # eps shortens the step


def test_step_computes_nothing_on_dask():
    dask = pytest.importorskip("dask")
    da = pytest.importorskip("dask.array")
    model = Sequential(Linear(3, 2, xp=da, seed=0), Linear(2, 2, xp=da, seed=1))
    optimizers = [Adam(model, weight_decay=0.1), AdamW(model)]

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("step() computed a Dask array")

    for optimizer in optimizers:
        for _ in range(2):
            for name, param in model.named_parameters():
                model.set_gradient(name, da.ones_like(param))
            with dask.config.set(scheduler=forbidden):
                optimizer.step()
    assert all(is_lazy(p) for p in model.parameters())


@pytest.mark.parametrize("cls", [Adam, AdamW])
@pytest.mark.parametrize(
    ("settings", "error", "match"),
    [
        ({"lr": -1e-3}, ValueError, r"lr must be >= 0, got -0.001"),
        ({"lr": None}, TypeError, r"lr must be a real number .*, got NoneType None"),
        ({"eps": -1e-8}, ValueError, r"eps must be >= 0, got -1e-08"),
        ({"weight_decay": -0.1}, ValueError, r"weight_decay must be >= 0, got -0.1"),
        ({"betas": (1.0, 0.999)}, ValueError, r"betas\[0\] must be in \[0, 1\), got 1.0"),
        ({"betas": (0.9, -0.1)}, ValueError, r"betas\[1\] must be in \[0, 1\), got -0.1"),
        ({"betas": (0.9, "0.9")}, TypeError, r"betas\[1\] must be a real number"),
        ({"betas": 0.9}, TypeError, r"betas must be a pair of numbers .*, got float 0.9"),
        ({"betas": (0.9, 0.99, 0.999)}, TypeError, r"betas must be a pair of numbers"),
    ],
)
def test_constructor_checks_arguments(cls, settings, error, match):
    with pytest.raises(error, match=match):
        cls(Linear(2, 2, seed=0), **settings)


def test_betas_may_be_a_list_and_are_kept_as_a_tuple():
    optimizer = Adam(Linear(2, 2, seed=0), betas=[0.8, 0.99])
    assert optimizer.hyperparameters["betas"] == (0.8, 0.99)
    assert repr(optimizer) == (
        "Adam(lr=0.001, betas=(0.8, 0.99), eps=1e-08, weight_decay=0.0, amsgrad=False, "
        "maximize=False)"
    )

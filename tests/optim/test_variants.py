"""Optimizer options and the newer optimizers against ``torch.optim``, step by step.

Each case runs 5 steps on the session's backends and devices, against a
float64 torch twin: after every step the parameters and every buffer of the
optimizer state must match torch's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from oracles import make_model
from xpnn import Linear
from xpnn.optim import SGD, Adagrad, Adam, AdamW, RMSprop
from xpnn.testing import assert_close, random_array, to_numpy

STEPS = 5

CASES = {
    "sgd-maximize": (SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "maximize": True}),
    "adam-amsgrad": (Adam, torch.optim.Adam, {"lr": 5e-2, "amsgrad": True, "weight_decay": 0.1}),
    "adam-maximize": (Adam, torch.optim.Adam, {"lr": 1e-2, "maximize": True, "amsgrad": True}),
    "adamw-amsgrad-maximize": (
        AdamW,
        torch.optim.AdamW,
        {"lr": 5e-2, "amsgrad": True, "maximize": True, "weight_decay": 0.3},
    ),
    "rmsprop": (RMSprop, torch.optim.RMSprop, {"lr": 1e-2}),
    "rmsprop-all": (
        RMSprop,
        torch.optim.RMSprop,
        {
            "lr": 1e-2,
            "alpha": 0.9,
            "eps": 1e-6,
            "weight_decay": 0.1,
            "momentum": 0.5,
            "centered": True,
            "maximize": True,
        },
    ),
    "adagrad": (Adagrad, torch.optim.Adagrad, {"lr": 0.1}),
    "adagrad-all": (
        Adagrad,
        torch.optim.Adagrad,
        {
            "lr": 0.1,
            "lr_decay": 0.2,
            "weight_decay": 0.1,
            "initial_accumulator_value": 0.5,
            "eps": 1e-6,
            "maximize": True,
        },
    ),
}


def float64_twin(model: Any) -> dict[str, torch.Tensor]:
    """The model's parameters as float64 torch leaves, by name, in xpnn's layout."""
    return {
        name: torch.tensor(to_numpy(param).astype(np.float64), requires_grad=True)
        for name, param in model.named_parameters()
    }


def check_step(model: Any, ours: Any, twin: dict[str, torch.Tensor], theirs: Any, **where: Any):
    state = ours.state_dict()["state"]
    step = where.pop("step")
    for name, param in model.named_parameters():
        reference = twin[name]
        assert_close(param, reference.detach().numpy(), **where, err_msg=f"{name}, step {step}")
        torch_state = theirs.state[reference]
        assert state[name]["step"] == step
        for buffer in ours.buffer_names:
            value = state[name][buffer]
            if buffer not in torch_state:
                assert value is None, f"{name}.{buffer} exists in xpnn, not in torch"
                continue
            assert_close(
                value,
                torch_state[buffer].numpy(),
                **where,
                err_msg=f"{name}.{buffer}, step {step}",
            )


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_matches_torch_optim(xp, device, real_dtype, case):
    ours_class, theirs_class, settings = case
    model = make_model("sequential", xp, device, real_dtype)
    twin = float64_twin(model)
    ours = ours_class(model, **settings)
    theirs = theirs_class(list(twin.values()), foreach=False, **settings)
    for step in range(1, STEPS + 1):
        for index, (name, param) in enumerate(model.named_parameters()):
            grad = random_array(
                xp, tuple(param.shape), dtype=real_dtype, device=device, seed=100 * step + index
            )
            model.set_gradient(name, grad)
            twin[name].grad = torch.from_numpy(to_numpy(grad).astype(np.float64))
        ours.step()
        theirs.step()
        check_step(model, ours, twin, theirs, xp=xp, device=device, dtype=real_dtype, step=step)


@pytest.mark.parametrize(
    "classes",
    [
        (Adam, torch.optim.Adam, {"amsgrad": True, "maximize": True}),
        (RMSprop, torch.optim.RMSprop, {"centered": True, "momentum": 0.5}),
        (Adagrad, torch.optim.Adagrad, {"initial_accumulator_value": 0.5}),
    ],
    ids=["adam-amsgrad", "rmsprop", "adagrad"],
)
def test_complex_parameter_matches_torch(classes):
    """Like torch, a complex parameter is a pair of real numbers per element."""
    ours_class, theirs_class, settings = classes
    layer = Linear(3, 2, dtype=np.complex128, seed=0)
    twin = {name: torch.tensor(param, requires_grad=True) for name, param in layer.params.items()}
    ours = ours_class(layer, lr=1e-2, weight_decay=0.1, **settings)
    theirs = theirs_class(list(twin.values()), lr=1e-2, weight_decay=0.1, foreach=False, **settings)
    rng = np.random.default_rng(0)
    for step in range(1, STEPS + 1):
        for name, param in layer.params.items():
            grad = rng.standard_normal(param.shape) + 1j * rng.standard_normal(param.shape)
            layer.set_gradient(name, grad)
            twin[name].grad = torch.from_numpy(grad)
        ours.step()
        theirs.step()
        check_step(layer, ours, twin, theirs, step=step)


def test_amsgrad_keeps_the_largest_second_moment(xp, device):
    """A large gradient, then small ones: the denominator keeps the large moment."""
    layer = Linear(2, 1, xp=xp, device=device, seed=0)
    optimizer = Adam(layer, lr=0.1, amsgrad=True)
    for value in (10.0, 0.1, 0.1):
        layer.set_gradient("weight", xp.full((2, 1), value, device=device))
        optimizer.step()
    state = optimizer.state_dict()["state"]["weight"]
    assert np.all(to_numpy(state["max_exp_avg_sq"]) > to_numpy(state["exp_avg_sq"]))


@pytest.mark.parametrize(
    ("cls", "settings", "added"),
    [
        (SGD, {"lr": 0.1, "momentum": 0.9}, ("maximize",)),
        (Adam, {}, ("amsgrad", "maximize")),
        (AdamW, {}, ("amsgrad", "maximize")),
    ],
)
def test_state_dict_from_before_the_options_loads(cls, settings, added):
    """A state dict saved before ``amsgrad``/``maximize`` existed loads with them off."""
    layer = Linear(2, 1, seed=0)
    optimizer = cls(layer, **settings)
    layer.set_gradient("weight", np.ones((2, 1)))
    optimizer.step()
    saved = optimizer.state_dict()
    for name in added:
        del saved["hyperparameters"][name]
    restored = cls(layer, **{**settings, **dict.fromkeys(added, True)})
    restored.load_state_dict(saved)
    assert all(restored.hyperparameters[name] is False for name in added)


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
@pytest.mark.parametrize("name", ["amsgrad", "maximize"])
def test_options_must_be_bools(cls, name):
    if cls is SGD and name == "amsgrad":
        pytest.skip("SGD has no amsgrad")
    with pytest.raises(TypeError, match=f"{name} must be a bool, got int 1"):
        cls(Linear(2, 1, seed=0), lr=0.1, **{name: 1})


def test_amsgrad_load_needs_its_buffer():
    layer = Linear(2, 1, seed=0)
    optimizer = Adam(layer)
    layer.set_gradient("weight", np.ones((2, 1)))
    optimizer.step()
    saved = optimizer.state_dict()
    saved["hyperparameters"]["amsgrad"] = True
    with pytest.raises(ValueError, match=r"\['max_exp_avg_sq'\] must be an array at step 1"):
        Adam(layer).load_state_dict(saved)

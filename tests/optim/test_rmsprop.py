"""xpnn.optim.RMSprop: defaults, state dicts and hyper-parameter checks.

Its updates are compared with torch.optim.RMSprop in test_variants.py.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from xpnn import Linear, Sequential
from xpnn._compat import is_lazy
from xpnn.optim import RMSprop
from xpnn.testing import random_array, to_numpy


def make_model(xp: Any, device: Any) -> Sequential:
    same = {"xp": xp, "device": device}
    return Sequential(Linear(3, 4, seed=0, **same), Linear(4, 2, seed=1, **same))


def feed(model: Any, xp: Any, device: Any, step: int) -> None:
    for index, (name, param) in enumerate(model.named_parameters()):
        shape = tuple(param.shape)
        grad = random_array(xp, shape, dtype=param.dtype, device=device, seed=10 * step + index)
        model.set_gradient(name, grad)


def test_defaults_are_torch_defaults():
    ours = RMSprop(Linear(2, 2, seed=0)).hyperparameters
    theirs = torch.optim.RMSprop([torch.zeros(1)]).defaults
    for key, value in ours.items():
        assert value == theirs[key], key


@pytest.mark.parametrize(
    "settings", [{}, {"momentum": 0.9, "centered": True}], ids=["plain", "momentum-centered"]
)
def test_state_dict_round_trip(xp, device, settings):
    model, other = make_model(xp, device), make_model(xp, device)
    ours = RMSprop(model, lr=0.01, weight_decay=0.1, **settings)
    for step in (1, 2):
        feed(model, xp, device, step)
        ours.step()
    saved = ours.state_dict()
    entry = saved["state"]["0.weight"]
    assert entry["step"] == 2
    assert (entry["momentum_buffer"] is None) == ("momentum" not in settings)
    assert (entry["grad_avg"] is None) == ("centered" not in settings)
    for name, param in model.named_parameters():
        other.set_parameter(name, xp.asarray(param, copy=True, device=device))
    restored = RMSprop(other, lr=1.0)
    restored.load_state_dict(saved)
    assert restored.hyperparameters == ours.hyperparameters
    for step in (3, 4):
        feed(model, xp, device, step)
        feed(other, xp, device, step)
        ours.step()
        restored.step()
    for (name, a), (_, b) in zip(model.named_parameters(), other.named_parameters(), strict=True):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b), err_msg=name)


def test_load_refuses_a_buffer_the_settings_do_not_keep():
    model = Linear(2, 2, seed=0)
    optimizer = RMSprop(model, momentum=0.9)
    model.set_gradient("weight", np.ones((2, 2)))
    optimizer.step()
    saved = optimizer.state_dict()
    saved["hyperparameters"]["momentum"] = 0.0
    restored = RMSprop(model, lr=0.5)
    with pytest.raises(ValueError, match=r"\['momentum_buffer'\] must be None at step 1"):
        restored.load_state_dict(saved)
    assert restored.lr == 0.5  # nothing changed


def test_step_computes_nothing_on_dask():
    dask = pytest.importorskip("dask")
    da = pytest.importorskip("dask.array")
    model = Linear(3, 2, xp=da, seed=0)
    optimizer = RMSprop(model, momentum=0.5, centered=True, weight_decay=0.1, maximize=True)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("step() computed a Dask array")

    for _ in range(2):
        for name, param in model.named_parameters():
            model.set_gradient(name, da.ones_like(param))
        with dask.config.set(scheduler=forbidden):
            optimizer.step()
    assert all(is_lazy(p) for p in model.parameters())


@pytest.mark.parametrize(
    ("settings", "error", "match"),
    [
        ({"lr": -0.1}, ValueError, r"lr must be >= 0, got -0.1"),
        ({"alpha": -0.5}, ValueError, r"alpha must be >= 0, got -0.5"),
        ({"alpha": math.inf}, ValueError, r"alpha must be a finite number >= 0, got inf"),
        ({"eps": math.nan}, ValueError, r"eps must be >= 0, got nan"),
        ({"weight_decay": -1}, ValueError, r"weight_decay must be >= 0, got -1.0"),
        ({"momentum": "0.9"}, TypeError, r"momentum must be a real number .*, got str '0.9'"),
        ({"centered": 1}, TypeError, r"centered must be a bool, got int 1"),
        ({"maximize": None}, TypeError, r"maximize must be a bool, got NoneType None"),
    ],
)
def test_constructor_checks_arguments(settings, error, match):
    with pytest.raises(error, match=match):
        RMSprop(Linear(2, 2, seed=0), **settings)

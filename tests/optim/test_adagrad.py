"""xpnn.optim.Adagrad: defaults, state dicts and hyper-parameter checks.

Its updates are compared with torch.optim.Adagrad in test_variants.py.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from xpnn import Linear, Sequential
from xpnn._compat import is_lazy
from xpnn.optim import Adagrad
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
    ours = Adagrad(Linear(2, 2, seed=0)).hyperparameters
    theirs = torch.optim.Adagrad([torch.zeros(1)]).defaults
    for key, value in ours.items():
        assert value == theirs[key], key


def test_state_dict_round_trip(xp, device):
    model, other = make_model(xp, device), make_model(xp, device)
    ours = Adagrad(model, lr=0.1, lr_decay=0.1, initial_accumulator_value=0.2)
    for step in (1, 2):
        feed(model, xp, device, step)
        ours.step()
    saved = ours.state_dict()
    assert list(saved["state"]["0.weight"]) == ["step", "sum"]
    assert saved["state"]["0.weight"]["step"] == 2
    for name, param in model.named_parameters():
        other.set_parameter(name, xp.asarray(param, copy=True, device=device))
    restored = Adagrad(other)
    restored.load_state_dict(saved)
    assert restored.hyperparameters == ours.hyperparameters
    for step in (3, 4):  # lr_decay reads the restored step count
        feed(model, xp, device, step)
        feed(other, xp, device, step)
        ours.step()
        restored.step()
    for (name, a), (_, b) in zip(model.named_parameters(), other.named_parameters(), strict=True):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b), err_msg=name)


def test_first_step_starts_from_the_initial_accumulator():
    layer = Linear(2, 1, seed=0)
    weight = np.array(layer.weight)
    optimizer = Adagrad(layer, lr=0.5, initial_accumulator_value=3.0, eps=0.0)
    layer.set_gradient("weight", np.ones((2, 1)))
    optimizer.step()
    np.testing.assert_allclose(optimizer.state_dict()["state"]["weight"]["sum"], 4.0)
    np.testing.assert_allclose(layer.weight, weight - 0.5 / 2.0)


def test_step_computes_nothing_on_dask():
    dask = pytest.importorskip("dask")
    da = pytest.importorskip("dask.array")
    model = Linear(3, 2, xp=da, seed=0)
    optimizer = Adagrad(model, lr_decay=0.1, weight_decay=0.1, initial_accumulator_value=0.1)

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
        ({"lr_decay": -1e-3}, ValueError, r"lr_decay must be >= 0, got -0.001"),
        ({"weight_decay": math.inf}, ValueError, r"weight_decay must be a finite number >= 0"),
        (
            {"initial_accumulator_value": -1.0},
            ValueError,
            r"initial_accumulator_value must be >= 0, got -1.0",
        ),
        ({"eps": math.nan}, ValueError, r"eps must be >= 0, got nan"),
        ({"lr_decay": True}, TypeError, r"lr_decay must be a real number .*, got bool True"),
        ({"maximize": "yes"}, TypeError, r"maximize must be a bool, got str 'yes'"),
    ],
)
def test_constructor_checks_arguments(settings, error, match):
    with pytest.raises(error, match=match):
        Adagrad(Linear(2, 2, seed=0), **settings)

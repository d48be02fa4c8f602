"""Hyper-parameters that are not finite are refused, however they come in."""

from __future__ import annotations

import math
from typing import Any

import pytest

from xpnn import Linear
from xpnn.optim import SGD, Adam, AdamW

INF = math.inf

# (optimizer class, the settings it is built with, the name of one setting,
# a non-finite value for it, what the message says about it)
CASES = [
    (SGD, {"lr": 0.1}, "lr", INF, "lr must be a finite number >= 0, got inf"),
    (SGD, {"lr": 0.1}, "momentum", INF, "momentum must be a finite number >= 0, got inf"),
    (SGD, {"lr": 0.1}, "dampening", INF, "dampening must be a finite number >= 0, got inf"),
    (SGD, {"lr": 0.1}, "weight_decay", INF, "weight_decay must be a finite number"),
    (SGD, {"lr": 0.1}, "lr", -INF, r"lr must be >= 0, got -inf"),
    (SGD, {"lr": 0.1}, "momentum", math.nan, r"momentum must be >= 0, got nan"),
    (Adam, {}, "lr", INF, "lr must be a finite number >= 0, got inf"),
    (Adam, {}, "eps", INF, "eps must be a finite number >= 0, got inf"),
    (Adam, {}, "weight_decay", INF, "weight_decay must be a finite number >= 0, got inf"),
    (Adam, {}, "betas", (INF, 0.999), r"betas\[0\] must be in \[0, 1\), got inf"),
    (Adam, {}, "betas", (0.9, INF), r"betas\[1\] must be in \[0, 1\), got inf"),
    (Adam, {}, "eps", math.nan, r"eps must be >= 0, got nan"),
    (AdamW, {}, "lr", INF, "lr must be a finite number >= 0, got inf"),
    (AdamW, {}, "eps", INF, "eps must be a finite number >= 0, got inf"),
    (AdamW, {}, "weight_decay", INF, "weight_decay must be a finite number >= 0, got inf"),
    (AdamW, {}, "betas", (0.9, -INF), r"betas\[1\] must be in \[0, 1\), got -inf"),
]
IDS = [f"{cls.__name__}-{name}={value}" for cls, _, name, value, _ in CASES]


@pytest.mark.parametrize(("cls", "base", "name", "value", "message"), CASES, ids=IDS)
def test_constructor_refuses(cls: Any, base: dict[str, Any], name: str, value: Any, message: str):
    with pytest.raises(ValueError, match=message):
        cls(Linear(2, 1, seed=0), **{**base, name: value})


@pytest.mark.parametrize(("cls", "base", "name", "value", "message"), CASES, ids=IDS)
def test_load_state_dict_refuses_and_changes_nothing(
    cls: Any, base: dict[str, Any], name: str, value: Any, message: str
):
    optimizer = cls(Linear(2, 1, seed=0), **base)
    before = optimizer.hyperparameters
    state = optimizer.state_dict()
    state["hyperparameters"][name] = value
    with pytest.raises(ValueError, match=r"state_dict\['hyperparameters'\]: " + message):
        optimizer.load_state_dict(state)
    assert optimizer.hyperparameters == before


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
@pytest.mark.parametrize("value", [INF, -INF, math.nan])
def test_lr_setter_refuses(cls: Any, value: float):
    optimizer = cls(Linear(2, 1, seed=0), lr=0.01)
    with pytest.raises(ValueError, match="lr must be"):
        optimizer.lr = value
    assert optimizer.lr == 0.01


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_largest_finite_value_is_accepted(cls: Any):
    # The bound is finiteness, not a size: the largest float is still a number.
    optimizer = cls(Linear(2, 1, seed=0), lr=0.01)
    optimizer.lr = 1.7976931348623157e308
    assert optimizer.lr == 1.7976931348623157e308

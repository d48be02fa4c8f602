"""xpnn.optim.schedules against torch.optim.lr_scheduler, step by step."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from xpnn import Linear
from xpnn.optim import SGD, Adam
from xpnn.optim import schedules as ours_module

STEPS = 12
LR = 0.1

# name -> (kwargs, builder for xpnn or torch given (module, optimizer))
CASES: dict[str, Callable[[Any, Any], Any]] = {
    "step": lambda m, o: m.StepLR(o, step_size=3, gamma=0.5),
    "multistep": lambda m, o: m.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3),
    "exponential": lambda m, o: m.ExponentialLR(o, gamma=0.9),
    "cosine": lambda m, o: m.CosineAnnealingLR(o, T_max=5, eta_min=0.01),
    "linear": lambda m, o: m.LinearLR(o, start_factor=0.25, end_factor=0.9, total_iters=4),
    "linear_defaults": lambda m, o: m.LinearLR(o),
    "onecycle": lambda m, o: _one_cycle(m, o, anneal_strategy="cos", three_phase=False),
    "onecycle_linear_3": lambda m, o: _one_cycle(m, o, anneal_strategy="linear", three_phase=True),
    "sequential": lambda m, o: m.SequentialLR(
        o,
        [m.LinearLR(o, start_factor=0.1, total_iters=3), m.CosineAnnealingLR(o, T_max=6)],
        milestones=[4],
    ),
    "sequential_3": lambda m, o: m.SequentialLR(
        o,
        [m.ExponentialLR(o, gamma=0.8), m.StepLR(o, 2), m.MultiStepLR(o, [1, 2])],
        milestones=[3, 7],
    ),
}


def _one_cycle(module: Any, optimizer: Any, **options: Any) -> Any:
    if module is torch.optim.lr_scheduler:
        options["cycle_momentum"] = False
    return module.OneCycleLR(optimizer, max_lr=1.0, total_steps=STEPS + 1, **options)


def _torch_optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))], lr=LR)


def _torch_lrs(case: str) -> list[float]:
    optimizer = _torch_optimizer()
    scheduler = CASES[case](torch.optim.lr_scheduler, optimizer)
    lrs = [optimizer.param_groups[0]["lr"]]
    for _ in range(STEPS):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


@pytest.mark.parametrize("case", CASES)
def test_matches_torch_and_resumes(case):
    expected = _torch_lrs(case)
    optimizer = SGD(Linear(2, 1, seed=0), lr=LR)
    scheduler = CASES[case](ours_module, optimizer)
    lrs = [optimizer.lr]
    assert scheduler.get_last_lr() == [optimizer.lr]
    saved = None
    for step in range(STEPS):
        scheduler.step()
        lrs.append(optimizer.lr)
        assert scheduler.get_last_lr() == [optimizer.lr]
        if step == STEPS // 2:
            saved = json.loads(json.dumps(scheduler.state_dict()))  # plain data
            saved_lr = optimizer.lr
    np.testing.assert_allclose(lrs, expected, rtol=1e-12, atol=1e-15)
    # A new optimizer and schedule, restored mid-way, continue identically.
    resumed = Adam(Linear(2, 1, seed=0), lr=LR)
    restored = CASES[case](ours_module, resumed)
    restored.load_state_dict(saved)
    assert resumed.lr == saved_lr
    tail = [restored.step() or resumed.lr for _ in range(STEPS - STEPS // 2 - 1)]
    assert tail == lrs[STEPS // 2 + 2 :]


def test_onecycle_refuses_steps_past_total():
    scheduler = ours_module.OneCycleLR(SGD(Linear(2, 1), lr=LR), max_lr=1.0, total_steps=2)
    scheduler.step()
    scheduler.step()
    with pytest.raises(ValueError, match="total_steps=2"):
        scheduler.step()


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda o: ours_module.StepLR(o, step_size=0), ValueError, "step_size must be an int >= 1"),
        (lambda o: ours_module.StepLR(o, step_size=1.5), TypeError, "step_size must be an int"),
        (lambda o: ours_module.ExponentialLR(o, gamma="x"), TypeError, "gamma must be a real"),
        (
            lambda o: ours_module.MultiStepLR(o, milestones=3),
            TypeError,
            "milestones must be a list",
        ),
        (lambda o: ours_module.LinearLR(o, start_factor=0), ValueError, "start_factor"),
        (lambda o: ours_module.CosineAnnealingLR(o, T_max=2, eta_min=-1), ValueError, "eta_min"),
        (lambda o: ours_module.OneCycleLR(o, 1.0, 5, anneal_strategy="x"), ValueError, "'cos'"),
        (lambda o: ours_module.SequentialLR(o, [], []), ValueError, "at least one"),
        (lambda o: ours_module.StepLR("sgd", 2), TypeError, "xpnn optimizer"),
        (
            lambda o: ours_module.SequentialLR(o, [ours_module.StepLR(o, 2)], [3]),
            ValueError,
            "one milestone fewer",
        ),
    ],
)
def test_arguments_are_checked(build, error, match):
    with pytest.raises(error, match=match):
        build(SGD(Linear(2, 1), lr=LR))


def test_load_state_dict_refuses_another_schedule():
    optimizer = SGD(Linear(2, 1), lr=LR)
    with pytest.raises(ValueError, match="expected 'StepLR'"):
        ours_module.StepLR(optimizer, 2).load_state_dict(
            ours_module.ExponentialLR(optimizer, 0.5).state_dict()
        )

"""Schedules in checkpoints: xpnn.save(scheduler=) and xpnn.checkpoint.load_scheduler.

A schedule saved after 3 steps and restored into a new model, optimizer and
schedule gives, over 3 more steps, the rates of 6 uninterrupted steps, and
those of torch.optim.lr_scheduler. Damaged or mismatched records are refused
in one line that names the file, before the schedule or the optimizer change.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn import CheckpointError, Linear
from xpnn.checkpoint import load_optimizer, load_scheduler
from xpnn.optim import SGD, Adam
from xpnn.optim import schedules as ours

safetensors = pytest.importorskip("safetensors")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

LR, HALF = 0.1, 3

CASES: dict[str, Callable[[Any, Any], Any]] = {
    "cosine": lambda m, o: m.CosineAnnealingLR(o, T_max=4, eta_min=0.01),
    "onecycle": lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=2 * HALF + 1, **_one(m)),
    "step": lambda m, o: m.StepLR(o, step_size=2, gamma=0.5),
    "multistep": lambda m, o: m.MultiStepLR(o, milestones=[2, 4, 4], gamma=0.3),
    "sequential": lambda m, o: m.SequentialLR(
        o,
        [m.LinearLR(o, start_factor=0.1, total_iters=2), m.CosineAnnealingLR(o, T_max=5)],
        milestones=[2],
    ),
}


def _one(module: Any) -> dict[str, Any]:
    return {"cycle_momentum": False} if module is not ours else {}


def _model(xp, device):
    return Linear(3, 2, seed=0, xp=xp, device=device)


def _train_step(model, optimizer, xp, device):
    """One real update, so the optimizer has state to save with the schedule."""
    x = xp.ones((4, 3), device=device, dtype=model.params["weight"].dtype)
    y, backward = model.forward(x)
    optimizer.zero_grad()
    backward(xp.ones_like(y))
    optimizer.step()


@pytest.mark.parametrize("case", CASES)
def test_saved_and_restored_schedule_continues_as_the_whole_run(case, xp, device, tmp_path):
    path = tmp_path / "run.safetensors"
    whole_model = _model(xp, device)
    whole_optimizer = Adam(whole_model, lr=LR)
    whole = CASES[case](ours, whole_optimizer)
    expected = [whole_optimizer.lr]
    for _ in range(2 * HALF):
        _train_step(whole_model, whole_optimizer, xp, device)
        whole.step()
        expected.append(whole_optimizer.lr)

    model = _model(xp, device)
    optimizer = Adam(model, lr=LR)
    scheduler = CASES[case](ours, optimizer)
    lrs = [optimizer.lr]
    for _ in range(HALF):
        _train_step(model, optimizer, xp, device)
        scheduler.step()
        lrs.append(optimizer.lr)
    xpnn.save(model, path, optimizer=optimizer, scheduler=scheduler)

    # New objects, built with other settings: the checkpoint's win.
    restored_model = xpnn.load(path, xp=xp, device=device)
    restored_optimizer = Adam(restored_model, lr=5.0)
    load_optimizer(path, restored_optimizer)
    restored = CASES[case](ours, restored_optimizer)
    load_scheduler(path, restored)
    assert restored_optimizer.lr == lrs[-1]
    assert restored.state_dict() == scheduler.state_dict()
    for _ in range(HALF):
        _train_step(restored_model, restored_optimizer, xp, device)
        restored.step()
        lrs.append(restored_optimizer.lr)
    assert lrs == expected
    assert restored.state_dict() == whole.state_dict()


@pytest.mark.parametrize("case", CASES)
def test_restored_schedule_matches_torch(case, tmp_path):
    torch = pytest.importorskip("torch")
    parameter = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    torch_optimizer = torch.optim.SGD([parameter], lr=LR)
    torch_scheduler = CASES[case](torch.optim.lr_scheduler, torch_optimizer)
    theirs = [torch_optimizer.param_groups[0]["lr"]]
    for _ in range(2 * HALF):
        torch_optimizer.step()
        torch_scheduler.step()
        theirs.append(torch_optimizer.param_groups[0]["lr"])

    path = tmp_path / "run.safetensors"
    model = Linear(2, 1, seed=0)
    optimizer = SGD(model, lr=LR)
    scheduler = CASES[case](ours, optimizer)
    lrs = [optimizer.lr]
    for _ in range(HALF):
        scheduler.step()
        lrs.append(optimizer.lr)
    xpnn.save(model, path, optimizer=optimizer, scheduler=scheduler)
    restored_optimizer = SGD(xpnn.load(path), lr=LR)
    load_optimizer(path, restored_optimizer)
    restored = CASES[case](ours, restored_optimizer)
    load_scheduler(path, restored)
    for _ in range(HALF):
        restored.step()
        lrs.append(restored_optimizer.lr)
    np.testing.assert_allclose(lrs, theirs, rtol=1e-12, atol=1e-15)


def _saved(tmp_path, case="sequential", steps=2):
    path = tmp_path / "run.safetensors"
    model = Linear(2, 1, seed=0)
    optimizer = SGD(model, lr=LR)
    scheduler = CASES[case](ours, optimizer)
    for _ in range(steps):
        scheduler.step()
    xpnn.save(model, path, optimizer=optimizer, scheduler=scheduler)
    return path


def _metadata(path):
    with safetensors.safe_open(str(path), framework="numpy") as file:
        return file.metadata()


def _rewrite(path, change):
    """Write the file again with its 'scheduler' record changed by ``change(record)``."""
    metadata = _metadata(path)
    tensors = safetensors_numpy.load_file(str(path))
    record = json.loads(metadata["scheduler"])
    change(record)
    metadata["scheduler"] = json.dumps(record)
    safetensors_numpy.save_file(tensors, str(path), metadata=metadata)


def test_the_record_is_the_state_dict_as_json(tmp_path):
    path = _saved(tmp_path)
    record = json.loads(_metadata(path)["scheduler"])
    assert record["scheduler"] == "SequentialLR"
    assert [inner["scheduler"] for inner in record["schedulers"]] == [
        "LinearLR",
        "CosineAnnealingLR",
    ]
    assert (record["last_epoch"], record["milestones"]) == (2, [2])
    assert "scheduler" not in _metadata(_plain_save(tmp_path))


def _plain_save(tmp_path):
    path = tmp_path / "plain.safetensors"
    model = Linear(2, 1, seed=0)
    xpnn.save(model, path, optimizer=SGD(model, lr=LR))
    return path


def _fresh():
    optimizer = SGD(Linear(2, 1, seed=0), lr=0.5)
    return optimizer, CASES["sequential"](ours, optimizer)


def _snapshot(optimizer, scheduler):
    return (
        optimizer.lr,
        json.dumps(scheduler.state_dict()),
        [s.last_epoch for s in scheduler.schedulers],
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda r: r.update(scheduler="StepLR"),
            "holds the state of schedule class 'StepLR' in metadata 'scheduler', not "
            "'SequentialLR'; make an xpnn.optim.StepLR",
        ),
        (
            lambda r: r.pop("last_lr"),
            "has metadata 'scheduler', which has missing keys 'last_lr'; expected",
        ),
        (
            lambda r: r.update(extra=1),
            "has metadata 'scheduler', which has unknown keys 'extra'",
        ),
        (
            lambda r: r["schedulers"][1].update(scheduler="StepLR"),
            "holds the state of schedule class 'StepLR' in metadata "
            "'scheduler'['schedulers'][1], not 'CosineAnnealingLR'",
        ),
        (
            lambda r: r["schedulers"][0].pop("total_iters"),
            "has metadata 'scheduler'['schedulers'][0], which has missing keys 'total_iters'",
        ),
        (
            lambda r: r["schedulers"].pop(),
            "has metadata 'scheduler'['schedulers'] of 1 schedules; the SequentialLR it is "
            "loaded into runs 2 (LinearLR, CosineAnnealingLR)",
        ),
        (
            lambda r: r.update(schedulers="x"),
            "has metadata 'scheduler'['schedulers'] of str schedules",
        ),
        (
            lambda r: r["schedulers"][1].update(last_epoch=-5),
            "holds schedule state that does not fit SequentialLR: last_epoch must be an int "
            ">= -1, got -5",
        ),
        (
            lambda r: r["schedulers"][1].update(T_max=0.5),
            "holds schedule state that does not fit SequentialLR: T_max must be an int",
        ),
        (
            lambda r: r.update(last_lr=-1.0),
            "holds schedule state that does not fit SequentialLR: last_lr must be a finite",
        ),
    ],
)
def test_a_record_that_does_not_fit_is_refused_before_anything_changes(tmp_path, change, message):
    path = _saved(tmp_path)
    _rewrite(path, change)
    optimizer, scheduler = _fresh()
    before = _snapshot(optimizer, scheduler)
    with pytest.raises(CheckpointError) as error:
        load_scheduler(path, scheduler)
    (line,) = str(error.value).splitlines()
    assert line.startswith(f"checkpoint {str(path)!r} ")
    assert message in line
    assert _snapshot(optimizer, scheduler) == before
    # And it still works with the intact record.
    intact = tmp_path / "intact"
    intact.mkdir()
    load_scheduler(_saved(intact, steps=3), scheduler)
    assert scheduler.last_epoch == 3


def test_a_file_without_a_schedule_or_of_another_class_is_refused(tmp_path):
    optimizer, scheduler = _fresh()
    with pytest.raises(CheckpointError, match="holds no learning-rate schedule; save it with"):
        load_scheduler(_plain_save(tmp_path), scheduler)
    path = _saved(tmp_path, case="cosine")
    with pytest.raises(
        CheckpointError, match="holds the state of schedule class 'CosineAnnealingLR'"
    ):
        load_scheduler(path, scheduler)
    with pytest.raises(TypeError, match="scheduler must be an xpnn.optim learning-rate schedule"):
        load_scheduler(path, optimizer)


def test_a_record_that_is_not_json_is_refused(tmp_path):
    path = _saved(tmp_path)
    metadata = _metadata(path)
    metadata["scheduler"] = "{not json"
    safetensors_numpy.save_file(
        safetensors_numpy.load_file(str(path)), str(path), metadata=metadata
    )
    _, scheduler = _fresh()
    with pytest.raises(CheckpointError, match="has metadata 'scheduler' that is not valid JSON"):
        load_scheduler(path, scheduler)
    # As with a damaged optimizer record, the whole file is refused.
    with pytest.raises(CheckpointError, match="has metadata 'scheduler' that is not valid JSON"):
        xpnn.load(path)


def test_save_refuses_a_schedule_that_does_not_go_with_the_optimizer(tmp_path):
    path = tmp_path / "run.safetensors"
    model = Linear(2, 1, seed=0)
    optimizer = SGD(model, lr=LR)
    other = SGD(Linear(2, 1, seed=0), lr=LR)
    scheduler = ours.StepLR(other, 2)
    with pytest.raises(ValueError, match="scheduler= needs optimizer= too"):
        xpnn.save(model, path, scheduler=ours.StepLR(optimizer, 2))
    with pytest.raises(ValueError, match="scheduler must be a schedule of this optimizer"):
        xpnn.save(model, path, optimizer=optimizer, scheduler=scheduler)
    with pytest.raises(TypeError, match="scheduler must be an xpnn.optim learning-rate"):
        xpnn.save(model, path, optimizer=optimizer, scheduler={"scheduler": "StepLR"})
    assert not path.exists()


def test_load_state_dict_leaves_everything_as_it_was_on_failure():
    optimizer, scheduler = _fresh()
    scheduler.step()
    state = scheduler.state_dict()
    state["schedulers"][1]["eta_min"] = -1.0  # checked after the first schedule loaded
    state["last_epoch"] = 7
    before = _snapshot(optimizer, scheduler)
    with pytest.raises(ValueError, match="eta_min must be a finite number >= 0"):
        scheduler.load_state_dict(state)
    assert _snapshot(optimizer, scheduler) == before
    scheduler.step()  # and it goes on as if nothing happened
    assert scheduler.last_epoch == 2

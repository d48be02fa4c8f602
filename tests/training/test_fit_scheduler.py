"""fit(scheduler=, scheduler_interval=): when the schedule steps, and how it stops and continues."""

from __future__ import annotations

import numpy as np
import pytest

from xpnn import Linear, Sequential
from xpnn.layers.activations import Tanh
from xpnn.losses import CrossEntropyLoss
from xpnn.optim import SGD, Adam, CosineAnnealingLR, OneCycleLR
from xpnn.training import fit

ROWS, BATCH, EPOCHS = 90, 16, 3  # 6 steps per epoch, the last one short
STEPS = -(-ROWS // BATCH)


def _data(xp, device, dtype):
    rng = np.random.default_rng(3)
    host_x = rng.standard_normal((ROWS, 5))
    host_y = (host_x[:, 0] > 0).astype(np.int64) + (host_x[:, 1] > 0.5)
    index = xp.__array_namespace_info__().default_dtypes(device=device)["indexing"]
    return xp.asarray(host_x, dtype=dtype, device=device), xp.asarray(
        host_y, dtype=index, device=device
    )


def _model(xp, device, dtype):
    where = {"xp": xp, "device": device, "dtype": dtype}
    return Sequential(Linear(5, 8, seed=1, **where), Tanh(), Linear(8, 3, seed=2, **where))


class Recording:
    """Note the optimizer's learning rate at every optimizer step."""

    def __init__(self, optimizer):
        self.optimizer, self.lrs = optimizer, []
        self._step = optimizer.step

    def __getattr__(self, name):
        return getattr(self.optimizer, name)

    def step(self):
        self.lrs.append(self.optimizer.lr)
        self._step()


def _fit(model, optimizer, x, y, **options):
    return fit(
        model,
        CrossEntropyLoss(),
        optimizer,
        x,
        y,
        epochs=EPOCHS,
        batch_size=BATCH,
        seed=11,
        progress=False,
        **options,
    )


def _one_cycle(optimizer):
    return OneCycleLR(optimizer, max_lr=0.1, total_steps=EPOCHS * STEPS), "step"


def _cosine(optimizer):
    return CosineAnnealingLR(optimizer, T_max=EPOCHS), "epoch"


def _expected_lrs(build):
    """The rate of every step, from stepping the same schedule by hand."""
    optimizer = SGD(Linear(2, 1, seed=0), lr=0.1)
    scheduler, interval = build(optimizer)
    lrs = []
    for _ in range(EPOCHS):
        for _ in range(STEPS):
            lrs.append(optimizer.lr)
            if interval == "step":
                scheduler.step()
        if interval == "epoch":
            scheduler.step()
    return lrs, optimizer.lr


def _numpy():
    import array_api_compat.numpy as xp

    return xp


@pytest.mark.parametrize("build", [_one_cycle, _cosine], ids=["onecycle-step", "cosine-epoch"])
def test_fit_steps_the_schedule_per_step_or_per_epoch(build):
    xp = _numpy()
    x, y = _data(xp, "cpu", xp.float64)
    model = _model(xp, "cpu", xp.float64)
    optimizer = Recording(SGD(model, lr=0.1, momentum=0.9))
    scheduler, interval = build(optimizer.optimizer)
    _fit(model, optimizer, x, y, scheduler=scheduler, scheduler_interval=interval)
    expected, last = _expected_lrs(build)
    assert optimizer.lrs == expected
    assert optimizer.optimizer.lr == last
    if interval == "epoch":
        assert len(set(optimizer.lrs[:STEPS])) == 1  # constant within an epoch
        assert scheduler.last_epoch == EPOCHS
    else:
        assert scheduler.last_epoch == EPOCHS * STEPS


def test_without_a_schedule_the_rate_stays():
    xp = _numpy()
    x, y = _data(xp, "cpu", xp.float64)
    model = _model(xp, "cpu", xp.float64)
    optimizer = Recording(Adam(model, lr=0.05))
    _fit(model, optimizer, x, y, scheduler=None, scheduler_interval="epoch")
    assert optimizer.lrs == [0.05] * (EPOCHS * STEPS)


# fit asks should_stop once before each epoch and once after each step: 10
# questions land in the middle of epoch 2, 8 right after epoch 1's last step.
@pytest.mark.parametrize("questions", [10, 8])
@pytest.mark.parametrize("build", [_one_cycle, _cosine], ids=["onecycle-step", "cosine-epoch"])
def test_stopped_and_continued_with_the_schedule_equals_the_whole_run(build, questions):
    xp = _numpy()
    x, y = _data(xp, "cpu", xp.float64)
    whole_model = _model(xp, "cpu", xp.float64)
    whole_optimizer = Recording(Adam(whole_model, lr=0.05))
    whole_scheduler, interval = build(whole_optimizer.optimizer)
    whole = _fit(
        whole_model,
        whole_optimizer,
        x,
        y,
        scheduler=whole_scheduler,
        scheduler_interval=interval,
    )

    asked = []

    def should_stop():
        asked.append(None)
        return len(asked) > questions

    model = _model(xp, "cpu", xp.float64)
    optimizer = Recording(Adam(model, lr=0.05))
    scheduler, _ = build(optimizer.optimizer)
    first = _fit(
        model,
        optimizer,
        x,
        y,
        scheduler=scheduler,
        scheduler_interval=interval,
        should_stop=should_stop,
    )
    assert len(first.loss) == 1
    # Rolled back to the end of epoch 1, the schedule with the rest.
    assert scheduler.last_epoch == (STEPS if interval == "step" else 1)
    assert optimizer.optimizer.lr == scheduler.get_last_lr()[0]

    # A fresh model, optimizer and schedule take the saved states.
    again = _model(xp, "cpu", xp.float64)
    for name, value in model.named_parameters():
        again.set_parameter(name, xp.asarray(value, copy=True))
    optimizer_again = Recording(Adam(again, lr=1.0))
    optimizer_again.optimizer.load_state_dict(optimizer.optimizer.state_dict())
    scheduler_again, _ = build(optimizer_again.optimizer)
    scheduler_again.load_state_dict(scheduler.state_dict())
    rest = _fit(
        again,
        optimizer_again,
        x,
        y,
        scheduler=scheduler_again,
        scheduler_interval=interval,
        initial_epoch=1,
    )
    assert first.loss + rest.loss == whole.loss
    assert optimizer_again.lrs == whole_optimizer.lrs[STEPS:]
    assert optimizer_again.optimizer.lr == whole_optimizer.optimizer.lr
    assert scheduler_again.state_dict() == whole_scheduler.state_dict()
    for (name, ours), (_, theirs) in zip(
        again.named_parameters(), whole_model.named_parameters(), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs), err_msg=name)


def test_the_schedule_runs_on_every_backend(xp, device, real_dtype):
    x, y = _data(xp, device, real_dtype)
    model = _model(xp, device, real_dtype)
    optimizer = Recording(Adam(model, lr=0.05))
    scheduler, interval = _one_cycle(optimizer.optimizer)
    history = _fit(model, optimizer, x, y, scheduler=scheduler, scheduler_interval=interval)
    assert len(history.loss) == EPOCHS
    assert optimizer.lrs == _expected_lrs(_one_cycle)[0]


def test_bad_schedule_arguments_are_refused():
    xp = _numpy()
    x, y = _data(xp, "cpu", xp.float64)
    model = _model(xp, "cpu", xp.float64)
    optimizer = SGD(model, lr=0.1)
    with pytest.raises(
        ValueError, match="scheduler_interval must be 'step' or 'epoch', got 'batch'"
    ):
        _fit(model, optimizer, x, y, scheduler_interval="batch")
    with pytest.raises(TypeError, match="scheduler must be a learning-rate schedule"):
        _fit(model, optimizer, x, y, scheduler=0.5)

    class Bare:
        def step(self):
            pass

    with pytest.raises(TypeError, match="should_stop needs a scheduler with state_dict"):
        _fit(model, optimizer, x, y, scheduler=Bare(), should_stop=lambda: False)
    # Nothing ran: the model never took a step.
    assert set(optimizer.step_counts().values()) == {0}

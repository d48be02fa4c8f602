"""fit(should_stop=, initial_epoch=): stopped at any step, then continued, equals the whole run."""

from __future__ import annotations

import numpy as np
import pytest

from xpnn import BatchNorm1d, Linear, Sequential
from xpnn.layers.activations import Tanh
from xpnn.losses import CrossEntropyLoss
from xpnn.optim import SGD, Adam
from xpnn.training import History, fit

ROWS, BATCH = 90, 16  # 6 steps per epoch, the last one short


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


def _fit(model, optimizer, x, y, **options):
    return fit(
        model,
        CrossEntropyLoss(),
        optimizer,
        x,
        y,
        epochs=3,
        batch_size=BATCH,
        seed=11,
        progress=False,
        **options,
    )


def _stop_after(steps):
    """A should_stop that says stop once it has been asked ``steps + 1`` times.

    fit asks once before each epoch and once after each step, so the
    ``steps``-th question after the start is the given step boundary.
    """
    asked = []

    def should_stop():
        asked.append(None)
        return len(asked) > steps

    return should_stop


def _parameters(model, xp):
    return {name: np.asarray(xp.asarray(p, device="cpu")) for name, p in model.named_parameters()}


def _state(optimizer):
    state = optimizer.state_dict()["state"]
    return {
        (name, key): np.asarray(value) if key != "step" else value
        for name, slots in state.items()
        for key, value in slots.items()
        if value is not None
    }


# Questions asked: 1 before epoch 1, then one per step (6 per epoch) and one
# before each next epoch. 10 lands in the middle of epoch 2, 8 right after
# epoch 1's last step (the question before epoch 2), 1 before the first step.
@pytest.mark.parametrize(("questions", "epochs_done"), [(10, 1), (8, 1), (0, 0), (15, 2)])
@pytest.mark.parametrize("optimizer", [SGD, Adam], ids=["sgd", "adam"])
def test_stopped_and_continued_equals_the_whole_run_bit_for_bit(questions, epochs_done, optimizer):
    import array_api_compat.numpy as xp

    x, y = _data(xp, "cpu", xp.float64)
    options = {"momentum": 0.9} if optimizer is SGD else {}
    whole_model = _model(xp, "cpu", xp.float64)
    whole_optimizer = optimizer(whole_model, lr=0.05, **options)
    whole = _fit(whole_model, whole_optimizer, x, y)

    model = _model(xp, "cpu", xp.float64)
    first_optimizer = optimizer(model, lr=0.05, **options)
    first = _fit(model, first_optimizer, x, y, should_stop=_stop_after(questions))
    assert len(first.loss) == epochs_done
    assert first.loss == whole.loss[:epochs_done]

    # What a checkpoint carries: the parameters and the optimizer state,
    # into a fresh model and optimizer.
    again = _model(xp, "cpu", xp.float64)
    for name, value in model.named_parameters():
        again.set_parameter(name, xp.asarray(value, copy=True))
    optimizer_again = optimizer(again, lr=0.05, **options)
    optimizer_again.load_state_dict(first_optimizer.state_dict())
    rest = _fit(again, optimizer_again, x, y, initial_epoch=epochs_done)

    assert first.loss + rest.loss == whole.loss
    assert first.accuracy + rest.accuracy == whole.accuracy
    ours, theirs = _parameters(again, xp), _parameters(whole_model, xp)
    for name in theirs:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
    ours_state, theirs_state = _state(optimizer_again), _state(whole_optimizer)
    assert ours_state.keys() == theirs_state.keys()
    for key in theirs_state:
        np.testing.assert_array_equal(ours_state[key], theirs_state[key], err_msg=str(key))


def test_a_stop_mid_epoch_rolls_the_model_back_to_the_last_finished_epoch():
    import array_api_compat.numpy as xp

    x, y = _data(xp, "cpu", xp.float64)
    one_epoch = _model(xp, "cpu", xp.float64)
    fit(
        one_epoch,
        CrossEntropyLoss(),
        Adam(one_epoch, lr=0.05),
        x,
        y,
        epochs=1,
        batch_size=BATCH,
        seed=11,
        progress=False,
    )
    stopped = _model(xp, "cpu", xp.float64)
    optimizer = Adam(stopped, lr=0.05)
    history = _fit(stopped, optimizer, x, y, should_stop=_stop_after(10))
    assert isinstance(history, History)
    assert len(history.loss) == 1
    for name, value in _parameters(one_epoch, xp).items():
        np.testing.assert_array_equal(_parameters(stopped, xp)[name], value, err_msg=name)
    assert set(optimizer.step_counts().values()) == {6}


def test_initial_epoch_equal_to_epochs_runs_nothing():
    import array_api_compat.numpy as xp

    x, y = _data(xp, "cpu", xp.float64)
    model = _model(xp, "cpu", xp.float64)
    before = _parameters(model, xp)
    history = _fit(model, SGD(model, lr=0.1), x, y, initial_epoch=3)
    assert history.loss == []
    for name, value in before.items():
        np.testing.assert_array_equal(_parameters(model, xp)[name], value)


@pytest.mark.parametrize("initial_epoch", [-1, 4, 1.0, True])
def test_initial_epoch_out_of_range_is_refused(initial_epoch):
    import array_api_compat.numpy as xp

    x, y = _data(xp, "cpu", xp.float64)
    model = _model(xp, "cpu", xp.float64)
    with pytest.raises(ValueError, match=r"initial_epoch must be an int from 0 to epochs \(3\)"):
        _fit(model, SGD(model, lr=0.1), x, y, initial_epoch=initial_epoch)


def test_should_stop_needs_an_optimizer_that_can_roll_back():
    import array_api_compat.numpy as xp

    class Bare:
        def step(self):
            pass

        def zero_grad(self):
            pass

    x, y = _data(xp, "cpu", xp.float64)
    with pytest.raises(TypeError, match="should_stop needs an optimizer with state_dict"):
        _fit(_model(xp, "cpu", xp.float64), Bare(), x, y, should_stop=lambda: False)


def test_stopped_and_continued_on_every_backend(xp, device, real_dtype):
    """The same promise on every backend of the session, to the dtype's precision."""
    x, y = _data(xp, device, real_dtype)
    whole_model = _model(xp, device, real_dtype)
    whole = _fit(whole_model, Adam(whole_model, lr=0.05), x, y)
    model = _model(xp, device, real_dtype)
    optimizer = Adam(model, lr=0.05)
    first = _fit(model, optimizer, x, y, should_stop=_stop_after(10))
    rest = _fit(model, optimizer, x, y, initial_epoch=len(first.loss))
    rtol = 1e-12 if "64" in str(real_dtype) else 1e-6
    np.testing.assert_allclose(first.loss + rest.loss, whole.loss, rtol=rtol)


def test_a_stop_mid_epoch_rolls_the_running_statistics_back_too():
    import array_api_compat.numpy as xp

    x, y = _data(xp, "cpu", xp.float64)

    def model():
        return Sequential(Linear(5, 8, seed=1), BatchNorm1d(8), Tanh(), Linear(8, 3, seed=2))

    one_epoch = model()
    options = {"epochs": 1, "batch_size": BATCH, "seed": 11, "progress": False}
    fit(one_epoch, CrossEntropyLoss(), SGD(one_epoch, lr=0.05), x, y, **options)
    stopped = model()
    history = _fit(stopped, SGD(stopped, lr=0.05), x, y, should_stop=_stop_after(10))
    assert len(history.loss) == 1
    buffers = dict(stopped.named_buffers())
    assert int(buffers["1.num_batches_tracked"]) == 6
    for name, value in one_epoch.named_buffers():
        np.testing.assert_array_equal(buffers[name], value, err_msg=name)

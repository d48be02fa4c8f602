"""xpnn.training.fit: seeded, and the same on every backend."""

from __future__ import annotations

import numpy as np
import pytest

from xpnn import Linear, Sequential
from xpnn.layers.activations import ReLU, Tanh
from xpnn.losses import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from xpnn.optim import SGD, Adam
from xpnn.training import History, evaluate, fit


def _data(xp, device, dtype, rows=96, features=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    host_x = rng.standard_normal((rows, features))
    host_y = (host_x[:, 0] + 0.5 * host_x[:, 1] > 0).astype(np.int64) + (host_x[:, 2] > 1)
    index = xp.__array_namespace_info__().default_dtypes(device=device)["indexing"]
    x = xp.asarray(host_x.astype(_host_dtype(xp, dtype)), dtype=dtype, device=device)
    y = xp.asarray(host_y % classes, dtype=index, device=device)
    return x, y


def _host_dtype(xp, dtype):
    for name, candidate in xp.__array_namespace_info__().dtypes().items():
        if candidate == dtype:
            return np.dtype(name)
    raise AssertionError(dtype)


def _run(xp, device, dtype, *, epochs=4, optimizer=SGD, **options):
    where = {"xp": xp, "device": device, "dtype": dtype}
    model = Sequential(Linear(6, 16, seed=1, **where), Tanh(), Linear(16, 3, seed=2, **where))
    x, y = _data(xp, device, dtype)
    opt = optimizer(model, lr=0.1, **options) if optimizer is SGD else optimizer(model, lr=0.01)
    history = fit(
        model,
        CrossEntropyLoss(),
        opt,
        x,
        y,
        epochs=epochs,
        batch_size=16,
        seed=7,
        validation_data=_data(xp, device, dtype, rows=40, seed=1),
        progress=False,
    )
    return model, history


@pytest.mark.parametrize("optimizer", [SGD, Adam], ids=["sgd", "adam"])
def test_same_losses_as_numpy_on_every_backend(xp, device, real_dtype, optimizer):
    """The reproducibility promise: same seed, same losses after every epoch."""
    import array_api_compat.numpy as npx

    host = npx.float64 if "64" in str(real_dtype) else npx.float32
    _, ours = _run(xp, device, real_dtype, optimizer=optimizer)
    _, reference = _run(npx, "cpu", host, optimizer=optimizer)
    rtol = 1e-9 if "64" in str(real_dtype) else 1e-4
    np.testing.assert_allclose(ours.loss, reference.loss, rtol=rtol)
    np.testing.assert_allclose(ours.val_loss, reference.val_loss, rtol=rtol)
    assert ours.accuracy == pytest.approx(reference.accuracy, abs=1.5 / 96)


def test_training_lowers_the_loss_and_records_history():
    _, history = _run(np, "cpu", np.float64, epochs=15, momentum=0.9)
    assert isinstance(history, History)
    assert len(history.loss) == len(history.accuracy) == len(history.val_loss) == 15
    assert history.loss[-1] < 0.5 * history.loss[0]
    assert history.accuracy[-1] > 0.9
    assert all(s >= 0 for s in history.seconds)
    assert set(history.as_dict()) == {"loss", "accuracy", "val_loss", "val_accuracy", "seconds"}


def test_shuffle_depends_on_seed_only():
    a = _run(np, "cpu", np.float64)[1].loss
    b = _run(np, "cpu", np.float64)[1].loss
    assert a == b


def test_evaluate_restores_training_mode_and_counts_accuracy():
    model = Sequential(Linear(6, 3, seed=0))
    x, y = _data(np, "cpu", np.float64)
    loss, accuracy = evaluate(model, CrossEntropyLoss(), x, y, batch_size=10)
    logits = model(x)
    assert accuracy == pytest.approx(np.mean(np.argmax(logits, axis=1) == y))
    assert loss > 0
    assert model.training


def test_regression_has_no_accuracy_and_binary_targets_do():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4))
    model = Sequential(Linear(4, 1, seed=0))
    history = fit(
        model,
        MSELoss(),
        SGD(model, lr=0.05),
        x,
        x[:, :1] * 2,
        epochs=2,
        batch_size=8,
        progress=False,
    )
    assert history.accuracy == [None, None]
    binary = (x[:, :1] > 0).astype(np.float64)
    model = Sequential(Linear(4, 8, seed=0), ReLU(), Linear(8, 1, seed=1))
    history = fit(
        model,
        BCEWithLogitsLoss(),
        SGD(model, lr=0.5),
        x,
        binary,
        epochs=5,
        batch_size=8,
        progress=False,
    )
    assert 0 <= history.accuracy[-1] <= 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"epochs": -1}, "epochs must be a non-negative int, got -1"),
        ({"epochs": 1, "batch_size": 0}, "batch_size must be a positive int, got 0"),
    ],
)
def test_bad_options(options, message):
    model = Sequential(Linear(6, 3, seed=0))
    x, y = _data(np, "cpu", np.float64)
    with pytest.raises(ValueError, match=message):
        fit(model, CrossEntropyLoss(), SGD(model, lr=0.1), x, y, progress=False, **options)


def test_rows_must_match():
    model = Sequential(Linear(6, 3, seed=0))
    x, y = _data(np, "cpu", np.float64)
    with pytest.raises(ValueError, match="same number of rows, got 96 and 95"):
        fit(model, CrossEntropyLoss(), SGD(model, lr=0.1), x, y[:95], epochs=1, progress=False)


def test_progress_bar_shows_on_request_and_stays_off_when_not_a_terminal(capsys):
    pytest.importorskip("tqdm", reason="the progress bar is tqdm's, from the demo extra")
    model = Sequential(Linear(6, 3, seed=0))
    x, y = _data(np, "cpu", np.float64)
    fit(model, CrossEntropyLoss(), SGD(model, lr=0.1), x, y, epochs=2, progress=True)
    shown = capsys.readouterr().err
    assert "2/2" in shown
    assert "epoch" in shown
    assert "loss=" in shown
    # Under pytest standard error is not a terminal: no bar by default.
    fit(model, CrossEntropyLoss(), SGD(model, lr=0.1), x, y, epochs=2)
    assert capsys.readouterr().err == ""


def test_blocks_change_the_order_and_reproduce_it():
    def losses(**options):
        model = Sequential(Linear(6, 16, seed=1), Tanh(), Linear(16, 3, seed=2))
        x, y = _data(np, "cpu", np.float64)
        optimizer = SGD(model, lr=0.1)
        return fit(
            model, CrossEntropyLoss(), optimizer, x, y, epochs=3, batch_size=16, **options
        ).loss

    blocks = losses(block_rows=24, interleave=2)
    assert losses(block_rows=24, interleave=2) == blocks
    assert losses() != blocks
    # One block of all rows is the plain shuffle.
    assert losses(block_rows=96) == losses()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"block_rows": 0}, "block_rows must be a positive int or None, got 0"),
        ({"interleave": 0}, "interleave must be a positive int, got 0"),
        ({"interleave": 1.5}, "interleave must be a positive int, got 1.5"),
    ],
)
def test_bad_block_options(options, message):
    model = Sequential(Linear(6, 3, seed=0))
    x, y = _data(np, "cpu", np.float64)
    with pytest.raises(ValueError, match=message):
        fit(model, CrossEntropyLoss(), SGD(model, lr=0.1), x, y, epochs=1, **options)

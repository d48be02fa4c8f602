"""fit refuses what cannot train (no rows, bad labels, a diverged loss); its progress bar."""

from __future__ import annotations

import io
import os
import re

import numpy as np
import pytest

from xpnn import Linear, Sequential
from xpnn.layers.activations import Tanh
from xpnn.losses import CrossEntropyLoss, MSELoss
from xpnn.optim import SGD
from xpnn.training import DivergedError, fit


def _model():
    return Sequential(Linear(4, 6, seed=1), Tanh(), Linear(6, 3, seed=2))


def _weights(model):
    return {name: np.array(p, copy=True) for name, p in model.named_parameters()}


def test_no_rows_raises_instead_of_returning_nan():
    model = _model()
    expected = r"at least one row of training data, got x of shape \(0, 4\)"
    with pytest.raises(ValueError, match=expected):
        fit(
            model,
            CrossEntropyLoss(),
            SGD(model, lr=0.1),
            np.zeros((0, 4)),
            np.zeros(0, dtype=np.int64),
            epochs=1,
            progress=False,
        )


def test_a_bad_label_in_a_later_batch_is_caught_before_the_first_update():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 4))
    y = rng.integers(0, 3, 40)
    y[-1] = 3  # out of range, in the last batch without shuffling
    model = _model()
    before = _weights(model)
    with pytest.raises(ValueError, match="label"):
        fit(
            model,
            CrossEntropyLoss(),
            SGD(model, lr=0.1),
            x,
            y,
            epochs=1,
            batch_size=8,
            shuffle=False,
            progress=False,
        )
    for name, value in _weights(model).items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_a_diverging_run_stops_at_the_end_of_its_epoch_with_the_epoch_and_a_hint():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4))
    y = rng.standard_normal((32, 3))
    model = _model()
    with np.errstate(over="ignore", invalid="ignore"), pytest.raises(DivergedError) as caught:
        fit(
            model,
            MSELoss(),
            SGD(model, lr=1e30),
            x,
            y,
            epochs=5,
            batch_size=8,
            progress=False,
        )
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert "\n" not in message
    # Epoch 1's loss is huge but finite; epoch 2's sum, read at its end, is
    # not, and its step losses, read back then, name the first bad step.
    assert re.search(r"training diverged: the loss of step [1-4] of epoch 2 is (nan|inf)", message)
    assert "lower the learning rate" in message


def test_an_infinite_input_names_the_first_step_that_met_it():
    x = np.ones((16, 4))
    x[9, 0] = np.inf  # in the third batch of four rows, in order
    model = _model()
    # Step 3's loss is finite (tanh(inf) = 1), but its weight gradient,
    # inf * tanh'(inf) = inf * 0, is NaN: step 4 is the first non-finite loss.
    expected = r"training diverged: the loss of step 4 of epoch 1 is nan;"
    with np.errstate(invalid="ignore", over="ignore"), pytest.raises(DivergedError, match=expected):
        fit(
            model,
            MSELoss(),
            SGD(model, lr=0.1),
            x,
            np.zeros((16, 3)),
            epochs=2,
            batch_size=4,
            shuffle=False,
            progress=False,
        )


class _FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_bar_shows_on_a_terminal_of_zero_columns(monkeypatch):
    import sys

    import tqdm.std

    stream = _FakeTerminal()
    monkeypatch.setattr(sys, "stderr", stream)
    zero = os.terminal_size((0, 0))
    monkeypatch.setattr(os, "get_terminal_size", lambda *args: zero)
    # tqdm asks the terminal itself too; make it hear 0 columns as well.
    monkeypatch.setattr(tqdm.std, "_screen_shape_wrapper", lambda: lambda file: (0, 0))
    rng = np.random.default_rng(0)
    model = _model()
    fit(
        model,
        CrossEntropyLoss(),
        SGD(model, lr=0.1),
        rng.standard_normal((16, 4)),
        rng.integers(0, 3, 16),
        epochs=2,
        batch_size=8,
    )
    shown = stream.getvalue()
    assert "2/2" in shown
    # The bar itself, not just the counter: tqdm draws none at width 0.
    final = shown.rstrip("\n").split("\r")[-1]
    assert "|" in final, final
    assert len(final) == 80, final

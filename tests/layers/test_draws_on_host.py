"""Module.draws_on_host: which layers draw masks on the host, and the refusals it drives."""

from __future__ import annotations

import pytest

from selection import ON_HOST
from xpnn import GRU, LSTM, Dropout, Linear, MultiheadAttention, Sequential
from xpnn.interop.step import check_traceable

pytestmark = ON_HOST


def test_the_layers_that_draw_say_so_in_training_mode_only() -> None:
    drawing = [
        Dropout(0.5),
        GRU(3, 4, num_layers=2, dropout=0.5),
        MultiheadAttention(4, 2, dropout=0.5),
    ]
    quiet = [
        Dropout(0.0),
        Linear(3, 4),
        GRU(3, 4, num_layers=1, dropout=0.0),
        LSTM(3, 4, num_layers=2, dropout=0.0),
        MultiheadAttention(4, 2),
    ]
    assert [layer.draws_on_host for layer in drawing] == [True] * len(drawing)
    assert [layer.draws_on_host for layer in quiet] == [False] * len(quiet)
    assert [layer.eval().draws_on_host for layer in drawing] == [False] * len(drawing)


def test_a_traced_step_refuses_a_recurrent_layer_with_dropout() -> None:
    model = Sequential(GRU(3, 4, num_layers=2, dropout=0.25))
    with pytest.raises(ValueError, match=r"GRU.* in training mode, which jax.jit cannot run"):
        check_traceable(model, "jax.jit")
    model.eval()
    check_traceable(model, "jax.jit")

"""A GRU classifier's training step under jax.jit gives the eager losses."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn import GRU, Linear, Module
from xpnn.optim import SGD
from xpnn.testing import assert_close, to_numpy

pytestmark = pytest.mark.backend("jax")


class Classifier(Module):
    """A GRU over (batch, time, features), its last hidden state, a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = GRU(3, 5, batch_first=True, seed=0)
        self.head = Linear(5, 2, seed=1)

    def children(self) -> list[Module]:
        return [self.gru, self.head]

    def named_children(self) -> list[tuple[str, Module]]:
        return [("gru", self.gru), ("head", self.head)]

    def forward(self, x: Any, *, input_grad: bool = True) -> tuple[Any, Any]:
        (_, h_n), gru_backward = self.gru.forward(x, input_grad=input_grad)
        y, head_backward = self.head.forward(h_n[-1, ...])

        def backward(dy: Any) -> Any:
            d_last = head_backward(dy)
            dx, _ = gru_backward(None, d_last[None, ...])
            return dx

        return y, backward


def _eager(model: Module, data: list[tuple[Any, Any]]) -> list[Any]:
    optimizer = SGD(model, lr=0.1, momentum=0.9)
    loss_fn = xpnn.CrossEntropyLoss()
    losses = []
    for x, y in data:
        prediction, backward = model.forward(x)
        value, d_prediction = loss_fn(prediction, y)
        optimizer.zero_grad()
        backward(d_prediction)
        optimizer.step()
        losses.append(to_numpy(value))
    return losses


def test_jit_training_step_of_a_gru_matches_eager():
    jnp = pytest.importorskip("jax.numpy")
    from xpnn.interop.jax import train_step

    dtype = str(jnp.asarray(0.0).dtype)
    rng = np.random.default_rng(0)
    host = [(rng.standard_normal((4, 3, 3)), rng.integers(0, 2, 4)) for _ in range(3)]
    data = [(jnp.asarray(x.astype(dtype)), jnp.asarray(y)) for x, y in host]
    expected = _eager(Classifier().to(jnp, dtype=dtype), data)

    model = Classifier().to(jnp, dtype=dtype)
    step = train_step(model, xpnn.CrossEntropyLoss(), SGD(model, lr=0.1, momentum=0.9))
    params, state = step.init()
    losses = []
    for x, y in data:
        params, state, value = step(params, state, x, y)
        losses.append(to_numpy(value))
    assert_close(np.array(losses), np.array(expected))

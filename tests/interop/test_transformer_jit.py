"""A jax.jit training step of a small transformer classifier gives the eager (NumPy) losses."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn import Flatten, Linear, Sequential, TransformerEncoderLayer
from xpnn.optim import Adam
from xpnn.testing import assert_close, to_numpy

pytestmark = pytest.mark.backend("jax")

LENGTH, FEATURES, WIDTH, CLASSES = 4, 3, 8, 3


def _classifier(xp: Any, dtype: str) -> Sequential:
    layer = TransformerEncoderLayer(WIDTH, 2, 16, dropout=0.0, batch_first=True, seed=1)
    model = Sequential(
        Linear(FEATURES, WIDTH, seed=0), layer, Flatten(), Linear(LENGTH * WIDTH, CLASSES, seed=2)
    )
    return model.to(xp, dtype=dtype)


def test_jit_step_gives_the_eager_losses() -> None:
    import jax.numpy as jnp

    from xpnn.interop.jax import train_step

    dtype = str(jnp.asarray(0.0).dtype)
    rng = np.random.default_rng(0)
    data = [
        (
            jnp.asarray(rng.normal(size=(4, LENGTH, FEATURES)).astype(dtype)),
            jnp.asarray(rng.integers(0, CLASSES, size=4)),
        )
        for _ in range(3)
    ]
    # The eager oracle runs on NumPy: eager JAX would compile every operation.
    model = _classifier(np, dtype)
    optimizer = Adam(model, lr=1e-2)
    loss_fn = xpnn.CrossEntropyLoss()
    eager = []
    for x, y in data:
        prediction, backward = model.forward(np.asarray(x), input_grad=False)
        value, dprediction = loss_fn(prediction, np.asarray(y))
        optimizer.zero_grad()
        backward(dprediction)
        optimizer.step()
        eager.append(to_numpy(value))

    model = _classifier(jnp, dtype)
    step = train_step(model, xpnn.CrossEntropyLoss(), Adam(model, lr=1e-2))
    params, state = step.init()
    losses = []
    for x, y in data:
        params, state, value = step(params, state, x, y)
        losses.append(to_numpy(value))
    assert_close(np.array(losses), np.array(eager))
    assert len(set(np.round(losses, 6))) == 3  # the parameters moved

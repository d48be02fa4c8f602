"""edge_features: the width at either end of a model, where its layers tell it."""

from __future__ import annotations

from typing import Any

import pytest

import xpnn
from xpnn.layers import edge_features


class Reshape(xpnn.Module):
    """A layer of a user's own that changes the shape in a way xpnn cannot know."""

    def forward(self, x: Any) -> tuple[Any, Any]:
        return x[..., :1], lambda dy: dy


@pytest.mark.parametrize(
    ("model", "first", "last"),
    [
        (xpnn.Linear(3, 4), 3, 4),
        (xpnn.Sequential(xpnn.Linear(3, 4), xpnn.ReLU(), xpnn.Linear(4, 2), xpnn.Softmax()), 3, 2),
        (xpnn.Sequential(xpnn.Dropout(0.5), xpnn.Tanh(), xpnn.Linear(5, 6)), 5, 6),
        (
            xpnn.Sequential(
                xpnn.Sequential(xpnn.GELU(), xpnn.Sequential(xpnn.Linear(7, 8))),
                xpnn.Sequential(xpnn.Linear(8, 9), xpnn.Sequential(xpnn.Sigmoid())),
            ),
            7,
            9,
        ),
        (xpnn.Sequential(xpnn.Linear(3, 4), Reshape()), 3, None),
        (xpnn.Sequential(Reshape(), xpnn.Linear(3, 4)), None, 4),
        (xpnn.Sequential(xpnn.ReLU(), xpnn.Tanh()), None, None),
        (Reshape(), None, None),
    ],
)
def test_edge_features(model: xpnn.Module, first: int | None, last: int | None) -> None:
    assert edge_features(model) == first
    assert edge_features(model, last=True) == last

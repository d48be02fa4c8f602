"""What the interop modules share: the width at either end of a model, and params checks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnn
from xpnn.interop._binding import check_params, edge_features


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


def test_check_params_names_what_is_missing_and_unexpected() -> None:
    names = ("0.weight", "0.bias")
    check_params({"0.bias": np.zeros(2), "0.weight": np.zeros((2, 2))}, names, made_by="x")
    with pytest.raises(TypeError, match=r"as init\(\) returns, got list"):
        check_params([], names, made_by="init() returns")
    with pytest.raises(ValueError, match="missing: 0.bias; unexpected: 1.bias"):
        check_params({"0.weight": 0, "1.bias": 0}, names, made_by="x")
    # A mapping that is not a dict passes only where any mapping may.
    from types import MappingProxyType

    proxy = MappingProxyType({"0.weight": 0, "0.bias": 0})
    check_params(proxy, names, made_by="x")
    with pytest.raises(TypeError, match="got mappingproxy"):
        check_params(proxy, names, made_by="x", container=dict)

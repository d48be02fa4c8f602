"""xpnn optimizers take the model; given model.parameters(), the error shows the working call."""

from __future__ import annotations

import pytest

from xpnn import Linear, ReLU, Sequential
from xpnn.optim import SGD, Adam


def _model(xp, device):
    return Sequential(
        Linear(3, 4, xp=xp, device=device, seed=0), ReLU(), Linear(4, 2, xp=xp, device=device)
    )


@pytest.mark.parametrize(
    "given",
    [
        lambda model: model.parameters(),
        lambda model: tuple(model.parameters()),
        lambda model: (value for _, value in model.named_parameters()),
        lambda model: model.named_parameters(),
    ],
    ids=["list", "tuple", "generator", "named_parameters"],
)
def test_parameters_instead_of_the_model_shows_the_working_call(xp, device, given):
    model = _model(xp, device)
    with pytest.raises(TypeError, match=r"model must be an xpnn Module") as info:
        SGD(given(model), lr=0.1)
    assert "xpnn optimizers take the model itself, e.g. SGD(model, lr=0.1), not " in str(info.value)
    assert "model.parameters()" in str(info.value)
    with pytest.raises(TypeError, match=r"e\.g\. Adam\(model, lr=0\.1\)"):
        Adam(given(model), lr=0.1)
    # The call the message shows works.
    assert SGD(model, lr=0.1).model is model


def test_other_wrong_models_get_no_parameters_hint():
    with pytest.raises(TypeError, match=r"got str$"):
        SGD("model", lr=0.1)

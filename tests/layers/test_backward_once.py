"""A backward closure is used up by its call, unless ``retain_graph=True`` keeps it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from xpnn import Dropout, Linear, ReLU, Sequential, Tanh
from xpnn.layers import Module, call_backward
from xpnn.testing import random_array, to_numpy

AGAIN = r"^Trying to backward through the graph a second time: this backward closure of {}"
HINT = r"specify retain_graph=True on the first call, backward\(dy, retain_graph=True\)"


def _train_dropout() -> Dropout:
    return Dropout(0.5, seed=0)


def _eval_dropout() -> Module:
    return Dropout(0.5, seed=0).eval()


# (make the module, the name its closures give, the input's last size, the output's)
MODULES: dict[str, tuple[Callable[..., Module], str, int, int]] = {
    "Linear": (lambda **w: Linear(4, 3, seed=0, **w), "Linear", 4, 3),
    "ReLU": (lambda **w: ReLU(), "ReLU", 4, 4),
    "Tanh": (lambda **w: Tanh(), "Tanh", 4, 4),
    "Dropout": (lambda **w: _train_dropout(), "Dropout", 4, 4),
    "Dropout-eval": (lambda **w: _eval_dropout(), "Dropout", 4, 4),
    "Sequential": (
        lambda **w: Sequential(Linear(4, 5, seed=0, **w), Tanh(), Linear(5, 3, seed=1, **w)),
        "Sequential",
        4,
        3,
    ),
}


def _arrays(xp: Any, device: Any, n_in: int, n_out: int) -> tuple[Any, Any]:
    dtype = xp.__array_namespace_info__().default_dtypes(device=device)["real floating"]
    x = random_array(xp, (2, n_in), dtype=dtype, device=device, seed=1)
    return x, random_array(xp, (2, n_out), dtype=dtype, device=device, seed=2)


def _grads(module: Module) -> dict[str, np.ndarray]:
    return {name: to_numpy(grad) for name, grad in module.named_gradients() if grad is not None}


@pytest.mark.parametrize("input_grad", [True, False], ids=["dx", "no-dx"])
@pytest.mark.parametrize("case", MODULES.values(), ids=MODULES.keys())
def test_a_second_call_raises_and_adds_nothing(xp, device, case, input_grad):
    make, what, n_in, n_out = case
    module = make(xp=xp, device=device)
    x, dy = _arrays(xp, device, n_in, n_out)
    _, backward = module.forward(x, input_grad=input_grad)
    backward(dy)
    once = _grads(module)
    with pytest.raises(RuntimeError, match=AGAIN.format(what)) as raised:
        backward(dy)
    assert "retain_graph=True" in str(raised.value)
    assert _grads(module).keys() == once.keys()
    for name, grad in _grads(module).items():
        np.testing.assert_array_equal(grad, once[name])


@pytest.mark.parametrize("case", MODULES.values(), ids=MODULES.keys())
def test_retain_graph_keeps_the_closure_for_another_call(xp, device, case):
    make, what, n_in, n_out = case
    x, dy = _arrays(xp, device, n_in, n_out)
    # The oracle: one call on a twin module, whose gradients two calls double.
    twin = make(xp=xp, device=device)
    dx_once = to_numpy(twin.forward(x)[1](dy))
    module = make(xp=xp, device=device)
    _, backward = module.forward(x)
    first = backward(dy, retain_graph=True)
    second = backward(dy)  # the last call may leave the keyword out
    np.testing.assert_array_equal(to_numpy(first), dx_once)
    np.testing.assert_array_equal(to_numpy(second), dx_once)
    for name, grad in _grads(twin).items():
        np.testing.assert_allclose(_grads(module)[name], 2 * grad, rtol=1e-6)
    with pytest.raises(RuntimeError, match=AGAIN.format(what) + ".*" + HINT):
        backward(dy)


def test_a_call_refused_before_any_arithmetic_does_not_use_the_closure_up():
    layer = Linear(4, 3, seed=0)
    x, dy = np.ones((2, 4)), np.ones((2, 3))
    _, backward = layer.forward(x)
    with pytest.raises(ValueError, match="dy must have the shape of the output"):
        backward(np.ones((2, 4)))
    assert layer.grads == {"weight": None, "bias": None}
    backward(dy)
    np.testing.assert_array_equal(layer.grads["weight"], x.T @ dy)


class _Doubler(Module):
    """A user's module whose closure takes no retain_graph."""

    def forward(self, x: Any) -> tuple[Any, Callable[[Any], Any]]:
        def backward(dy: Any) -> Any:
            return 2 * dy

        return 2 * x, backward


def test_sequential_passes_retain_graph_to_layers_that_take_it():
    model = Sequential(Linear(4, 3, seed=0), _Doubler(), ReLU())
    x, dy = np.ones((2, 4)), np.ones((2, 3))
    _, backward = model.forward(x)
    dx = backward(dy, retain_graph=True)
    # The oracle: relu' = 1 here (positive outputs are not guaranteed, so mask).
    mask = (2 * (x @ model[0].weight + model[0].bias) > 0).astype(float)
    np.testing.assert_allclose(dx, (2 * dy * mask) @ model[0].weight.T)
    np.testing.assert_allclose(backward(dy), dx)
    np.testing.assert_allclose(model[0].grads["weight"], 2 * (x.T @ (2 * dy * mask)))
    with pytest.raises(RuntimeError, match=AGAIN.format("Sequential")):
        backward(dy)


def test_call_backward_calls_closures_without_the_keyword_plainly():
    calls = []

    def plain(dy: Any) -> Any:
        calls.append(dy)
        return dy

    assert call_backward(plain, 1.0, retain_graph=True) == 1.0
    assert call_backward(lambda dy, **kw: kw, 1.0, retain_graph=True) == {"retain_graph": True}
    assert calls == [1.0]

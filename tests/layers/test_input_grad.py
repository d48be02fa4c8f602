"""``forward(x, input_grad=False)`` and ``forward_on_data``: no gradient for data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xpnn import Dropout, Linear, ReLU, Sequential, Tanh
from xpnn.layers import Module, forward_on_data
from xpnn.testing import assert_close, random_array, to_numpy


def _model(xp, device, dtype) -> Sequential:
    where = {"xp": xp, "device": device, "dtype": dtype}
    return Sequential(Linear(5, 7, seed=0, **where), Tanh(), Linear(7, 3, seed=1, **where))


def test_parameter_gradients_match_torch_without_dx(xp, device, real_dtype):
    model = _model(xp, device, real_dtype)
    x = random_array(xp, (6, 5), dtype=real_dtype, device=device, seed=10)
    dy = random_array(xp, (6, 3), dtype=real_dtype, device=device, seed=11)
    y, backward = forward_on_data(model, x)
    assert backward(dy) is None

    # The oracle: the same network in torch, with an input that needs no gradient.
    first, second = model[0], model[2]
    tw = [
        torch.tensor(to_numpy(p).astype(np.float64), requires_grad=True)
        for p in (first.weight, first.bias, second.weight, second.bias)
    ]
    tx = torch.tensor(to_numpy(x).astype(np.float64))
    ty = torch.tanh(tx @ tw[0] + tw[1]) @ tw[2] + tw[3]
    ty.backward(torch.tensor(to_numpy(dy).astype(np.float64)))
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    assert_close(y, ty.detach().numpy(), **same)
    grads = dict(model.named_gradients())
    for name, t in zip(("0.weight", "0.bias", "2.weight", "2.bias"), tw, strict=True):
        assert_close(grads[name], t.grad.numpy(), **same)


def test_first_linear_layer_skips_its_input_gradient(monkeypatch):
    import xpnn.layers.linear as linear_module

    seen = []
    kernel = linear_module.linear_backward_kernel

    def spy(*args, **kwargs):
        seen.append(kwargs["input_grad"])
        return kernel(*args, **kwargs)

    monkeypatch.setattr(linear_module, "linear_backward_kernel", spy)
    model = Sequential(Linear(4, 3, seed=0), ReLU(), Linear(3, 2, seed=1))
    _, backward = model.forward(np.ones((2, 4)), input_grad=False)
    assert backward(np.ones((2, 2))) is None
    assert seen == [True, False]  # the last layer's dx is needed, the first's is not
    _, backward = model.forward(np.ones((2, 4)))
    assert backward(np.ones((2, 2))).shape == (2, 4)
    assert seen[2:] == [True, True]


@pytest.mark.parametrize("layer", [ReLU(), Tanh(), Dropout(0.5, seed=0), Dropout(0.0)])
def test_layers_without_parameters_return_none(layer):
    y, backward = layer.forward(np.ones((2, 3)), input_grad=False)
    assert y.shape == (2, 3)
    assert backward(np.ones((2, 3))) is None


def test_sequential_starting_with_an_activation_still_trains_the_rest():
    model = Sequential(ReLU(), Linear(3, 2, seed=0))
    _, backward = model.forward(np.ones((4, 3)), input_grad=False)
    assert backward(np.ones((4, 2))) is None
    np.testing.assert_allclose(model[1].grads["weight"], np.full((3, 2), 4.0))


class _Doubler(Module):
    """A user's module whose forward takes no input_grad."""

    def forward(self, x):
        return 2 * x, lambda dy: 2 * dy


def test_a_module_without_input_grad_gets_a_plain_forward():
    y, backward = forward_on_data(_Doubler(), np.ones(3))
    np.testing.assert_array_equal(y, np.full(3, 2.0))
    np.testing.assert_array_equal(backward(np.ones(3)), np.full(3, 2.0))
    model = Sequential(_Doubler(), Linear(3, 1, seed=0))
    _, backward = model.forward(np.ones((2, 3)), input_grad=False)
    assert backward(np.ones((2, 1))) is None
    np.testing.assert_allclose(model[1].grads["weight"], np.full((3, 1), 4.0))

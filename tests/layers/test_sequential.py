"""xpnn.Sequential: chaining, parameters, gradients, repr."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xpnn import Dropout, Linear, Sequential
from xpnn.testing import assert_close, random_array, to_numpy


def _torch_twin(model: Sequential) -> torch.nn.Sequential:
    layers = []
    for layer in model.layers:
        twin = torch.nn.Linear(layer.in_features, layer.out_features, dtype=torch.float64)
        with torch.no_grad():
            twin.weight.copy_(torch.tensor(to_numpy(layer.weight).T.astype(np.float64)))
            twin.bias.copy_(torch.tensor(to_numpy(layer.bias).astype(np.float64)))
        layers.append(twin)
    return torch.nn.Sequential(*layers)


def test_forward_backward_match_torch(xp, device, real_dtype):
    model = Sequential(
        *(
            Linear(a, b, xp=xp, device=device, dtype=real_dtype, seed=s)
            for s, (a, b) in enumerate([(5, 7), (7, 4), (4, 3)])
        )
    )
    x = random_array(xp, (6, 5), dtype=real_dtype, device=device, seed=10)
    dy = random_array(xp, (6, 3), dtype=real_dtype, device=device, seed=11)
    y, backward = model.forward(x)
    dx = backward(dy)

    twin = _torch_twin(model)
    tx = torch.tensor(to_numpy(x).astype(np.float64), requires_grad=True)
    ty = twin(tx)
    ty.backward(torch.tensor(to_numpy(dy).astype(np.float64)))
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    assert_close(y, ty.detach().numpy(), **same)
    assert_close(dx, tx.grad.numpy(), **same)
    grads = dict(model.named_gradients())
    for index, layer in enumerate(twin):
        assert_close(grads[f"{index}.weight"], layer.weight.grad.numpy().T, **same)
        assert_close(grads[f"{index}.bias"], layer.bias.grad.numpy(), **same)
    assert_close(model(x), ty.detach().numpy(), **same)


def test_named_parameters_and_write_back():
    model = Sequential(Linear(2, 3, seed=0), Dropout(0.1), Linear(3, 1, seed=1))
    names = [name for name, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert len(model.parameters()) == 4
    model.set_parameter("2.bias", np.array([5.0]))
    np.testing.assert_array_equal(model[2].bias, [5.0])
    with pytest.raises(KeyError, match="no parameter '1.weight'"):
        model.set_parameter("1.weight", np.ones(1))
    with pytest.raises(KeyError, match="no parameter '7.weight'"):
        model.set_parameter("7.weight", np.ones(1))


def test_zero_grad_reaches_every_layer():
    model = Sequential(Linear(2, 3, seed=0), Linear(3, 1, seed=1))
    _, backward = model.forward(np.ones((4, 2)))
    backward(np.ones((4, 1)))
    assert all(g is not None for _, g in model.named_gradients())
    model.zero_grad()
    assert all(g is None for _, g in model.named_gradients())


def test_repr_lists_layers():
    model = Sequential(Linear(2, 3, seed=0), Dropout(0.1))
    text = repr(model)
    assert text.splitlines()[0] == "Sequential("
    assert text.splitlines()[1].startswith("  (0): Linear(in_features=2, out_features=3")
    assert text.splitlines()[2] == "  (1): Dropout(p=0.1)"
    assert repr(Sequential()) == "Sequential()"


def test_rejects_non_modules():
    with pytest.raises(
        TypeError, match="Sequential takes xpnn modules, got function at position 1"
    ):
        Sequential(Linear(2, 2), lambda x: x)

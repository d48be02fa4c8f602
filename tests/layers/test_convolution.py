"""xpnn.Conv1d / Conv2d: initialisation, the layer against torch.nn, conversion, checkpoints.

Few, tiny shapes: the JAX session compiles once per shape.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import xpnn
from xpnn import Conv1d, Conv2d, ReLU, Sequential
from xpnn._compat import device as device_of
from xpnn.interop.torch import from_torch, to_torch
from xpnn.layers import from_config
from xpnn.testing import assert_close, random_array, to_numpy

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")


def test_initialisation_is_torch_bound_and_bit_identical(xp, device, real_dtype):
    layer = Conv2d(4, 6, (3, 2), groups=2, xp=xp, device=device, dtype=real_dtype, seed=3)
    host_dtype = np.dtype(str(to_numpy(layer.weight).dtype))
    reference = Conv2d(4, 6, (3, 2), groups=2, dtype=host_dtype, seed=3)
    np.testing.assert_array_equal(to_numpy(layer.weight), reference.weight)
    np.testing.assert_array_equal(to_numpy(layer.bias), reference.bias)
    assert tuple(layer.weight.shape) == (6, 2, 3, 2)
    assert device_of(layer.weight) == device
    # torch: kaiming_uniform(a=sqrt(5)) -> 1/sqrt(fan_in), fan_in = 4/2 * 3*2.
    bound = 1 / math.sqrt(12)
    assert np.abs(reference.weight).max() <= bound
    assert np.abs(reference.bias).max() <= bound
    assert np.abs(reference.weight).max() > 0.7 * bound


def test_layer_matches_torch_autograd(xp, device, real_dtype):
    """The layer's own work (gradients kept, accumulated, used once); the math is in functional."""
    layer = Conv2d(
        4,
        2,
        (3, 2),
        stride=(2, 1),
        padding=1,
        dilation=(1, 2),
        groups=2,
        seed=0,
        xp=xp,
        device=device,
        dtype=real_dtype,
    )
    twin = to_torch(layer, dtype="float64")
    x = random_array(xp, (2, 4, 5, 5), dtype=real_dtype, device=device, seed=1)
    y, backward = layer.forward(x)
    tx = torch.tensor(to_numpy(x), dtype=torch.float64, requires_grad=True)
    ty = twin(tx)
    dy = random_array(xp, tuple(ty.shape), dtype=real_dtype, device=device, seed=2)
    ty.backward(torch.tensor(to_numpy(dy), dtype=torch.float64))
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    assert_close(y, ty.detach().numpy(), **same, err_msg="y")
    dx = backward(dy, retain_graph=True)
    assert_close(dx, tx.grad.numpy(), **same, err_msg="dx")
    for local, param in twin.named_parameters():
        assert_close(layer.grads[local], param.grad.numpy(), **same, err_msg=local)
    # A second call accumulates; a third (without retain_graph) is refused.
    backward(dy)
    for local, param in twin.named_parameters():
        assert_close(layer.grads[local], 2 * param.grad.numpy(), **same, err_msg=local)
    with pytest.raises(RuntimeError):
        backward(dy)
    assert_close(layer(x), ty.detach().numpy(), **same, err_msg="__call__")
    # input_grad=False: no dx, the parameter gradients still.
    layer.zero_grad()
    _, backward = layer.forward(x, input_grad=False)
    assert backward(dy) is None
    assert_close(layer.grads["weight"], twin.weight.grad.numpy(), **same, err_msg="weight")


def test_from_torch_to_torch_and_state_dict():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 4, (2, 3), padding="same", groups=2, bias=False),
    ).double()
    model = from_torch(net, xp=np)
    x = torch.randn(2, 2, 7, 6, dtype=torch.float64)
    np.testing.assert_allclose(model(x.numpy()), net(x).detach().numpy(), atol=1e-12)
    back = to_torch(model)
    np.testing.assert_array_equal(back(x).detach().numpy(), net(x).detach().numpy())
    # torch's layout: the state dict is torch's, untransposed.
    state = model.state_dict()
    assert state.keys() == net.state_dict().keys()
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(state[key], value.numpy())
    conv1 = from_torch(torch.nn.Conv1d(3, 2, 2, dilation=2).double(), xp=np)
    assert type(conv1) is Conv1d
    assert (conv1.kernel_size, conv1.dilation) == ((2,), (2,))
    with pytest.raises(ValueError, match="zeros only"):
        from_torch(torch.nn.Conv1d(3, 2, 2, padding=1, padding_mode="reflect"))


def test_checkpoint_round_trip(xp, device, tmp_path):
    """In the device's default dtype: the dtypes' own round trips are test_checkpoint's."""
    where = {"xp": xp, "device": device}
    # Not a network that runs: a checkpoint of every option.
    model = Sequential(
        Conv2d(2, 4, 3, stride=(2, 1), padding=1, **where, seed=0),
        ReLU(),
        Conv2d(4, 2, 2, padding="same", groups=2, **where, seed=1),
        Conv1d(2, 2, 3, dilation=2, padding="valid", bias=False, **where, seed=2),
    )
    path = tmp_path / "conv.safetensors"
    xpnn.save(model, path)
    loaded = xpnn.load(path, xp=xp, device=device)
    assert repr(loaded) == repr(model)
    for (name, a), (_, b) in zip(model.named_parameters(), loaded.named_parameters(), strict=True):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b), err_msg=name)
    rebuilt = from_config(model.config())
    assert repr(rebuilt.config()) == repr(model.config())


def test_constructor_errors():
    with pytest.raises(ValueError, match="padding_mode='zeros' only"):
        Conv2d(2, 2, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="divisible by groups"):
        Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="strided"):
        Conv1d(2, 2, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="kernel_size must be an int or 2 ints"):
        Conv2d(2, 2, (3, 3, 3))
    layer = Conv1d(2, 3, 2, seed=0)
    with pytest.raises(ValueError, match="expected 2 channels"):
        layer(np.ones((1, 3, 5)))
    assert "Conv1d(in_channels=2, out_channels=3, kernel_size=(2,)" in repr(layer)

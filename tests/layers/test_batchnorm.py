"""xpnn.BatchNorm1d / BatchNorm2d against torch.nn, and their buffers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xpnn
from xpnn import BatchNorm1d, BatchNorm2d, Linear, Sequential
from xpnn.interop.torch import from_torch, to_torch
from xpnn.testing import assert_close, random_array, to_numpy

CASES = [
    (BatchNorm1d, (4, 3), 0.1, True, True),
    (BatchNorm1d, (3, 2, 3), None, True, True),
    (BatchNorm2d, (2, 3, 2, 2), 0.1, False, True),
    (BatchNorm2d, (2, 2, 3, 3), 0.1, True, False),
]
IDS = ["1d-2d", "1d-3d-cumulative", "2d-plain", "2d-untracked"]


def _torch_twin(kind, channels, momentum, affine, track):
    cls = torch.nn.BatchNorm1d if kind is BatchNorm1d else torch.nn.BatchNorm2d
    return cls(channels, momentum=momentum, affine=affine, track_running_stats=track).double()


@pytest.mark.parametrize(("kind", "shape", "momentum", "affine", "track"), CASES, ids=IDS)
def test_steps_match_torch(xp, device, real_dtype, kind, shape, momentum, affine, track):
    channels = shape[1]
    layer = kind(channels, momentum=momentum, affine=affine, track_running_stats=track)
    layer.to(xp, device, real_dtype)
    twin = _torch_twin(kind, channels, momentum, affine, track)
    if affine:
        weight = random_array(xp, (channels,), dtype=real_dtype, device=device, seed=7)
        layer.weight = weight
        with torch.no_grad():
            twin.weight.copy_(torch.tensor(to_numpy(weight), dtype=torch.float64))
    tol = {"xp": xp, "device": device, "dtype": real_dtype}
    for step in range(4):
        if step == 3:  # the last step in eval mode
            layer.eval()
            twin.eval()
        x = random_array(xp, shape, dtype=real_dtype, device=device, seed=step)
        dy = random_array(xp, shape, dtype=real_dtype, device=device, seed=10 + step)
        layer.zero_grad()
        twin.zero_grad()
        y, backward = layer.forward(x)
        dx = backward(dy)
        tx = torch.tensor(to_numpy(x), dtype=torch.float64, requires_grad=True)
        ty = twin(tx)
        ty.backward(torch.tensor(to_numpy(dy), dtype=torch.float64))
        assert_close(y, ty.detach().numpy(), **tol)
        assert_close(dx, tx.grad.numpy(), **tol)
        if affine:
            assert_close(layer.grads["weight"], twin.weight.grad.numpy(), **tol)
            assert_close(layer.grads["bias"], twin.bias.grad.numpy(), **tol)
        if track:
            assert_close(layer.running_mean, twin.running_mean.numpy(), **tol)
            assert_close(layer.running_var, twin.running_var.numpy(), **tol)
            count = layer.num_batches_tracked
            assert count.shape == ()
            assert xp.isdtype(count.dtype, "integral")
            assert int(to_numpy(count)) == int(twin.num_batches_tracked)
        else:
            assert layer.buffers == {}
    names = [name for name, _ in layer.named_buffers()]
    assert list(layer.state_dict()) == list(twin.state_dict())
    assert names == [n for n in twin.state_dict() if n.startswith(("running", "num"))]


def test_one_value_per_channel_is_refused_in_training():
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        BatchNorm1d(3)(np.ones((1, 3)))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        BatchNorm2d(2)(np.ones((1, 2, 1, 1)))
    assert BatchNorm1d(3).eval()(np.ones((1, 3))).shape == (1, 3)
    with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input\)"):
        BatchNorm1d(2)(np.ones((2, 2, 2, 2)))
    with pytest.raises(ValueError, match=r"expected 4D input \(got 2D input\)"):
        BatchNorm2d(2)(np.ones((2, 2)))
    with pytest.raises(KeyError, match="no buffer"):
        BatchNorm1d(2).set_buffer("running_std", np.ones(2))
    with pytest.raises(TypeError, match="integral"):
        BatchNorm1d(2).set_buffer("num_batches_tracked", np.asarray(1.0))


def test_checkpoint_round_trip_keeps_buffers(xp, device, tmp_path):
    model = Sequential(Linear(3, 2, seed=0), BatchNorm1d(2, momentum=None))
    model.to(xp, device, xp.float32)
    for seed in range(2):
        model(random_array(xp, (4, 3), dtype=xp.float32, device=device, seed=seed))
    xpnn.save(model, tmp_path / "bn.safetensors")
    loaded = xpnn.load(tmp_path / "bn.safetensors", xp=xp, device=device)
    for (name, ours), (other, theirs) in zip(
        model.named_buffers(), loaded.named_buffers(), strict=True
    ):
        assert name == other
        assert_close(theirs, to_numpy(ours), xp=xp, device=device, dtype=ours.dtype)
    x = random_array(xp, (4, 3), dtype=xp.float32, device=device, seed=9)
    model.eval()
    loaded.eval()
    assert_close(loaded(x), to_numpy(model(x)), xp=xp, device=device, dtype=xp.float32)


def test_module_to_moves_buffers():
    import array_api_strict as xps

    layer = BatchNorm2d(2)
    layer(np.random.default_rng(0).normal(size=(2, 2, 2, 2)))
    before = {name: np.asarray(value) for name, value in layer.named_buffers()}
    layer.to(xps, device="device1", dtype="float32")
    for name, value in layer.named_buffers():
        assert value.device == xps.Device("device1")
        kind = "integral" if name == "num_batches_tracked" else "real floating"
        assert xps.isdtype(value.dtype, kind)
        np.testing.assert_allclose(to_numpy(value), before[name], rtol=1e-6)
    assert layer.num_batches_tracked.dtype == xps.int64
    layer(xps.ones((2, 2, 2, 2), device=xps.Device("device1")))  # trains there
    assert int(to_numpy(layer.num_batches_tracked)) == 2


@pytest.mark.parametrize("kind", ["1d", "2d"])
def test_torch_conversions(kind):
    torch.manual_seed(0)
    if kind == "1d":
        net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2, momentum=None))
        x = torch.randn(4, 3, dtype=torch.float64)
    else:
        net = torch.nn.Sequential(torch.nn.BatchNorm2d(3))
        x = torch.randn(2, 3, 2, 2, dtype=torch.float64)
    net = net.double()
    net(x)  # running statistics that are not the initial ones
    model = from_torch(net, xp=np)
    assert model.training
    for train in (True, False):
        net.train(train)
        model.train(train)
        np.testing.assert_allclose(model(x.numpy()), net(x).detach().numpy(), atol=1e-12)
        expected = {k: v.numpy() for k, v in net.state_dict().items()}
        for name, value in model.state_dict().items():
            np.testing.assert_allclose(to_numpy(value), expected[name], atol=1e-12)
    twin = to_torch(model.train())
    assert twin.training
    twin(x)
    model(x.numpy())
    for name, value in twin.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[name], value.numpy(), atol=1e-12)
    assert twin.state_dict()[list(twin.state_dict())[-1]].dtype == torch.int64


@pytest.mark.backend("jax")
def test_jax_buffers_are_replaced_and_traced_steps_return_them():
    import jax.numpy as jnp

    from xpnn.interop.jax import train_step

    layer = BatchNorm1d(2).to(jnp, dtype="float32")
    old = dict(layer.buffers)
    layer(jnp.asarray([[1.0, 2.0], [3.0, 5.0]], dtype=jnp.float32))
    for name, value in layer.buffers.items():
        assert value is not old[name]
    np.testing.assert_array_equal(np.asarray(old["running_mean"]), np.zeros(2))
    np.testing.assert_allclose(np.asarray(layer.running_mean), [0.2, 0.35], rtol=1e-6)
    model = Sequential(Linear(2, 2, seed=0), BatchNorm1d(2)).to(jnp, dtype="float32")
    step = train_step(model, xpnn.MSELoss(), xpnn.optim.SGD(model, lr=0.1))
    params, state = step.init()
    x = jnp.asarray([[1.0, 2.0], [3.0, 5.0], [0.0, 1.0], [2.0, 2.0]], dtype=jnp.float32)
    params, state, _ = step(params, state, x, x)
    # The new statistics come back; the model keeps its own until write_back.
    assert int(params["1.num_batches_tracked"]) == 1
    assert int(model[1].num_batches_tracked) == 0
    step.write_back(params, state)
    assert model[1].running_mean is params["1.running_mean"]


@pytest.mark.backend("torch")
def test_torch_compiled_step_updates_buffers_as_eager_steps():
    from xpnn.interop.step import TrainStep
    from xpnn.interop.torch import compiled_step

    x, y = torch.randn(4, 3, generator=torch.Generator().manual_seed(0)), torch.zeros(4, 2)
    models = []
    for compiled in (True, False):
        model = Sequential(Linear(3, 2, seed=0), BatchNorm1d(2, momentum=None))
        model.to(torch, dtype="float32")
        optimizer = xpnn.optim.SGD(model, lr=0.1)
        if compiled:
            step = compiled_step(model, xpnn.MSELoss(), optimizer, backend="eager")
        else:
            step = TrainStep(model, xpnn.MSELoss(), optimizer)
        params, state = step.init()
        for _ in range(3):
            params, state, _ = step(params, state, x, y)
        step.write_back(params, state)
        models.append(model)
    ours, eager = (dict(model.state_dict()) for model in models)
    assert int(ours["1.num_batches_tracked"]) == 3
    for name, value in ours.items():
        torch.testing.assert_close(value, eager[name])

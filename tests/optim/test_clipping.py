"""xpnn.optim.clipping against torch.nn.utils.clip_grad_norm_ / clip_grad_value_."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from oracles import make_model
from xpnn import Linear
from xpnn.optim.clipping import clip_grad_norm_, clip_grad_value_
from xpnn.testing import assert_close, random_array, to_numpy


def _feed(model, xp, device, dtype, scale):
    """Random gradients (the first bias left None); return them on the host."""
    given = {}
    for index, (name, param) in enumerate(model.named_parameters()):
        if name == "0.bias":
            continue
        grad = random_array(xp, tuple(param.shape), dtype=dtype, device=device, seed=index)
        grad = grad * scale
        model.set_gradient(name, grad)
        given[name] = (grad, to_numpy(grad))
    return given


def _torch_params(given):
    params = []
    for _, host in given.values():
        param = torch.nn.Parameter(torch.zeros(host.shape, dtype=torch.float64))
        param.grad = torch.from_numpy(host.astype(np.float64))
        params.append(param)
    return params


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_matches_torch(xp, device, real_dtype, norm_type, max_norm):
    model = make_model("sequential", xp, device, real_dtype)
    given = _feed(model, xp, device, real_dtype, scale=3.0)
    params = _torch_params(given)
    expected = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type)
    total = clip_grad_norm_(model, max_norm, norm_type=norm_type)
    assert_close(total, expected.numpy(), xp=xp, device=device, dtype=real_dtype)
    grads = dict(model.named_gradients())
    assert grads["0.bias"] is None
    for (name, (before, host)), param in zip(given.items(), params, strict=True):
        assert_close(grads[name], param.grad.numpy(), xp=xp, device=device, dtype=real_dtype)
        # The array the caller gave is not changed.
        np.testing.assert_array_equal(to_numpy(before), host)


def test_clip_grad_value_matches_torch(xp, device, real_dtype):
    model = make_model("sequential", xp, device, real_dtype)
    given = _feed(model, xp, device, real_dtype, scale=1.0)
    params = _torch_params(given)
    torch.nn.utils.clip_grad_value_(params, 0.4)
    assert clip_grad_value_(model, 0.4) is None
    grads = dict(model.named_gradients())
    assert grads["0.bias"] is None
    for (name, (before, host)), param in zip(given.items(), params, strict=True):
        assert_close(grads[name], param.grad.numpy(), xp=xp, device=device, dtype=real_dtype)
        np.testing.assert_array_equal(to_numpy(before), host)


def test_nonfinite_norm_raises_only_when_asked():
    layer = Linear(2, 2, seed=0)
    layer.grads["weight"] = np.array([[np.nan, 1.0], [0.0, 1.0]])
    with pytest.raises(RuntimeError, match="not finite"):
        clip_grad_norm_(layer, 1.0, error_if_nonfinite=True)
    assert np.isnan(clip_grad_norm_(layer, 1.0))


def test_no_gradients_gives_a_zero_norm():
    layer = Linear(2, 2, seed=0)
    total = clip_grad_norm_(layer, 1.0)
    assert total.shape == ()
    assert float(total) == 0.0
    assert total.dtype == layer.weight.dtype


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m: clip_grad_norm_(m, "1"), TypeError, "max_norm must be a real number"),
        (lambda m: clip_grad_norm_(m, 1.0, norm_type=0), ValueError, "norm_type must be"),
        (lambda m: clip_grad_norm_([1.0], 1.0), TypeError, "xpnn Module"),
        (lambda m: clip_grad_value_(m, -1.0), ValueError, "clip_value must be >= 0"),
        (lambda m: clip_grad_value_(m, None), TypeError, "clip_value must be a real"),
    ],
)
def test_arguments_are_checked(call, error, match):
    with pytest.raises(error, match=match):
        call(Linear(2, 2, seed=0))

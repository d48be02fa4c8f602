"""xpnn.functional.batch_norm and its backward against torch.autograd and finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from xpnn.functional import batch_norm, batch_norm_backward
from xpnn.testing import assert_close, check_gradients, random_array, to_numpy


def _inputs(xp, device, dtype, shape, seed=0):
    channels = shape[1]
    x = random_array(xp, shape, dtype=dtype, device=device, seed=seed)
    mean = random_array(xp, (channels,), dtype=dtype, device=device, seed=seed + 1)
    var = xp.abs(random_array(xp, (channels,), dtype=dtype, device=device, seed=seed + 2)) + 0.5
    weight = random_array(xp, (channels,), dtype=dtype, device=device, seed=seed + 3)
    bias = random_array(xp, (channels,), dtype=dtype, device=device, seed=seed + 4)
    return x, mean, var, weight, bias


def _t(a):
    return torch.tensor(to_numpy(a), dtype=torch.float64)


@pytest.mark.parametrize(
    ("shape", "training"),
    [((4, 3), True), ((2, 3, 3), False), ((2, 3, 2, 3), True)],
    ids=["2d-train", "3d-eval", "4d-train"],
)
def test_forward_and_running_statistics_match_torch(xp, device, real_dtype, shape, training):
    x, mean, var, weight, bias = _inputs(xp, device, real_dtype, shape)
    y, new_mean, new_var = batch_norm(x, mean, var, weight, bias, training, 0.3, 1e-3)
    t_mean, t_var = _t(mean), _t(var)
    expected = F.batch_norm(_t(x), t_mean, t_var, _t(weight), _t(bias), training, 0.3, 1e-3)
    assert_close(y, expected.numpy(), xp=xp, device=device, dtype=real_dtype)
    assert_close(new_mean, t_mean.numpy(), xp=xp, device=device, dtype=real_dtype)
    assert_close(new_var, t_var.numpy(), xp=xp, device=device, dtype=real_dtype)
    if not training:
        assert new_mean is mean
        assert new_var is var


@pytest.mark.parametrize(
    ("shape", "training", "affine"),
    [((4, 3), True, True), ((2, 3, 2, 3), True, False), ((2, 3, 3), False, True)],
    ids=["2d-train", "4d-train-plain", "3d-eval"],
)
def test_gradients_match_torch(xp, device, real_dtype, shape, training, affine):
    x, mean, var, weight, bias = _inputs(xp, device, real_dtype, shape, seed=5)
    if not affine:
        weight = bias = None
    dy = random_array(xp, shape, dtype=real_dtype, device=device, seed=9)
    running = (None, None) if training else (mean, var)
    dx, dweight, dbias = batch_norm_backward(
        dy, x, *running, weight, has_bias=affine, training=training, eps=1e-3
    )
    tx = _t(x).requires_grad_()
    tw = _t(weight).requires_grad_() if affine else None
    tb = _t(bias).requires_grad_() if affine else None
    t_running = (None, None) if training else (_t(mean), _t(var))
    F.batch_norm(tx, *t_running, tw, tb, training, 0.1, 1e-3).backward(_t(dy))
    assert_close(dx, tx.grad.numpy(), xp=xp, device=device, dtype=real_dtype)
    if affine:
        assert_close(dweight, tw.grad.numpy(), xp=xp, device=device, dtype=real_dtype)
        assert_close(dbias, tb.grad.numpy(), xp=xp, device=device, dtype=real_dtype)
    else:
        assert dweight is None
        assert dbias is None


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_finite_differences(xp, device, training):
    dtype = xp.float32
    x, mean, var, weight, bias = _inputs(xp, device, dtype, (3, 2, 2), seed=2)

    def f(x, weight, bias, mean, var):
        running = (None, None) if training else (mean, var)
        return batch_norm(x, *running, weight, bias, training)[0]

    def backward(dy, x, weight, bias, mean, var):
        running = (None, None) if training else (mean, var)
        dx, dw, db = batch_norm_backward(dy, x, *running, weight, training=training)
        return dx, dw, db, None, None

    check_gradients(f, backward, [x, weight, bias, mean, var])


def test_refusals():
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        batch_norm(np.ones((1, 3)), training=True)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        batch_norm(np.ones((1, 2, 1, 1)), np.zeros(2), np.ones(2), training=True)
    y, _, _ = batch_norm(np.ones((1, 3)), np.zeros(3), np.ones(3))  # eval: fine
    assert y.shape == (1, 3)
    with pytest.raises(ValueError, match=r"running_mean must have shape \(3,\)"):
        batch_norm(np.ones((2, 3)), np.zeros(2), np.ones(2), training=True)
    with pytest.raises(ValueError, match="eval mode"):
        batch_norm(np.ones((2, 3)))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        batch_norm(np.ones(3), training=True)
    with pytest.raises(TypeError, match="real floating"):
        batch_norm(np.ones((2, 3), dtype=np.int64), training=True)
    with pytest.raises(ValueError, match="shape of the output"):
        batch_norm_backward(np.ones((2, 2)), np.ones((2, 3)), training=True)

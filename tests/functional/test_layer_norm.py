"""xpnn.functional.layer_norm, rms_norm and their backward: torch.autograd, finite differences."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from selection import require_float64
from xpnn.functional import layer_norm, layer_norm_backward, rms_norm, rms_norm_backward
from xpnn.testing import assert_close, check_gradients, random_array, to_numpy

# (x shape, normalized_shape, weight, bias): the last 1 and the last 2 dimensions.
CASES = [
    ((3, 4), (4,), True, True),
    ((2, 3, 4), 4, True, False),
    ((2, 2, 3), (2, 3), False, False),
    ((2, 2, 3), (2, 3), True, True),
]
IDS = ["last1-affine", "last1-weight-only", "last2-plain", "last2-affine"]


def _t(a):
    return torch.tensor(to_numpy(a), dtype=torch.float64, requires_grad=True)


def _inputs(xp, device, dtype, shape, normalized, with_weight, with_bias):
    normalized = (normalized,) if isinstance(normalized, int) else normalized
    x = random_array(xp, shape, dtype=dtype, device=device, seed=1)
    dy = random_array(xp, shape, dtype=dtype, device=device, seed=2)
    weight = (
        random_array(xp, normalized, dtype=dtype, device=device, seed=3) if with_weight else None
    )
    bias = random_array(xp, normalized, dtype=dtype, device=device, seed=4) if with_bias else None
    return x, dy, weight, bias


@pytest.mark.parametrize(("shape", "normalized", "with_weight", "with_bias"), CASES, ids=IDS)
def test_layer_norm_matches_torch(
    xp, device, real_dtype, shape, normalized, with_weight, with_bias
):
    x, dy, weight, bias = _inputs(xp, device, real_dtype, shape, normalized, with_weight, with_bias)
    y = layer_norm(x, normalized, weight, bias, eps=1e-3)
    dx, dweight, dbias = layer_norm_backward(
        dy, x, normalized, weight, has_bias=with_bias, eps=1e-3
    )
    tx = _t(x)
    tw = _t(weight) if with_weight else None
    tb = _t(bias) if with_bias else None
    size = (normalized,) if isinstance(normalized, int) else normalized
    ty = F.layer_norm(tx, size, tw, tb, eps=1e-3)
    ty.backward(torch.tensor(to_numpy(dy), dtype=torch.float64))
    tol = {"xp": xp, "device": device, "dtype": real_dtype}
    assert_close(y, ty.detach().numpy(), **tol)
    assert_close(dx, tx.grad.numpy(), **tol)
    assert (dweight is None) == (not with_weight)
    assert (dbias is None) == (not with_bias)
    if with_weight:
        assert_close(dweight, tw.grad.numpy(), **tol)
    if with_bias:
        assert_close(dbias, tb.grad.numpy(), **tol)


@pytest.mark.parametrize(
    ("shape", "normalized", "with_weight"),
    [((3, 4), 4, True), ((2, 2, 3), (2, 3), False)],
    ids=["last1", "last2-plain"],
)
def test_rms_norm_matches_torch(xp, device, real_dtype, shape, normalized, with_weight):
    x, dy, weight, _ = _inputs(xp, device, real_dtype, shape, normalized, with_weight, False)
    eps = None if with_weight else 1e-3
    y = rms_norm(x, normalized, weight, eps)
    dx, dweight = rms_norm_backward(dy, x, normalized, weight, eps)
    tx = _t(x)
    tw = _t(weight) if with_weight else None
    size = (normalized,) if isinstance(normalized, int) else normalized
    # eps=None is finfo(dtype).eps of the compute dtype, as torch's for that dtype.
    t_eps = (
        eps if eps is not None else torch.finfo(getattr(torch, str(real_dtype).split(".")[-1])).eps
    )
    ty = F.rms_norm(tx, size, tw, eps=t_eps)
    ty.backward(torch.tensor(to_numpy(dy), dtype=torch.float64))
    tol = {"xp": xp, "device": device, "dtype": real_dtype}
    assert_close(y, ty.detach().numpy(), **tol)
    assert_close(dx, tx.grad.numpy(), **tol)
    if with_weight:
        assert_close(dweight, tw.grad.numpy(), **tol)
    else:
        assert dweight is None


def test_gradients_match_finite_differences(xp, device):
    require_float64(xp, device)
    dtype = xp.float64
    x, dy, weight, bias = _inputs(xp, device, dtype, (2, 2, 3), (2, 3), True, True)

    def ln(x, weight, bias):
        return layer_norm(x, (2, 3), weight, bias, eps=1e-3)

    def ln_back(dy, x, weight, bias):
        return layer_norm_backward(dy, x, (2, 3), weight, has_bias=True, eps=1e-3)

    check_gradients(ln, ln_back, [x, weight, bias], cotangent=dy)

    weight3 = random_array(xp, (3,), dtype=dtype, device=device, seed=5)

    def rms(x, weight):
        return rms_norm(x, 3, weight, 1e-3)

    def rms_back(dy, x, weight):
        return rms_norm_backward(dy, x, 3, weight, 1e-3)

    check_gradients(rms, rms_back, [x, weight3], cotangent=dy)


def test_bad_inputs_are_refused():
    import numpy as np

    with pytest.raises(ValueError, match=r"expected input with shape \[\*, 3\]"):
        layer_norm(np.ones((2, 4)), 3)
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\)"):
        layer_norm(np.ones((2, 3)), 3, np.ones(2))
    with pytest.raises(TypeError, match="real floating"):
        rms_norm(np.ones((2, 3), dtype=np.int64), 3)
    with pytest.raises(ValueError, match="at least one dimension"):
        layer_norm(np.ones((2, 3)), ())

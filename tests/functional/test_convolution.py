"""xpnn.functional conv1d / conv2d and their backward passes, on every backend and device.

Few, tiny shapes: the JAX session compiles once per shape and option set.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from array_api_extra.testing import lazy_xp_function, patch_lazy_xp_functions

from xpnn.functional import conv1d, conv1d_backward, conv2d, conv2d_backward
from xpnn.testing import assert_close, check_gradients, random_array, to_numpy

# Called from this module, they refuse to compute on Dask and run under
# jax.jit on JAX.
for _function in (conv1d, conv1d_backward, conv2d, conv2d_backward):
    lazy_xp_function(_function)
del _function

# torch's note that 'same' with an even kernel copies its input.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")

# Looked up at each call, so that the lazy fixture's patched functions are used.
FUNCTIONS = {1: ("conv1d", "conv1d_backward"), 2: ("conv2d", "conv2d_backward")}


def functions(nd):
    return tuple(globals()[name] for name in FUNCTIONS[nd])


# (nd, x shape, weight shape, options, bias): odd sizes, stride with padding,
# dilation, depthwise and grouped, a batch of 1, an empty batch, 'same' with
# an asymmetric split, 'valid', unbatched inputs.
CASES = {
    "1d-stride-pad-dilation-depthwise": (
        1,
        (2, 4, 7),
        (4, 1, 2),
        {"stride": 2, "padding": 1, "dilation": 2, "groups": 4},
        True,
    ),
    "1d-same-even-kernel-unbatched": (1, (4, 6), (2, 4, 4), {"padding": "same"}, False),
    "2d-stride-pad-dilation-groups": (
        2,
        (2, 4, 7, 5),
        (4, 2, 3, 2),
        {"stride": (2, 3), "padding": (1, 2), "dilation": (1, 2), "groups": 2},
        True,
    ),
    "2d-same-batch-1": (2, (1, 3, 5, 4), (2, 3, 2, 3), {"padding": "same"}, True),
    "2d-valid-empty-batch": (
        2,
        (0, 2, 5, 5),
        (3, 2, 3, 3),
        {"padding": "valid", "stride": 2},
        True,
    ),
}


@pytest.fixture
def lazy(xp: Any, request: pytest.FixtureRequest) -> Iterator[None]:
    with patch_lazy_xp_functions(request, xp=xp):
        yield


def torch_reference(nd, x, w, b, dy, options):
    """``y, dx, dweight, dbias`` from torch.autograd in float64."""
    tx, tw = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w))
    tb = None if b is None else torch.tensor(b, dtype=torch.float64, requires_grad=True)
    function = torch.nn.functional.conv1d if nd == 1 else torch.nn.functional.conv2d
    y = function(tx, tw, tb, **options)
    y.backward(torch.tensor(dy, dtype=torch.float64))
    grads = [t.grad.numpy() if t.grad is not None else np.zeros(t.shape) for t in (tx, tw)]
    db = None if tb is None else tb.grad.numpy()
    return y.detach().numpy(), *grads, db


def out_shape(nd, x_shape, w_shape, options):
    with torch.no_grad():
        function = torch.nn.functional.conv1d if nd == 1 else torch.nn.functional.conv2d
        x = torch.zeros(x_shape, dtype=torch.float64)
        return tuple(function(x, torch.zeros(w_shape, dtype=torch.float64), **options).shape)


def make(xp, device, dtype, nd, x_shape, w_shape, options, seed=0):
    x = random_array(xp, x_shape, dtype=dtype, device=device, seed=seed)
    w = random_array(xp, w_shape, dtype=dtype, device=device, seed=seed + 1)
    b = random_array(xp, (w_shape[0],), dtype=dtype, device=device, seed=seed + 2)
    dy_shape = out_shape(nd, x_shape, w_shape, options)
    dy = random_array(xp, dy_shape, dtype=dtype, device=device, seed=seed + 3)
    return x, w, b, dy


@pytest.mark.usefixtures("lazy")
@pytest.mark.parametrize("case", list(CASES))
def test_matches_torch_autograd(xp, device, real_dtype, case):
    nd, x_shape, w_shape, options, has_bias = CASES[case]
    forward, backward = functions(nd)
    x, w, b, dy = make(xp, device, real_dtype, nd, x_shape, w_shape, options)
    bias = b if has_bias else None
    before = [to_numpy(a) for a in (x, w, b, dy)]
    y = forward(x, w, bias, **options)
    dx, dw, db = backward(dy, x, w, has_bias=has_bias, **options)
    for a, host in zip((x, w, b, dy), before, strict=True):  # inputs unmodified
        np.testing.assert_array_equal(to_numpy(a), host)
    want = torch_reference(
        nd, to_numpy(x), to_numpy(w), to_numpy(b) if has_bias else None, to_numpy(dy), options
    )
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    for name, got, ref in zip(("y", "dx", "dweight"), (y, dx, dw), want, strict=False):
        assert_close(got, ref, **same, err_msg=name)
    if has_bias:
        assert_close(db, want[3], **same, err_msg="dbias")
    else:
        assert db is None


@pytest.mark.parametrize(
    ("nd", "x_shape", "w_shape", "options"),
    [
        (1, (1, 2, 5), (2, 1, 2), {"stride": 2, "padding": 1, "dilation": 2, "groups": 2}),
        (2, (2, 3, 3), (2, 1, 2, 2), {"padding": "same", "groups": 2}),
    ],
    ids=["1d", "2d-unbatched"],
)
@pytest.mark.usefixtures("lazy")
def test_matches_finite_differences(xp, device, dtype, nd, x_shape, w_shape, options):
    """Complex too (1-d only: Dask evaluates a graph per element): torch's conjugates."""
    if nd == 2 and xp.isdtype(dtype, "complex floating"):
        pytest.skip("complex gradients are checked on the 1-d case")
    forward, backward = functions(nd)
    x, w, b, _ = make(xp, device, dtype, nd, x_shape, w_shape, options, seed=5)
    check_gradients(
        lambda x, w, b: forward(x, w, b, **options),
        lambda dy, x, w, b: backward(dy, x, w, **options),
        [x, w, b],
    )


@pytest.mark.usefixtures("lazy")
def test_mixed_precision_follows_promotion(xp, device):
    info = xp.__array_namespace_info__()
    if "float64" not in info.dtypes(device=device, kind="real floating"):
        pytest.skip("the device has no float64")
    x = random_array(xp, (1, 2, 4), dtype=xp.float32, device=device, seed=0)
    w = random_array(xp, (3, 2, 2), dtype=xp.float64, device=device, seed=1)
    forward, backward = functions(1)
    y = forward(x, w)
    assert y.dtype == xp.float64
    dx, dw, db = backward(xp.ones(y.shape, dtype=xp.float64, device=device), x, w)
    assert (dx.dtype, dw.dtype, db.dtype) == (xp.float32, xp.float64, xp.float64)


def test_errors():
    x, w = np.ones((1, 4, 5)), np.ones((2, 2, 3))
    with pytest.raises(ValueError, match="expected 2 channels"):
        conv1d(x, w)
    with pytest.raises(ValueError, match="strided"):
        conv1d(np.ones((1, 2, 5)), w, padding="same", stride=2)
    with pytest.raises(ValueError, match="'valid', 'same'"):
        conv1d(np.ones((1, 2, 5)), w, padding="full")
    with pytest.raises(ValueError, match="smaller than the dilated kernel"):
        conv1d(np.ones((1, 2, 5)), w, dilation=3)
    with pytest.raises(ValueError, match="groups=3 does not divide"):
        conv1d(np.ones((1, 6, 5)), w, groups=3)
    with pytest.raises(ValueError, match=r"x must have shape \(N, C, 2 spatial"):
        conv2d(np.ones((5,)), np.ones((2, 2, 3, 3)))
    with pytest.raises(ValueError, match="bias must have shape"):
        conv1d(np.ones((1, 2, 5)), w, np.ones(3))
    with pytest.raises(TypeError, match="stride must be an int"):
        conv1d(np.ones((1, 2, 5)), w, stride=1.5)
    with pytest.raises(ValueError, match="dy must have the shape of the output"):
        conv1d_backward(np.ones((1, 2, 4)), np.ones((1, 2, 5)), w)
    with pytest.raises(TypeError):
        conv1d(np.ones((1, 2, 5), dtype=np.int64), w)

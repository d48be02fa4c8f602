"""The exact GELU (erf form) against torch.autograd, on every backend and device."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from array_api_extra.testing import lazy_xp_function, patch_lazy_xp_functions

from xpnn.functional.activations import gelu, gelu_backward
from xpnn.layers.activations import GELU
from xpnn.testing import assert_close

# Called from this module, they refuse to compute on Dask and run under
# jax.jit on JAX.
lazy_xp_function(gelu)
lazy_xp_function(gelu_backward)

# Each range of erf (|x| / sqrt(2) below 0.5, to 4, beyond), both signs, 0.
VALUES = [-12.0, -7.5, -3.0, -1.2, -0.6, -1e-3, 0.0, 0.4, 0.9, 2.5, 6.0, 30.0]


@pytest.fixture
def lazy(xp: Any, request: pytest.FixtureRequest) -> Iterator[None]:
    with patch_lazy_xp_functions(request, xp=xp):
        yield


def torch_reference(host: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``gelu(x)`` and ``dx`` from torch.autograd in float64, ``approximate="none"``."""
    t = torch.tensor(host, dtype=torch.float64, requires_grad=True)
    y = torch.nn.functional.gelu(t, approximate="none")
    y.backward(torch.tensor(dy, dtype=torch.float64))
    assert t.grad is not None
    return y.detach().numpy(), t.grad.numpy()


@pytest.mark.usefixtures("lazy")
def test_exact_gelu_matches_torch_autograd(xp, device, real_dtype):
    host = np.array(VALUES).reshape(3, 4)
    dy_h = np.linspace(-1.5, 2.0, host.size).reshape(3, 4)
    want_y, want_dx = torch_reference(host, dy_h)
    x = xp.asarray(host, dtype=real_dtype, device=device)
    dy = xp.asarray(dy_h, dtype=real_dtype, device=device)
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    assert_close(gelu(x), want_y, **same)
    assert_close(gelu(x, approximate="none"), want_y, **same)
    assert_close(gelu_backward(dy, x), want_dx, **same)


def test_layer_forms_and_their_gradients(xp, device, real_dtype):
    host = np.array(VALUES[1:-1])
    dy_h = np.ones_like(host)
    x = xp.asarray(host, dtype=real_dtype, device=device)
    dy = xp.asarray(dy_h, dtype=real_dtype, device=device)
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    for layer, form in ((GELU(), "none"), (GELU("tanh"), "tanh")):
        t = torch.tensor(host, dtype=torch.float64, requires_grad=True)
        want = torch.nn.functional.gelu(t, approximate=form)
        want.backward(torch.tensor(dy_h))
        assert t.grad is not None
        y, backward = layer.forward(x)
        assert_close(y, want.detach().numpy(), **same)
        assert_close(backward(dy), t.grad.numpy(), **same)


def test_approximate_is_checked():
    x = np.zeros(2)
    for bad in ("exact", "Tanh", None, True):
        with pytest.raises(ValueError, match="approximate must be 'none'"):
            gelu(x, approximate=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="approximate must be 'none'"):
            gelu_backward(x, x, approximate=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="approximate must be 'none'"):
            GELU(bad)  # type: ignore[arg-type]


def test_exact_backward_is_finite_at_infinity():
    x = np.array([np.inf, -np.inf, 1e300, -1e300])
    np.testing.assert_array_equal(gelu_backward(np.ones(4), x), [1.0, 0.0, 1.0, 0.0])

"""xpnn.functional.recurrent: the checks and the kernels called directly."""

from __future__ import annotations

import array_api_strict as xps
import numpy as np
import pytest
import torch

from xpnn.functional.recurrent import (
    check_lengths_values,
    check_recurrent,
    check_recurrent_backward,
    recurrent_backward_kernel,
    recurrent_kernel,
)
from xpnn.testing import assert_close, random_array, to_numpy

SETTINGS = {"mode": "GRU", "hidden": 2, "layers": 1, "directions": 1, "batch_first": False}


def _weights(xp, device, dtype):
    shapes = [(6, 3), (6, 2), (6,), (6,)]
    return [
        random_array(xp, shape, dtype=dtype, device=device, seed=10 + i)
        for i, shape in enumerate(shapes)
    ]


def test_mixed_dtypes_compute_in_the_result_type(xp, device):
    """float32 input, float64 weights: float64 outputs, each gradient in its array's dtype."""
    if "float64" not in xp.__array_namespace_info__().dtypes(device=device):
        pytest.skip("the device has no float64")
    x = random_array(xp, (3, 2, 3), dtype=xp.float32, device=device, seed=1)
    weights = _weights(xp, device, xp.float64)
    lengths = xp.asarray([3, 2], device=device)
    checked = check_recurrent(x, None, None, lengths, *weights, **SETTINGS)
    assert checked.dtype == xp.float64
    check_lengths_values(lengths, 3)
    output, h_n, c_n, saved = recurrent_kernel(checked, x, [tuple(weights)], None, None, lengths)
    alone, alone_h, _, nothing = recurrent_kernel(
        checked, x, [tuple(weights)], None, None, lengths, keep=False
    )
    assert c_n is None
    assert nothing is None
    d_out = random_array(xp, (3, 2, 2), dtype=xp.float64, device=device, seed=2)
    back = check_recurrent_backward(d_out, None, None, output, h_n, forward=checked)
    dx, dh0, _, grads = recurrent_backward_kernel(back, saved, d_out, None, None)

    twin = torch.nn.GRU(3, 2).double()
    names = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    twin.load_state_dict(
        {n: torch.tensor(to_numpy(w)) for n, w in zip(names, weights, strict=True)}
    )
    tx = torch.tensor(to_numpy(x), dtype=torch.float64, requires_grad=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor([3, 2]))
    th0 = torch.zeros((1, 2, 2), dtype=torch.float64, requires_grad=True)
    t_out, t_h = twin(packed, th0)
    t_out, _ = torch.nn.utils.rnn.pad_packed_sequence(t_out, total_length=3)
    (t_out * torch.tensor(to_numpy(d_out))).sum().backward()
    f64 = {"xp": xp, "device": device, "dtype": xp.float64}
    assert_close(output, t_out.detach().numpy(), **f64)
    assert_close(alone, t_out.detach().numpy(), **f64)
    assert_close(alone_h, t_h.detach().numpy(), **f64)
    assert_close(dx, tx.grad.numpy(), xp=xp, device=device, dtype=xp.float32)
    assert_close(dh0, th0.grad.numpy(), **f64)  # h0 None: zeros, whose gradient is this
    for grad, parameter in zip(grads, twin.parameters(), strict=True):
        assert_close(grad, parameter.grad.numpy(), **f64)


def test_checks_refuse_before_any_arithmetic():
    x = np.zeros((3, 2, 3))
    weights = _weights(np, None, np.float64)
    with pytest.raises(TypeError, match="real floating dtype"):
        check_recurrent(x.astype(np.complex128), None, None, None, *weights, **SETTINGS)
    with pytest.raises(TypeError, match="integer dtype"):
        check_recurrent(x, None, None, np.ones(2), *weights, **SETTINGS)
    with pytest.raises(TypeError):
        check_recurrent(x, None, None, None, *_weights(xps, None, xps.float64), **SETTINGS)
    moved = xps.asarray(x, device=xps.Device("device1"))
    strict = _weights(xps, xps.Device("device2"), xps.float64)
    with pytest.raises(ValueError, match="device"):
        check_recurrent(moved, None, None, None, *strict, **SETTINGS)
    with pytest.raises(ValueError, match=r"Expected hidden size \(1, 2, 2\)"):
        check_recurrent(x, np.zeros((2, 2, 2)), None, None, *weights, **SETTINGS)
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 3\]"):
        check_lengths_values(np.array([4, 1]), 3)
    check_lengths_values(np.array([3, 1]), 3)

"""xpnn.functional.padding_mask, masked_mean and its backward against torch.autograd."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selection import require_float64
from xpnn.functional import masked_mean, masked_mean_backward, padding_mask
from xpnn.testing import assert_close, check_gradients, random_array, to_numpy

# (lengths, max_length, axis): odd lengths, a batch of 1, all full length,
# length 1, all but one position hidden, a fully masked row, time first.
CASES = [
    ([3, 1, 2], 3, 1),
    ([2], 3, 1),
    ([3, 3], 3, 1),
    ([1, 1], 1, 1),
    ([1, 0, 3], 3, 1),
    ([2, 3], 3, 0),
]
IDS = ["odd", "batch1", "full", "length1", "one-kept-and-empty", "time-first"]


def _torch_masked_mean(x, keep, axis):
    """Sum of the kept steps over max(count, 1): the mean, or zero for an empty row."""
    keep = keep.T if axis == 0 else keep
    keep = keep[..., None].to(x.dtype)
    count = keep.sum(dim=axis).clamp(min=1.0)
    return (x * keep).sum(dim=axis) / count


@pytest.mark.parametrize(("lengths", "steps", "axis"), CASES, ids=IDS)
def test_masked_mean_matches_torch(xp, device, real_dtype, lengths, steps, axis):
    info = xp.__array_namespace_info__()
    integral = info.default_dtypes(device=device)["integral"]
    lens = xp.asarray(lengths, dtype=integral, device=device)
    mask = padding_mask(lens, steps)
    expected_mask = np.arange(steps)[None, :] >= np.asarray(lengths)[:, None]
    assert_close(mask, expected_mask, xp=xp, device=device, dtype=xp.bool)
    batch = len(lengths)
    shape = (batch, steps, 2) if axis == 1 else (steps, batch, 2)
    x = random_array(xp, shape, dtype=real_dtype, device=device, seed=0)
    dy = random_array(xp, (batch, 2), dtype=real_dtype, device=device, seed=1)
    y = masked_mean(x, mask, axis=axis)
    dx = masked_mean_backward(dy, x, mask, axis=axis)
    tx = torch.tensor(to_numpy(x), dtype=torch.float64, requires_grad=True)
    ty = _torch_masked_mean(tx, torch.tensor(~expected_mask), axis)
    ty.backward(torch.tensor(to_numpy(dy), dtype=torch.float64))
    tol = {"xp": xp, "device": device, "dtype": real_dtype}
    assert_close(y, ty.detach().numpy(), **tol)
    assert_close(dx, tx.grad.numpy(), **tol)


def test_gradient_matches_finite_differences(xp, device):
    require_float64(xp, device)
    info = xp.__array_namespace_info__()
    lens = xp.asarray(
        [2, 0, 3], dtype=info.default_dtypes(device=device)["integral"], device=device
    )
    mask = padding_mask(lens, 3)
    x = random_array(xp, (3, 3, 2), dtype=xp.float64, device=device, seed=2)

    def f(x):
        return masked_mean(x, mask)

    def back(dy, x):
        return (masked_mean_backward(dy, x, mask),)

    check_gradients(f, back, [x])


def test_padding_is_never_read_and_bad_inputs_are_refused():
    x = np.array([[[1.0], [np.nan], [np.inf]]])
    mask = padding_mask(np.array([1]), 3)
    np.testing.assert_array_equal(masked_mean(x, mask), [[1.0]])
    np.testing.assert_array_equal(
        masked_mean_backward(np.ones((1, 1)), x, mask), [[[1.0], [0.0], [0.0]]]
    )
    with pytest.raises(ValueError, match=r"lengths must be in \[0, max_length\] = \[0, 3\], got 4"):
        padding_mask(np.array([1, 4]), 3)
    with pytest.raises(ValueError, match="got -1"):
        padding_mask(np.array([-1, 2]), 3)
    with pytest.raises(TypeError, match="integer dtype"):
        padding_mask(np.array([1.0]), 3)
    with pytest.raises(TypeError, match="bool array"):
        masked_mean(x, np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"mask must have shape \(batch, time\) = \(1, 3\)"):
        masked_mean(x, np.zeros((3, 1), dtype=bool))

"""xpnn.Dropout: seeded masks, identical on every backend and device."""

from __future__ import annotations

import numpy as np
import pytest

from xpnn import Dropout, Linear, Sequential
from xpnn.testing import assert_close, random_array, to_numpy


def test_same_seed_same_masks_on_every_backend(xp, device, dtype):
    ours, reference = Dropout(0.3, seed=11), Dropout(0.3, seed=11)
    host_dtype = np.dtype(str(to_numpy(xp.ones(1, dtype=dtype, device=device)).dtype))
    for _ in range(3):  # the sequence of masks, not only the first
        y = ours(xp.ones((4, 5), dtype=dtype, device=device))
        expected = reference(np.ones((4, 5), dtype=host_dtype))
        np.testing.assert_array_equal(to_numpy(y), expected)
        assert_close(y, expected, xp=xp, device=device, dtype=dtype, rtol=0, atol=0)


def test_backward_applies_the_forward_mask(xp, device, real_dtype):
    drop = Dropout(0.5, seed=0)
    x = xp.ones((6, 7), dtype=real_dtype, device=device)
    y, backward = drop.forward(x)
    y2, _ = drop.forward(x)  # a later draw must not change the first closure
    dy = random_array(xp, (6, 7), dtype=real_dtype, device=device, seed=1)
    dx = backward(dy)
    assert_close(dx, to_numpy(dy) * to_numpy(y), xp=xp, device=device, dtype=real_dtype)
    assert not np.array_equal(to_numpy(y), to_numpy(y2))


def test_scaling_and_rate():
    drop = Dropout(0.25, seed=3)
    y = drop(np.ones(100_000))
    assert set(np.unique(y)) == {0.0, 1 / 0.75}
    assert abs(np.mean(y == 0) - 0.25) < 0.01
    assert abs(y.mean() - 1.0) < 0.02


def test_eval_mode_and_edge_probabilities(xp, device):
    x = random_array(xp, (3, 4), dtype=xp.float32, device=device, seed=0)
    drop = Dropout(0.5, seed=0).eval()
    y, backward = drop.forward(x)
    assert y is x
    dy = xp.ones((3, 4), dtype=xp.float32, device=device)
    assert backward(dy) is dy
    assert Dropout(0.0)(x) is x
    assert not to_numpy(Dropout(1.0, seed=0)(x)).any()


def test_sequential_train_eval_switches_dropout():
    model = Sequential(Linear(3, 3, seed=0), Dropout(0.9, seed=0))
    x = np.ones((50, 3))
    assert model.training
    assert (model(x) == 0).mean() > 0.5
    model.eval()
    assert not model[1].training
    np.testing.assert_array_equal(model(x), model[0](x))
    model.train()
    assert model[1].training


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_probability_out_of_range(bad):
    with pytest.raises(ValueError, match=f"p must be in \\[0, 1\\], got {bad}"):
        Dropout(bad)


@pytest.mark.parametrize("bad", ["0.5", True, None])
def test_probability_of_wrong_type(bad):
    with pytest.raises(TypeError, match="p must be a float in"):
        Dropout(bad)


def test_errors_for_integer_input_and_wrong_dy(xp, device):
    with pytest.raises(TypeError, match="x must have a real or complex floating dtype"):
        Dropout(0.5)(xp.ones((2, 2), dtype=xp.int32, device=device))
    _, backward = Dropout(0.5, seed=0).forward(xp.ones((2, 2), dtype=xp.float32, device=device))
    with pytest.raises(
        ValueError, match=r"dy must have the shape of the output, \(2, 2\), got \(2, 3\)"
    ):
        backward(xp.ones((2, 3), dtype=xp.float32, device=device))


def test_repr():
    assert repr(Dropout(0.2)) == "Dropout(p=0.2)"

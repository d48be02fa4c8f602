"""fit and evaluate with several inputs: padded sequences and their lengths, cut per batch."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn import Linear, Module
from xpnn._compat import array_namespace, library_of
from xpnn.losses import CrossEntropyLoss
from xpnn.optim import SGD
from xpnn.training import evaluate, fit

#: Six sequences of these lengths, padded to 5 steps of 3 features.
LENGTHS = [1, 3, 2, 2, 4, 1]


class MeanThenLinear(Module):
    """``Linear`` of each sequence's mean over its valid steps; records the widths it sees."""

    def __init__(self, **where):
        super().__init__()
        self.linear = Linear(3, 2, seed=0, **where)
        self.widths: list[int] = []

    def children(self):
        return [self.linear]

    def forward(self, x, lengths, *, input_grad=True):
        xp = array_namespace(x=x, lengths=lengths)
        self.widths.append(int(x.shape[1]))
        steps = xp.arange(x.shape[1], device=xpnn._compat.device(x))
        valid = xp.astype(steps[None, :] < lengths[:, None], x.dtype)
        weights = valid / xp.sum(valid, axis=1, keepdims=True)
        y, linear_backward = self.linear.forward(xp.sum(x * weights[:, :, None], axis=1))

        def backward(dy):
            linear_backward(dy)

        return y, backward

    def __call__(self, x, lengths):
        return self.forward(x, lengths)[0]


def _data(xp, device, dtype):
    rng = np.random.default_rng(0)
    lengths = np.array(LENGTHS)
    x = rng.standard_normal((6, 5, 3)) * (np.arange(5) < lengths[:, None])[:, :, None]
    y = rng.integers(0, 2, size=6)
    return (
        (xp.asarray(x, dtype=dtype, device=device), xp.asarray(lengths, device=device)),
        xp.asarray(y, device=device),
    )


def _run(xp, device, dtype, **options):
    x, y = _data(xp, device, dtype)
    model = MeanThenLinear(xp=xp, device=device, dtype=dtype)
    history = fit(
        model,
        CrossEntropyLoss(),
        SGD(model, lr=0.5),
        x,
        y,
        epochs=1,
        batch_size=2,
        shuffle=False,
        validation_data=(x, y),
        **options,
    )
    return model, history


def test_batches_are_cut_to_their_longest_sequence(xp, device):
    # One dtype, the device's default: the cutting is no matter of dtypes
    # (and JAX compiles per shape and dtype).
    real_dtype = xp.__array_namespace_info__().default_dtypes(device=device)["real floating"]
    if library_of(xp.ones(1, device=device)) == "dask":
        x, y = _data(xp, device, real_dtype)
        model = MeanThenLinear(xp=xp, device=device, dtype=real_dtype)
        with pytest.raises(ValueError, match="take one input array on Dask, got a tuple of 2"):
            fit(model, CrossEntropyLoss(), SGD(model, lr=0.5), x, y, epochs=1)
        return
    cut, history = _run(xp, device, real_dtype, lengths_input=1)
    # Three training batches of two rows, then one validation pass.
    assert cut.widths == [3, 2, 4, 4]
    whole, expected = _run(xp, device, real_dtype)
    assert set(whole.widths) == {5}
    # The model ignores the padding: cutting it changes nothing but the cost.
    np.testing.assert_allclose(history.loss, expected.loss, rtol=1e-5)
    np.testing.assert_allclose(history.val_loss, expected.val_loss, rtol=1e-5)
    assert history.val_accuracy == expected.val_accuracy
    x, y = _data(xp, device, real_dtype)
    cut.widths.clear()
    loss, _ = evaluate(cut, CrossEntropyLoss(), x, y, batch_size=4, lengths_input=1)
    assert cut.widths == [3, 4]
    np.testing.assert_allclose(loss, expected.val_loss[-1], rtol=1e-5)


@pytest.mark.backend("numpy")
def test_bad_inputs_are_refused_before_training():
    import array_api_compat.numpy as npx

    x, y = _data(npx, "cpu", npx.float64)
    model = MeanThenLinear()

    def train(inputs, **options):
        fit(model, CrossEntropyLoss(), SGD(model, lr=0.1), inputs, y, epochs=1, **options)

    with pytest.raises(ValueError, match=r"share their first axis .*\[6, 4\] rows"):
        train((x[0], x[1][:4]))
    with pytest.raises(ValueError, match="non-empty tuple"):
        train(())
    with pytest.raises(ValueError, match=r"lengths_input must name an input .*\(2\), got 2"):
        train(x, lengths_input=2)
    with pytest.raises(ValueError, match=r"x\[0\] must hold the sequence lengths"):
        train(x, lengths_input=0)
    with pytest.raises(TypeError, match="x\\[1\\]"):
        train((x[0], [1, 2, 3, 4, 5, 6]))
    assert model.widths == []

"""xpnn.RNN / GRU / LSTM against torch.nn (float64 autograd) and finite differences."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import xpnn
from xpnn import GRU, LSTM, RNN
from xpnn.testing import assert_close, check_gradients, random_array, to_numpy

TORCH = {RNN: torch.nn.RNN, GRU: torch.nn.GRU, LSTM: torch.nn.LSTM}

# (layer, settings, time, batch, lengths, initial state given)
# Few shapes (JAX compiles each operation per shape): time 4 and batch 3 but for batch 1.
CASES = [
    (GRU, {}, 4, 3, [3, 1, 4], True),
    (GRU, {}, 4, 1, None, False),
    (GRU, {"num_layers": 2, "bidirectional": True, "batch_first": True}, 4, 3, [2, 4, 1], True),
    (LSTM, {}, 4, 3, [3, 1, 4], True),
    (LSTM, {"num_layers": 2, "bidirectional": True}, 4, 3, [4, 4, 4], True),
    (RNN, {"bias": False}, 4, 3, None, True),
    (RNN, {"nonlinearity": "relu", "bidirectional": True}, 4, 3, [2, 4, 1], False),
]
IDS = [
    "gru-lengths",
    "gru-batch1-unpadded",
    "gru-2layer-bidi-batchfirst",
    "lstm-lengths",
    "lstm-2layer-bidi-all-full",
    "rnn-tanh-nobias",
    "rnn-relu-bidi",
]
FEATURES, HIDDEN = 3, 4
#: The cases also run in float32.
FLOAT32 = ("gru-lengths", "lstm-lengths", "rnn-tanh-nobias")


def _twin(layer):
    cls = TORCH[type(layer)]
    settings = dict(layer.config()["settings"])
    twin = cls(**settings).double()
    twin.load_state_dict(
        {k: torch.tensor(to_numpy(v), dtype=torch.float64) for k, v in layer.state_dict().items()}
    )
    return twin


def _computed(xp, *arrays):
    """Return the arrays, computed once together on Dask (each comparison would compute anew)."""
    if "dask" not in xp.__name__:
        return arrays
    import dask

    return dask.persist(*arrays)


def _t(a, grad=False):
    return torch.tensor(to_numpy(a), dtype=torch.float64, requires_grad=grad)


@pytest.mark.parametrize(("cls", "settings", "time", "batch", "lengths", "given"), CASES, ids=IDS)
def test_forward_and_every_gradient_match_torch(
    xp, device, real_dtype, cls, settings, time, batch, lengths, given
):
    case = IDS[CASES.index((cls, settings, time, batch, lengths, given))]
    if real_dtype != xp.float64 and case not in FLOAT32:
        pytest.skip("float32: one case per cell is enough")
    layer = cls(FEATURES, HIDDEN, **settings, seed=1, xp=xp, device=device, dtype=real_dtype)
    twin = _twin(layer)
    lstm = cls is LSTM
    first = settings.get("batch_first", False)
    count = layer.num_layers * (2 if layer.bidirectional else 1)
    make = {"dtype": real_dtype, "device": device}
    x = random_array(
        xp, (batch, time, FEATURES) if first else (time, batch, FEATURES), seed=2, **make
    )
    h0 = random_array(xp, (count, batch, HIDDEN), seed=3, **make)
    c0 = random_array(xp, (count, batch, HIDDEN), seed=4, **make)
    hx = ((h0, c0) if lstm else h0) if given else None
    lens = None if lengths is None else xp.asarray(lengths, device=device)
    (output, state), backward = layer.forward(x, hx, lengths=lens)
    h_n = state[0] if lstm else state
    d_out = random_array(xp, tuple(output.shape), seed=5, **make)
    d_h = random_array(xp, (count, batch, HIDDEN), seed=6, **make)
    d_c = random_array(xp, (count, batch, HIDDEN), seed=7, **make)
    dx, dhx = backward(d_out, (d_h, d_c) if lstm else d_h)

    tx, th0, tc0 = _t(x, True), _t(h0, True), _t(c0, True)
    thx = ((th0, tc0) if lstm else th0) if given else None
    source = tx
    if lengths is not None:
        source = torch.nn.utils.rnn.pack_padded_sequence(
            tx, torch.tensor(lengths), batch_first=first, enforce_sorted=False
        )
    t_out, t_state = twin(source, thx)
    if lengths is not None:
        t_out, _ = torch.nn.utils.rnn.pad_packed_sequence(
            t_out, batch_first=first, total_length=time
        )
    t_h = t_state[0] if lstm else t_state
    loss = (t_out * _t(d_out)).sum() + (t_h * _t(d_h)).sum()
    if lstm:
        loss = loss + (t_state[1] * _t(d_c)).sum()
    loss.backward()

    names = [name for name, _ in twin.named_parameters()]
    assert list(layer.params) == names
    grads = dict(zip(names, _computed(xp, *(layer.grads[n] for n in names)), strict=True))
    output, h_n, dx, state = _computed(xp, output, h_n, dx, state)
    if given:
        dhx = _computed(xp, *dhx) if lstm else _computed(xp, dhx)[0]
    tol = {"xp": xp, "device": device, "dtype": real_dtype}
    assert_close(output, t_out.detach().numpy(), **tol)
    assert_close(h_n, t_h.detach().numpy(), **tol)
    if lstm:
        assert_close(state[1], t_state[1].detach().numpy(), **tol)
    assert_close(dx, tx.grad.numpy(), **tol)
    if given:
        assert_close(dhx[0] if lstm else dhx, th0.grad.numpy(), **tol)
        if lstm:
            assert_close(dhx[1], tc0.grad.numpy(), **tol)
    else:
        assert dhx is None
    for name, parameter in twin.named_parameters():
        assert_close(grads[name], parameter.grad.numpy(), err_msg=name, **tol)


def test_gradients_match_finite_differences(xp, device):
    """A GRU with lengths: x, h0 and every parameter against float64 central differences."""
    dtype = xp.float64 if "float64" in xp.__array_namespace_info__().dtypes(device=device) else None
    if dtype is None:
        pytest.skip("the device has no float64")
    layer = GRU(2, 2, seed=0, xp=xp, device=device, dtype=dtype)
    names = list(layer.params)
    lengths = xp.asarray([2, 1], device=device)
    x = random_array(xp, (2, 2, 2), dtype=dtype, device=device, seed=1)
    h0 = random_array(xp, (1, 2, 2), dtype=dtype, device=device, seed=2)
    inputs = [x, h0, *(layer.params[n] for n in names)]

    def f(x, h0, *weights):
        for name, w in zip(names, weights, strict=True):
            layer.params[name] = w
        output, h_n = layer(x, h0, lengths=lengths)
        return xp.concat([xp.reshape(output, (-1,)), xp.reshape(h_n, (-1,))])

    def backward(dy, x, h0, *weights):
        for name, w in zip(names, weights, strict=True):
            layer.params[name] = w
        layer.zero_grad()
        (_output, _h_n), back = layer.forward(x, h0, lengths=lengths)
        d_out = xp.reshape(dy[:8], (2, 2, 2))
        d_h = xp.reshape(dy[8:], (1, 2, 2))
        dx, dh0 = back(d_out, d_h)
        return [dx, dh0, *(layer.grads[n] for n in names)]

    check_gradients(f, backward, inputs)


def test_dropout_between_layers_matches_torch_with_the_same_masks():
    """Training-mode dropout: the masks drawn from the layer's generator, checked by hand."""
    generator = np.random.default_rng(3)
    layer = GRU(3, 4, num_layers=2, dropout=0.5, seed=generator)
    draws = copy.deepcopy(generator)  # the layer draws its masks from this very generator
    x = np.random.default_rng(4).normal(size=(3, 2, 3))
    (output, _h_n), backward = layer.forward(x)
    d_out = np.ones_like(output)
    dx, _ = backward(d_out, None)
    mask = (draws.random((3, 2, 4)) >= 0.5) * 2.0
    state = {k: torch.tensor(v) for k, v in layer.state_dict().items()}
    first, second = torch.nn.GRU(3, 4).double(), torch.nn.GRU(4, 4).double()
    first.load_state_dict({k: v for k, v in state.items() if k.endswith("l0")})
    second.load_state_dict({k.replace("l1", "l0"): v for k, v in state.items() if k.endswith("l1")})
    tx = torch.tensor(x, requires_grad=True)
    middle, _ = first(tx)
    t_out, _ = second(middle * torch.tensor(mask))
    t_out.sum().backward()
    np.testing.assert_allclose(output, t_out.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        layer.grads["weight_ih_l1"], second.weight_ih_l0.grad.numpy(), rtol=1e-12, atol=1e-12
    )
    # Eval mode: no dropout, the plain stack.
    layer.eval()
    plain, _ = layer(x)
    np.testing.assert_allclose(
        plain, second(first(tx)[0])[0].detach().numpy(), rtol=1e-12, atol=1e-12
    )


def test_checks_say_what_was_expected():
    gru = GRU(3, 4, seed=0)
    x = np.zeros((5, 2, 3))
    with pytest.raises(ValueError, match="Expected 3, got 2"):
        gru(np.zeros((5, 2, 2)))
    with pytest.raises(ValueError, match=r"shape \(time, batch, features\)"):
        gru(np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"Expected hidden size \(1, 2, 4\)"):
        gru(x, np.zeros((1, 3, 4)))
    with pytest.raises(TypeError, match="lengths must have an integer dtype"):
        gru(x, lengths=np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"lengths must have shape \(2,\)"):
        gru(x, lengths=np.array([1, 2, 3]))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 5\].*from 0 to 2"):
        gru(x, lengths=np.array([0, 2]))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 5\].*from 2 to 6"):
        gru(x, lengths=np.array([6, 2]))
    with pytest.raises(TypeError, match=r"tuple \(h_0, c_0\)"):
        LSTM(3, 4)(x, np.zeros((1, 2, 4)))
    with pytest.raises(TypeError, match="one array"):
        gru(x, (np.zeros((1, 2, 4)), np.zeros((1, 2, 4))))
    with pytest.raises(ValueError, match="Unknown nonlinearity"):
        RNN(3, 4, 1, "sigmoid")
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        GRU(3, 4, dropout=1.5)
    (output, _), backward = gru.forward(x, input_grad=False)
    with pytest.raises(ValueError, match=r"d_output must have the shape of output, \(5, 2, 4\)"):
        backward(np.zeros((5, 2, 3)))
    dx, dhx = backward(np.ones_like(output))  # the failed call did not use it up
    assert dx is None
    assert dhx is None
    with pytest.raises(RuntimeError, match="second time"):
        backward(np.ones_like(output))


def test_checkpoint_round_trip(tmp_path):
    model = LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True, seed=0)
    xpnn.save(model, tmp_path / "lstm.safetensors")
    loaded = xpnn.load(tmp_path / "lstm.safetensors", dtype="float32")
    assert isinstance(loaded, LSTM)
    assert loaded.config() == model.config()
    assert list(loaded.state_dict()) == list(model.state_dict())
    x = np.random.default_rng(0).normal(size=(2, 5, 3))
    expected, _ = model(x)
    got, _ = loaded(x.astype(np.float32))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


class _Classifier(xpnn.Module):
    """A GRU over (batch, time, features), its last hidden state, a linear head."""

    def __init__(self, xp, device) -> None:
        super().__init__()
        where = {"xp": xp, "device": device, "dtype": xp.float64}
        self.gru = GRU(3, 4, batch_first=True, seed=0, **where)
        self.head = xpnn.Linear(4, 2, seed=1, **where)

    def children(self):
        return [self.gru, self.head]

    def named_children(self):
        return [("gru", self.gru), ("head", self.head)]

    def forward(self, x, *, input_grad=True):
        (_, h_n), gru_backward = self.gru.forward(x, input_grad=input_grad)
        y, head_backward = self.head.forward(h_n[-1, ...])

        def backward(dy):
            return gru_backward(None, head_backward(dy)[None, ...])[0]

        return y, backward


@pytest.mark.backend("dask")
def test_fit_trains_on_dask_chunks_as_on_numpy(xp, device):
    """A GRU classifier, batch-chunked sequences: the losses and weights of a NumPy run."""
    import array_api_compat.numpy as npx
    import dask.array as da

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 4, 3)), rng.integers(0, 2, 8)
    options = {"epochs": 2, "batch_size": 4, "seed": 3, "progress": False}
    reference = _Classifier(npx, "cpu")
    loss = xpnn.CrossEntropyLoss
    expected = xpnn.fit(
        reference, loss(), xpnn.optim.SGD(reference, lr=0.5), x, y, block_rows=4, **options
    )
    model = _Classifier(xp, device)
    chunked = da.from_array(x, chunks=(4, 4, 3)), da.from_array(y, chunks=4)
    history = xpnn.fit(model, loss(), xpnn.optim.SGD(model, lr=0.5), *chunked, **options)
    np.testing.assert_allclose(history.loss, expected.loss, rtol=1e-9)
    for name, value in model.state_dict().items():
        np.testing.assert_allclose(to_numpy(value), reference.state_dict()[name], err_msg=name)

"""from_torch / to_torch for nn.RNN, nn.GRU and nn.LSTM: equal outputs both ways."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from selection import require_float64
from xpnn import GRU, LSTM, RNN
from xpnn.interop.torch import from_torch, to_torch
from xpnn.testing import assert_close, random_array, to_numpy

MODULES = [
    (lambda: nn.RNN(3, 4, 2, nonlinearity="relu", batch_first=True), RNN),
    (lambda: nn.GRU(3, 4, bidirectional=True), GRU),
    (lambda: nn.LSTM(3, 4, num_layers=2, bias=False, dropout=0.25), LSTM),
]


def _torch_run(module, x):
    with torch.no_grad():
        out, state = module(torch.tensor(to_numpy(x), dtype=torch.float64))
    h_n = state[0] if isinstance(state, tuple) else state
    return out.numpy(), h_n.numpy()


@pytest.mark.parametrize(("make", "kind"), MODULES, ids=["rnn-relu", "gru-bidi", "lstm"])
def test_from_torch_and_back_give_equal_outputs(xp, device, make, kind):
    require_float64(xp, device, "the comparison in double precision needs")
    torch.manual_seed(0)
    module = make().double().eval()
    layer = from_torch(module, xp=xp, device=device, dtype="float64")
    assert type(layer) is kind
    assert layer.config()["settings"]["dropout"] == module.dropout
    assert list(layer.state_dict()) == list(module.state_dict())
    x = random_array(xp, (2, 3, 3), dtype=xp.float64, device=device, seed=1)
    output, state = layer.eval()(x)
    h_n = state[0] if isinstance(state, tuple) else state
    expected_out, expected_h = _torch_run(module, x)
    tol = {"xp": xp, "device": device, "dtype": xp.float64}
    assert_close(output, expected_out, **tol)
    assert_close(h_n, expected_h, **tol)
    back = to_torch(layer)
    assert type(back) is type(module)
    assert not back.training
    for name, value in module.state_dict().items():
        assert torch.equal(back.state_dict()[name].double(), value)
    np.testing.assert_array_equal(_torch_run(back.double(), x)[0], expected_out)


def test_lstm_with_projection_is_refused():
    with pytest.raises(ValueError, match="proj_size"):
        from_torch(nn.LSTM(3, 4, proj_size=2))

"""SiLU, Softplus, ELU, Hardtanh, Mish and Identity layers; 0-d softmax layers; torch conversion."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

from oracles import widen
from xpnn import (
    ELU,
    Hardtanh,
    Identity,
    Linear,
    LogSoftmax,
    Mish,
    Sequential,
    SiLU,
    Softmax,
    Softplus,
)
from xpnn.interop.torch import from_torch, to_torch
from xpnn.layers import LAYERS, from_config
from xpnn.layers._module import Module
from xpnn.testing import assert_close, random_array, to_numpy

F = torch.nn.functional
F64 = torch.float64

# (xpnn layer, the torch module it equals)
LAYER_PAIRS: list[tuple[Callable[[], Module], Callable[[], nn.Module]]] = [
    (SiLU, nn.SiLU),
    (lambda: Softplus(2.0, 5.0), lambda: nn.Softplus(beta=2.0, threshold=5.0)),
    (lambda: ELU(0.5), lambda: nn.ELU(alpha=0.5)),
    (lambda: Hardtanh(-0.5, 2.0), lambda: nn.Hardtanh(-0.5, 2.0)),
    (Mish, nn.Mish),
    (Identity, nn.Identity),
]
IDS = ["SiLU", "Softplus(2,5)", "ELU(0.5)", "Hardtanh(-0.5,2)", "Mish", "Identity"]


@pytest.mark.parametrize(("make", "make_torch"), LAYER_PAIRS, ids=IDS)
def test_forward_backward_match_torch_autograd(xp, device, real_dtype, make, make_torch):
    layer = make()
    x = 3 * random_array(xp, (2, 3, 4), dtype=real_dtype, device=device, seed=1)
    dy = random_array(xp, (2, 3, 4), dtype=real_dtype, device=device, seed=2)
    y, backward = layer.forward(x)
    dx = backward(dy)
    tx = torch.tensor(widen(to_numpy(x)), requires_grad=True)
    ty = make_torch()(tx)
    ty.backward(torch.tensor(widen(to_numpy(dy))))
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    assert_close(y, to_numpy(ty), **same, err_msg="y")
    assert_close(dx, to_numpy(tx.grad), **same, err_msg="dx")
    assert_close(layer(x), to_numpy(ty), **same, err_msg="__call__")
    assert layer.params == {}


def test_identity_returns_its_input(xp, device):
    x = random_array(xp, (2, 3), dtype=xp.float32, device=device, seed=0)
    y, backward = Identity().forward(x)
    assert y is x
    assert Identity()(x) is x
    dy = xp.ones_like(x)
    assert backward(dy) is dy


@pytest.mark.parametrize("axis", [0, -1])
def test_softmax_layers_of_a_0d_input(xp, device, real_dtype, axis):
    x = xp.asarray(-2.5, dtype=real_dtype, device=device)
    dy = xp.asarray(4.0, dtype=real_dtype, device=device)
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    for layer, one in ((Softmax(axis), 1.0), (LogSoftmax(axis), 0.0)):
        y, backward = layer.forward(x)
        assert_close(y, np.asarray(one), **same, err_msg=repr(layer))
        assert_close(backward(dy), np.asarray(0.0), **same, err_msg=repr(layer))


def test_settings_are_checked_and_kept():
    for make, error, message in (
        (lambda: Softplus(beta="2"), TypeError, "beta must be a real number, got str '2'"),
        (lambda: Softplus(beta=0.0), ValueError, "beta must be a nonzero real number"),
        (lambda: Softplus(threshold=float("nan")), ValueError, "threshold must be finite"),
        (lambda: ELU(alpha=None), TypeError, "alpha must be a real number, got NoneType"),
        (lambda: ELU(alpha=float("-inf")), ValueError, "alpha must be finite, got -inf"),
        (lambda: Hardtanh(max_val=True), TypeError, "max_val must be a real number, got bool"),
        (lambda: Hardtanh(1.0, 1.0), ValueError, "min_val must be less than max_val"),
    ):
        with pytest.raises(error, match=message):
            make()
    for layer in (Softplus(2, 5), ELU(0.5), Hardtanh(-2, 3), SiLU(), Mish(), Identity()):
        assert LAYERS[type(layer).__name__] is type(layer)
        back = from_config(layer.config())
        assert type(back) is type(layer)
        assert repr(back) == repr(layer)
    assert repr(Softplus(2, 5)) == "Softplus(beta=2.0, threshold=5.0)"
    assert repr(Hardtanh(-2, 3)) == "Hardtanh(min_val=-2.0, max_val=3.0)"


# -- from_torch / to_torch ------------------------------------------------------------------


@pytest.mark.parametrize(("make", "make_torch"), LAYER_PAIRS, ids=IDS)
def test_from_torch_and_back(make, make_torch):
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Linear(4, 6, dtype=F64), make_torch(), nn.Linear(6, 3, dtype=F64)
    ).eval()
    model = from_torch(module)
    assert isinstance(model, Sequential)
    assert [type(layer) for layer in model.layers] == [Linear, type(make()), Linear]
    assert repr(model[1]) == repr(make())
    x = 3 * torch.randn(5, 4, dtype=F64)
    assert_close(model(x), module(x).detach())
    back = to_torch(model)
    assert repr(back) == repr(module)
    assert torch.equal(back(x), module(x))
    alone = to_torch(make())
    assert type(alone) is type(make_torch())
    assert repr(alone) == repr(make_torch())
    assert torch.equal(alone(x), make_torch()(x))


# -- ONNX export ----------------------------------------------------------------------------


def test_onnx_export_of_each(tmp_path):
    pytest.importorskip("ndonnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    from xpnn.export import to_onnx

    x = 3 * np.random.default_rng(0).standard_normal((7, 3))
    for make, _ in LAYER_PAIRS:
        layer = make()
        path = tmp_path / "act.onnx"
        to_onnx(layer, path, input_shape=(None, 3), dtype="float64")
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (y,) = session.run(None, {session.get_inputs()[0].name: x})
        assert_close(y, layer(x), err_msg=repr(layer))

"""Independent references: torch.autograd and NumPy in double precision."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from xpnn import Linear, Sequential
from xpnn.testing import assert_close, random_array, to_numpy


def widen(a: np.ndarray) -> np.ndarray:
    """Return a float64 (complex128) copy of a host array."""
    return a.astype(np.complex128 if np.iscomplexobj(a) else np.float64)


def torch_linear(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, dy: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """``y, dx, dweight, dbias`` from torch.autograd, in double precision.

    Every operand is promoted to one double dtype first, as the standard's
    type promotion would; the gradients come back in that dtype and the
    caller narrows them.
    """
    arrays = [x, weight, dy] + ([bias] if bias is not None else [])
    wide = np.complex128 if any(np.iscomplexobj(a) for a in arrays) else np.float64
    tx = torch.tensor(x.astype(wide), requires_grad=True)
    tw = torch.tensor(weight.astype(wide), requires_grad=True)
    tb = torch.tensor(bias.astype(wide), requires_grad=True) if bias is not None else None
    y = torch.nn.functional.linear(tx, tw.T, tb)
    y.backward(torch.tensor(dy.astype(wide)))
    dbias = tb.grad.numpy() if tb is not None else None
    return y.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), dbias


def numpy_linear(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, dy: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """The same, written out in NumPy double precision with einsum."""
    x, weight, dy = widen(x), widen(weight), widen(dy)
    y = np.einsum("...i,io->...o", x, weight)
    if bias is not None:
        y = y + widen(bias)
    dx = np.einsum("...o,io->...i", dy, np.conj(weight))
    rows = int(np.prod(x.shape[:-1]))
    x2, dy2 = x.reshape(rows, x.shape[-1]), dy.reshape(rows, dy.shape[-1])
    dweight = np.einsum("ni,no->io", np.conj(x2), dy2)
    dbias = dy2.sum(axis=0) if bias is not None else None
    return y, dx, dweight, dbias


# -- torch twins of small xpnn models, for the optimizer tests --------------


def make_model(kind: str, xp: Any, device: Any, dtype: Any) -> Any:
    same = {"xp": xp, "device": device, "dtype": dtype}
    if kind == "linear":
        return Linear(4, 3, seed=0, **same)
    return Sequential(Linear(4, 5, seed=1, **same), Linear(5, 3, seed=2, **same))


def torch_twin(model: Any) -> torch.nn.Module:
    """An equal torch model; torch stores weights as (out, in), xpnn as (in, out)."""
    layers = model.layers if isinstance(model, Sequential) else [model]
    twins = []
    for layer in layers:
        weight = torch.from_numpy(to_numpy(layer.weight).T.copy())
        twin = torch.nn.Linear(layer.in_features, layer.out_features, dtype=weight.dtype)
        with torch.no_grad():
            twin.weight.copy_(weight)
            twin.bias.copy_(torch.from_numpy(to_numpy(layer.bias)))
        twins.append(twin)
    return twins[0] if len(twins) == 1 else torch.nn.Sequential(*twins)


def torch_value(twin: torch.nn.Module, name: str) -> np.ndarray:
    """Parameter ``name`` of the torch twin, in xpnn's layout."""
    value = dict(twin.named_parameters())[name].detach()
    return (value.T if name.endswith("weight") else value).numpy().copy()


def feed_gradients(model: Any, twin: torch.nn.Module, xp: Any, device: Any, step: int) -> None:
    """Give both models the same random gradients."""
    theirs = dict(twin.named_parameters())
    for index, (name, param) in enumerate(model.named_parameters()):
        shape = tuple(param.shape)
        grad = random_array(xp, shape, dtype=param.dtype, device=device, seed=100 * step + index)
        model.set_gradient(name, grad)
        host = torch.from_numpy(to_numpy(grad))
        theirs[name].grad = host.T.contiguous() if name.endswith("weight") else host


def assert_matches_twin(model: Any, twin: torch.nn.Module, xp: Any, device: Any, step: int) -> None:
    for name, param in model.named_parameters():
        assert_close(
            param,
            torch_value(twin, name),
            xp=xp,
            device=device,
            dtype=param.dtype,
            err_msg=f"{name} after step {step}",
        )

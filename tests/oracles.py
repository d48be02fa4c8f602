"""Independent references: torch.autograd and NumPy in double precision."""

from __future__ import annotations

import numpy as np
import torch


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

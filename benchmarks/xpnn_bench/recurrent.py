"""GRU forward + backward through time.

One GRU layer, 13 -> 64 features, over 40 steps of a batch of 32 (the
shape of a spoken-digit classifier's recurrent layer: 13 cepstral
coefficients a frame), given the gradient of every output.

``xpnn``
    ``(output, h_n), back = gru.forward(x); back(d_output)``: the outputs,
    the input gradient and the four parameter gradients.
``native``
    NumPy only: the same results from a GRU written by hand in NumPy, the
    way one writes it directly: the input projection of every step as one
    product, a loop of per-step gates (``1 / (1 + exp(-a))`` for the
    sigmoids), a backward loop that writes each step's gate gradients into
    preallocated arrays, and one product for each weight gradient.
``autograd``
    PyTorch only: ``nn.GRU`` (its CPU kernels) and
    ``output.backward(d_output)``.

Every variant starts from the same parameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import xpnn

from .harness import Backend, Variant, host_rng

BATCH = 32
FEATURES = 13
HIDDEN = 64
STEPS = 40
VARIANTS = ("xpnn", "native", "autograd")


def gru_variants(backend: Backend, dtype: str, batch: int = BATCH) -> dict[str, Variant]:
    """Build the GRU forward + backward variants for one backend, dtype and batch."""
    rng = host_rng(40)
    where = {"xp": backend.xp, "device": backend.device, "dtype": backend.dtype(dtype)}
    layer = xpnn.GRU(FEATURES, HIDDEN, seed=0, **where)
    x_host = rng.standard_normal((STEPS, batch, FEATURES))
    dy_host = rng.standard_normal((STEPS, batch, HIDDEN))
    x, dy = backend.asarray(x_host, dtype), backend.asarray(dy_host, dtype)
    names = list(layer.params)

    def run_xpnn() -> tuple[Any, ...]:
        layer.zero_grad()
        (output, _), back = layer.forward(x)
        dx, _ = back(dy)
        return (output, dx, *(layer.grads[name] for name in names))

    built: dict[str, Variant] = {"xpnn": run_xpnn}
    params = [layer.params[name] for name in names]
    if backend.name == "numpy":
        built["native"] = _native_numpy([np.asarray(p) for p in params], x, dy)
    if backend.name == "torch":
        built["autograd"] = _autograd(params, x, dy)
    return built


def _native_numpy(params: list[np.ndarray], x: np.ndarray, dy: np.ndarray) -> Variant:
    w_ih, w_hh, b_ih, b_hh = params
    steps, batch, features = x.shape
    hidden = w_hh.shape[1]
    two = 2 * hidden
    x2 = x.reshape(steps * batch, features)
    w_ih_t, w_hh_t = np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T)
    dtype = x.dtype

    def step() -> tuple[Any, ...]:
        gx = (x2 @ w_ih_t + b_ih).reshape(steps, batch, 3 * hidden)
        hs = np.empty((steps + 1, batch, hidden), dtype=dtype)
        hs[0] = 0
        r = np.empty((steps, batch, hidden), dtype=dtype)
        z = np.empty_like(r)
        n = np.empty_like(r)
        ghn = np.empty_like(r)
        h = hs[0]
        for t in range(steps):
            gh = h @ w_hh_t + b_hh
            rz = 1.0 / (1.0 + np.exp(-(gx[t, :, :two] + gh[:, :two])))
            r[t], z[t] = rz[:, :hidden], rz[:, hidden:]
            ghn[t] = gh[:, two:]
            n[t] = np.tanh(gx[t, :, two:] + r[t] * ghn[t])
            h = hs[t + 1] = n[t] + z[t] * (h - n[t])
        d_gx = np.empty((steps, batch, 3 * hidden), dtype=dtype)
        d_gh = np.empty_like(d_gx)
        dh = np.zeros((batch, hidden), dtype=dtype)
        for t in range(steps - 1, -1, -1):
            dh = dh + dy[t]
            dn = dh * (1 - z[t])
            da_n = dn * (1 - n[t] * n[t])
            d_gx[t, :, two:] = da_n
            d_gh[t, :, two:] = da_n * r[t]
            d_gh[t, :, :hidden] = da_n * ghn[t] * r[t] * (1 - r[t])
            d_gh[t, :, hidden:two] = dh * (hs[t] - n[t]) * z[t] * (1 - z[t])
            d_gx[t, :, :two] = d_gh[t, :, :two]
            dh = dh * z[t] + d_gh[t] @ w_hh
        d_gx2 = d_gx.reshape(steps * batch, 3 * hidden)
        d_gh2 = d_gh.reshape(steps * batch, 3 * hidden)
        d_w_ih = d_gx2.T @ x2
        d_w_hh = d_gh2.T @ hs[:-1].reshape(steps * batch, hidden)
        dx = (d_gx2 @ w_ih).reshape(steps, batch, features)
        return (hs[1:], dx, d_w_ih, d_w_hh, d_gx2.sum(axis=0), d_gh2.sum(axis=0))

    return step


def _autograd(params: list[Any], x: Any, dy: Any) -> Variant:
    import torch

    w_ih = params[0]
    gru = torch.nn.GRU(int(w_ih.shape[1]), int(params[1].shape[1]))
    gru = gru.to(device=x.device, dtype=x.dtype)
    with torch.no_grad():
        for target, value in zip(gru.parameters(), params, strict=True):
            target.copy_(value)
    x = x.detach().clone().requires_grad_(True)

    def step() -> tuple[Any, ...]:
        gru.zero_grad(set_to_none=True)
        x.grad = None
        output, _ = gru(x)
        output.backward(dy)
        return (output, x.grad, *(p.grad for p in gru.parameters()))

    return step

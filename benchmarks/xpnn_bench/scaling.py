"""How the cost grows with the batch and with the depth of a model.

Batch: Linear forward + backward at ``m = p = 256`` for growing ``n`` (the
variants of :mod:`.linear`, without the bare GEMMs). Depth: forward +
backward of ``Sequential`` of ``k`` blocks ``Linear(64, 64) + ReLU`` on a
batch of 32, against the same blocks written with the library's functions
and, on PyTorch, ``nn.Sequential`` with autograd. A straight line
``time = a + b k`` fitted to the medians gives the cost of one more block,
``b``; xpnn's ``b`` less the hand-written ``b`` is xpnn's fixed overhead per
layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import xpnn

from .harness import Backend, Timing, Variant, host_rng

WIDTH = 64
DEPTH_BATCH = 32
VARIANTS = ("xpnn", "native", "autograd")


def depth_variants(backend: Backend, dtype: str, k: int) -> dict[str, Variant]:
    """Build the forward + backward variants of ``k`` blocks Linear + ReLU."""
    rng = host_rng(k)
    where = {"xp": backend.xp, "device": backend.device, "dtype": backend.dtype(dtype)}
    blocks: list[xpnn.Module] = []
    for index in range(k):
        blocks += [xpnn.Linear(WIDTH, WIDTH, seed=index, **where), xpnn.ReLU()]
    model = xpnn.Sequential(*blocks)
    x = backend.asarray(rng.standard_normal((DEPTH_BATCH, WIDTH)), dtype)
    dy = backend.asarray(rng.standard_normal((DEPTH_BATCH, WIDTH)), dtype)
    params = [(layer.weight, layer.bias) for layer in blocks[::2]]  # type: ignore[attr-defined]

    def run_xpnn() -> tuple[Any, ...]:
        model.zero_grad()
        y, back = model.forward(x)
        return y, back(dy)

    built: dict[str, Variant] = {"xpnn": run_xpnn}
    if backend.name == "torch":
        built["native"] = _native_torch(params, x, dy)
        built["autograd"] = _autograd(backend, params, x, dy)
    else:
        built["native"] = _native_numpy_like(backend, params, x, dy)
    return built


def _native_numpy_like(backend: Backend, params: list[Any], x: Any, dy: Any) -> Variant:
    lib = np if backend.name == "numpy" else __import__("cupy")
    maximum = lib.maximum

    def native() -> tuple[Any, ...]:
        a = x
        saved = []
        for w, b in params:
            h = a @ w + b
            saved.append((a, h))
            a = maximum(h, 0)
        d = dy
        grads = []
        for (a_in, h), (w, _) in zip(reversed(saved), reversed(params), strict=True):
            d = d * (h > 0)
            grads.append((a_in.T @ d, d.sum(axis=0)))
            d = d @ w.T
        return a, d

    return native


def _native_torch(params: list[Any], x: Any, dy: Any) -> Variant:
    import torch

    addmm, mm, relu = torch.addmm, torch.mm, torch.relu

    def native() -> tuple[Any, ...]:
        a = x
        saved = []
        for w, b in params:
            h = addmm(b, a, w)
            saved.append((a, h))
            a = relu(h)
        d = dy
        grads = []
        for (a_in, h), (w, _) in zip(reversed(saved), reversed(params), strict=True):
            d = d * (h > 0)
            grads.append((mm(a_in.t(), d), d.sum(0)))
            d = mm(d, w.t())
        return a, d

    return native


def _autograd(backend: Backend, params: list[Any], x: Any, dy: Any) -> Variant:
    import torch

    layers: list[torch.nn.Module] = []
    for w, b in params:
        linear = torch.nn.Linear(WIDTH, WIDTH, device=backend.device, dtype=w.dtype)
        with torch.no_grad():
            linear.weight.copy_(w.T)
            linear.bias.copy_(b)
        layers += [linear, torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers)
    leaf = x.detach().clone().requires_grad_(True)

    def autograd() -> tuple[Any, ...]:
        net.zero_grad(set_to_none=True)
        leaf.grad = None
        y = net(leaf)
        y.backward(dy)
        return y, leaf.grad

    return autograd


def fit_line(ks: list[int], timings: list[dict[str, Timing]]) -> dict[str, dict[str, float]]:
    """Fit ``median = a + b k`` for every variant; return ``a`` and ``b`` in seconds."""
    fits = {}
    for name in timings[0]:
        medians = [timing[name].median for timing in timings]
        slope, intercept = np.polyfit(np.asarray(ks, dtype=float), np.asarray(medians), 1)
        fits[name] = {"a_s": float(intercept), "b_s": float(slope)}
    return fits

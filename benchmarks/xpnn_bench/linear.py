"""Linear forward + backward: xpnn against each library's own code.

The variants of one comparison share the input, the output gradient and
the parameters (those of the xpnn layer, in its ``(in, out)`` layout):

``xpnn``
    ``layer.zero_grad(); y, back = layer.forward(x); back(dy)``.
``native``
    The same four results written with the library's functions:
    ``y = x @ W + b``, ``dx = dy @ W.T``, ``dW = x.T @ dy``,
    ``db = dy.sum(0)`` (``torch.addmm`` and ``torch.mm`` on PyTorch,
    ``jnp.matmul`` on JAX, the standard's namespace on array_api_strict and
    Dask).
``gemm``
    The three matrix products alone, the floor any implementation pays.
``autograd``
    PyTorch only: ``torch.nn.Linear`` with ``x.requires_grad``,
    ``y.backward(dy)``, gradients reset with ``zero_grad(set_to_none=True)``.

Each variant returns its outputs, which the backend's sync waits for (JAX,
CUDA) or computes (Dask) inside the timed region.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import xpnn

from .harness import Backend, Variant, host_rng

VARIANTS = ("xpnn", "native", "gemm", "autograd")


def flops(n: int, m: int, p: int) -> int:
    """Return the multiply-adds of forward + backward counted as 2 flops: ``6 n m p``."""
    return 6 * n * m * p


def variants(
    backend: Backend,
    dtype: str,
    n: int,
    m: int,
    p: int,
    include: Iterable[str] = VARIANTS,
) -> dict[str, Variant]:
    """Build the variants of one comparison at shape ``(n, m, p)``.

    ``x`` is ``(n, m)``, the weight ``(m, p)``, ``y`` and ``dy`` ``(n, p)``.
    ``autograd`` is built on PyTorch only.
    """
    include = set(include)
    rng = host_rng(n * 7919 + m * 31 + p)
    layer = xpnn.Linear(
        m, p, xp=backend.xp, device=backend.device, dtype=backend.dtype(dtype), seed=0
    )
    x = backend.asarray(rng.standard_normal((n, m)), dtype)
    dy = backend.asarray(rng.standard_normal((n, p)), dtype)
    weight, bias = layer.weight, layer.bias

    def run_xpnn() -> tuple[Any, ...]:
        layer.zero_grad()
        y, back = layer.forward(x)
        dx = back(dy)
        return y, dx, layer.grads["weight"], layer.grads["bias"]

    native, gemm = _native(backend, x, weight, bias, dy)
    built: dict[str, Variant] = {"xpnn": run_xpnn, "native": native, "gemm": gemm}
    if backend.name == "torch":
        built["autograd"] = _autograd(backend, x, weight, bias, dy)
    return {name: built[name] for name in VARIANTS if name in include and name in built}


def _native(backend: Backend, x: Any, w: Any, b: Any, dy: Any) -> tuple[Variant, Variant]:
    if backend.name in ("numpy", "cupy"):

        def native() -> tuple[Any, ...]:
            y = x @ w + b
            dx = dy @ w.T
            dw = x.T @ dy
            db = dy.sum(axis=0)
            return y, dx, dw, db

        def gemm() -> tuple[Any, ...]:
            return x @ w, dy @ w.T, x.T @ dy

        return native, gemm

    if backend.name == "torch":
        import torch

        addmm, mm = torch.addmm, torch.mm

        def native_torch() -> tuple[Any, ...]:
            y = addmm(b, x, w)
            dx = mm(dy, w.t())
            dw = mm(x.t(), dy)
            db = dy.sum(0)
            return y, dx, dw, db

        def gemm_torch() -> tuple[Any, ...]:
            return mm(x, w), mm(dy, w.t()), mm(x.t(), dy)

        return native_torch, gemm_torch

    if backend.name == "jax":
        import jax.numpy as jnp

        matmul, total = jnp.matmul, jnp.sum

        def native_jax() -> tuple[Any, ...]:
            y = matmul(x, w) + b
            dx = matmul(dy, w.T)
            dw = matmul(x.T, dy)
            db = total(dy, axis=0)
            return y, dx, dw, db

        def gemm_jax() -> tuple[Any, ...]:
            return matmul(x, w), matmul(dy, w.T), matmul(x.T, dy)

        return native_jax, gemm_jax

    # array_api_strict, Dask: the standard's operators and functions.
    xp = backend.xp

    def native_xp() -> tuple[Any, ...]:
        y = x @ w + b
        dx = dy @ w.T
        dw = x.T @ dy
        db = xp.sum(dy, axis=0)
        return y, dx, dw, db

    def gemm_xp() -> tuple[Any, ...]:
        return x @ w, dy @ w.T, x.T @ dy

    return native_xp, gemm_xp


def _autograd(backend: Backend, x: Any, w: Any, b: Any, dy: Any) -> Variant:
    import torch

    m, p = w.shape
    module = torch.nn.Linear(m, p, device=backend.device, dtype=w.dtype)
    with torch.no_grad():
        module.weight.copy_(w.T)
        module.bias.copy_(b)
    leaf = x.detach().clone().requires_grad_(True)

    def autograd() -> tuple[Any, ...]:
        module.zero_grad(set_to_none=True)
        leaf.grad = None
        y = module(leaf)
        y.backward(dy)
        return y, leaf.grad, module.weight.grad, module.bias.grad

    return autograd

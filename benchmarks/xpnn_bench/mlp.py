"""One training step of the digits MLP of ``xpnn train``.

``Linear(64, 64) - ReLU - Linear(64, 10)``, softmax cross-entropy, plain SGD
with ``lr=0.1``, on a batch of 32 rows: the step ``xpnn train`` repeats. The
input is a fixed batch of 8x8 images with values in ``[0, 1)`` and labels in
``0..9``, drawn once; a step costs the same whatever the values.

``xpnn``
    The step of ``xpnn.fit``: ``forward_on_data(model, x)`` (the input is
    data: no gradient for it), ``CrossEntropyLoss``,
    ``optimizer.zero_grad()``, ``backward``, ``SGD.step()``.
``native``
    The same step written with the library's own functions: the forward
    pass, a max-shifted softmax cross-entropy, its gradient, the two layers'
    gradients and the update (in place where the library allows it).
``autograd``
    PyTorch only: ``nn.Sequential`` of ``nn.Linear`` and ``nn.ReLU``,
    ``F.cross_entropy``, ``loss.backward()``, ``torch.optim.SGD``.

Every model starts from the same parameters. On Dask each step ends by
persisting the new parameters, so that the graph does not grow from one
step to the next.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import xpnn
from xpnn.layers import forward_on_data
from xpnn.optim import SGD

from .harness import Backend, Variant, host_rng

BATCH = 32
FEATURES = 64
HIDDEN = 64
CLASSES = 10
LR = 0.1
VARIANTS = ("xpnn", "native", "autograd")


def variants(backend: Backend, dtype: str) -> dict[str, Variant]:
    """Build the training-step variants for one backend and dtype."""
    rng = host_rng(64)
    where = {"xp": backend.xp, "device": backend.device, "dtype": backend.dtype(dtype)}
    model = xpnn.Sequential(
        xpnn.Linear(FEATURES, HIDDEN, seed=0, **where),
        xpnn.ReLU(),
        xpnn.Linear(HIDDEN, CLASSES, seed=1, **where),
    )
    loss_fn = xpnn.CrossEntropyLoss()
    optimizer = SGD(model, lr=LR)
    x = backend.asarray(rng.random((BATCH, FEATURES)), dtype)
    labels_host = rng.integers(0, CLASSES, BATCH)
    labels = backend.labels(labels_host)
    lazy = backend.name == "dask"

    def run_xpnn() -> tuple[Any, ...]:
        prediction, back = forward_on_data(model, x)
        value, dprediction = loss_fn(prediction, labels)
        optimizer.zero_grad()
        back(dprediction)
        optimizer.step()
        if lazy:
            _persist_model(model, value)
            return ()
        return (value, *model.parameters())

    # Copies, so that every variant updates its own parameters.
    start = [backend.xp.asarray(p, copy=True) for p in model.parameters()]
    built: dict[str, Variant] = {
        "xpnn": run_xpnn,
        "native": _native(backend, start, x, labels, labels_host),
    }
    if backend.name == "torch":
        built["autograd"] = _autograd(backend, start, x, labels)
    return built


def _persist_model(model: xpnn.Module, value: Any) -> None:
    import dask

    names = [name for name, _ in model.named_parameters()]
    _, *persisted = dask.persist(value, *model.parameters())
    for name, array in zip(names, persisted, strict=True):
        model.set_parameter(name, array)


def _native(
    backend: Backend, params: list[Any], x: Any, labels: Any, labels_host: np.ndarray
) -> Variant:
    if backend.name in ("numpy", "cupy"):
        return _native_numpy_like(backend, params, x, labels)
    if backend.name == "torch":
        return _native_torch(params, x, labels)
    if backend.name == "jax":
        return _native_jax(params, x, labels)
    return _native_namespace(backend, params, x, labels)


def _native_numpy_like(backend: Backend, params: list[Any], x: Any, labels: Any) -> Variant:
    lib = np if backend.name == "numpy" else __import__("cupy")
    w1, b1, w2, b2 = params
    rows = lib.arange(BATCH)
    maximum, exp, log = lib.maximum, lib.exp, lib.log

    def step() -> tuple[Any, ...]:
        h = x @ w1 + b1
        a = maximum(h, 0)
        z = a @ w2 + b2
        shifted = z - z.max(axis=1, keepdims=True)
        e = exp(shifted)
        s = e.sum(axis=1, keepdims=True)
        loss = (log(s[:, 0]) - shifted[rows, labels]).mean()
        dz = e / s
        dz[rows, labels] -= 1
        dz /= BATCH
        dw2 = a.T @ dz
        db2 = dz.sum(axis=0)
        dh = dz @ w2.T
        dh *= h > 0
        dw1 = x.T @ dh
        db1 = dh.sum(axis=0)
        for param, grad in zip(params, (dw1, db1, dw2, db2), strict=True):
            param -= LR * grad
        return loss, w1, b1, w2, b2

    return step


def _native_torch(params: list[Any], x: Any, labels: Any) -> Variant:
    import torch

    w1, b1, w2, b2 = params
    rows = torch.arange(BATCH, device=x.device)
    addmm, mm, relu = torch.addmm, torch.mm, torch.relu
    column = labels[:, None]

    def step() -> tuple[Any, ...]:
        h = addmm(b1, x, w1)
        a = relu(h)
        z = addmm(b2, a, w2)
        shifted = z - z.amax(dim=1, keepdim=True)
        e = shifted.exp()
        s = e.sum(dim=1, keepdim=True)
        loss = (s.log().squeeze(1) - shifted.gather(1, column).squeeze(1)).mean()
        dz = e / s
        dz[rows, labels] -= 1
        dz /= BATCH
        dw2 = mm(a.t(), dz)
        db2 = dz.sum(0)
        dh = mm(dz, w2.t())
        dh *= h > 0
        dw1 = mm(x.t(), dh)
        db1 = dh.sum(0)
        w1.sub_(dw1, alpha=LR)
        b1.sub_(db1, alpha=LR)
        w2.sub_(dw2, alpha=LR)
        b2.sub_(db2, alpha=LR)
        return loss, w1, b1, w2, b2

    return step


def _native_jax(params: list[Any], x: Any, labels: Any) -> Variant:
    import jax.numpy as jnp

    state = list(params)
    rows = jnp.arange(BATCH)
    column = labels[:, None]

    def step() -> tuple[Any, ...]:
        w1, b1, w2, b2 = state
        h = jnp.matmul(x, w1) + b1
        a = jnp.maximum(h, 0)
        z = jnp.matmul(a, w2) + b2
        shifted = z - jnp.max(z, axis=1, keepdims=True)
        e = jnp.exp(shifted)
        s = jnp.sum(e, axis=1, keepdims=True)
        picked = jnp.take_along_axis(shifted, column, axis=1)
        loss = jnp.mean(jnp.log(s[:, 0]) - picked[:, 0])
        dz = (e / s).at[rows, labels].add(-1) / BATCH
        dw2 = jnp.matmul(a.T, dz)
        db2 = jnp.sum(dz, axis=0)
        dh = jnp.matmul(dz, w2.T) * (h > 0)
        dw1 = jnp.matmul(x.T, dh)
        db1 = jnp.sum(dh, axis=0)
        state[:] = [w1 - LR * dw1, b1 - LR * db1, w2 - LR * dw2, b2 - LR * db2]
        return (loss, *state)

    return step


def _native_namespace(backend: Backend, params: list[Any], x: Any, labels: Any) -> Variant:
    xp = backend.xp
    state = list(params)
    dtype = x.dtype
    onehot = xp.astype(labels[:, None] == xp.arange(CLASSES, device=backend.device)[None, :], dtype)
    zero = xp.zeros((), dtype=dtype, device=backend.device)
    lazy = backend.name == "dask"

    def step() -> tuple[Any, ...]:
        w1, b1, w2, b2 = state
        h = x @ w1 + b1
        a = xp.maximum(h, zero)
        z = a @ w2 + b2
        shifted = z - xp.max(z, axis=1, keepdims=True)
        e = xp.exp(shifted)
        s = xp.sum(e, axis=1, keepdims=True)
        loss = xp.mean(xp.log(s[:, 0]) - xp.sum(shifted * onehot, axis=1))
        dz = (e / s - onehot) / BATCH
        dw2 = a.T @ dz
        db2 = xp.sum(dz, axis=0)
        dh = (dz @ w2.T) * xp.astype(h > 0, dtype)
        dw1 = x.T @ dh
        db1 = xp.sum(dh, axis=0)
        for index, grad in enumerate((dw1, db1, dw2, db2)):
            state[index] -= LR * grad  # in place where the array allows it
        if lazy:
            import dask

            persisted = dask.persist(loss, *state)
            state[:] = persisted[1:]
            return ()
        return (loss, *state)

    return step


def _autograd(backend: Backend, params: list[Any], x: Any, labels: Any) -> Variant:
    import torch
    import torch.nn.functional as F

    w1, b1, w2, b2 = params
    net = torch.nn.Sequential(
        torch.nn.Linear(FEATURES, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, CLASSES)
    ).to(device=backend.device, dtype=w1.dtype)
    with torch.no_grad():
        for layer, (w, b) in zip((net[0], net[2]), ((w1, b1), (w2, b2)), strict=True):
            layer.weight.copy_(w.T)
            layer.bias.copy_(b)
    optimizer = torch.optim.SGD(net.parameters(), lr=LR)
    parameters = list(net.parameters())

    def step() -> tuple[Any, ...]:
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), labels)
        loss.backward()
        optimizer.step()
        return (loss, *parameters)

    return step

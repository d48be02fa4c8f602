"""TransformerEncoderLayer forward + backward.

One post-norm encoder layer, PyTorch's defaults but for the sizes: a batch
of 32 sequences of length 40, d_model 64, 4 heads, a feed-forward width of
256 (4 d_model), ReLU, dropout 0 (the masks are drawn on the host and would
time the host generator), ``batch_first=True``, no mask.

``xpnn``
    ``y, back = layer.forward(x); back(dy)``: the output, the input
    gradient and every parameter's gradient.
``autograd``
    PyTorch only: ``nn.TransformerEncoderLayer`` with the same parameters
    and ``y.backward(dy)``. Autograd keeps the layer on its regular path
    (the fused inference path needs gradients off).
"""

from __future__ import annotations

from typing import Any

import xpnn

from .harness import Backend, Variant, host_rng

BATCH = 32
LENGTH = 40
D_MODEL = 64
HEADS = 4
FEEDFORWARD = 256
VARIANTS = ("xpnn", "autograd")


def encoder_layer_variants(
    backend: Backend, dtype: str, batch: int = BATCH, length: int = LENGTH
) -> dict[str, Variant]:
    """Build the encoder-layer forward + backward variants for one backend and dtype."""
    rng = host_rng(40)
    where = {"xp": backend.xp, "device": backend.device, "dtype": backend.dtype(dtype)}
    layer = xpnn.TransformerEncoderLayer(
        D_MODEL, HEADS, FEEDFORWARD, dropout=0.0, batch_first=True, seed=0, **where
    )
    x_host = rng.standard_normal((batch, length, D_MODEL))
    dy_host = rng.standard_normal((batch, length, D_MODEL))
    x, dy = backend.asarray(x_host, dtype), backend.asarray(dy_host, dtype)

    def run_xpnn() -> tuple[Any, ...]:
        layer.zero_grad()
        y, back = layer.forward(x)
        dx = back(dy)
        return (y, dx, *(grad for _, grad in layer.named_gradients()))

    built: dict[str, Variant] = {"xpnn": run_xpnn}
    if backend.name == "torch":
        built["autograd"] = _autograd(layer, x, dy)
    return built


def _autograd(layer: xpnn.TransformerEncoderLayer, x: Any, dy: Any) -> Variant:
    from xpnn.interop.torch import to_torch

    network = to_torch(layer).to(device=x.device, dtype=x.dtype)
    x = x.detach().clone().requires_grad_(True)

    def step() -> tuple[Any, ...]:
        network.zero_grad(set_to_none=True)
        x.grad = None
        y = network(x)
        y.backward(dy)
        return (y, x.grad, *(p.grad for p in network.parameters()))

    return step

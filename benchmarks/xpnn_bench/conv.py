"""Convolution forward + backward, and one LeNet training step.

``Conv2d`` at the two shapes of ``xpnn train --task mnist``'s network, on a
batch of 64: 1 -> 16 channels at 28x28 and 16 -> 32 channels at 14x14, a
5x5 kernel with padding 2.

``xpnn``
    ``y, back = conv.forward(x); back(dy)``: the output, the input gradient
    and the weight and bias gradients.
``native``
    NumPy only: the same four results written by hand with
    ``numpy.lib.stride_tricks.sliding_window_view`` and ``tensordot``; the
    input gradient is the correlation of the padded ``dy`` with the flipped
    kernel.
``autograd``
    PyTorch only: ``nn.Conv2d`` (oneDNN on the CPU) and ``y.backward(dy)``.

The LeNet step is the ``--model cnn`` network on a batch of 64 (two blocks
of convolution, ReLU and 2x2 max pooling, then ``Flatten`` and ``Linear``):
forward, ``CrossEntropyLoss``, backward and ``Adam``, against the same
network in PyTorch with ``F.cross_entropy``, autograd and
``torch.optim.Adam``, from the same parameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import xpnn
from xpnn.cli import models
from xpnn.cli.backends import Choice
from xpnn.layers import forward_on_data
from xpnn.optim import Adam

from .harness import Backend, Variant, host_rng

BATCH = 64
KERNEL = 5
PADDING = 2
#: ``(in_channels, out_channels, side)`` of LeNet's two convolutions.
SHAPES = ((1, 16, 28), (16, 32, 14))
CLASSES = 10
LR = 1e-3
VARIANTS = ("xpnn", "native", "autograd")


def conv_variants(
    backend: Backend, dtype: str, shape: tuple[int, int, int], batch: int = BATCH
) -> dict[str, Variant]:
    """Build the convolution forward + backward variants for one shape and batch."""
    in_channels, out_channels, side = shape
    rng = host_rng(7)
    where = {"xp": backend.xp, "device": backend.device, "dtype": backend.dtype(dtype)}
    layer = xpnn.Conv2d(in_channels, out_channels, KERNEL, padding=PADDING, seed=0, **where)
    x_host = rng.standard_normal((batch, in_channels, side, side))
    dy_host = rng.standard_normal((batch, out_channels, side, side))
    x, dy = backend.asarray(x_host, dtype), backend.asarray(dy_host, dtype)

    def run_xpnn() -> tuple[Any, ...]:
        layer.zero_grad()
        y, back = layer.forward(x)
        dx = back(dy)
        return (y, dx, layer.grads["weight"], layer.grads["bias"])

    built: dict[str, Variant] = {"xpnn": run_xpnn}
    weight, bias = layer.weight, layer.bias
    if backend.name == "numpy":
        built["native"] = _native_numpy(np.asarray(weight), np.asarray(bias), x, dy)
    if backend.name == "torch":
        built["autograd"] = _autograd_conv(weight, bias, x, dy)
    return built


def _native_numpy(weight: np.ndarray, bias: np.ndarray, x: np.ndarray, dy: np.ndarray) -> Variant:
    from numpy.lib.stride_tricks import sliding_window_view

    k, p = KERNEL, PADDING
    spatial = ((0, 0), (0, 0), (p, p), (p, p))
    flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1])

    def step() -> tuple[Any, ...]:
        windows = sliding_window_view(np.pad(x, spatial), (k, k), axis=(2, 3))
        y = np.tensordot(windows, weight, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
        y = y + bias[:, None, None]
        dweight = np.tensordot(dy, windows, axes=([0, 2, 3], [0, 2, 3]))
        dbias = dy.sum(axis=(0, 2, 3))
        dy_windows = sliding_window_view(np.pad(dy, spatial), (k, k), axis=(2, 3))
        dx = np.tensordot(dy_windows, flipped, axes=([1, 4, 5], [0, 2, 3])).transpose(0, 3, 1, 2)
        return y, dx, dweight, dbias

    return step


def _autograd_conv(weight: Any, bias: Any, x: Any, dy: Any) -> Variant:
    import torch

    conv = torch.nn.Conv2d(int(weight.shape[1]), int(weight.shape[0]), KERNEL, padding=PADDING)
    conv = conv.to(device=x.device, dtype=x.dtype)
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
    x = x.detach().clone().requires_grad_(True)

    def step() -> tuple[Any, ...]:
        conv.zero_grad(set_to_none=True)
        x.grad = None
        y = conv(x)
        y.backward(dy)
        return (y, x.grad, conv.weight.grad, conv.bias.grad)

    return step


def lenet_variants(backend: Backend, dtype: str, batch: int = BATCH) -> dict[str, Variant]:
    """Build the LeNet training-step variants for one backend, dtype and batch."""
    rng = host_rng(28)
    choice = Choice(
        backend.name, str(backend.device), backend.xp, backend.device, backend.dtype(dtype), dtype
    )
    model = models.cnn(choice, (1, 28, 28), CLASSES, seed=0)
    loss_fn = xpnn.CrossEntropyLoss()
    x_host = rng.random((batch, 28 * 28))
    labels_host = rng.integers(0, CLASSES, batch)
    x, labels = backend.asarray(x_host, dtype), backend.labels(labels_host)
    # Built before the first step: PyTorch's copy starts from the same parameters.
    network = _torch_copy(model) if backend.name == "torch" else None
    optimizer = Adam(model, lr=LR)

    def run_xpnn() -> tuple[Any, ...]:
        prediction, back = forward_on_data(model, x)
        value, dprediction = loss_fn(prediction, labels)
        optimizer.zero_grad()
        back(dprediction)
        optimizer.step()
        return (value, *model.parameters())

    built: dict[str, Variant] = {"xpnn": run_xpnn}
    if network is not None:
        built["autograd"] = _autograd_lenet(network, x, labels)
    return built


def _torch_copy(model: xpnn.Sequential) -> Any:
    from xpnn.interop.torch import to_torch

    return to_torch(model)


def _autograd_lenet(network: Any, x: Any, labels: Any) -> Variant:
    import torch
    import torch.nn.functional as F

    network = network.to(device=x.device, dtype=x.dtype)
    optimizer = torch.optim.Adam(network.parameters(), lr=LR)

    def step() -> tuple[Any, ...]:
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(network(x), labels)
        loss.backward()
        optimizer.step()
        return (loss, *network.parameters())

    return step

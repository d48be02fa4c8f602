"""One training step of the spoken-digits default model.

``xpnn train --task spoken-digits``'s default network: a ``GRU`` of 64 units
over 13 MFCCs per frame, batch first, stopped at each recording's own end by
its length, then ``Linear(64, 10)`` on the final state. A batch of 32
recordings padded to their longest, 40 frames, with lengths drawn once from
6 to 40 frames (the data's recordings have 6 to 92, 18 on average).

``xpnn``
    The step of ``xpnn.fit``: ``model.forward(x, lengths,
    input_grad=False)``, ``CrossEntropyLoss``, ``optimizer.zero_grad()``,
    backward and ``Adam.step()``.
``autograd``
    PyTorch only: ``nn.GRU`` over ``pack_padded_sequence(...,
    enforce_sorted=False)``, ``nn.Linear`` on the last layer's final state,
    ``F.cross_entropy``, ``loss.backward()`` and ``torch.optim.Adam``, from
    the same parameters.
"""

from __future__ import annotations

from typing import Any

import xpnn
from xpnn.cli.backends import Choice
from xpnn.cli.models import sequence_model
from xpnn.optim import Adam

from .harness import Backend, Variant, host_rng

BATCH = 32
FEATURES = 13
HIDDEN = 64
CLASSES = 10
STEPS = 40
SHORTEST = 6
LR = 3e-3
VARIANTS = ("xpnn", "autograd")


def step_variants(backend: Backend, dtype: str, batch: int = BATCH) -> dict[str, Variant]:
    """Build the spoken-digits training-step variants for one backend, dtype and batch."""
    rng = host_rng(13)
    choice = Choice(
        backend.name, str(backend.device), backend.xp, backend.device, backend.dtype(dtype), dtype
    )
    model = sequence_model("gru", choice, FEATURES, CLASSES, HIDDEN, seed=0)
    lengths_host = rng.integers(SHORTEST, STEPS + 1, batch)
    lengths_host[0] = STEPS  # padded to the longest, as fit cuts a batch
    x_host = rng.standard_normal((batch, STEPS, FEATURES))
    x_host[lengths_host[:, None] <= range(STEPS)] = 0.0
    x = backend.asarray(x_host, dtype)
    lengths, labels = backend.labels(lengths_host), backend.labels(rng.integers(0, CLASSES, batch))
    # Copied before the first step: PyTorch's twin starts from the same parameters.
    twin = _torch_twin(model) if backend.name == "torch" else None
    loss_fn = xpnn.CrossEntropyLoss()
    optimizer = Adam(model, lr=LR)

    def run_xpnn() -> tuple[Any, ...]:
        logits, back = model.forward(x, lengths, input_grad=False)
        value, dlogits = loss_fn(logits, labels)
        optimizer.zero_grad()
        back(dlogits)
        optimizer.step()
        return (value, *model.parameters())

    built: dict[str, Variant] = {"xpnn": run_xpnn}
    if twin is not None:
        built["autograd"] = _autograd(*twin, x, lengths_host, labels)
    return built


def _torch_twin(model: Any) -> tuple[Any, Any]:
    from xpnn.interop.torch import to_torch

    recurrent, head = model.body.layers
    return to_torch(recurrent), to_torch(head)


def _autograd(recurrent: Any, head: Any, x: Any, lengths_host: Any, labels: Any) -> Variant:
    import torch
    import torch.nn.functional as F
    from torch.nn.utils.rnn import pack_padded_sequence

    recurrent = recurrent.to(device=x.device, dtype=x.dtype)
    head = head.to(device=x.device, dtype=x.dtype)
    parameters = [*recurrent.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=LR)
    lengths = torch.as_tensor(lengths_host)  # pack_padded_sequence wants them on the CPU

    def step() -> tuple[Any, ...]:
        optimizer.zero_grad(set_to_none=True)
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, h_n = recurrent(packed)
        loss = F.cross_entropy(head(h_n[-1]), labels)
        loss.backward()
        optimizer.step()
        return (loss, *parameters)

    return step

"""One training step of the sentiment task's default model.

``xpnn train --task sentiment``'s ``bag`` model at its default width: a
table of 130,000 token vectors of 16 (30,000 words and 100,000 hashed word
pairs), their mean over each text, then ``Linear(16, 3)``. A batch of 128
texts of 4 to 60 tokens padded to their longest, token ids drawn once from
a Zipf law over the table, as words fall in real texts; pads are id 0.

``xpnn``
    The step of ``xpnn.fit``: ``model.forward(ids, lengths,
    input_grad=False)``, ``CrossEntropyLoss``, ``optimizer.zero_grad()``,
    backward (the table's gradient summed per id without a scatter, see
    :func:`xpnn.functional.embedding_backward`) and ``Adam.step()``.
``autograd``
    ``nn.EmbeddingBag(mode="mean", padding_idx=0)`` over the valid ids with
    their offsets, ``nn.Linear``, ``F.cross_entropy``, ``loss.backward()``
    and ``torch.optim.Adam``, from the same parameters: on PyTorch's own
    device, and for NumPy on PyTorch's CPU, since the task trains on NumPy
    by default and this twin is what a PyTorch user would write instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import xpnn
from xpnn.cli.backends import Choice
from xpnn.cli.sentiment import BIGRAM_BUCKETS, CLASSES, VOCABULARY, bag_classifier
from xpnn.optim import Adam

from .harness import Backend, Variant, host_rng

BATCH = 128
WIDTH = 16
ROWS = VOCABULARY + BIGRAM_BUCKETS
SHORTEST, LONGEST = 4, 60
LR = 3e-3
VARIANTS = ("xpnn", "autograd")


def step_variants(backend: Backend, dtype: str, batch: int = BATCH) -> dict[str, Variant]:
    """Build the bag-model training-step variants for one backend, dtype and batch."""
    rng = host_rng(16)
    choice = Choice(
        backend.name, str(backend.device), backend.xp, backend.device, backend.dtype(dtype), dtype
    )
    model = bag_classifier(choice, ROWS, len(CLASSES), WIDTH, seed=0)
    lengths_host = rng.integers(SHORTEST, LONGEST + 1, batch)
    lengths_host[0] = LONGEST
    ids_host = np.minimum(rng.zipf(1.2, (batch, LONGEST)), ROWS - 1)
    ids_host[lengths_host[:, None] <= np.arange(LONGEST)] = 0
    ids, lengths = backend.labels(ids_host), backend.labels(lengths_host)
    labels_host = rng.integers(0, len(CLASSES), batch)
    labels = backend.labels(labels_host)
    twin = _torch_twin(model) if backend.name in ("numpy", "torch") else None
    loss_fn = xpnn.CrossEntropyLoss()
    optimizer = Adam(model, lr=LR)

    def run_xpnn() -> tuple[Any, ...]:
        logits, back = model.forward(ids, lengths, input_grad=False)
        value, dlogits = loss_fn(logits, labels)
        optimizer.zero_grad()
        back(dlogits)
        optimizer.step()
        return (value, *model.parameters())

    built: dict[str, Variant] = {"xpnn": run_xpnn}
    if twin is not None:
        where = labels.device if backend.name == "torch" else "cpu"
        built["autograd"] = _autograd(*twin, ids_host, lengths_host, labels_host, where)
    return built


def _torch_twin(model: Any) -> tuple[Any, Any]:
    import torch

    from xpnn.interop.torch import to_torch

    embedding, head = model.body.layers
    table = to_torch(embedding)
    bag = torch.nn.EmbeddingBag(ROWS, WIDTH, mode="mean", padding_idx=0, dtype=table.weight.dtype)
    with torch.no_grad():
        bag.weight.copy_(table.weight)
    return bag, to_torch(head)


def _autograd(
    bag: Any, head: Any, ids_host: Any, lengths_host: Any, labels_host: Any, where: Any
) -> Variant:
    import torch
    import torch.nn.functional as F

    bag, head = bag.to(where), head.to(where)
    valid = ids_host[np.arange(ids_host.shape[1]) < lengths_host[:, None]]
    flat = torch.as_tensor(valid, device=where)
    offsets = torch.as_tensor(np.concatenate([[0], np.cumsum(lengths_host)[:-1]]), device=where)
    labels = torch.as_tensor(labels_host, device=where)
    parameters = [*bag.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=LR)

    def step() -> tuple[Any, ...]:
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(head(bag(flat, offsets)), labels)
        loss.backward()
        optimizer.step()
        return (loss, *parameters)

    return step

"""Save and load models, and their optimizer's state, as safetensors files.

A checkpoint is a `safetensors <https://huggingface.co/docs/safetensors>`_
file, read and written with the ``safetensors`` package: the parameters and
optimizer buffers as raw tensors, and everything else (the model's
structure, the dtypes, the optimizer's settings and step counts) as strings
in the file's ``__metadata__``. Nothing is pickled, so loading a file runs
no code from it, and any safetensors reader can open it.

- :func:`save` writes a model, and optionally its optimizer, atomically.
- :func:`load` builds the model back, on any library, device and dtype.
- :func:`load_optimizer` restores the optimizer's state into an optimizer
  made for the loaded model, as ``torch.optim.Optimizer.load_state_dict``
  does in PyTorch.

Every tensor's SHA-256 digest is saved with it and checked as it is read,
so a flipped byte in a file is found. Every problem with a file raises
:class:`CheckpointError`.

One job per module: :mod:`~xpnn.checkpoint.format` (the format's constants,
its error, and the checks of a file's header and metadata),
:mod:`~xpnn.checkpoint.writer` (:func:`save`), :mod:`~xpnn.checkpoint.build`
(:func:`load`: the declared shapes, then the model) and
:mod:`~xpnn.checkpoint.optimizer` (:func:`load_optimizer`).
"""

from __future__ import annotations

from .build import load
from .format import (
    DIGEST_ALGORITHM,
    FORMAT,
    FORMAT_VERSION,
    OPTIMIZER_PREFIX,
    WEIGHT_LAYOUT,
    CheckpointError,
)
from .optimizer import load_optimizer
from .writer import save

__all__ = [
    "DIGEST_ALGORITHM",
    "FORMAT",
    "FORMAT_VERSION",
    "OPTIMIZER_PREFIX",
    "WEIGHT_LAYOUT",
    "CheckpointError",
    "load",
    "load_optimizer",
    "save",
]

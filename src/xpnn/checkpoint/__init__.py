"""Save and load models, their optimizer's state and schedule, as safetensors files.

A checkpoint is a `safetensors <https://huggingface.co/docs/safetensors>`_
file, read and written with the ``safetensors`` package: the parameters and
optimizer buffers as raw tensors, and everything else (the model's
structure, the dtypes, the optimizer's settings and step counts, the
schedule's state) as strings
in the file's ``__metadata__``. Nothing is pickled, so loading a file runs
no code from it, and any safetensors reader can open it.

- :func:`save` writes a model, and optionally its optimizer and its
  learning-rate schedule, atomically.
- :func:`load` builds the model back, on any library, device and dtype.
- :func:`load_optimizer` restores the optimizer's state into an optimizer
  made for the loaded model, as ``torch.optim.Optimizer.load_state_dict``
  does in PyTorch.
- :func:`load_task` reads the task record saved with a model (what it
  is for, its classes and the preparation of its input).
- :func:`load_scheduler` restores the learning-rate schedule's state into a
  schedule made for that optimizer, as ``scheduler.load_state_dict`` does.

Every tensor's SHA-256 digest is saved with it and checked as it is read,
so a flipped byte in a file is found. Every problem with a file raises
:class:`CheckpointError`.

One job per module: :mod:`~xpnn.checkpoint.format` (the format's constants,
its error, and the checks of a file's header and metadata),
:mod:`~xpnn.checkpoint.writer` (:func:`save`), :mod:`~xpnn.checkpoint.build`
(:func:`load`: the declared shapes, then the model),
:mod:`~xpnn.checkpoint.optimizer` (:func:`load_optimizer`) and
:mod:`~xpnn.checkpoint.scheduler` (:func:`load_scheduler`).
"""

from __future__ import annotations

from .build import load, load_task
from .format import (
    DIGEST_ALGORITHM,
    FORMAT,
    FORMAT_VERSION,
    OPTIMIZER_PREFIX,
    WEIGHT_LAYOUT,
    CheckpointError,
)
from .optimizer import load_optimizer
from .scheduler import load_scheduler
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
    "load_scheduler",
    "load_task",
    "save",
]

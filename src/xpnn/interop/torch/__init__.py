"""Exchange with PyTorch: models from and to ``torch.nn``, and training inside PyTorch.

- :func:`from_torch` copies an ``nn.Linear`` or an ``nn.Sequential`` of
  linear layers, activations and dropout into the equal xpnn model, on any
  backend;
- :func:`to_torch` copies an xpnn model, on any backend, into the equal
  ``nn.Linear`` / ``nn.Sequential``;
- :class:`TorchModule` makes an xpnn model an ``nn.Module`` whose
  gradients are xpnn's hand-written backward (through
  :class:`XpnnFunction`, a ``torch.autograd.Function``), so that
  ``loss.backward()`` and ``torch.optim`` train it in PyTorch's own loops;
- :func:`compiled_step` compiles an xpnn training step (forward, loss,
  backward, an xpnn optimizer's update) with ``torch.compile``, and
  :func:`explain_step` counts its graph breaks.

Layouts differ in one place: ``nn.Linear`` stores its weight as
``(out_features, in_features)`` and computes ``x @ weight.T + bias``, xpnn
stores ``(in_features, out_features)`` and computes ``x @ weight + bias``.
The conversions transpose; nothing is conjugated, complex weights included.

The package has one module per job: :mod:`~xpnn.interop.torch.convert`
(the conversions), :mod:`~xpnn.interop.torch.autograd` (the autograd
bridge) and :mod:`~xpnn.interop.torch.compiled` (compiled training steps).
Each imports PyTorch, so xpnn imports it only when it is asked for.
"""

from __future__ import annotations

from ..step import TrainStep
from .autograd import TorchModule, XpnnFunction
from .compiled import compiled_step, explain_step
from .convert import from_torch, to_torch

__all__ = [
    "TorchModule",
    "TrainStep",
    "XpnnFunction",
    "compiled_step",
    "explain_step",
    "from_torch",
    "to_torch",
]

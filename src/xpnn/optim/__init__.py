"""Optimizers written once on the array API standard.

:class:`SGD`, :class:`Adam`, :class:`AdamW`, :class:`RMSprop` and
:class:`Adagrad` follow the update formulas of their ``torch.optim``
namesakes and work on the parameters of any xpnn
:class:`~xpnn.Module`, whatever library and device hold them. Parameters that
may be written are updated in place; immutable (JAX), read-only and lazy
(Dask) ones are replaced in the module that holds them.
"""

from ._base import Optimizer
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .clipping import clip_grad_norm_, clip_grad_value_
from .rmsprop import RMSprop
from .schedules import (
    CosineAnnealingLR,
    ExponentialLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    OneCycleLR,
    SequentialLR,
    StepLR,
)
from .sgd import SGD

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "ExponentialLR",
    "LRScheduler",
    "LinearLR",
    "MultiStepLR",
    "OneCycleLR",
    "Optimizer",
    "RMSprop",
    "SequentialLR",
    "StepLR",
    "clip_grad_norm_",
    "clip_grad_value_",
]

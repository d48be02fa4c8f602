"""xpnn: neural-network layers written once on the Python array API standard.

The same layer code and the same hand-derived gradients run on NumPy,
PyTorch, CuPy, JAX, Dask and array_api_strict arrays, on whatever device
they live on. Importing xpnn imports none of those libraries but NumPy.
"""

from . import functional, init, losses, optim
from ._version import __version__
from .checkpoint import CheckpointError, load, load_optimizer, save
from .layers import (
    ELU,
    GELU,
    BatchNorm1d,
    BatchNorm2d,
    Dropout,
    Hardtanh,
    Identity,
    LeakyReLU,
    Linear,
    LogSoftmax,
    Mish,
    Module,
    ReLU,
    Sequential,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from .losses import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from .training import DivergedError, History, evaluate, fit

__all__ = [
    "ELU",
    "GELU",
    "BCELoss",
    "BCEWithLogitsLoss",
    "BatchNorm1d",
    "BatchNorm2d",
    "CheckpointError",
    "CrossEntropyLoss",
    "DivergedError",
    "Dropout",
    "Hardtanh",
    "History",
    "HuberLoss",
    "Identity",
    "KLDivLoss",
    "L1Loss",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "MSELoss",
    "Mish",
    "Module",
    "NLLLoss",
    "ReLU",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "SmoothL1Loss",
    "Softmax",
    "Softplus",
    "Tanh",
    "__version__",
    "evaluate",
    "fit",
    "functional",
    "init",
    "load",
    "load_optimizer",
    "losses",
    "optim",
    "save",
]

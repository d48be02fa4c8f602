"""Stateful layers: thin wrappers that own parameters over ``functional``."""

from ._config import LAYERS, from_config
from ._module import Backward, Module, call_backward, forward_on_data
from .activations import (
    ELU,
    GELU,
    Hardtanh,
    Identity,
    LeakyReLU,
    LogSoftmax,
    Mish,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from .convolution import Conv1d, Conv2d
from .dropout import Dropout
from .edges import edge_features
from .layer_norm import LayerNorm, RMSNorm
from .linear import Linear
from .normalization import BatchNorm1d, BatchNorm2d
from .pooling import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AvgPool1d,
    AvgPool2d,
    MaxPool1d,
    MaxPool2d,
)
from .reshape import Flatten, Unflatten
from .sequential import Sequential

__all__ = [
    "ELU",
    "GELU",
    "LAYERS",
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "Backward",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv1d",
    "Conv2d",
    "Dropout",
    "Flatten",
    "Hardtanh",
    "Identity",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "MaxPool1d",
    "MaxPool2d",
    "Mish",
    "Module",
    "RMSNorm",
    "ReLU",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
    "Unflatten",
    "call_backward",
    "edge_features",
    "forward_on_data",
    "from_config",
]

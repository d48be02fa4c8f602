"""Stateful layers: thin wrappers that own parameters over ``functional``."""

from ._config import LAYERS, from_config
from ._module import Backward, Module, call_backward, forward_on_data
from .activations import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .dropout import Dropout
from .edges import edge_features
from .linear import Linear
from .sequential import Sequential

__all__ = [
    "GELU",
    "LAYERS",
    "Backward",
    "Dropout",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "Module",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "call_backward",
    "edge_features",
    "forward_on_data",
    "from_config",
]

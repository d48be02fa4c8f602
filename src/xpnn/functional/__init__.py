"""Pure functions: the math of every layer and loss, written once on the standard.

Each forward function has a ``*_backward`` twin that returns the gradients
of its inputs; each loss returns ``(loss, grad)``. They hold no state and
never write into their arguments.
"""

from .activations import (
    gelu,
    gelu_backward,
    leaky_relu,
    leaky_relu_backward,
    log_softmax,
    log_softmax_backward,
    relu,
    relu_backward,
    sigmoid,
    sigmoid_backward,
    softmax,
    softmax_backward,
    tanh,
    tanh_backward,
)
from .linear import linear, linear_backward
from .losses import binary_cross_entropy_with_logits, mse_loss, softmax_cross_entropy

__all__ = [
    "binary_cross_entropy_with_logits",
    "gelu",
    "gelu_backward",
    "leaky_relu",
    "leaky_relu_backward",
    "linear",
    "linear_backward",
    "log_softmax",
    "log_softmax_backward",
    "mse_loss",
    "relu",
    "relu_backward",
    "sigmoid",
    "sigmoid_backward",
    "softmax",
    "softmax_backward",
    "softmax_cross_entropy",
    "tanh",
    "tanh_backward",
]

"""Pure functions: the math of every layer and loss, written once on the standard.

Each forward function has a ``*_backward`` twin that returns the gradients
of its inputs; each loss returns ``(loss, grad)``. They hold no state and
never write into their arguments.
"""

from .activations import (
    elu,
    elu_backward,
    gelu,
    gelu_backward,
    hardtanh,
    hardtanh_backward,
    identity,
    identity_backward,
    leaky_relu,
    leaky_relu_backward,
    log_softmax,
    log_softmax_backward,
    mish,
    mish_backward,
    relu,
    relu_backward,
    sigmoid,
    sigmoid_backward,
    silu,
    silu_backward,
    softmax,
    softmax_backward,
    softplus,
    softplus_backward,
    tanh,
    tanh_backward,
)
from .linear import linear, linear_backward
from .losses import binary_cross_entropy_with_logits, mse_loss, softmax_cross_entropy

__all__ = [
    "binary_cross_entropy_with_logits",
    "elu",
    "elu_backward",
    "gelu",
    "gelu_backward",
    "hardtanh",
    "hardtanh_backward",
    "identity",
    "identity_backward",
    "leaky_relu",
    "leaky_relu_backward",
    "linear",
    "linear_backward",
    "log_softmax",
    "log_softmax_backward",
    "mish",
    "mish_backward",
    "mse_loss",
    "relu",
    "relu_backward",
    "sigmoid",
    "sigmoid_backward",
    "silu",
    "silu_backward",
    "softmax",
    "softmax_backward",
    "softmax_cross_entropy",
    "softplus",
    "softplus_backward",
    "tanh",
    "tanh_backward",
]

"""Stateful layers: thin wrappers that own parameters over ``functional``."""

from ._module import Backward, Module
from .dropout import Dropout
from .linear import Linear
from .sequential import Sequential

__all__ = ["Backward", "Dropout", "Linear", "Module", "Sequential"]

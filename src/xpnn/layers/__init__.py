"""Stateful layers: thin wrappers that own parameters over ``functional``."""

from ._module import Backward, Module
from .linear import Linear

__all__ = ["Backward", "Linear", "Module"]

"""Pure functions: the math of every layer, written once on the standard.

Each forward function has a ``*_backward`` twin that returns the gradients
of its inputs. They hold no state and never write into their arguments.
"""

from .linear import linear, linear_backward

__all__ = ["linear", "linear_backward"]

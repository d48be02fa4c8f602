"""xpnn: neural-network layers written once on the Python array API standard.

The same layer code and the same hand-derived gradients run on NumPy,
PyTorch, CuPy, JAX, Dask and array_api_strict arrays, on whatever device
they live on. Importing xpnn imports none of those libraries but NumPy.
"""

from . import functional, init
from .layers import Dropout, Linear, Module, Sequential

__version__ = "0.1.0"

__all__ = ["Dropout", "Linear", "Module", "Sequential", "__version__", "functional", "init"]

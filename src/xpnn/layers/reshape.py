"""Reshaping layers: ``Flatten`` and ``Unflatten``, as in PyTorch.

Their backward passes reshape ``dy`` back to the input's shape. Sizes are
static Python ints from the shapes; unknown sizes (Dask's NaN) are refused.
"""

from __future__ import annotations

import math
import numbers
import operator

from .._checks import check_known_shape, check_same_device, shape_str
from .._compat import Array, array_namespace
from ._module import Backward, Module, backward_again

__all__ = ["Flatten", "Unflatten"]


def _int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    return operator.index(value)


def _dim(dim: int, ndim: int, name: str, shape: tuple[int, ...]) -> int:
    # PyTorch counts a 0-d tensor as having one dimension here.
    rank = max(ndim, 1)
    if not -rank <= dim < rank:
        raise ValueError(
            f"{name}={dim} is out of range for an input of shape {shape_str(shape)}: "
            f"expected a dimension from {-rank} to {rank - 1}"
        )
    return dim % rank


class _Reshape(Module):
    """A layer whose output is its input reshaped; ``_out_shape`` says how."""

    def _out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        raise NotImplementedError

    def _shapes(self, x: Array) -> tuple[tuple[int, ...], tuple[int, ...]]:
        array_namespace(x=x)
        shape = check_known_shape("x", x, type(self).__name__)
        return shape, self._out_shape(shape)

    def forward(self, x: Array, *, input_grad: bool = True) -> tuple[Array, Backward]:
        """Reshape ``x``; return ``(y, backward)``, where ``backward(dy)`` reshapes ``dy`` back.

        With ``input_grad=False``, ``backward`` returns ``None``. It may be
        called once unless ``retain_graph=True``.
        """
        xp = array_namespace(x=x)
        in_shape, out_shape = self._shapes(x)
        y = xp.reshape(x, out_shape)
        what = type(self).__name__
        used = False

        def backward(dy: Array, *, retain_graph: bool = False) -> Array | None:
            nonlocal used
            if used:
                raise backward_again(what)
            if input_grad:
                array_namespace(dy=dy, x=x)
                check_same_device(x=x, dy=dy)
                shape = check_known_shape("dy", dy, "the backward pass")
                if shape != out_shape:
                    raise ValueError(
                        f"dy must have the shape of the output: expected "
                        f"{shape_str(out_shape)}, got {shape_str(shape)}"
                    )
            used = not retain_graph
            return xp.reshape(dy, in_shape) if input_grad else None

        return y, backward

    def __call__(self, x: Array) -> Array:
        """Reshape ``x`` and return ``y`` only."""
        return array_namespace(x=x).reshape(x, self._shapes(x)[1])

    def keeps_shape(self) -> bool:
        return False


class Flatten(_Reshape):
    """Merge the dimensions ``start_dim`` to ``end_dim`` into one, as ``torch.nn.Flatten``.

    Parameters
    ----------
    start_dim : int, default 1
    end_dim : int, default -1

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.layers.reshape import Flatten
    >>> Flatten()(np.zeros((2, 3, 4))).shape
    (2, 12)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        start, end = _int(start_dim, "start_dim"), _int(end_dim, "end_dim")
        super().__init__()
        self.start_dim = start
        self.end_dim = end

    def _out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        start = _dim(self.start_dim, len(shape), "start_dim", shape)
        end = _dim(self.end_dim, len(shape), "end_dim", shape)
        if start > end:
            raise ValueError(
                f"start_dim={self.start_dim} comes after end_dim={self.end_dim} for an input "
                f"of shape {shape_str(shape)}"
            )
        if not shape:
            return (1,)
        return (*shape[:start], math.prod(shape[start : end + 1]), *shape[end + 1 :])

    def _settings(self) -> dict[str, object]:
        return {"start_dim": self.start_dim, "end_dim": self.end_dim}


class Unflatten(_Reshape):
    """Split dimension ``dim`` into ``unflattened_size``, as ``torch.nn.Unflatten``.

    Parameters
    ----------
    dim : int
    unflattened_size : tuple of int
        Sizes whose product is the size of ``dim``; one may be ``-1``.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.layers.reshape import Unflatten
    >>> Unflatten(1, (3, 4))(np.zeros((2, 12))).shape
    (2, 3, 4)
    """

    def __init__(self, dim: int, unflattened_size: tuple[int, ...] | list[int]) -> None:
        index = _int(dim, "dim")
        if not isinstance(unflattened_size, (tuple, list)) or not unflattened_size:
            raise TypeError(
                f"unflattened_size must be a non-empty tuple of ints, got {unflattened_size!r}"
            )
        sizes = tuple(_int(s, "unflattened_size") for s in unflattened_size)
        if sum(s == -1 for s in sizes) > 1 or any(s < -1 for s in sizes):
            raise ValueError(
                f"unflattened_size may hold one -1 and otherwise sizes of at least 0, "
                f"got {unflattened_size!r}"
            )
        super().__init__()
        self.dim = index
        self.unflattened_size = sizes

    def _out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if not shape:
            raise ValueError("Unflatten needs an input with at least one dimension, got a 0-d one")
        dim = _dim(self.dim, len(shape), "dim", shape)
        sizes = self.unflattened_size
        known = math.prod(s for s in sizes if s != -1)
        if -1 in sizes:
            if known == 0 or shape[dim] % known:
                raise ValueError(
                    f"unflattened_size {sizes} does not fit dimension {self.dim} of size "
                    f"{shape[dim]}"
                )
            sizes = tuple(shape[dim] // known if s == -1 else s for s in sizes)
        elif known != shape[dim]:
            raise ValueError(
                f"unflattened_size {sizes} must multiply to the size of dimension {self.dim}, "
                f"{shape[dim]}, of the input of shape {shape_str(shape)}"
            )
        return shape[:dim] + sizes + shape[dim + 1 :]

    def _settings(self) -> dict[str, object]:
        return {"dim": self.dim, "unflattened_size": self.unflattened_size}

"""The graph's input: its shape (sizes, names or ``None``) and its dtype."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._compat import Array, array_namespace, dtype_name
from ..layers import Linear, Module, Sequential, Unflatten
from ._common import BATCH, DTYPES, ExportError

__all__ = ["default_input_shape"]


def _first_reshaping(model: Module) -> Module | None:
    """Return the first layer that may change the shape, through Sequentials; None if none."""
    if isinstance(model, Sequential):
        for child in model.children():
            found = _first_reshaping(child)
            if found is not None or not child.keeps_shape():
                return found
        return None
    return None if model.keeps_shape() else model


def default_input_shape(model: Module) -> tuple[None, int] | None:
    """Return ``(None, width)``, the input shape the model's layers tell, or None.

    The width is ``in_features`` of a leading :class:`~xpnn.Linear`, or the
    product of ``unflattened_size`` of a leading :class:`~xpnn.Unflatten`
    of axis 1 (images given as flattened rows, such as the CNN of
    ``xpnn train --model cnn``), where only layers that keep the shape
    (activations, Dropout, batch normalisation) come before it, through
    :class:`~xpnn.Sequential` containers. A model that starts with a
    convolution or a pooling needs its input shape given: its spatial
    sizes are the caller's choice.

    Parameters
    ----------
    model : Module
        The model to export.

    Returns
    -------
    tuple of (None, int), or None
        ``None`` stands for the batch axis; the whole is ``None`` where the
        layers do not tell the width.

    Examples
    --------
    >>> from xpnn import Conv2d, Flatten, Linear, Sequential, Unflatten
    >>> default_input_shape(Sequential(Linear(64, 10)))
    (None, 64)
    >>> default_input_shape(Sequential(Unflatten(1, (1, 28, 28)), Flatten()))
    (None, 784)
    >>> default_input_shape(Conv2d(1, 4, 3)) is None
    True
    """
    first = _first_reshaping(model)
    if isinstance(first, Linear):
        return (None, first.in_features)
    if isinstance(first, Unflatten) and first.dim in (1, -1) and -1 not in first.unflattened_size:
        # Axis 1 of a (batch, width) input; -1 would be its last axis of a
        # 2-d input too, which is how flattened images come.
        return (None, math.prod(first.unflattened_size))
    return None


def _input_spec(
    model: Module,
    input_shape: Sequence[int | str | None] | None,
    example: Array | None,
    dtype: str | None,
    params: Mapping[str, np.ndarray],
    dynamic_batch: bool,
) -> tuple[tuple[int | str | None, ...], str]:
    """Return the input's shape (sizes, names or ``None``) and dtype name."""
    if input_shape is not None and example is not None:
        raise ExportError(
            "pass input_shape or example, not both: the example's shape is the input shape"
        )
    if example is not None:
        xp = array_namespace(example=example)
        shape: tuple[Any, ...] = tuple(example.shape)
        if dtype is None:
            dtype = dtype_name(xp, example.dtype)
            if dtype not in DTYPES:
                raise ExportError(
                    f"example has dtype {dtype}; the input of an exported model must be "
                    f"{' or '.join(DTYPES)}: pass dtype= or an example of one of those"
                )
    elif input_shape is not None:
        if isinstance(input_shape, str | bytes) or not isinstance(input_shape, Sequence):
            raise ExportError(
                f"input_shape must be a tuple such as (None, 64), got "
                f"{type(input_shape).__name__} {input_shape!r}"
            )
        shape = tuple(input_shape)
    else:
        told = default_input_shape(model)
        if told is None:
            raise ExportError(
                f"the input shape of {type(model).__name__} cannot be told from its layers (it "
                "does not start with a Linear or an Unflatten); pass input_shape=(None, "
                "n_features), for images input_shape=(None, channels, height, width) or "
                "(None, channels, length), or example="
            )
        shape = told
    for index, size in enumerate(shape):
        ok = (
            size is None
            or isinstance(size, str)
            or (isinstance(size, int | np.integer) and not isinstance(size, bool) and size >= 0)
        )
        if not ok:
            raise ExportError(
                f"input_shape[{index}] must be a size (int >= 0), a name (str) or None, got "
                f"{size!r} in {shape!r}"
            )
    shape = tuple(int(s) if isinstance(s, int | np.integer) else s for s in shape)
    if dynamic_batch:
        if len(shape) < 2:
            raise ExportError(
                f"dynamic_batch=True makes the first axis of the input symbolic, but the input "
                f"shape {shape!r} has {len(shape)} axis; give the batch axis too, for example "
                f"(None, {shape[0] if shape else 'n_features'}), or pass dynamic_batch=False"
            )
        shape = (BATCH, *shape[1:])
    if dtype is None:
        found = {value.dtype.name for value in params.values()}
        dtype = "float64" if "float64" in found else "float32"
    return shape, dtype

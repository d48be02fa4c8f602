"""The graph's input: its shape (sizes, names or ``None``) and its dtype."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._compat import Array, array_namespace, dtype_name
from ..layers import Module, edge_features
from ._common import BATCH, DTYPES, ExportError


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
        features = edge_features(model)
        if features is None:
            raise ExportError(
                f"the input shape of {type(model).__name__} cannot be told from its layers (it "
                "does not start with a Linear); pass input_shape=(None, n_features) or example="
            )
        shape = (None, features)
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

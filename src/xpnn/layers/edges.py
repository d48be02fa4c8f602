"""The width of a model's input and output, where its layers tell it."""

from __future__ import annotations

from ._module import Module
from .linear import Linear
from .sequential import Sequential

__all__ = ["edge_features"]


def edge_features(model: Module, *, last: bool = False) -> int | None:
    """Return the width of the model's input, or of its output with ``last``.

    That is ``in_features`` of the first :class:`~xpnn.Linear` (``out_features``
    of the last), when only layers that keep the shape (activations,
    Dropout) lie between it and that end of the model, through
    :class:`~xpnn.Sequential` containers only; otherwise ``None``: another
    module may change the shape, and xpnn cannot tell how.
    """
    if isinstance(model, Sequential):
        children = list(model.children())
        for child in reversed(children) if last else children:
            found = edge_features(child, last=last)
            if found is not None or not child.keeps_shape():
                return found
        return None
    if isinstance(model, Linear):
        return model.out_features if last else model.in_features
    return None

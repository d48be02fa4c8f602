"""Input validation shared by the functional API and the layers.

Every check runs before any arithmetic and raises an error that says what
was expected, what came, and what to do about it.
"""

from __future__ import annotations

import math

from ._compat import Array, Namespace, device

__all__ = [
    "check_floating",
    "check_known_shape",
    "check_same_device",
    "has_unknown",
    "is_unknown",
    "shape_str",
]

_FLOATING = ("real floating", "complex floating")


def shape_str(shape: tuple[int | None, ...]) -> str:
    """Format a shape the way users write it: ``(3, 4)``."""
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def is_unknown(size: object) -> bool:
    """Tell whether a dimension's size is unknown until computed.

    The standard reports such a size as ``None``; Dask reports ``nan`` (after
    boolean indexing, for example).
    """
    return size is None or (isinstance(size, float) and math.isnan(size))


def has_unknown(shape: tuple[int | None, ...]) -> bool:
    """Tell whether any dimension of ``shape`` is unknown (see :func:`is_unknown`)."""
    # Layers ask on every call: one product (NaN if any size is NaN) costs a
    # third of a loop over the sizes.
    if None in shape:
        return True
    total = math.prod(shape)  # type: ignore[arg-type]
    return bool(total != total)


def check_known_shape(name: str, x: Array, needs: str) -> tuple[int, ...]:
    """Return the shape of ``x`` as Python ints, or raise if a size is unknown.

    Parameters
    ----------
    name : str
        How the message names ``x``.
    x : array
        The array whose shape is needed.
    needs : str
        What needs the shape, for the message (``"the loss"``, ...).

    Raises
    ------
    ValueError
        If a dimension of ``x`` is unknown (``None``, or ``nan`` in Dask). No
        value of ``x`` is computed to find it out.
    """
    shape = tuple(x.shape)
    if has_unknown(shape):
        raise ValueError(
            f"{name} has shape {shape_str(shape)} with unknown dimensions, but {needs} needs "
            "a known shape; compute the sizes first (for a Dask array, call its "
            "compute_chunk_sizes() method, which computes the array once)"
        )
    return tuple(int(size) for size in shape)


def check_floating(xp: Namespace, **named: Array | None) -> None:
    """Raise ``TypeError`` unless every named array has a floating dtype."""
    for name, value in named.items():
        if value is None:
            continue
        if not xp.isdtype(value.dtype, _FLOATING):
            raise TypeError(
                f"{name} must have a real or complex floating dtype, got "
                f"{value.dtype}; convert it first, for example with "
                f"xp.astype({name}, xp.float32)"
            )


def check_same_device(**named: Array | None) -> None:
    """Raise ``ValueError`` naming both devices when arrays live apart."""
    first_name = None
    first_device = None
    for name, value in named.items():
        if value is None:
            continue
        where = device(value)
        if where is None:
            # Unknown, as for a JAX tracer under jit: nothing to compare.
            continue
        if first_name is None:
            first_name, first_device = name, where
        elif where != first_device:
            raise ValueError(
                f"{first_name} is on device {first_device!r} but {name} is on "
                f"device {where!r}; move one of them, for example with "
                f"xp.asarray({name}, device=...) or {name}.to_device(...)"
            )

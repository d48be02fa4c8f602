"""Input validation shared by the functional API and the layers.

Every check runs before any arithmetic and raises an error that says what
was expected, what came, and what to do about it.
"""

from __future__ import annotations

from ._compat import Array, Namespace, device

__all__ = ["check_floating", "check_same_device", "shape_str"]

_FLOATING = ("real floating", "complex floating")


def shape_str(shape: tuple[int | None, ...]) -> str:
    """Format a shape the way users write it: ``(3, 4)``."""
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


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

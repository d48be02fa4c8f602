"""Default comparison tolerances, per dtype name."""

from __future__ import annotations

__all__ = ["default_tolerances"]

# (rtol, atol) for values of order one. Single precision allows for the
# rounding of sums over a few hundred terms; double precision is tight.
_TOLERANCES = {
    "float16": (1e-2, 1e-3),
    "bfloat16": (1e-2, 1e-2),
    "float32": (1e-4, 1e-5),
    "complex64": (1e-4, 1e-5),
    "float64": (1e-10, 1e-12),
    "complex128": (1e-10, 1e-12),
}


def default_tolerances(dtype_name: str) -> tuple[float, float]:
    """Return ``(rtol, atol)`` for a floating dtype name such as ``"float32"``.

    Raises
    ------
    ValueError
        For a dtype with no default; pass ``rtol`` and ``atol`` explicitly.
    """
    try:
        return _TOLERANCES[dtype_name]
    except KeyError:
        raise ValueError(
            f"no default tolerance for dtype {dtype_name!r}; pass rtol= and "
            f"atol= explicitly (known: {', '.join(_TOLERANCES)})"
        ) from None

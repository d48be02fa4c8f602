"""Helpers shared by the modules of :mod:`xpnn.interop.torch`."""

from __future__ import annotations


def _qualname(obj: object) -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"

"""Dtype and shape helpers that the functional modules share."""

from __future__ import annotations

import math

from .._compat import Array, DType, Namespace, device

__all__ = ["as_dtype", "broadcast_zero", "gradient_as", "is_empty", "rows"]


def as_dtype(xp: Namespace, a: Array, dtype: DType) -> Array:
    """Return ``a`` in ``dtype``; ``a`` itself when it already has it.

    ``astype`` copies in some libraries even when nothing changes.
    """
    return a if a.dtype == dtype else xp.astype(a, dtype)


def gradient_as(xp: Namespace, grad: Array, dtype: DType) -> Array:
    """Cast a gradient to the dtype of the array it belongs to.

    A real array that met a complex one keeps the real part, as in
    ``torch.autograd``.
    """
    if grad.dtype == dtype:
        return grad
    if xp.isdtype(grad.dtype, "complex floating") and not xp.isdtype(dtype, "complex floating"):
        grad = xp.real(grad)
    return xp.astype(grad, dtype)


def rows(shape: tuple[int | None, ...]) -> int:
    """Count the rows left once every leading dimension is folded into one.

    ``-1`` (reshape's "whatever is left") when a leading size is unknown.
    """
    leading = shape[:-1]
    if any(s is None or (isinstance(s, float) and math.isnan(s)) for s in leading):
        return -1
    return math.prod(int(s) for s in leading if s is not None)


def is_empty(a: Array) -> bool:
    """Tell whether ``a`` has no element (unknown sizes never compare equal to 0)."""
    return any(size == 0 for size in a.shape)


def broadcast_zero(xp: Namespace, dtype: DType, like: Array) -> Array:
    """Return a zero of ``dtype`` on ``like``'s device that broadcasts against ``like``.

    Of shape (1,) rather than () where ``like`` has a dimension: PyTorch
    through array-api-compat promotes a 0-d operand of ``where`` and
    ``maximum`` with a slow dtype computation, which a 1-d one skips.
    """
    return xp.zeros((1,) if like.ndim else (), dtype=dtype, device=device(like))

"""Seeded random arrays that hold the same values on every backend."""

from __future__ import annotations

import numpy as np

from .._compat import Array, Device, DType, Namespace, dtype_name

__all__ = ["random_array"]


def random_array(
    xp: Namespace,
    shape: tuple[int, ...],
    *,
    dtype: DType,
    device: Device,
    seed: int,
) -> Array:
    """Draw standard-normal values on the host and place them on ``device``.

    Parameters
    ----------
    xp : namespace
        Namespace of the result.
    shape : tuple of int
        Shape of the result.
    dtype : dtype
        A floating dtype of ``xp``. Complex values have independent
        standard-normal real and imaginary parts.
    device : device
        Device of the result.
    seed : int
        Seed of the host generator; the same seed gives the same values on
        every backend for a given dtype.

    Returns
    -------
    array of shape ``shape``
        A new array that shares no memory with anything else.
    """
    rng = np.random.default_rng(seed)
    host_dtype = np.dtype(dtype_name(xp, dtype))
    values = rng.standard_normal(shape)
    if host_dtype.kind == "c":
        values = values + 1j * rng.standard_normal(shape)
    host = np.array(values, dtype=host_dtype, copy=True)
    return xp.asarray(host, dtype=dtype, device=device, copy=True)

"""Parameter initialisation, drawn on the host so every backend agrees.

The standard has no random numbers (data-apis/array-api#431), so xpnn draws
every initial value from a seeded NumPy ``Generator`` on the host, casts it
there to the target dtype, and only then moves it with
``xp.asarray(..., dtype=, device=)``. The same seed therefore gives
bit-identical parameters on every backend and device for a given dtype.
"""

from __future__ import annotations

import math

import numpy as np

from ._compat import Array, Device, DType, Namespace, dtype_name

__all__ = ["Seed", "host_generator", "uniform"]

#: What ``seed=`` accepts: an int, a NumPy ``Generator``, or ``None``.
Seed = int | np.random.Generator | None


def host_generator(seed: Seed) -> np.random.Generator:
    """Return the host generator for ``seed`` (fresh entropy for ``None``)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def uniform(
    shape: tuple[int, ...],
    *,
    bound: float,
    xp: Namespace,
    device: Device,
    dtype: DType,
    rng: np.random.Generator,
) -> Array:
    """Draw values uniform in ``[-bound, bound)`` and place them on ``device``.

    Parameters
    ----------
    shape : tuple of int
        Shape of the result.
    bound : float
        Half-width of the interval.
    xp : namespace
        Namespace of the result.
    device : device
        Device of the result.
    dtype : dtype
        A real or complex floating dtype of ``xp``. Complex values draw the
        real parts, then the imaginary parts, each uniform in ``±bound/√2``,
        so that ``E|w|²`` matches the real case.
    rng : numpy.random.Generator
        The host generator; drawing advances it.

    Returns
    -------
    array of shape ``shape``
        On ``device`` with dtype ``dtype``.
    """
    name = dtype_name(xp, dtype)
    host_dtype = np.dtype(name)
    if host_dtype.kind == "c":
        half = bound / math.sqrt(2.0)
        real = rng.uniform(-half, half, size=shape)
        imag = rng.uniform(-half, half, size=shape)
        host = (real + 1j * imag).astype(host_dtype)
    else:
        host = rng.uniform(-bound, bound, size=shape).astype(host_dtype)
    return xp.asarray(host, dtype=dtype, device=device)

"""Host-side random draws, the one source of randomness in xpnn.

The standard has no random numbers (data-apis/array-api#431), so every
random value is drawn on the host by a seeded NumPy ``Generator``, cast there
to the target dtype, and only then moved with ``xp.asarray(..., device=)``.
The same seed therefore gives the same bits on every backend and device.
"""

from __future__ import annotations

import math

import numpy as np

from ._compat import Array, Device, DType, Namespace, dtype_name

__all__ = ["Seed", "bernoulli_mask", "host_generator", "place", "standard_normal"]

#: What ``seed=`` accepts: an int, a NumPy ``Generator``, or ``None``.
Seed = int | np.random.Generator | None


def host_generator(seed: Seed) -> np.random.Generator:
    """Return the host generator for ``seed`` (fresh entropy for ``None``)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def place(host: np.ndarray, *, xp: Namespace, device: Device, dtype: DType) -> Array:
    """Cast on the host, then move: the bits are fixed before any transfer."""
    return xp.asarray(host.astype(np.dtype(dtype_name(xp, dtype))), dtype=dtype, device=device)


def standard_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Box-Muller over uniform doubles: defined by the uniform stream alone.

    NumPy keeps the right to change ``Generator.standard_normal`` between
    releases; this transform pins the values to ``Generator.random``.
    """
    count = math.prod(shape)
    u1 = 1.0 - rng.random(count)  # in (0, 1], so the log is finite
    u2 = rng.random(count)
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)).reshape(shape)


def bernoulli_mask(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    *,
    p: float,
    xp: Namespace,
    device: Device,
    dtype: DType,
) -> Array:
    """Return the dropout mask: ``0`` with probability ``p``, else ``1/(1-p)``."""
    keep = rng.random(shape) >= p
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    return place(keep * scale, xp=xp, device=device, dtype=dtype)

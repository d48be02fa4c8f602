"""Parameter initialisers, drawn on the host so every backend agrees.

The standard has no random numbers (data-apis/array-api#431), so xpnn draws
every initial value from a seeded NumPy ``Generator`` on the host, casts it
there to the target dtype, and only then moves it with
``xp.asarray(..., dtype=, device=)``. The same seed therefore gives
bit-identical parameters on every backend and device for a given dtype.

Gaussian values come from the Box-Muller transform of the generator's
uniform doubles (:func:`xpnn._random.standard_normal`).

Fans follow xpnn's weight layout, ``(in_features, out_features)``:
``fan_in = shape[0]``, ``fan_out = shape[1]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import numpy as np

from ._compat import Array, Device, DType, Namespace, dtype_name
from ._random import Seed, host_generator, place, standard_normal

__all__ = [
    "INITIALIZERS",
    "Initializer",
    "Seed",
    "calculate_gain",
    "host_generator",
    "kaiming_normal",
    "kaiming_uniform",
    "normal",
    "torch_default",
    "uniform",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
]


def _is_complex(xp: Namespace, dtype: DType) -> bool:
    return bool(xp.isdtype(dtype, "complex floating"))


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
    host = np.empty(shape, dtype=np.dtype(dtype_name(xp, dtype)))
    if _is_complex(xp, dtype):
        half = bound / math.sqrt(2.0)
        # Every real part first, then every imaginary part: the order of
        # the draws, which the values of a seed depend on.
        _fill_uniform(host.real, -half, half, rng)
        _fill_uniform(host.imag, -half, half, rng)
    else:
        _fill_uniform(host, -bound, bound, rng)
    return xp.asarray(host, dtype=dtype, device=device)


#: Doubles drawn at a time: the host holds the tensor in its own dtype and
#: at most this many float64 draws beside it, not a float64 copy of it all.
DRAW_CHUNK = 1 << 20


def _fill_uniform(out: np.ndarray, low: float, high: float, rng: np.random.Generator) -> None:
    """Fill ``out`` in place with uniform draws, a chunk at a time.

    The generator's stream is sequential, so chunks give the values one
    draw of the whole size gives; each chunk is rounded to ``out``'s dtype
    on assignment, as ``astype`` rounds it.
    """
    for start in range(0, out.size, DRAW_CHUNK):
        stop = min(out.size, start + DRAW_CHUNK)
        # .flat writes through any view, the real and imaginary parts included.
        out.flat[start:stop] = rng.uniform(low, high, size=stop - start)


def normal(
    shape: tuple[int, ...],
    *,
    std: float,
    xp: Namespace,
    device: Device,
    dtype: DType,
    rng: np.random.Generator,
) -> Array:
    """Draw values from ``N(0, std²)`` and place them on ``device``.

    Complex values have independent real and imaginary parts of standard
    deviation ``std/√2``, so that ``E|w|² = std²``. Other parameters as in
    :func:`uniform`.
    """
    if _is_complex(xp, dtype):
        part = std / math.sqrt(2.0)
        real = standard_normal(rng, shape) * part
        imag = standard_normal(rng, shape) * part
        return place(real + 1j * imag, xp=xp, device=device, dtype=dtype)
    return place(standard_normal(rng, shape) * std, xp=xp, device=device, dtype=dtype)


def calculate_gain(nonlinearity: str = "linear", param: float | None = None) -> float:
    """Return PyTorch's recommended gain for a nonlinearity.

    Parameters
    ----------
    nonlinearity : {'linear', 'sigmoid', 'tanh', 'relu', 'leaky_relu'}
        The activation that follows the layer.
    param : float, optional
        The negative slope for ``'leaky_relu'`` (0.01 if omitted).
    """
    gains = {"linear": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3.0, "relu": math.sqrt(2.0)}
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1.0 + slope**2))
    if nonlinearity not in gains:
        raise ValueError(
            f"nonlinearity must be one of {', '.join([*gains, 'leaky_relu'])}, got {nonlinearity!r}"
        )
    return gains[nonlinearity]


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) != 2:
        raise ValueError(f"fans are defined for 1-d and 2-d shapes, got {shape}")
    return shape[0], shape[1]


class Initializer(Protocol):
    """``init(shape, *, xp, device, dtype, rng, fan_in) -> array``."""

    def __call__(
        self,
        shape: tuple[int, ...],
        *,
        xp: Namespace,
        device: Device,
        dtype: DType,
        rng: np.random.Generator,
        fan_in: int,
    ) -> Array:
        """Draw an array of ``shape`` from the host generator ``rng``."""
        ...


def torch_default(
    shape: tuple[int, ...],
    *,
    xp: Namespace,
    device: Device,
    dtype: DType,
    rng: np.random.Generator,
    fan_in: int,
) -> Array:
    """PyTorch's ``nn.Linear`` default: uniform in ``±1/sqrt(fan_in)``.

    For the weight this is ``kaiming_uniform_(a=sqrt(5))``; the bias uses the
    same bound with the layer's ``fan_in``.
    """
    bound = 1.0 / math.sqrt(fan_in)
    return uniform(shape, bound=bound, xp=xp, device=device, dtype=dtype, rng=rng)


def xavier_uniform(
    shape: tuple[int, ...],
    *,
    xp: Namespace,
    device: Device,
    dtype: DType,
    rng: np.random.Generator,
    fan_in: int,
    gain: float = 1.0,
) -> Array:
    """Glorot uniform: ``±gain·sqrt(6 / (fan_in + fan_out))``."""
    fan_in_, fan_out = _fans(shape)
    bound = gain * math.sqrt(6.0 / (fan_in_ + fan_out))
    return uniform(shape, bound=bound, xp=xp, device=device, dtype=dtype, rng=rng)


def xavier_normal(
    shape: tuple[int, ...],
    *,
    xp: Namespace,
    device: Device,
    dtype: DType,
    rng: np.random.Generator,
    fan_in: int,
    gain: float = 1.0,
) -> Array:
    """Glorot normal: ``std = gain·sqrt(2 / (fan_in + fan_out))``."""
    fan_in_, fan_out = _fans(shape)
    std = gain * math.sqrt(2.0 / (fan_in_ + fan_out))
    return normal(shape, std=std, xp=xp, device=device, dtype=dtype, rng=rng)


def kaiming_uniform(
    shape: tuple[int, ...],
    *,
    xp: Namespace,
    device: Device,
    dtype: DType,
    rng: np.random.Generator,
    fan_in: int,
    gain: float = math.sqrt(2.0),
) -> Array:
    """He uniform (fan-in mode): ``±gain·sqrt(3 / fan_in)``; gain √2 for ReLU."""
    bound = gain * math.sqrt(3.0 / fan_in)
    return uniform(shape, bound=bound, xp=xp, device=device, dtype=dtype, rng=rng)


def kaiming_normal(
    shape: tuple[int, ...],
    *,
    xp: Namespace,
    device: Device,
    dtype: DType,
    rng: np.random.Generator,
    fan_in: int,
    gain: float = math.sqrt(2.0),
) -> Array:
    """He normal (fan-in mode): ``std = gain / sqrt(fan_in)``; gain √2 for ReLU."""
    return normal(shape, std=gain / math.sqrt(fan_in), xp=xp, device=device, dtype=dtype, rng=rng)


def zeros(
    shape: tuple[int, ...],
    *,
    xp: Namespace,
    device: Device,
    dtype: DType,
    rng: np.random.Generator,
    fan_in: int,
) -> Array:
    """All zeros (the generator is not advanced)."""
    return xp.zeros(shape, dtype=dtype, device=device)


#: Initialisers by the names ``Linear(weight_init=..., bias_init=...)`` accepts.
INITIALIZERS: dict[str, Callable[..., Array]] = {
    "default": torch_default,
    "xavier_uniform": xavier_uniform,
    "xavier_normal": xavier_normal,
    "kaiming_uniform": kaiming_uniform,
    "kaiming_normal": kaiming_normal,
    "zeros": zeros,
}

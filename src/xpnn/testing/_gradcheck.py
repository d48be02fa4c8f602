"""``check_gradients``: hand-written backward against finite differences."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .._compat import Array, Namespace, array_namespace, device, dtype_name
from .._transfer import to_numpy
from ._assert import worst_elements
from ._random import random_array
from ._tolerances import default_tolerances

__all__ = ["check_gradients"]

_DIFFERENCE_FLOOR = 1e-6


def _wide_dtype(xp: Namespace, dtype: object) -> object:
    """float64 or complex128 for floating dtypes; others (labels) unchanged."""
    if xp.isdtype(dtype, "complex floating"):
        return xp.complex128
    if xp.isdtype(dtype, "real floating"):
        return xp.float64
    return dtype


def _float64_device(xp: Namespace, where: object) -> object:
    """``where`` if it supports float64, else the namespace's default device."""
    info = xp.__array_namespace_info__()
    if "float64" in info.dtypes(device=where, kind="real floating"):
        return where
    fallback = info.default_device()
    if "float64" not in info.dtypes(device=fallback, kind="real floating"):
        raise ValueError(
            f"neither device {where!r} nor the default device {fallback!r} of "
            f"{xp.__name__} supports float64, which finite differences need"
        )
    return fallback


def _move(xp: Namespace, x: Array, dtype: object, where: object) -> Array:
    if device(x) != where:
        x = x.to_device(where) if hasattr(x, "to_device") else xp.asarray(x, device=where)
    return x if x.dtype == dtype else xp.astype(x, dtype)


def check_gradients(
    f: Callable[..., Array],
    backward: Callable[..., Sequence[Array | None]],
    inputs: Sequence[Array],
    *,
    cotangent: Array | None = None,
    eps: float = 1e-6,
    rtol: float | None = None,
    atol: float | None = None,
    seed: int = 0,
) -> float:
    """Check a vector-Jacobian product against float64 central differences.

    Works for any function written on the array API standard, on any
    backend and device, real or complex.

    Parameters
    ----------
    f : callable
        ``f(*inputs) -> y``.
    backward : callable
        ``backward(dy, *inputs) -> grads``, one gradient (or ``None``, not
        checked) per input. For complex values it must follow PyTorch's
        convention: the gradient of the real loss ``L = Re(sum(conj(dy) * y))``
        is ``dL/dRe(x) + 1j * dL/dIm(x)``.
    inputs : sequence of arrays
        Arrays of one namespace, never modified. Non-floating inputs (class
        labels, say) are passed through unchanged and need a ``None``
        gradient; pass every array ``f`` uses as an input rather than
        capturing it, so that the float64 fallback device (see Notes) can
        move it too.
    cotangent : array, optional
        ``dy``. By default a seeded standard-normal array shaped like ``y``.
    eps : float, default 1e-6
        Step of the central differences, taken in float64 (complex128).
    rtol, atol : float, optional
        Tolerances; defaults depend on each gradient's dtype, and are never
        below 1e-6, the accuracy of float64 central differences.
    seed : int, default 0
        Seed of the default cotangent.

    Returns
    -------
    float
        The largest absolute difference found.

    Raises
    ------
    AssertionError
        If a gradient has the wrong namespace, device, dtype or shape, or
        differs from the finite differences; the message lists the worst
        elements.

    Notes
    -----
    The differences are computed on the inputs' device when it supports
    float64, else on the namespace's default device (scikit-learn's
    fallback for devices such as Apple MPS).

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.testing import check_gradients
    >>> error = check_gradients(
    ...     lambda x: x * x, lambda dy, x: (2 * x * dy,), [np.array([1.0, 2.0])]
    ... )
    >>> error < 1e-8
    True
    """
    xp, _, cotangent, grads = _run_backward(f, backward, inputs, cotangent, seed)
    where = _float64_device(xp, device(inputs[0]) if inputs else None)
    wide_inputs = [_move(xp, x, _wide_dtype(xp, x.dtype), where) for x in inputs]
    wide_dy = _move(xp, cotangent, _wide_dtype(xp, cotangent.dtype), where)
    complex_dy = xp.isdtype(wide_dy.dtype, "complex floating")

    def loss(*args: Array) -> float:
        out = f(*args)
        if complex_dy or xp.isdtype(out.dtype, "complex floating"):
            return float(xp.sum(xp.real(xp.conj(wide_dy) * out)))
        return float(xp.sum(wide_dy * out))

    worst = 0.0
    for i, (x, grad) in enumerate(zip(inputs, grads, strict=True)):
        if grad is None:
            continue
        _check_meta(xp, f"gradient of inputs[{i}]", grad, x)
        numeric = _numeric_gradient(xp, loss, wide_inputs, i, eps)
        got = to_numpy(grad)
        default_rtol, default_atol = default_tolerances(dtype_name(xp, grad.dtype))
        # Central differences in float64 carry a rounding error of about
        # 1e-16 * |L| / eps, so no default is tighter than that floor.
        r = max(default_rtol, _DIFFERENCE_FLOOR) if rtol is None else rtol
        a = max(default_atol, _DIFFERENCE_FLOOR) if atol is None else atol
        if got.size:
            worst = max(worst, float(np.max(np.abs(got - numeric))))
        if not np.allclose(got, numeric, rtol=r, atol=a):
            raise AssertionError(
                f"gradient of inputs[{i}] differs from central differences "
                f"(rtol={r:g}, atol={a:g}); worst:\n{worst_elements(got, numeric)}"
            )
    return worst


def _run_backward(
    f: Callable[..., Array],
    backward: Callable[..., Sequence[Array | None]],
    inputs: Sequence[Array],
    cotangent: Array | None,
    seed: int,
) -> tuple[Namespace, Array, Array, Sequence[Array | None]]:
    """Run ``f`` and ``backward`` under test: ``(xp, y, cotangent, grads)``.

    The cotangent defaults to a random array like ``y``; ``backward`` must
    give one gradient (or None) per input.
    """
    xp = array_namespace(**{f"inputs[{i}]": x for i, x in enumerate(inputs)})
    y = f(*inputs)
    if cotangent is None:
        cotangent = random_array(xp, tuple(y.shape), dtype=y.dtype, device=device(y), seed=seed)
    grads = backward(cotangent, *inputs)
    if len(grads) != len(inputs):
        raise AssertionError(f"backward returned {len(grads)} gradients for {len(inputs)} inputs")
    return xp, y, cotangent, grads


def _check_meta(xp: Namespace, what: str, grad: Array, x: Array) -> None:
    if array_namespace(grad=grad) is not xp:
        raise AssertionError(f"{what} is not in the namespace of the input")
    if device(grad) != device(x):
        raise AssertionError(f"{what} is on {device(grad)!r}, the input on {device(x)!r}")
    if grad.dtype != x.dtype:
        raise AssertionError(f"{what} has dtype {grad.dtype}, the input {x.dtype}")
    if tuple(grad.shape) != tuple(x.shape):
        raise AssertionError(f"{what} has shape {tuple(grad.shape)}, the input {tuple(x.shape)}")


def _numeric_gradient(
    xp: Namespace, loss: Callable[..., float], inputs: list[Array], i: int, eps: float
) -> np.ndarray:
    x = inputs[i]
    shape = tuple(x.shape)
    size = int(np.prod(shape)) if shape else 1
    is_complex = xp.isdtype(x.dtype, "complex floating")
    numeric = np.zeros(size, dtype=np.complex128 if is_complex else np.float64)
    for k in range(size):
        # One-hot direction made on the host: a creation call that behaves
        # the same everywhere (Dask's eye + reshape loses chunks).
        host = np.zeros(size, dtype=np.float64)
        host[k] = 1.0
        basis = xp.asarray(host.reshape(shape), dtype=x.dtype, device=device(x))
        steps = [eps * basis] + ([1j * eps * basis] if is_complex else [])
        for part, step in enumerate(steps):
            plus = [*inputs[:i], x + step, *inputs[i + 1 :]]
            minus = [*inputs[:i], x - step, *inputs[i + 1 :]]
            slope = (loss(*plus) - loss(*minus)) / (2 * eps)
            numeric[k] += slope if part == 0 else 1j * slope
    return numeric.reshape(shape)

"""``assert_close``: compare arrays by namespace, device, dtype, shape, values."""

from __future__ import annotations

import numpy as np

from .._compat import Array, Device, DType, Namespace, array_namespace, device, dtype_name
from .._compat import library_name as _library_name
from ..interop._transfer import to_numpy
from ._tolerances import default_tolerances

__all__ = ["assert_close", "worst_elements"]


def worst_elements(actual: np.ndarray, desired: np.ndarray, count: int = 5) -> str:
    """Describe the ``count`` elements that differ most, one per line."""
    if actual.size == 0:
        return ""
    diff = np.abs(actual.astype(np.complex128) - desired.astype(np.complex128))
    diff = np.where(np.isnan(diff), np.inf, diff)
    order = np.argsort(diff, axis=None)[::-1][:count]
    lines = []
    for flat in order:
        index = np.unravel_index(flat, actual.shape)
        lines.append(
            f"  at {tuple(int(i) for i in index)}: actual {actual[index]!r}, "
            f"desired {desired[index]!r}, |diff| {diff[index]:.3g}"
        )
    return "\n".join(lines)


def assert_close(
    actual: Array,
    desired: Array,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    xp: Namespace | None = None,
    device: Device | None = None,
    dtype: DType | None = None,
    err_msg: str = "",
) -> None:
    """Assert that two arrays agree in namespace, device, dtype, shape and values.

    Parameters
    ----------
    actual : array
        The array under test.
    desired : array
        The expected values. By default ``actual`` must match its namespace,
        device and dtype too. It may instead be a higher-precision reference
        from another library (a NumPy float64 oracle, say) when ``xp``,
        ``device`` and ``dtype`` say what ``actual`` must have.
    rtol, atol : float, optional
        Tolerances, ``|actual - desired| <= atol + rtol * |desired|``
        elementwise. Defaults depend on the dtype of ``actual``.
    xp, device, dtype : optional
        Expected namespace, device and dtype of ``actual``; each defaults to
        that of ``desired``.
    err_msg : str, optional
        Prepended to the failure message.

    Raises
    ------
    AssertionError
        Naming the first property that differs, or listing the worst
        elements when values differ. Lazy arrays are computed first.
    """
    prefix = f"{err_msg}: " if err_msg else ""
    actual_xp = array_namespace(actual=actual)
    expected_xp = xp if xp is not None else array_namespace(desired=desired)
    if actual_xp is not expected_xp:
        raise AssertionError(
            f"{prefix}namespace differs: actual {_library_name(actual_xp)}, "
            f"expected {_library_name(expected_xp)}"
        )
    expected_device = device if device is not None else _device_of(desired)
    if _device_of(actual) != expected_device:
        raise AssertionError(
            f"{prefix}device differs: actual {_device_of(actual)!r}, expected {expected_device!r}"
        )
    expected_dtype = dtype if dtype is not None else desired.dtype
    if actual.dtype != expected_dtype:
        raise AssertionError(
            f"{prefix}dtype differs: actual {actual.dtype}, expected {expected_dtype}"
        )
    if tuple(actual.shape) != tuple(desired.shape):
        raise AssertionError(
            f"{prefix}shape differs: actual {tuple(actual.shape)}, expected {tuple(desired.shape)}"
        )
    default_rtol, default_atol = default_tolerances(dtype_name(actual_xp, actual.dtype))
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    got, want = to_numpy(actual), to_numpy(desired)
    if not np.allclose(got, want, rtol=rtol, atol=atol, equal_nan=True):
        bad = ~np.isclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
        raise AssertionError(
            f"{prefix}values differ in {int(bad.sum())} of {got.size} elements "
            f"(rtol={rtol:g}, atol={atol:g}); worst:\n{worst_elements(got, want)}"
        )


def _device_of(x: Array) -> Device:
    # NumPy arrays report "cpu" for every reference; compare on that.
    return device(x)

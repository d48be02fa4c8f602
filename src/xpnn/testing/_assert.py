"""``assert_close``: compare arrays by namespace, device, dtype, shape, values."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from .._compat import (
    Array,
    Device,
    DType,
    Namespace,
    array_namespace,
    device,
    dtype_name,
    resolve_device,
    resolve_namespace,
)
from .._compat import library_name as _library_name
from .._transfer import to_numpy
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
            f"  at {tuple(int(i) for i in index)}: actual {actual[index]}, "
            f"desired {desired[index]}, |diff| {diff[index]:.3g}"
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
    dtype: DType | str | None = None,
    err_msg: str = "",
) -> None:
    """Assert that two arrays agree in namespace, device, dtype, shape and values.

    Parameters
    ----------
    actual : array
        The array under test, of any supported library, on any device; lazy
        arrays (Dask) are computed.
    desired : array
        The expected values. By default ``actual`` must match its namespace,
        device and dtype too. It may instead be a higher-precision reference
        from another library (a NumPy float64 oracle, say) when ``xp``,
        ``device`` and ``dtype`` say what ``actual`` must have.
    rtol, atol : float, optional
        Tolerances, ``|actual - desired| <= atol + rtol * |desired|``
        elementwise. Defaults depend on the dtype of ``actual``
        (:func:`default_tolerances`); integer and boolean arrays must be
        equal.
    xp : namespace or module, optional
        Expected namespace of ``actual`` (``numpy`` and its
        ``array_api_compat`` namespace are the same here); defaults to that of
        ``desired``.
    device : device, optional
        Expected device of ``actual``; defaults to that of ``desired``.
        ``torch.device("cuda")`` means the current CUDA device.
    dtype : dtype or str, optional
        Expected dtype of ``actual``, or its standard name (``"float32"``);
        defaults to the dtype of ``desired``. Dtypes of different libraries
        match by their standard names.
    err_msg : str, optional
        Prepended to the failure message.

    Raises
    ------
    AssertionError
        Naming the first property that differs (namespace, device, dtype,
        shape), or, when values differ, how many elements do, the largest
        absolute and relative differences and the worst elements.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.testing import assert_close
    >>> assert_close(np.asarray([1.0, 2.0]), np.asarray([1.0, 2.0 + 1e-13]))
    >>> assert_close(np.asarray([1.0, 2.0]), np.asarray([1.0, 2.0], dtype=np.float32))
    Traceback (most recent call last):
    ...
    AssertionError: dtype differs: actual float64, expected float32
    """
    prefix = f"{err_msg}: " if err_msg else ""
    actual_xp = array_namespace(actual=actual)
    desired_xp = array_namespace(desired=desired)
    expected_xp = resolve_namespace(xp) if xp is not None else desired_xp
    if actual_xp is not expected_xp:
        raise AssertionError(
            f"{prefix}namespace differs: actual {_library_name(actual_xp)}, "
            f"expected {_library_name(expected_xp)}"
        )
    foreign = desired_xp is not expected_xp
    expected_device = device if device is not None else _device_of(desired)
    if not _same_device(actual_xp, _device_of(actual), expected_device):
        hint = (
            f" (desired is a {_library_name(desired_xp)} array: pass device= to say "
            "where actual must be)"
            if foreign and device is None
            else ""
        )
        raise AssertionError(
            f"{prefix}device differs: actual {_device_of(actual)!r}, "
            f"expected {expected_device!r}{hint}"
        )
    actual_dtype = _dtype_label(actual.dtype, actual_xp)
    expected_dtype = (
        _dtype_label(desired.dtype, desired_xp)
        if dtype is None
        else dtype
        if isinstance(dtype, str)
        else _dtype_label(dtype, expected_xp, desired_xp)
    )
    if actual_dtype != expected_dtype:
        raise AssertionError(
            f"{prefix}dtype differs: actual {actual_dtype}, expected {expected_dtype}"
        )
    got = want = None
    actual_shape, desired_shape = tuple(actual.shape), tuple(desired.shape)
    if not (_known(actual_shape) and _known(desired_shape)):
        # Lazy arrays may not know their sizes (Dask after boolean
        # indexing): compare the computed ones.
        got, want = to_numpy(actual), to_numpy(desired)
        actual_shape, desired_shape = got.shape, want.shape
    if actual_shape != desired_shape:
        raise AssertionError(
            f"{prefix}shape differs: actual {actual_shape}, expected {desired_shape}"
        )
    got = to_numpy(actual) if got is None else got
    want = to_numpy(desired) if want is None else want
    if _inexact(actual_xp, actual.dtype):
        default_rtol, default_atol = default_tolerances(actual_dtype)
    else:
        default_rtol, default_atol = 0.0, 0.0
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    if got.dtype.kind == "b" or want.dtype.kind == "b":
        got, want = got.astype(np.int8), want.astype(np.int8)
    bad = ~np.isclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
    if bad.any():
        raise AssertionError(
            f"{prefix}values differ in {int(bad.sum())} of {got.size} elements "
            f"(rtol={rtol:g}, atol={atol:g}); {_largest(got, want)}; worst:\n"
            f"{worst_elements(got, want)}"
        )


def _inexact(xp: Namespace, dtype: DType) -> bool:
    """Tell whether ``dtype`` is a real or complex floating dtype of ``xp``."""
    return bool(xp.isdtype(dtype, ("real floating", "complex floating")))


def _largest(got: np.ndarray, want: np.ndarray) -> str:
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = np.abs(got.astype(np.complex128) - want.astype(np.complex128))
        relative = diff / np.abs(want.astype(np.complex128))
    finite = diff[np.isfinite(diff)]
    finite_relative = relative[np.isfinite(relative)]
    largest = f"{finite.max():.3g}" if finite.size else "inf"
    largest_relative = f"{finite_relative.max():.3g}" if finite_relative.size else "inf"
    return f"largest |diff| {largest}, largest relative {largest_relative}"


def _known(shape: tuple[object, ...]) -> bool:
    return all(isinstance(n, int) for n in shape)


def _dtype_label(dtype: DType, *namespaces: Namespace) -> str:
    """Return the standard name of ``dtype`` in the first namespace that has it."""
    for xp in namespaces:
        try:
            return dtype_name(xp, dtype)
        except TypeError:
            continue
    return str(dtype)


def _device_of(x: Array) -> Device:
    # NumPy arrays report "cpu" for every reference; compare on that.
    return device(x)


def _same_device(xp: Namespace, got: Device, expected: Device) -> bool:
    if got == expected:
        return True
    if _library_name(xp) == "torch":
        torch = sys.modules["torch"]
        return bool(_torch_device(torch, got) == _torch_device(torch, expected))
    if isinstance(expected, str):
        # A name such as "device1" for array_api_strict.Device("device1").
        return bool(resolve_device(xp, expected) == got)
    return False


def _torch_device(torch: Any, where: Any) -> Any:
    """``torch.device`` with an index: ``cuda`` is the current CUDA device."""
    where = torch.device(where)
    if where.index is None and where.type != "cpu":
        module = getattr(torch, where.type, None)
        current = getattr(module, "current_device", None)
        where = torch.device(where.type, current() if callable(current) else 0)
    return where

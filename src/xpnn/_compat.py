"""The one place that talks to ``array_api_compat`` and ``array_api_extra``.

Every other module reaches array libraries through the helpers here, so the
whole package depends on one narrow surface of those two and on the
namespaces that arrays themselves report.
"""

from __future__ import annotations

import importlib
import types
import warnings
from collections.abc import Collection
from typing import Any, TypeAlias

import array_api_compat
import array_api_extra
import numpy as np

__all__ = [
    "Array",
    "DType",
    "Device",
    "Namespace",
    "array_namespace",
    "at",
    "check_device",
    "describe_type",
    "device",
    "dtype_name",
    "is_array",
    "is_lazy",
    "is_writeable",
    "library_name",
    "library_of",
    "resolve_device",
    "resolve_dtype",
    "resolve_namespace",
    "to_device",
]

# The standard defines no runtime type for arrays, devices or dtypes; these
# aliases document intent in signatures.
Array: TypeAlias = Any
Device: TypeAlias = Any
DType: TypeAlias = Any
Namespace: TypeAlias = Any

#: ``at(x, index).add(v)`` and friends: a write into ``x`` that is done in place
#: where the library allows and functionally on JAX. Always use the result,
#: and write only into arrays the caller does not own.
at = array_api_extra.at


def describe_type(obj: object) -> str:
    """Name the type of ``obj`` as ``module.qualname`` (``'numpy.ndarray'``), for messages."""
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def is_array(obj: object) -> bool:
    """Tell whether ``obj`` is an array of a library that xpnn supports."""
    return bool(array_api_compat.is_array_api_obj(obj))


def array_namespace(*, optional: Collection[str] = (), **named: Array | None) -> Namespace:
    """Return the one namespace shared by the named arrays.

    This is where every check of the functional API, the layers, the losses
    and the optimizers meets its inputs first, so something that is no
    array (a list, a tuple, a Python number, ``None``) is refused here, with
    its name, before anything reads its attributes.

    Parameters
    ----------
    optional : collection of str, optional
        The names that may be ``None`` (an absent bias); their ``None``
        values are ignored.
    **named : array or None
        The arrays by argument name.

    Returns
    -------
    namespace
        The array API namespace of the arrays.

    Raises
    ------
    TypeError
        If a value is not an array (``None`` included, unless its name is
        ``optional``), or if the arrays come from more than one library. The
        message names each argument and its type, and says to wrap data with
        ``xp.asarray(...)``.
    """
    arrays = {}
    for name, value in named.items():
        if value is None and name in optional:
            continue
        if not is_array(value):
            got = "None" if value is None else describe_type(value)
            raise TypeError(
                f"{name} must be an array from an array API library (numpy, "
                f"torch, cupy, jax, dask, array_api_strict, ...), got "
                f"{got}; wrap data with xp.asarray(...) first"
            )
        arrays[name] = value
    try:
        return array_api_compat.array_namespace(*arrays.values())
    except TypeError:
        listing = ", ".join(f"{n}: {describe_type(v)}" for n, v in arrays.items())
        raise TypeError(
            f"arrays from different libraries cannot be combined ({listing}); "
            "convert them to one library first, for example with "
            "xp.asarray(...) or xp.from_dlpack(...)"
        ) from None


def device(x: Array) -> Device:
    """Return the device an array lives on (works for Dask arrays too)."""
    try:
        # The standard's attribute: ten times cheaper than the general path,
        # which layers call on every step.
        return x.device
    except Exception:
        return array_api_compat.device(x)


def to_device(x: Array, target: Device) -> Array:
    """Return ``x`` on ``target``, through the library's own transfer."""
    return array_api_compat.to_device(x, target)


def library_of(x: Array) -> str | None:
    """Name the library of a wrapped array (``"numpy"``, ``"torch"``, ...).

    ``None`` for libraries that implement the standard themselves
    (array_api_strict, ndonnx, ...). No library is imported to find out.
    """
    for name, test in (
        ("dask", array_api_compat.is_dask_array),
        ("cupy", array_api_compat.is_cupy_array),
        ("torch", array_api_compat.is_torch_array),
        ("numpy", array_api_compat.is_numpy_array),
        ("jax", array_api_compat.is_jax_array),
    ):
        if test(x):
            return name
    return None


def is_lazy(x: Array) -> bool:
    """Tell whether ``x`` belongs to a lazy library (JAX, Dask, ndonnx)."""
    return bool(array_api_compat.is_lazy_array(x))


_WRAPPED = (
    (array_api_compat.is_numpy_namespace, "array_api_compat.numpy"),
    (array_api_compat.is_torch_namespace, "array_api_compat.torch"),
    (array_api_compat.is_cupy_namespace, "array_api_compat.cupy"),
    (array_api_compat.is_dask_namespace, "array_api_compat.dask.array"),
    # JAX implements the standard itself in jax.numpy.
    (array_api_compat.is_jax_namespace, "jax.numpy"),
)


def library_name(xp: Namespace) -> str:
    """Return the name users know a namespace by (``numpy``, ``torch``, ...)."""
    return str(xp.__name__).removeprefix("array_api_compat.")


def resolve_namespace(xp: object | None) -> Namespace:
    """Turn what a user passed as ``xp=`` into an array API namespace.

    Parameters
    ----------
    xp : module or None
        A library module (``numpy``, ``torch``, ``cupy``, ``jax.numpy``,
        ``dask.array``, ``array_api_strict``), an ``array_api_compat``
        namespace, or ``None`` for NumPy.

    Returns
    -------
    namespace
        The namespace that ``array_namespace`` returns for that library's
        arrays, so that layers and their inputs agree.

    Raises
    ------
    TypeError
        If ``xp`` is not a supported array library.
    """
    if xp is None:
        return importlib.import_module("array_api_compat.numpy")
    if not isinstance(xp, types.ModuleType):
        raise TypeError(
            f"xp must be an array library module such as numpy, torch, cupy, "
            f"jax.numpy, dask.array or array_api_strict, got "
            f"{type(xp).__name__} {xp!r}"
        )
    # array_api_compat wraps these libraries; its namespace is what
    # array_namespace() returns for their arrays, so use it for creation too.
    for is_library, module in _WRAPPED:
        if is_library(xp):
            return importlib.import_module(module)
    if hasattr(xp, "__array_namespace_info__"):
        # A library that implements the standard itself (array_api_strict,
        # ndonnx, ...).
        return xp
    raise TypeError(
        f"xp must be an array library module such as numpy, torch, cupy, "
        f"jax.numpy, dask.array or array_api_strict, got {xp!r}"
    )


def dtype_name(xp: Namespace, dtype: DType) -> str:
    """Return the standard name of ``dtype`` (``'float32'``, ...).

    The name comes from the inspection API, so no per-library table is kept.
    """
    for name, candidate in xp.__array_namespace_info__().dtypes().items():
        if candidate == dtype:
            return str(name)
    raise TypeError(f"{dtype!r} is not a dtype of {xp.__name__}")


def resolve_device(xp: Namespace, device: Device | str | None) -> Device:
    """Turn a user's ``device=`` into a device object of ``xp``.

    ``None`` gives the namespace's default device. A string is matched
    against the devices the inspection API lists, by ``str(device)`` or by
    the quoted name (``"device1"`` finds ``array_api_strict.Device('device1')``);
    strings that match none pass through unchanged, since libraries such as
    torch accept them directly (``"cuda"``).
    """
    info = xp.__array_namespace_info__()
    if device is None:
        return info.default_device()
    if isinstance(device, str):
        with warnings.catch_warnings():
            # torch warns while probing devices it cannot use (meta, ...).
            warnings.simplefilter("ignore")
            listed = info.devices()
        for candidate in listed:
            text = str(candidate)
            if text == device or text.endswith(f"('{device}')"):
                return candidate
    return device


#: The standard's floating dtypes, by name: a name among these that a library
#: lists nowhere is one it lacks in this configuration (JAX without x64).
_STANDARD_FLOATING = ("float32", "float64", "complex64", "complex128")


def check_device(xp: Namespace, device: Device) -> None:
    """Raise ``ValueError`` unless ``device`` can hold arrays of ``xp`` here.

    The inspection API answers: a device that the library lists no dtype
    for (``"cuda"`` in a PyTorch without CUDA or on a machine without a GPU,
    a device name the library does not know) cannot be used.

    Raises
    ------
    ValueError
        Naming the device, saying that it is not available here, and listing
        the devices that are.
    """
    info = xp.__array_namespace_info__()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            usable = bool(info.dtypes(device=device))
    except Exception:  # torch raises for device strings it cannot parse
        usable = False
    if usable:
        return
    with warnings.catch_warnings():
        # torch warns while probing devices it cannot use (meta, ...).
        warnings.simplefilter("ignore")
        listed = ", ".join(str(candidate) for candidate in info.devices())
    text = str(device).lower()
    why = ""
    if "cuda" in text:
        why = " (CUDA is not available)"
    elif "mps" in text:
        why = " (MPS, Apple's GPU, is not available)"
    raise ValueError(
        f"device {device!r} is not available here{why}: {library_name(xp)} reports no dtypes "
        f"for it; use one of the devices it has: {listed or 'none'}"
    )


def resolve_dtype(xp: Namespace, dtype: DType | None, device: Device) -> DType:
    """Return a floating dtype for a new parameter on ``device``.

    ``None`` gives the device's default real floating dtype from the
    inspection API; a string is a standard name such as ``"float64"``.

    Raises
    ------
    TypeError
        If ``dtype`` is not a floating dtype.
    ValueError
        If the device is not available here (see :func:`check_device`), or
        does not support ``dtype``; the message lists the dtypes it does
        support. A standard name that the library lacks altogether (JAX
        without 64-bit floats: ``"float64"``) says how to get it.
    """
    check_device(xp, device)
    info = xp.__array_namespace_info__()
    if dtype is None:
        return info.default_dtypes(device=device)["real floating"]
    floating = {
        **info.dtypes(device=device, kind="real floating"),
        **info.dtypes(device=device, kind="complex floating"),
    }
    if isinstance(dtype, str):
        # A standard name ("float32"): how a dtype crosses libraries.
        if dtype in floating:
            return floating[dtype]
        if dtype in _STANDARD_FLOATING and dtype not in info.dtypes():
            if array_api_compat.is_jax_namespace(xp):
                raise ValueError(
                    f"jax.numpy has no {dtype}: JAX runs without 64-bit floats; pass "
                    f"dtype=jnp.{'float32' if 'float' in dtype else 'complex64'} to cast, or "
                    "set JAX_ENABLE_X64=1 before importing jax"
                )
            raise ValueError(
                f"{library_name(xp)} has no {dtype} here; pass one of "
                f"{', '.join(floating)} as dtype="
            )
        if dtype not in info.dtypes():
            raise TypeError(
                f"dtype must be a floating dtype of {xp.__name__} "
                f"({', '.join(floating)}), got {dtype!r}"
            )
        dtype = info.dtypes()[dtype]
    if any(candidate == dtype for candidate in floating.values()):
        return dtype
    every = info.dtypes()
    if not any(candidate == dtype for candidate in every.values()) or not xp.isdtype(
        dtype, ("real floating", "complex floating")
    ):
        raise TypeError(
            f"dtype must be a floating dtype of {xp.__name__} "
            f"({', '.join(floating)}), got {dtype!r}"
        )
    raise ValueError(
        f"device {device!r} does not support dtype {dtype!r}; it supports "
        f"{', '.join(floating)}: pass one of those as dtype="
    )


# Array types whose arrays are all writeable, or none (only NumPy arrays carry
# a flag of their own): optimizers ask for every parameter at every step.
_WRITEABLE_BY_TYPE: dict[type, bool] = {}


def is_writeable(x: Array) -> bool:
    """Tell whether ``x`` may be updated in place (False for JAX, read-only NumPy, lazy Dask)."""
    kind = type(x)
    if kind is np.ndarray:
        return bool(x.flags.writeable)
    known = _WRITEABLE_BY_TYPE.get(kind)
    if known is None:
        known = bool(array_api_compat.is_writeable_array(x)) and not is_lazy(x)
        if array_api_compat.is_numpy_array(x):  # a subclass: its own flag
            return known
        _WRITEABLE_BY_TYPE[kind] = known
    return known

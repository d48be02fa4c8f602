"""Move arrays between libraries, devices and dtypes.

This module knows how each library hands its data over: DLPack for those
that speak it (``from_dlpack`` with ``device=`` and ``copy=``, from the 2023.12
standard), and a copy through a NumPy array on the host for the rest (Dask,
which has no DLPack; ``.get()`` for CuPy and ``.cpu()`` for PyTorch in
:func:`to_numpy`). It dispatches on the array's library as
:func:`xpnn._compat.library_of` names it, which imports no library.
"""

from __future__ import annotations

import numpy as np

from ._compat import (
    Array,
    Device,
    DType,
    Namespace,
    array_namespace,
    dtype_name,
    library_of,
    to_device,
)
from ._compat import device as device_of

__all__ = ["to_numpy", "transfer"]


def to_numpy(x: Array) -> np.ndarray:
    """Return a NumPy copy of ``x``, computing lazy arrays first.

    Parameters
    ----------
    x : array
        An array of any supported library, on any device.

    Returns
    -------
    numpy.ndarray
        A new host array that shares no memory with ``x``.
    """
    library = library_of(x)
    if library == "dask":
        x = x.compute()
        library = library_of(x)
    if library == "cupy":
        return np.array(x.get(), copy=True)
    if library == "torch":
        return np.array(x.detach().cpu().resolve_conj().resolve_neg().numpy(), copy=True)
    if library in ("numpy", "jax"):
        return np.array(x, copy=True)
    xp = array_namespace(x=x)
    # array_api_strict refuses NumPy conversion off its CPU device, and other
    # standard libraries may keep data elsewhere: move to the default device.
    host = x.to_device(xp.__array_namespace_info__().default_device())
    return np.array(np.from_dlpack(host), copy=True)


def transfer(x: Array, *, xp: Namespace, device: Device, dtype: DType) -> Array:
    """Return ``x`` as an array of ``xp`` on ``device`` with ``dtype``.

    The result never shares memory with ``x`` unless nothing changes, in
    which case ``x`` itself is returned: a moved model may then be updated in
    place without touching arrays its caller still holds.

    Parameters
    ----------
    x : array
        An array of any supported library.
    xp : namespace
        The target namespace, as :func:`xpnn._compat.resolve_namespace` gives.
    device : device
        A device of ``xp``.
    dtype : dtype
        A dtype of ``xp`` that ``device`` supports.

    Returns
    -------
    array
    """
    source = array_namespace(x=x)
    if source is xp:
        here = device_of(x)
        if x.dtype != dtype and dtype_name(xp, dtype) in xp.__array_namespace_info__().dtypes(
            device=here
        ):
            # Cast where the data is: the target device may lack x's dtype.
            x = xp.astype(x, dtype)
            return x if here == device else to_device(x, device)
        moved = x if here == device else to_device(x, device)
        if moved.dtype != dtype:
            return xp.astype(moved, dtype)
        if moved is x:
            return x
        # to_device may hand back a view of host memory (NumPy, CPU torch).
        return xp.asarray(moved, copy=True, device=device)
    if dtype_name(source, x.dtype) == dtype_name(xp, dtype) and library_of(x) != "dask":
        try:
            # Zero-copy where the library can, then one copy made by the
            # target library: NumPy's from_dlpack(copy=True) of a read-only
            # export (JAX's) gives a read-only array, which in-place updates
            # would then trip over.
            shared = xp.from_dlpack(x, device=device)
        except (
            AttributeError,
            BufferError,
            NotImplementedError,
            RuntimeError,
            TypeError,
            ValueError,
        ):
            # No DLPack in the target, no such device pair, or an older
            # from_dlpack without device=: go through the host.
            pass
        else:
            return xp.asarray(shared, copy=True, device=device)
    host = to_numpy(x)
    host = host.astype(np.dtype(dtype_name(xp, dtype)), copy=False)
    return xp.asarray(host, dtype=dtype, device=device)

"""Interop for tests: copy any supported array to a NumPy array on the host.

This is the one module of ``xpnn.testing`` that knows how each library hands
its data to NumPy (``.get()`` for CuPy, ``.cpu()`` for torch, ...). It
dispatches on the array's library as :func:`xpnn._compat.library_of` names
it, which imports no library.
"""

from __future__ import annotations

import numpy as np

from .._compat import Array, array_namespace, library_of

__all__ = ["to_numpy"]


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

"""Interop for tests: copy any supported array to a NumPy array on the host.

This is the one module of ``xpnn.testing`` that knows how each library hands
its data to NumPy (``.get()`` for CuPy, ``.cpu()`` for torch, ...). It
dispatches on the array's type through ``array_api_compat``'s ``is_*``
predicates, which never import a library.
"""

from __future__ import annotations

import array_api_compat
import numpy as np

from .._compat import Array

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
    if array_api_compat.is_dask_array(x):
        x = x.compute()  # type: ignore[no-untyped-call]
    if array_api_compat.is_cupy_array(x):
        return np.array(x.get(), copy=True)
    if array_api_compat.is_torch_array(x):
        return np.array(x.detach().cpu().resolve_conj().resolve_neg().numpy(), copy=True)
    if array_api_compat.is_numpy_array(x) or array_api_compat.is_jax_array(x):
        return np.array(x, copy=True)
    xp = array_api_compat.array_namespace(x)
    # array_api_strict refuses NumPy conversion off its CPU device, and other
    # standard libraries may keep data elsewhere: move to the default device.
    host = x.to_device(xp.__array_namespace_info__().default_device())
    return np.array(np.from_dlpack(host), copy=True)

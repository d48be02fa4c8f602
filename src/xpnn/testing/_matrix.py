"""Former name of :mod:`xpnn.testing.matrix`, kept while callers move to it.

Re-exports the public names of :mod:`xpnn.testing.matrix`; import them from
there. Nothing in ``src/xpnn`` uses this module.
"""

from __future__ import annotations

from .matrix import (
    UNAVAILABLE_EXIT,
    BackendSpec,
    DeviceSpec,
    NotInstalled,
    NotPresent,
    Unavailable,
    default_directory,
    host_has_nvidia_gpu,
    install_hint,
    load_matrix,
    resolve,
)

__all__ = [
    "UNAVAILABLE_EXIT",
    "BackendSpec",
    "DeviceSpec",
    "NotInstalled",
    "NotPresent",
    "Unavailable",
    "default_directory",
    "host_has_nvidia_gpu",
    "install_hint",
    "load_matrix",
    "resolve",
]

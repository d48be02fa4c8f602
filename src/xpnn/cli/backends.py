"""Pick a backend, device and dtype by name, for the command line.

Names come from the backend matrix (``backends/*.toml``, shipped in the
wheel), so ``xpnn train --backend torch --device cuda`` means what
``nox -s "tests(torch-cuda)"`` tests.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._compat import dtype_name
from ..testing.matrix import BackendSpec, Unavailable, load_matrix, resolve

__all__ = ["Choice", "SelectionError", "choose", "describe_backends", "to_device"]


class SelectionError(ValueError):
    """Input the command line cannot act on, said in one line.

    A backend, device or dtype that is unknown, missing or unsupported, and
    any other bad argument that a command finds (a checkpoint that cannot
    be exported, a missing optional library, cluster options that clash).

    :func:`xpnn.cli.main` prints its message as one line and returns 2.
    """


@dataclass(frozen=True)
class Choice:
    """A resolved backend: its namespace, device object and dtype."""

    backend: str
    device_name: str
    xp: Any
    device: Any
    dtype: Any
    dtype_name: str


def _installed(spec: BackendSpec) -> bool:
    try:
        resolve(spec, spec.devices[0])
    except Unavailable as exc:
        return "is not installed" not in str(exc)
    return True


def choose(backend: str, device: str | None = None, dtype: str | None = None) -> Choice:
    """Resolve names to a namespace, device and dtype, or raise SelectionError.

    Parameters
    ----------
    backend : str
        A backend of the matrix (``numpy``, ``torch``, ...).
    device : str, optional
        One of its devices; by default its first device that is present.
    dtype : str, optional
        A real floating dtype of the device; ``float32`` by default.

    Returns
    -------
    Choice
        The backend's namespace, the device object and the dtype object.

    Raises
    ------
    SelectionError
        For an unknown backend or device, a backend that is not installed
        (naming those that are), no device present (with each one's reason)
        or a dtype the device lacks; the message lists what is available.

    Examples
    --------
    >>> choice = choose("numpy")
    >>> choice.backend, choice.device_name, choice.dtype_name
    ('numpy', 'cpu', 'float32')
    """
    matrix = load_matrix()
    if backend not in matrix:
        raise SelectionError(f"unknown backend {backend!r}; choose one of {', '.join(matrix)}")
    spec = matrix[backend]
    names = [d.name for d in spec.devices]
    if device is not None and device not in names:
        raise SelectionError(
            f"backend {backend} has no device {device!r}; it has {', '.join(names)}"
        )
    candidates = [spec.device(device)] if device is not None else list(spec.devices)
    reasons = []
    for candidate in candidates:
        try:
            xp, where = resolve(spec, candidate)
        except Unavailable as exc:
            if "is not installed" in str(exc):
                installed = [name for name, s in matrix.items() if _installed(s)]
                raise SelectionError(f"{exc}; installed backends: {', '.join(installed)}") from None
            reasons.append(str(exc))
            continue
        available = xp.__array_namespace_info__().dtypes(device=where, kind="real floating")
        name = dtype or "float32"
        if name not in available:
            raise SelectionError(
                f"device {candidate.name} of {backend} has no dtype {name!r}; it has "
                f"{', '.join(available)}"
            )
        return Choice(backend, candidate.name, xp, where, available[name], name)
    present = [d.name for d in spec.devices if d.name not in {c.name for c in candidates}]
    hint = f"; other devices: {', '.join(present)}" if present else ""
    raise SelectionError("; ".join(reasons) + hint)


def describe_backends() -> list[dict[str, str]]:
    """Describe every backend and device of the matrix, as ``xpnn info`` lists them.

    Returns
    -------
    list of dict
        One per backend and device, with the keys ``backend``, ``device``,
        ``version`` (empty when not installed), ``status`` (``ok``, ``not
        installed`` or ``absent``) and ``detail`` (the default floating
        dtypes, or why the device is absent).
    """
    rows = []
    for spec in load_matrix().values():
        version = ""
        for device in spec.devices:
            row = {"backend": spec.name, "device": device.name}
            try:
                xp, where = resolve(spec, device)
            except Unavailable as exc:
                text = str(exc)
                row["status"] = "not installed" if "is not installed" in text else "absent"
                row["detail"] = text.split(": ", 1)[-1] if row["status"] == "absent" else ""
                row["version"] = version
                rows.append(row)
                continue
            if not version:
                version = _version(spec)
            defaults = xp.__array_namespace_info__().default_dtypes(device=where)
            row.update(
                status="ok",
                version=version,
                detail="default "
                + ", ".join(
                    dtype_name(xp, defaults[k]) for k in ("real floating", "complex floating")
                ),
            )
            rows.append(row)
    return rows


def _version(spec: BackendSpec) -> str:
    module = sys.modules.get(spec.imports[0].split(".")[0])
    return str(getattr(module, "__version__", "?"))


def to_device(choice: Choice, host: np.ndarray, integral: bool = False) -> Any:
    """Copy a host array to ``choice``'s backend and device.

    Features take the chosen dtype; labels (``integral=True``) the
    device's default index dtype, which the losses take as class indices.
    """
    info = choice.xp.__array_namespace_info__()
    dtype = info.default_dtypes(device=choice.device)["indexing"] if integral else choice.dtype
    return choice.xp.asarray(host, dtype=dtype, device=choice.device)

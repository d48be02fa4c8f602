"""The model's side of an export, checked before any tracing.

Only xpnn Modules, no Dropout or batch normalisation in training mode,
float32 or float64 parameters; and the parameters and buffers as host
arrays, each shared array once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from .._compat import array_namespace, describe_type, dtype_name
from .._transfer import to_numpy
from ..layers import BatchNorm1d, BatchNorm2d, Module
from ._common import DTYPES, ExportError


def _named_modules(model: Module, prefix: str = "") -> Iterator[tuple[str, Module]]:
    """Yield ``(path, module)`` for the model and every module inside it.

    Paths are those of ``model.named_parameters()`` (``"1"``, ``"0.2"``):
    children are named by their index, as containers name them.
    """
    yield prefix, model
    for name, child in model.named_children():
        yield from _named_modules(child, f"{prefix}.{name}" if prefix else name)


def _check_model(model: object) -> Module:
    if not isinstance(model, Module):
        raise TypeError(
            f"to_onnx takes an xpnn Module (Linear, Sequential, ...), got {describe_type(model)}"
        )
    for path, module in _named_modules(model):
        if module.draws_on_host:
            where = f" (layer {path!r})" if path else ""
            raise ExportError(
                f"{module!r}{where} is in training mode, which has no ONNX graph: "
                "its masks are drawn from a host random generator at every call, and a traced "
                "graph would hold one mask as a constant for every prediction. Export the "
                "inference path: call model.eval() first"
            )
        if isinstance(module, BatchNorm1d | BatchNorm2d) and module.training:
            where = f" (layer {path!r})" if path else ""
            raise ExportError(
                f"{type(module).__name__}({module.num_features}){where} is in training mode, "
                "which has no ONNX graph: it normalises each batch by that batch's own "
                "statistics and replaces its running statistics at every call, so a graph "
                "would give each row an output that depends on the other rows, and keep the "
                "statistics it was traced with. Export the inference path, which normalises "
                "by the running statistics: call model.eval() first"
            )
    return model


def _dtype_name(dtype: object) -> str:
    """Return the standard name of a dtype given by name or as a dtype object."""
    if isinstance(dtype, str):
        name = dtype
    else:
        try:
            name = np.dtype(dtype).name  # type: ignore[call-overload]
        except TypeError:
            # Another library's dtype (torch.float32, jnp.float32, ...).
            name = str(dtype).rsplit(".", 1)[-1]
    if name not in DTYPES:
        raise ExportError(
            f"dtype must be one of {', '.join(DTYPES)} (by name or as a dtype), got {dtype!r}; "
            "ndonnx has no complex dtypes, and xpnn layers compute in floating dtypes only"
        )
    return name


def _first_names(slots: Iterable[tuple[str, Module, str]]) -> dict[str, str]:
    """Map every name of ``slots`` to the first name of its array.

    ``slots`` is ``model.parameter_slots()`` or ``model.buffer_slots()``. A
    layer used twice holds one array under two names; the graph gets it
    once, under the first.
    """
    first: dict[tuple[int, str], str] = {}
    return {name: first.setdefault((id(owner), local), name) for name, owner, local in slots}


def _host_parameters(model: Module, dtype: str | None) -> dict[str, np.ndarray]:
    """Return a host copy of each parameter array, by its first name."""
    host: dict[str, np.ndarray] = {}
    arrays = dict(model.named_parameters())
    for name, first in _first_names(model.parameter_slots()).items():
        if first in host:
            continue
        value = arrays[name]
        xp = array_namespace(**{f"parameter {name!r}": value})
        current = dtype_name(xp, value.dtype)
        if current not in DTYPES:
            raise ExportError(
                f"parameter {name!r} is {current}, which ONNX export does not support: ndonnx "
                f"has no complex dtypes; export a model with {' or '.join(DTYPES)} parameters"
            )
        host[name] = np.ascontiguousarray(to_numpy(value).astype(dtype or current, copy=False))
    return host


def _host_buffers(model: Module, dtype: str | None) -> dict[str, np.ndarray]:
    """Return a host copy of each buffer array (running statistics), by its first name.

    Floating buffers take ``dtype`` as the parameters do; integer ones (a
    batch count) keep theirs.
    """
    host: dict[str, np.ndarray] = {}
    arrays = dict(model.named_buffers())
    for name, first in _first_names(model.buffer_slots()).items():
        if first in host:
            continue
        value = arrays[name]
        xp = array_namespace(**{f"buffer {name!r}": value})
        current = dtype_name(xp, value.dtype)
        if xp.isdtype(value.dtype, "real floating"):
            if current not in DTYPES:
                raise ExportError(
                    f"buffer {name!r} is {current}, which ONNX export does not support; "
                    f"export a model with {' or '.join(DTYPES)} buffers"
                )
            current = dtype or current
        elif not xp.isdtype(value.dtype, "integral"):
            raise ExportError(
                f"buffer {name!r} is {current}, which ONNX export does not support: ndonnx "
                "has no complex dtypes"
            )
        host[name] = np.ascontiguousarray(to_numpy(value).astype(current, copy=False))
    return host

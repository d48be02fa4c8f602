"""The trace: ``model(x)`` run on ndonnx arguments, recorded as a checked ONNX graph."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from .._compat import Array, describe_type
from .._version import __version__
from ..interop.binding import bound, buffers_bound
from ..layers import LAYERS, Module
from ._common import BATCH, ExportError, require_onnx
from .batch import SIZES, symbolic_batch
from .model import (
    _check_model,
    _dtype_name,
    _first_names,
    _host_buffers,
    _host_parameters,
    _named_modules,
)
from .spec import _input_spec

if TYPE_CHECKING:
    import onnx

__all__ = ["build_onnx"]


class _TraceError(ExportError):
    """A layer raised while it ran on ndonnx arrays (what another value propagation may change)."""


def _where(model: Module, exc: BaseException) -> str:
    """Return `` in layer '2' (Conv2d)``: the innermost module of ``model`` that raised ``exc``.

    The error comes from deep inside a layer (or ndonnx); its traceback's
    frames tell which of the model's modules was running.
    """
    paths = {id(module): path for path, module in _named_modules(model)}
    found = None
    frame = exc.__traceback__
    while frame is not None:
        owner = frame.tb_frame.f_locals.get("self")
        if owner is not None and id(owner) in paths:
            found = owner
        frame = frame.tb_next
    if found is None or found is model:
        return ""
    return f" in layer {paths[id(found)]!r} ({type(found).__name__})"


def _record(
    model: Module,
    shape: tuple[int | str | None, ...],
    shown: tuple[int | str | None, ...],
    dtype: str,
    arrays: Mapping[str, np.ndarray],
    input_name: str,
    output_name: str,
) -> onnx.ModelProto:
    """Run ``model`` once on ndonnx arguments of ``shape``; return the graph ndonnx builds.

    ``arrays`` are the parameters and buffers, by first name; they are
    graph inputs still. ``shown`` is the input shape the message names.
    """
    import ndonnx as ndx

    x = ndx.argument(shape=shape, dtype=getattr(ndx, dtype))
    stand_ins = {
        name: ndx.argument(shape=value.shape, dtype=getattr(ndx, value.dtype.name))
        for name, value in arrays.items()
    }
    params = {
        name: stand_ins[first] for name, first in _first_names(model.parameter_slots()).items()
    }
    buffers = {name: stand_ins[first] for name, first in _first_names(model.buffer_slots()).items()}
    try:
        with bound(model, params), buffers_bound(model, buffers):
            y = model(x)
    except Exception as exc:
        # At a fixed batch size the layer's message shows that size.
        fixed = (
            ""
            if shape == shown
            else f" (traced with {shape[0]} rows, for layers that need every size)"
        )
        raise _TraceError(
            f"tracing {type(model).__name__} through ndonnx failed{_where(model, exc)} for an "
            f"input of shape {shown!r}{fixed} and dtype {dtype}: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(y, ndx.Array):
        raise ExportError(
            f"{type(model).__name__} returned {describe_type(y)} for an "
            "ndonnx input, not an ndonnx array: a layer leaves the array API standard (it "
            "converts to NumPy or Python numbers); such a model cannot be traced"
        )
    return ndx.build({input_name: x, **stand_ins}, {output_name: y})


def _used_names(graph: onnx.GraphProto) -> set[str]:
    """Return every name a node of ``graph``, or of a graph inside one, reads."""
    used: set[str] = set()
    for node in graph.node:
        used.update(node.input)
        for attr in node.attribute:
            for inner in (attr.g, *attr.graphs) if attr.HasField("g") else attr.graphs:
                used |= _used_names(inner)
    return used


@contextlib.contextmanager
def _reference_value_propagation() -> Iterator[None]:
    """Let spox propagate constant values with ONNX's reference evaluator while tracing.

    ndonnx knows the values of constants (shapes, slice bounds, paddings)
    by running each new one through spox's value propagation, with
    onnxruntime by default: one inference session per constant, thousands
    for a convolution's patches. The reference evaluator gives the same
    graphs (the tests compare them) several times faster.
    """
    try:
        from spox._future import value_prop_backend
        from spox._value_prop import ValuePropBackend
    except ImportError:
        # A spox without this switch: its default, then.
        yield
        return
    with value_prop_backend(ValuePropBackend.REFERENCE):
        yield


def _graph(
    model: Module,
    shape: tuple[int | str | None, ...],
    dtype: str,
    arrays: Mapping[str, np.ndarray],
    input_name: str,
    output_name: str,
) -> tuple[onnx.ModelProto, bool]:
    """Trace ``model`` with the input's batch axis symbolic, or at two fixed sizes if it must.

    Returns the graph, its parameters and buffers graph inputs still, and
    whether it came from the fixed sizes (:mod:`xpnn.export.batch`).
    """
    try:
        return _record(model, shape, shape, dtype, arrays, input_name, output_name), False
    except _TraceError:
        if not shape or shape[0] != BATCH:
            raise
    # A layer that needs every size (a convolution, a pooling, a reshape):
    # trace it at two fixed batch sizes and let the graph read the batch
    # size where the two differ.
    first, second = (
        _record(model, (size, *shape[1:]), shape, dtype, arrays, input_name, output_name)
        for size in SIZES
    )
    return symbolic_batch(first, second, input_name, type(model).__name__), True


def _trace(
    model: Module,
    shape: tuple[int | str | None, ...],
    dtype: str,
    params: Mapping[str, np.ndarray],
    buffers: Mapping[str, np.ndarray],
    input_name: str,
    output_name: str,
) -> onnx.ModelProto:
    """Run ``model`` on ndonnx arguments and return the graph it records."""
    require_onnx()
    # Imported before the value propagation is switched: importing ndonnx
    # sets spox's backend, which the switch must not restore to spox's own.
    import ndonnx  # noqa: F401
    import onnx
    from onnx import numpy_helper

    arrays = {**params, **buffers}
    try:
        with _reference_value_propagation():
            proto, fixed_batch = _graph(model, shape, dtype, arrays, input_name, output_name)
    except _TraceError:
        # The reference evaluator may lack an operation whose values a
        # layer needs (a shape it computes); onnxruntime, ndonnx's own
        # choice, has them all. Its error is the one to report.
        proto, fixed_batch = _graph(model, shape, dtype, arrays, input_name, output_name)
    graph = proto.graph
    # The parameters and buffers were arguments while tracing, so that
    # ndonnx kept them out of its constant folding; in the file they are
    # constants. A buffer the inference path does not read (a batch count)
    # is left out.
    used = _used_names(graph)
    stored = {name: value for name, value in arrays.items() if name in params or name in used}
    kept = [value for value in graph.input if value.name not in arrays]
    del graph.input[:]
    graph.input.extend(kept)
    graph.initializer.extend(numpy_helper.from_array(value, name) for name, value in stored.items())
    for entry in proto.metadata_props:
        if entry.key == "ndonnx_schema":
            # ndonnx records the types of the inputs it built; the
            # parameters are inputs no more.
            with contextlib.suppress(ValueError, KeyError, TypeError):
                schema = json.loads(entry.value)
                for name in arrays:
                    schema["input_schema"].pop(name, None)
                entry.value = json.dumps(schema)
    out_dims = graph.output[0].type.tensor_type.shape.dim
    own = all(type(module) in LAYERS.values() for module in model.modules())
    if (
        not fixed_batch
        and own
        and shape
        and shape[0] == BATCH
        and out_dims
        and not out_dims[0].HasField("dim_value")
    ):
        # Every xpnn layer that traces with a symbolic batch keeps the
        # leading axes, so the output's first axis is the input's; ndonnx
        # does not carry the name through. A layer of the user's may not
        # keep it: its output keeps "?". (The fixed-batch traces name it
        # from the sizes themselves.)
        out_dims[0].dim_param = BATCH
    proto.producer_name = "xpnn"
    proto.producer_version = __version__
    proto.doc_string = repr(model)
    try:
        config = json.dumps(model.config())
    except (TypeError, ValueError):
        # A layer of the user's whose settings are not JSON: no record.
        config = None
    if config is not None:
        entry = proto.metadata_props.add()
        entry.key, entry.value = "xpnn.config", config
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as exc:
        raise ExportError(
            f"the ONNX graph traced from {type(model).__name__} does not pass "
            f"onnx.checker.check_model: {exc}"
        ) from exc
    return proto


def build_onnx(
    model: Module,
    *,
    input_shape: Sequence[int | str | None] | None = None,
    example: Array | None = None,
    dtype: object = None,
    dynamic_batch: bool = True,
    input_name: str = "input",
    output_name: str = "output",
) -> onnx.ModelProto:
    """Trace ``model(x)`` through ndonnx and return the checked ONNX graph; write nothing.

    The first step of :func:`to_onnx`, for callers that look at the graph
    (or run it) before :func:`write_onnx` writes it.

    Parameters
    ----------
    model, input_shape, example, dtype, dynamic_batch, input_name, output_name
        As for :func:`to_onnx`.

    Returns
    -------
    onnx.ModelProto
        The graph, as :func:`to_onnx` describes it; it passes
        ``onnx.checker.check_model(..., full_check=True)``.

    Raises
    ------
    ExportError, TypeError, ImportError
        As for :func:`to_onnx`.

    Examples
    --------
    >>> from xpnn import Linear
    >>> proto = build_onnx(Linear(4, 2, seed=0), dtype="float32")
    >>> [(i.name, [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim])
    ...  for i in proto.graph.input]
    [('input', ['batch', 4])]
    """
    model = _check_model(model)
    require_onnx()
    if not isinstance(dynamic_batch, bool):
        raise TypeError(f"dynamic_batch must be a bool, got {type(dynamic_batch).__name__}")
    for label, name in (("input_name", input_name), ("output_name", output_name)):
        if not isinstance(name, str) or not name:
            raise ExportError(f"{label} must be a non-empty str, got {name!r}")
    if input_name == output_name:
        raise ExportError(f"input_name and output_name must differ, both are {input_name!r}")
    wanted = None if dtype is None else _dtype_name(dtype)
    params = _host_parameters(model, wanted)
    buffers = _host_buffers(model, wanted)
    for name in (input_name, output_name):
        if name in params or name in buffers:
            kind = "parameter" if name in params else "buffer"
            raise ExportError(
                f"{name!r} names a {kind} of the model; pick another input_name or output_name"
            )
    shape, input_dtype = _input_spec(model, input_shape, example, wanted, params, dynamic_batch)
    return _trace(model, shape, input_dtype, params, buffers, input_name, output_name)

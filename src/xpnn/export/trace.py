"""The trace: ``model(x)`` run on ndonnx arguments, recorded as a checked ONNX graph."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from .._compat import Array, describe_type
from .._version import __version__
from ..interop.binding import bound
from ..layers import LAYERS, Module
from ._common import BATCH, ExportError, require_onnx
from .model import _check_model, _dtype_name, _first_names, _host_parameters
from .spec import _input_spec

if TYPE_CHECKING:
    import onnx

__all__ = ["build_onnx"]


def _trace(
    model: Module,
    shape: tuple[int | str | None, ...],
    dtype: str,
    params: Mapping[str, np.ndarray],
    input_name: str,
    output_name: str,
) -> onnx.ModelProto:
    """Run ``model`` on ndonnx arguments and return the graph it records."""
    require_onnx()
    import ndonnx as ndx
    import onnx
    from onnx import numpy_helper

    x = ndx.argument(shape=shape, dtype=getattr(ndx, dtype))
    stand_ins = {
        name: ndx.argument(shape=value.shape, dtype=getattr(ndx, value.dtype.name))
        for name, value in params.items()
    }
    binding = {name: stand_ins[first] for name, first in _first_names(model).items()}
    try:
        with bound(model, binding):
            y = model(x)
    except Exception as exc:
        raise ExportError(
            f"tracing {type(model).__name__} through ndonnx failed for an input of shape "
            f"{shape!r} and dtype {dtype}: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(y, ndx.Array):
        raise ExportError(
            f"{type(model).__name__} returned {describe_type(y)} for an "
            "ndonnx input, not an ndonnx array: a layer leaves the array API standard (it "
            "converts to NumPy or Python numbers); such a model cannot be traced"
        )
    proto = ndx.build({input_name: x, **stand_ins}, {output_name: y})
    graph = proto.graph
    # The parameters were arguments while tracing, so that ndonnx kept them
    # out of its constant folding; in the file they are constants.
    kept = [value for value in graph.input if value.name not in params]
    del graph.input[:]
    graph.input.extend(kept)
    graph.initializer.extend(numpy_helper.from_array(value, name) for name, value in params.items())
    for entry in proto.metadata_props:
        if entry.key == "ndonnx_schema":
            # ndonnx records the types of the inputs it built; the
            # parameters are inputs no more.
            with contextlib.suppress(ValueError, KeyError, TypeError):
                schema = json.loads(entry.value)
                for name in params:
                    schema["input_schema"].pop(name, None)
                entry.value = json.dumps(schema)
    out_dims = graph.output[0].type.tensor_type.shape.dim
    own = all(type(module) in LAYERS.values() for module in model.modules())
    if own and shape and shape[0] == BATCH and out_dims and not out_dims[0].HasField("dim_value"):
        # Every xpnn layer keeps the leading axes, so the output's first
        # axis is the input's; ndonnx does not carry the name through. A
        # layer of the user's may not keep it: its output keeps "?".
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
    for name in (input_name, output_name):
        if name in params:
            raise ExportError(
                f"{name!r} names a parameter of the model; pick another input_name or output_name"
            )
    shape, input_dtype = _input_spec(model, input_shape, example, wanted, params, dynamic_batch)
    return _trace(model, shape, input_dtype, params, input_name, output_name)

"""Export a model to ONNX by tracing its inference path through ndonnx.

`ndonnx <https://github.com/Quantco/ndonnx>`_ implements the array API
standard with arrays that record ONNX operations instead of computing. The
layers are written against the standard, so running ``model(x)`` on an
ndonnx argument builds the ONNX graph of the very code that runs on NumPy,
PyTorch or JAX: no layer has an exporter of its own.

- :func:`to_onnx` traces a model and writes an ``.onnx`` file;
- :func:`export_checkpoint` does the same for a checkpoint written by
  :func:`xpnn.save` (what ``xpnn train`` leaves in its output folder);
- :func:`build_onnx` and :func:`write_onnx` are its two steps, for callers
  that check the graph before writing it (``xpnn export`` runs it in
  onnxruntime first), and :func:`require_onnx` says how to install what
  they need.

The parameters become initializers of the graph (constants, named as in
``model.named_parameters()``), the input a graph input whose first axis is
symbolic (``"batch"``), so one file serves every batch size.

ndonnx, onnx and onnxruntime are imported by these functions, never when
xpnn is imported; ``pip install "xpnn[onnx]"`` installs them.

What cannot be exported:

- :class:`~xpnn.Dropout` in training mode: its masks come from a host
  random generator at every call, which a graph cannot hold (a traced mask
  would be one constant for every prediction). Call ``model.eval()`` first.
- Complex parameters: ndonnx has no complex dtypes (nor does most of
  ONNX's operator set).
- Opsets other than the one ndonnx emits (21): ``onnx.version_converter``
  cannot lower its graphs (it refuses the boolean ``ReduceMax`` that
  ndonnx's ``max`` uses), so runtimes must support opset 21 (onnxruntime
  1.20 or newer).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._compat import Array, array_namespace, dtype_name
from ._transfer import to_numpy
from ._version import __version__
from .interop.binding import bound
from .layers import LAYERS, Dropout, Module, edge_features

if TYPE_CHECKING:
    import onnx

__all__ = [
    "BATCH",
    "DTYPES",
    "ExportError",
    "build_onnx",
    "export_checkpoint",
    "require_onnx",
    "to_onnx",
    "write_onnx",
]

PathLike = str | os.PathLike[str]

#: The dtypes an exported graph may have, by standard name.
DTYPES = ("float32", "float64")

#: The name of the symbolic first axis of the input and the output.
BATCH = "batch"


class ExportError(ValueError):
    """A model, or an input specification, that cannot become an ONNX graph."""


def require_onnx() -> None:
    """Import ndonnx and onnx, or say how to install them.

    Export imports them when it runs, never when xpnn is imported; this is
    the check to make first, for a clear message rather than the failure of
    a half-done export.

    Raises
    ------
    ImportError
        If ndonnx or onnx is missing; the message names the ``onnx`` extra
        of xpnn that installs them.

    Examples
    --------
    >>> require_onnx()  # nothing to say: both are installed
    """
    try:
        import ndonnx  # noqa: F401
        import onnx  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"exporting to ONNX needs ndonnx and onnx ({exc}); install them with "
            'pip install "xpnn[onnx]" (or: pip install ndonnx onnx onnxruntime)'
        ) from exc


# -- checks, all before any tracing -------------------------------------------


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
            f"to_onnx takes an xpnn Module (Linear, Sequential, ...), got "
            f"{type(model).__module__}.{type(model).__qualname__}"
        )
    for path, module in _named_modules(model):
        if isinstance(module, Dropout) and module.training and module.p > 0.0:
            where = f" (layer {path!r})" if path else ""
            raise ExportError(
                f"Dropout(p={module.p}){where} is in training mode, which has no ONNX graph: "
                "its masks are drawn from a host random generator at every call, and a traced "
                "graph would hold one mask as a constant for every prediction. Export the "
                "inference path: call model.eval() first"
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


def _first_names(model: Module) -> dict[str, str]:
    """Map every parameter name to the first name of its array.

    A layer used twice holds one array under two names; the graph gets it
    once, under the first.
    """
    first: dict[tuple[int, str], str] = {}
    return {
        name: first.setdefault((id(owner), local), name)
        for name, owner, local in model.parameter_slots()
    }


def _host_parameters(model: Module, dtype: str | None) -> dict[str, np.ndarray]:
    """Return a host copy of each parameter array, by its first name."""
    host: dict[str, np.ndarray] = {}
    arrays = dict(model.named_parameters())
    for name, first in _first_names(model).items():
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


def _input_spec(
    model: Module,
    input_shape: Sequence[int | str | None] | None,
    example: Array | None,
    dtype: str | None,
    params: Mapping[str, np.ndarray],
    dynamic_batch: bool,
) -> tuple[tuple[int | str | None, ...], str]:
    """Return the input's shape (sizes, names or ``None``) and dtype name."""
    if input_shape is not None and example is not None:
        raise ExportError(
            "pass input_shape or example, not both: the example's shape is the input shape"
        )
    if example is not None:
        xp = array_namespace(example=example)
        shape: tuple[Any, ...] = tuple(example.shape)
        if dtype is None:
            dtype = dtype_name(xp, example.dtype)
            if dtype not in DTYPES:
                raise ExportError(
                    f"example has dtype {dtype}; the input of an exported model must be "
                    f"{' or '.join(DTYPES)}: pass dtype= or an example of one of those"
                )
    elif input_shape is not None:
        if isinstance(input_shape, str | bytes) or not isinstance(input_shape, Sequence):
            raise ExportError(
                f"input_shape must be a tuple such as (None, 64), got "
                f"{type(input_shape).__name__} {input_shape!r}"
            )
        shape = tuple(input_shape)
    else:
        features = edge_features(model)
        if features is None:
            raise ExportError(
                f"the input shape of {type(model).__name__} cannot be told from its layers (it "
                "does not start with a Linear); pass input_shape=(None, n_features) or example="
            )
        shape = (None, features)
    for index, size in enumerate(shape):
        ok = (
            size is None
            or isinstance(size, str)
            or (isinstance(size, int | np.integer) and not isinstance(size, bool) and size >= 0)
        )
        if not ok:
            raise ExportError(
                f"input_shape[{index}] must be a size (int >= 0), a name (str) or None, got "
                f"{size!r} in {shape!r}"
            )
    shape = tuple(int(s) if isinstance(s, int | np.integer) else s for s in shape)
    if dynamic_batch:
        if len(shape) < 2:
            raise ExportError(
                f"dynamic_batch=True makes the first axis of the input symbolic, but the input "
                f"shape {shape!r} has {len(shape)} axis; give the batch axis too, for example "
                f"(None, {shape[0] if shape else 'n_features'}), or pass dynamic_batch=False"
            )
        shape = (BATCH, *shape[1:])
    if dtype is None:
        found = {value.dtype.name for value in params.values()}
        dtype = "float64" if "float64" in found else "float32"
    return shape, dtype


# -- tracing and writing ---------------------------------------------------------


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
            f"{type(model).__name__} returned {type(y).__module__}.{type(y).__qualname__} for an "
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


def to_onnx(
    model: Module,
    path: PathLike,
    *,
    input_shape: Sequence[int | str | None] | None = None,
    example: Array | None = None,
    dtype: object = None,
    dynamic_batch: bool = True,
    input_name: str = "input",
    output_name: str = "output",
) -> onnx.ModelProto:
    """Trace ``model(x)`` through ndonnx and write the ONNX graph to ``path``.

    Parameters
    ----------
    model : Module
        The model, with parameters of any library on any device, in eval
        mode wherever it has :class:`~xpnn.Dropout`. It is left as it was.
    path : str or os.PathLike
        Where to write the ``.onnx`` file. It is written to a temporary file
        beside it first and renamed, so a failed export leaves no file.
    input_shape : tuple of (int, str or None), optional
        The input's shape, ``(batch, ..., in_features)``; ``None`` or a
        name marks an axis of any size. When neither ``input_shape`` nor
        ``example`` is given: ``(batch, in_features)`` of the model's first
        :class:`~xpnn.Linear`.
    example : array, optional
        An input of any library whose shape (and dtype, unless ``dtype`` is
        given) the graph's input takes. Its values are not used.
    dtype : str or dtype, optional
        ``"float32"`` or ``"float64"`` (or such a dtype of any library):
        the input's dtype and every parameter's. When omitted the input has
        the example's dtype, or the parameters' (float64 if any is), and the
        parameters keep theirs.
    dynamic_batch : bool, default True
        Make the first axis of the input and the output symbolic
        (``"batch"``), so the graph runs on any number of rows.
    input_name, output_name : str, default "input", "output"
        The names of the graph's input and output.

    Returns
    -------
    onnx.ModelProto
        The model written: input ``input_name`` of shape ``input_shape``,
        output ``output_name`` of shape ``(batch, ..., out_features)``,
        one initializer per parameter array, named as in
        ``model.named_parameters()``. It passes
        ``onnx.checker.check_model(..., full_check=True)``.

    Raises
    ------
    ExportError
        (a ``ValueError``) before anything is written: for Dropout in
        training mode, complex parameters or dtypes other than float32 and
        float64, an input specification that does not fit, or a model whose
        tracing fails (the message carries the layer's own error).
    TypeError
        If ``model`` is not an xpnn Module.
    ImportError
        If ndonnx or onnx is missing.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> import onnxruntime
    >>> from xpnn import Linear, ReLU, Sequential
    >>> from xpnn.export import to_onnx
    >>> model = Sequential(Linear(4, 8, seed=0), ReLU(), Linear(8, 3, seed=1))
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "mlp.onnx"
    >>> proto = to_onnx(model, path, dtype="float32")
    >>> [i.name for i in proto.graph.initializer]
    ['0.weight', '0.bias', '2.weight', '2.bias']
    >>> session = onnxruntime.InferenceSession(path)
    >>> x = np.ones((5, 4), dtype=np.float32)
    >>> session.run(None, {"input": x})[0].shape
    (5, 3)
    """
    proto = build_onnx(
        model,
        input_shape=input_shape,
        example=example,
        dtype=dtype,
        dynamic_batch=dynamic_batch,
        input_name=input_name,
        output_name=output_name,
    )
    write_onnx(proto, path)
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


def write_onnx(proto: onnx.ModelProto, path: PathLike) -> None:
    """Write an ONNX model to ``path`` through a temporary file renamed over it.

    The second step of :func:`to_onnx`: ``path`` holds either its previous
    content or the whole new graph, never part of one.

    Parameters
    ----------
    proto : onnx.ModelProto
        The model, such as :func:`build_onnx` returns.
    path : str or os.PathLike
        The ``.onnx`` file to create or replace; its folder must exist.

    Raises
    ------
    OSError
        If the file cannot be written; ``path`` is then left as it was,
        with no temporary file beside it.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import onnx
    >>> from xpnn import Linear
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "linear.onnx"
    >>> write_onnx(build_onnx(Linear(4, 2, seed=0)), path)
    >>> len(onnx.load(path).graph.initializer)
    2
    """
    from .files import atomic_write

    data = proto.SerializeToString()
    atomic_write(path, lambda file: file.write(data))


def export_checkpoint(
    checkpoint: PathLike,
    path: PathLike,
    *,
    dtype: object = None,
    input_shape: Sequence[int | str | None] | None = None,
    dynamic_batch: bool = True,
) -> onnx.ModelProto:
    """Export the model of a checkpoint written by :func:`xpnn.save` to ONNX.

    What ``xpnn export CHECKPOINT OUT.onnx`` does: the model is loaded on
    NumPy, switched to eval mode (checkpoints load in training mode, and an
    exported graph is for inference) and traced by :func:`to_onnx`.

    Parameters
    ----------
    checkpoint : str or os.PathLike
        A checkpoint file, such as the ``model.safetensors`` that
        ``xpnn train`` writes; optimizer state in it is ignored.
    path : str or os.PathLike
        Where to write the ``.onnx`` file (atomically).
    dtype, input_shape, dynamic_batch
        As for :func:`to_onnx`; by default the saved dtype, and an input of
        shape ``(batch, in_features)`` of the first Linear.

    Returns
    -------
    onnx.ModelProto
        The model written.

    Raises
    ------
    xpnn.CheckpointError
        If ``checkpoint`` is not a valid xpnn checkpoint.
    OSError
        If it cannot be read, or ``path`` cannot be written.
    ExportError
        As for :func:`to_onnx`.
    """
    from .checkpoint import load

    model = load(checkpoint)
    model.eval()
    return to_onnx(model, path, dtype=dtype, input_shape=input_shape, dynamic_batch=dynamic_batch)

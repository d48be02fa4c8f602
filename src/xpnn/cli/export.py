"""``xpnn export``: turn a checkpoint into an ONNX file, checked in onnxruntime first.

What :func:`xpnn.export.export_checkpoint` does, in its two steps
(:func:`~xpnn.export.build_onnx`, :func:`~xpnn.export.write_onnx`) with a
check between them: the graph runs in onnxruntime against the model before
anything is written, so a graph that fails the check replaces nothing.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import export as onnx_export
from ..checkpoint import CheckpointError, load
from ..layers import Module
from .backends import SelectionError

if TYPE_CHECKING:
    import onnx

__all__ = ["CHECK_ROWS", "check_output_path", "check_with_onnxruntime", "describe_value", "run"]

#: Rows of the check that runs the written graph against the model: an odd
#: count, so a graph that only works for even or fixed batches shows.
CHECK_ROWS = 7


def run(args: argparse.Namespace) -> int:
    """Run ``xpnn export`` with the parsed arguments; return the exit status.

    Parameters
    ----------
    args : argparse.Namespace
        ``checkpoint`` and ``output`` paths, ``dtype``, ``batch`` and
        ``force``.

    Returns
    -------
    int
        0: failures raise.

    Raises
    ------
    SelectionError
        If the output is the checkpoint, or exists and ``force`` is not
        set (see :func:`check_output_path`); if ndonnx or onnx is missing,
        the checkpoint cannot be read or exported, the output cannot be
        written, or the graph disagrees with the model.
    """
    check_output_path(args.checkpoint, args.output, force=args.force)
    # Looked up on the module at each run, so that tests can replace them.
    try:
        onnx_export.require_onnx()
    except ImportError as exc:
        raise SelectionError(str(exc)) from None
    try:
        # What export_checkpoint does, with the model kept for the check below.
        model = load(args.checkpoint)
        model.eval()
        input_shape = None
        if args.batch is not None:
            told = onnx_export.default_input_shape(model)
            if told is None:
                raise onnx_export.ExportError(
                    "--batch needs a model that starts with a Linear or an Unflatten, to know "
                    "the input's width; export other models with "
                    "xpnn.export.to_onnx(input_shape=...)"
                )
            input_shape = (args.batch, *told[1:])
        proto = onnx_export.build_onnx(
            model, input_shape=input_shape, dtype=args.dtype, dynamic_batch=args.batch is None
        )
        # Checked in memory before anything is written: a graph that fails
        # the check replaces nothing.
        checked = check_with_onnxruntime(model, proto)
        onnx_export.write_onnx(proto, args.output)
    except (CheckpointError, onnx_export.ExportError, OSError) as exc:
        raise SelectionError(f"cannot export {args.checkpoint}: {exc}") from None
    graph = proto.graph
    print(
        f"wrote {args.output}: {describe_value(graph.input[0])} -> "
        f"{describe_value(graph.output[0])}, {len(graph.initializer)} initializers, "
        f"{args.output.stat().st_size} bytes"
    )
    print(checked)
    return 0


def check_output_path(checkpoint: Path, output: Path, *, force: bool = False) -> None:
    """Refuse an output path that would replace the checkpoint or, unless forced, any file.

    Parameters
    ----------
    checkpoint : pathlib.Path
        The file being exported.
    output : pathlib.Path
        Where the ONNX graph would go.
    force : bool, default False
        Replace an existing ``output`` (never the checkpoint itself).

    Raises
    ------
    SelectionError
        If ``output`` names the checkpoint (the same path once resolved, or
        the same file through a link), is a folder, lies in a folder that
        does not exist, or exists and ``force`` is False.

    Examples
    --------
    >>> try:
    ...     check_output_path(Path("run/model.safetensors"), Path("./run/model.safetensors"))
    ... except SelectionError as exc:
    ...     print(exc.args[0].split(";")[0])
    the output run/model.safetensors is the checkpoint being exported
    """
    if output.resolve() == checkpoint.resolve() or _same_file(checkpoint, output):
        raise SelectionError(
            f"the output {output} is the checkpoint being exported; give another path, such "
            f"as {checkpoint.with_suffix('.onnx')}"
        )
    if output.is_dir():
        raise SelectionError(
            f"the output {output} is a folder, expected a file path; give a path such as "
            f"{output / checkpoint.with_suffix('.onnx').name}"
        )
    if not force and os.path.lexists(output):
        raise SelectionError(
            f"the output {output} exists; give another path, or --force to replace it"
        )
    folder = output.parent
    if not folder.is_dir():
        raise SelectionError(
            f"the output's folder {folder} does not exist (or is no folder); create it first, "
            "or give another path"
        )


def _same_file(a: Path, b: Path) -> bool:
    # Hard links and symbolic links resolve to other names for one file.
    try:
        return os.path.samefile(a, b)
    except OSError:
        # One of them does not exist (yet): then they are not one file.
        return False


def describe_value(value: onnx.ValueInfoProto) -> str:
    """Return ``name (axes) dtype`` of a graph input or output, as ``xpnn export`` prints it.

    Parameters
    ----------
    value : onnx.ValueInfoProto
        An entry of ``graph.input`` or ``graph.output``.

    Returns
    -------
    str
        Such as ``"input (batch, 64) float32"``: symbolic axes by name.
    """
    import onnx

    tensor = value.type.tensor_type
    axes = [d.dim_param or str(d.dim_value) for d in tensor.shape.dim]
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
    return f"{value.name} ({', '.join(axes)}) {dtype}"


def check_with_onnxruntime(model: Module, proto: onnx.ModelProto) -> str:
    """Run the graph and the model on the same random rows; describe the difference.

    Parameters
    ----------
    model : Module
        The model the graph was traced from, in eval mode.
    proto : onnx.ModelProto
        Its graph, with one input; a symbolic axis gets :data:`CHECK_ROWS`.

    Returns
    -------
    str
        The line ``xpnn export`` prints: the largest difference found, or
        that nothing was checked because onnxruntime is not installed.

    Raises
    ------
    SelectionError
        If the outputs differ in shape, or by more than the dtype's
        tolerance (relative to the largest output).
    """
    try:
        import onnxruntime
    except ImportError:
        return "not checked: onnxruntime is not installed (pip install 'xpnn[onnx]')"
    session = onnxruntime.InferenceSession(
        proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    feed = session.get_inputs()[0]
    shape = tuple(size if isinstance(size, int) else CHECK_ROWS for size in feed.shape)
    dtype = "float64" if feed.type == "tensor(double)" else "float32"
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    got = session.run(None, {feed.name: x})[0]
    expected = np.asarray(model.to(np, dtype=dtype)(x))
    difference = float(np.max(np.abs(got - expected), initial=0.0))
    tolerance = (1e-9 if dtype == "float64" else 1e-4) * max(
        1.0, float(np.max(np.abs(expected), initial=0.0))
    )
    if got.shape != expected.shape or not difference <= tolerance:
        raise SelectionError(
            f"the written graph disagrees with the model on {shape[0]} random rows: output "
            f"{got.shape} against {expected.shape}, largest difference {difference:.3g} "
            f"(tolerance {tolerance:.3g}); please report it"
        )
    return (
        f"checked with onnxruntime on {shape[0]} random rows: largest difference {difference:.1e}"
    )

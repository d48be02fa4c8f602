"""Writing a graph to a file, and the one-call exports of a model and of a checkpoint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._compat import Array
from ..layers import Module
from ._common import PathLike
from .trace import build_onnx

if TYPE_CHECKING:
    import onnx

__all__ = ["export_checkpoint", "to_onnx", "write_onnx"]


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
        mode wherever it has :class:`~xpnn.Dropout` or batch normalisation.
        It is left as it was.
    path : str or os.PathLike
        Where to write the ``.onnx`` file. It is written to a temporary file
        beside it first and renamed, so a failed export leaves no file.
    input_shape : tuple of (int, str or None), optional
        The input's shape, ``(batch, ..., in_features)``, or for images
        ``(batch, channels, height, width)`` (``(batch, channels, length)``);
        ``None`` or a name marks an axis of any size. When neither
        ``input_shape`` nor ``example`` is given:
        :func:`~xpnn.export.default_input_shape`, ``(batch, in_features)``
        of the model's first :class:`~xpnn.Linear`, or ``(batch, width)``
        of a leading :class:`~xpnn.Unflatten`.
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
        ``model.named_parameters()``, and one per running statistic of a
        batch normalisation (``model.named_buffers()``). It passes
        ``onnx.checker.check_model(..., full_check=True)``.

    Raises
    ------
    ExportError
        (a ``ValueError``) before anything is written: for Dropout or batch
        normalisation in training mode, complex parameters or dtypes other
        than float32 and float64, an input specification that does not fit,
        a model whose tracing fails (the message names the layer and
        carries its own error), or one whose graph depends on the batch
        size in a way a symbolic batch axis cannot follow.
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
    from ..files import atomic_write

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
        shape ``(batch, in_features)`` of the first Linear (or the width of
        a leading Unflatten).

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
    from ..checkpoint import load

    model = load(checkpoint)
    model.eval()
    return to_onnx(model, path, dtype=dtype, input_shape=input_shape, dynamic_batch=dynamic_batch)

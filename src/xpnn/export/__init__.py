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

The parameters and the running statistics of batch normalisation become
initializers of the graph (constants, named as in
``model.named_parameters()`` and ``model.named_buffers()``), the input a
graph input whose first axis is symbolic (``"batch"``), so one file serves
every batch size. Layers that need every size of their input known
(convolutions, poolings, ``Flatten``, ``Unflatten``) are traced at two fixed
batch sizes, and the graph reads the batch size where the two traces
differ (:mod:`xpnn.export.batch`).

ndonnx, onnx and onnxruntime are imported by these functions, never when
xpnn is imported; ``pip install "xpnn[onnx]"`` installs them.

What cannot be exported:

- :class:`~xpnn.Dropout` in training mode: its masks come from a host
  random generator at every call, which a graph cannot hold (a traced mask
  would be one constant for every prediction). Call ``model.eval()`` first.
- :class:`~xpnn.BatchNorm1d` and :class:`~xpnn.BatchNorm2d` in training
  mode: they normalise by each batch's statistics and replace their running
  statistics at every call. In eval mode they normalise by the running
  statistics, which the graph holds.
- Complex parameters: ndonnx has no complex dtypes (nor does most of
  ONNX's operator set).
- Opsets other than the one ndonnx emits (21): ``onnx.version_converter``
  cannot lower its graphs (it refuses the boolean ``ReduceMax`` that
  ndonnx's ``max`` uses), so runtimes must support opset 21 (onnxruntime
  1.20 or newer).
"""

from __future__ import annotations

from ._common import BATCH, DTYPES, ExportError, require_onnx
from .spec import default_input_shape
from .trace import build_onnx
from .write import export_checkpoint, to_onnx, write_onnx

__all__ = [
    "BATCH",
    "DTYPES",
    "ExportError",
    "build_onnx",
    "default_input_shape",
    "export_checkpoint",
    "require_onnx",
    "to_onnx",
    "write_onnx",
]

"""What every step of the export shares: its dtypes, its batch axis, its error, its imports."""

from __future__ import annotations

import os

__all__ = ["BATCH", "DTYPES", "ExportError", "PathLike", "require_onnx"]

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

"""Run a test only where a backend is selected, for tests that ignore the backend under test."""

from __future__ import annotations

import pytest

from xpnn.testing.plugin import selected_cases

ON_HOST = pytest.mark.backend("numpy")
"""For tests that ignore the backend under test (the command line, ONNX
export, the examples, packaging): the numpy session runs them, not every
session of the matrix. A test's own ``backend`` mark overrides its module's."""


def require_backend(config: pytest.Config, name: str) -> None:
    """Skip unless this run selects backend ``name`` (every run selects all, by default).

    Tests of a framework's own machinery (``jax.jit``, ``torch.compile``,
    dask.distributed) do not depend on the backend under test, and some are
    slow: the matrix's sessions for the other backends skip them.
    """
    if not any(spec.name == name for spec, _ in selected_cases(config)):
        pytest.skip(f"this run does not select the {name} backend (--xp-backend)")


def require_float64(xp: object, device: object, why: str = "finite differences need") -> None:
    """Skip on a device without float64 (array_api_strict's ``no_float64``, Apple's MPS)."""
    info = xp.__array_namespace_info__()  # type: ignore[attr-defined]
    if "float64" not in info.dtypes(device=device, kind="real floating"):
        pytest.skip(f"device {device!r} has no float64, which {why}")

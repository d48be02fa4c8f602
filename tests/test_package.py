"""Packaging promises: light import, layer math free of backend imports."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import xpnn
from selection import ON_HOST

pytestmark = ON_HOST  # packaging does not depend on the backend under test

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(xpnn.__file__).parent
HEAVY = ("torch", "jax", "jaxlib", "cupy", "dask", "distributed", "tensorflow", "sklearn")
HEAVY += ("ndonnx", "onnx", "onnxruntime")
# The code that holds layer math: it may reach array libraries only through
# the namespace its arrays report.
MATH_MODULES = ("functional", "layers", "optim", "losses.py", "_checks.py")
BACKENDS = ("numpy", "torch", "cupy", "jax", "dask", "tensorflow", "array_api_strict")


def test_import_xpnn_imports_no_heavy_library():
    code = (
        "import sys, xpnn, xpnn.functional, xpnn.testing, xpnn.interop, xpnn.export, xpnn.cli; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import xpnn imported {out.stdout.strip()}"


def imported_backends(source: str) -> set[str]:
    """Top-level names of backend libraries a module imports."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(n.split(".")[0] for n in names if n.split(".")[0] in BACKENDS)
    return found


def math_files() -> list[Path]:
    files = []
    for entry in MATH_MODULES:
        path = PACKAGE / entry
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return files


@pytest.mark.parametrize("path", math_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_layer_math_imports_no_backend(path):
    assert imported_backends(path.read_text()) == set()


def test_backend_import_detector_catches_imports():
    assert imported_backends("import torch\nfrom numpy import ones\nimport jax.numpy as jnp") == {
        "torch",
        "numpy",
        "jax",
    }
    assert imported_backends("from . import numpy\nimport math") == set()


def test_required_dependencies_are_the_array_api_helpers_numpy_and_safetensors():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = sorted(
        req.split(">")[0].split("=")[0].split("[")[0].strip() for req in project["dependencies"]
    )
    # safetensors reads and writes checkpoints; array-api-extra gives writes that
    # are functional on JAX; no array library but NumPy.
    assert names == ["array-api-compat", "array-api-extra", "numpy", "safetensors"]
    for backend in ("torch", "jax", "dask", "cupy"):
        assert backend in project["optional-dependencies"]


def test_readme_quickstart_runs():
    readme = (ROOT / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [
        "ndarray float64 (2, 4)",
        "Tensor torch.float32 torch.Size([2, 4])",
    ]

"""The backend matrix: one description, read by nox, the tests and the docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from xpnn.testing.matrix import DeviceSpec, Unavailable, load_matrix, resolve

ROOT = Path(__file__).resolve().parents[2]


def test_matrix_lists_every_backend_and_device():
    matrix = load_matrix(ROOT / "backends")
    assert next(iter(matrix)) == "numpy"
    devices = {name: [d.name for d in spec.devices] for name, spec in matrix.items()}
    assert devices == {
        "numpy": ["cpu"],
        "array_api_strict": ["CPU_DEVICE", "device1", "device2", "no_float64"],
        "cupy": ["cuda"],
        "dask": ["cpu"],
        "jax": ["cpu", "gpu"],
        "torch": ["cpu", "cuda"],
    }
    assert matrix["jax"].env["JAX_ENABLE_X64"] == "1"
    assert all(d.gpu for d in (matrix["torch"].device("cuda"), matrix["cupy"].device("cuda")))


def test_unknown_device_lists_the_known_ones():
    matrix = load_matrix(ROOT / "backends")
    with pytest.raises(KeyError, match="has no device 'tpu'; it has cpu, cuda"):
        matrix["torch"].device("tpu")


def test_missing_library_and_absent_device_are_unavailable_with_reason():
    matrix = load_matrix(ROOT / "backends")
    numpy_spec = matrix["numpy"]
    absent = DeviceSpec(name="imaginary", device="'cpu'", probe="False")
    with pytest.raises(Unavailable, match=r"numpy-imaginary: not present \(False is false\)"):
        resolve(numpy_spec, absent)
    broken = DeviceSpec(name="broken", device="numpy.no_such_device")
    with pytest.raises(Unavailable, match="numpy-broken: not present.*AttributeError"):
        resolve(numpy_spec, broken)
    ghost = type(numpy_spec)(
        name="ghost",
        summary="",
        imports=("no_such_array_library",),
        namespace="x",
        requirements=("ghost-arrays",),
    )
    with pytest.raises(Unavailable, match="ghost is not installed.*pip install ghost-arrays"):
        resolve(ghost, absent)


def test_readme_table_matches_the_matrix():
    """The README's backend table is the one copy kept by hand: hold it to the data."""
    matrix = load_matrix(ROOT / "backends")
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| (.+?) \|", readme, flags=re.MULTILINE)
    table = {name: [d.strip(" `") for d in devices.split(",")] for name, devices in rows}
    assert table == {name: [d.name for d in spec.devices] for name, spec in matrix.items()}


def test_probe_runs_as_a_module():
    import subprocess
    import sys

    def probe(*args):
        command = [sys.executable, "-m", "xpnn.testing.matrix", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    found = probe("probe", "numpy", "cpu")
    assert (found.returncode, found.stdout.strip()) == (0, "available")
    wrong = probe("list")
    assert wrong.returncode == 2
    assert "usage: python -m xpnn.testing.matrix probe" in wrong.stderr


def test_the_reader_loads_by_path_with_the_standard_library_alone():
    """noxfile.py loads the reader by path, before anything is installed."""
    import importlib.util
    import sys

    path = ROOT / "src" / "xpnn" / "testing" / "matrix.py"
    spec = importlib.util.spec_from_file_location("matrix_by_path", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["matrix_by_path"] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        assert list(module.load_matrix(ROOT / "backends")) == list(load_matrix(ROOT / "backends"))
    finally:
        del sys.modules["matrix_by_path"]

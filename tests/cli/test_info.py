"""xpnn info: the backends, their devices and default dtypes."""

from __future__ import annotations

from selection import ON_HOST
from xpnn.cli.table import format_table

pytestmark = ON_HOST  # the command line names its backend itself


def test_info_lists_backends_devices_and_dtypes(xpnn_command):
    result = xpnn_command("info")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    numpy_row = next(line for line in lines if line.startswith("numpy "))
    assert "cpu" in numpy_row
    assert "ok" in numpy_row
    assert "default float64, complex128" in numpy_row
    for backend in ("array_api_strict", "torch", "cupy", "jax", "dask"):
        assert any(line.startswith(backend) for line in lines)


def test_table_columns_fit_the_widest_cell():
    table = format_table(["a", "long header"], [["wide cell", 1], ["x", ""]])
    assert table.splitlines() == [
        "a          long header",
        "---------  -----------",
        "wide cell  1",
        "x",
    ]

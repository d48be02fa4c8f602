"""``xpnn info``: the installed backends, their devices and default dtypes."""

from __future__ import annotations

import argparse
import sys

from .._version import __version__
from .backends import describe_backends
from .table import format_table

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Print xpnn's and Python's versions and one row per backend and device; return 0.

    Parameters
    ----------
    args : argparse.Namespace
        The arguments of ``xpnn info`` (it takes none).

    Returns
    -------
    int
        0.
    """
    rows = [
        [r["backend"], r["version"], r["device"], r["status"], r["detail"]]
        for r in describe_backends()
    ]
    print(f"xpnn {__version__}, Python {sys.version.split()[0]}")
    print(format_table(["backend", "version", "device", "status", "default dtypes / reason"], rows))
    return 0

"""``xpnn check``: gradient checks and cross-backend agreement, as a table."""

from __future__ import annotations

import argparse
import sys

from .backends import choose
from .selfcheck import run_checks
from .table import format_table

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Run the checks of :mod:`~xpnn.cli.selfcheck` and print one row per check.

    Parameters
    ----------
    args : argparse.Namespace
        ``backend``: the backends to check, comma-separated, or ``None``
        for every installed one.

    Returns
    -------
    int
        0 when every check passes; 1 when one fails (each failure gets a
        line on standard error) or there was nothing to check.

    Raises
    ------
    SelectionError
        For a backend named in ``args.backend`` that is unknown, not
        installed, or has no device present; the message says which and why,
        as ``xpnn train --backend`` does.
    """
    only = [b.strip() for b in args.backend.split(",")] if args.backend else None
    for name in only or ():
        # A backend asked for by name and left out in silence would give an
        # empty table and "0 passed": say why it cannot be checked instead.
        choose(name)
    results = run_checks(only)
    rows = [
        [r.backend, r.device, r.dtype, r.check, "pass" if r.passed else "FAIL", f"{r.error:.2e}"]
        for r in results
    ]
    print(format_table(["backend", "device", "dtype", "check", "result", "max error"], rows))
    failed = [r for r in results if not r.passed]
    for r in failed:
        print(f"FAIL {r.backend}-{r.device} {r.dtype} {r.check}: {r.message}", file=sys.stderr)
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed or not results else 0

"""The ``xpnn`` command: ``train``, ``export``, ``predict``, ``info`` and ``check``.

Bad arguments get one line on standard error that says what is available,
and exit status 2; no traceback.

One module per job: :mod:`~xpnn.cli.parser` parses the arguments and holds
the table of commands; each command runs in a module of its own
(:mod:`~xpnn.cli.train`, :mod:`~xpnn.cli.export`, :mod:`~xpnn.cli.predict`,
:mod:`~xpnn.cli.info`, :mod:`~xpnn.cli.check`), helped by
:mod:`~xpnn.cli.data` (the data sets), :mod:`~xpnn.cli.sentiment` (the
tweets, their tokens and the text models),
:mod:`~xpnn.cli.models` (the model and its memory check),
:mod:`~xpnn.cli.cluster` (the Dask cluster), :mod:`~xpnn.cli.plot` (the
learning curves), :mod:`~xpnn.cli.run_files` (a run's folder and its files,
written as one set), :mod:`~xpnn.cli.interrupt` (stopping at a step on
SIGINT or SIGTERM), :mod:`~xpnn.cli.resume` (continuing a run),
:mod:`~xpnn.cli.table` (the tables of ``info`` and ``check``),
:mod:`~xpnn.cli.backends` (backend, device and dtype by name) and
:mod:`~xpnn.cli.selfcheck` (what ``xpnn check`` runs).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence

from .backends import SelectionError
from .parser import build_parser

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after ``xpnn``; by default ``sys.argv[1:]``.

    Returns
    -------
    int
        0 on success, 1 when ``xpnn check`` finds a failure (or training
        diverged), 130 when Ctrl-C stopped the command, 2 for bad input
        (also the status of argparse's own errors, which exit instead of
        returning). No arguments at all is bad input: the usage and the
        list of commands go to standard error, and the status is 2.
    """
    parser = build_parser()
    if argv is None:
        argv = sys.argv[1:]
    if not argv:
        # Help, not argparse's one-line "arguments are required": someone who
        # types the bare command is asking what it does.
        parser.print_help(sys.stderr)
        return 2
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except SelectionError as exc:
        print(f"xpnn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C where no command handles it (xpnn check, export), or a
        # second one just as a stopped training run returns: no traceback.
        print(f"xpnn {args.command}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT

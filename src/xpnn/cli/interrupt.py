"""Stopping a run at a step boundary on SIGINT or SIGTERM, and holding signals back.

:class:`StopRequest` is the handler ``xpnn train`` installs while it trains
and saves: the first signal asks :func:`xpnn.fit` to stop after the current
step (its ``should_stop``), a second aborts at once. :func:`signals_held`
defers both around the few renames that commit a run's files.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["STOP_SIGNALS", "StopRequest", "signals_held"]

#: The signals that stop a run at the next step; it then exits with 128 +
#: the signal's number, as shells report it (130 for Ctrl-C, 143 for SIGTERM).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Hold:
    """How many :func:`signals_held` blocks are open, and the abort they deferred."""

    depth = 0
    deferred: int | None = None


class StopRequest:
    """A signal handler that asks training to stop at the next step, then to abort.

    The first SIGINT (Ctrl-C) or SIGTERM sets :attr:`signal`, which
    :meth:`requested` reports to :func:`xpnn.fit` (its ``should_stop``); a
    second one raises ``KeyboardInterrupt`` at once, or, inside
    :func:`signals_held`, as the block ends. Writes are atomic, so aborting
    leaves the output folder with its previous files or the complete new
    set.

    Attributes
    ----------
    signal : int or None
        The number of the first signal received.
    aborted_by : int or None
        The number of the second, which aborted the run.
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        self.aborted_by: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        """Handle ``signum``: note the first, abort on the second."""
        if self.signal is not None:
            self.aborted_by = signum
            if _Hold.depth:
                _Hold.deferred = signum
                return
            raise KeyboardInterrupt
        self.signal = signum
        line = (
            "xpnn train: stopping after this step, then saving the last finished epoch "
            "(press Ctrl-C again to abort without saving)\n"
        )
        # Straight to the descriptor: the signal may have come in the middle
        # of a write to sys.stderr (the progress bar's), and a buffered
        # stream refuses a write from inside its own.
        try:
            os.write(sys.stderr.fileno(), line.encode())
        except (AttributeError, ValueError, OSError):
            print(line, end="", file=sys.stderr, flush=True)

    def requested(self) -> bool:
        """Tell whether a signal asked training to stop."""
        return self.signal is not None

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Handle SIGINT and SIGTERM with this object inside the block; restore the old handlers.

        Outside the main thread, where Python cannot set handlers, nothing
        is installed.
        """
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        old = {number: signal.signal(number, self) for number in STOP_SIGNALS}
        try:
            yield self
        finally:
            for number, handler in old.items():
                signal.signal(number, handler)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Defer an abort by a :class:`StopRequest` to the end of the block.

    The commit of a run (a few renames and a small ``metrics.json``) takes
    milliseconds; an abort in its middle would leave the new model beside
    the old metrics. A second signal inside the block is noted, and raises
    ``KeyboardInterrupt`` once the block is done. (Blocking the signals
    with ``pthread_sigmask`` would not do: it blocks them for one thread,
    and the process's other threads, BLAS's among them, take them.)
    """
    _Hold.depth += 1
    try:
        yield
    finally:
        _Hold.depth -= 1
        if not _Hold.depth and _Hold.deferred is not None:
            _Hold.deferred = None
            raise KeyboardInterrupt

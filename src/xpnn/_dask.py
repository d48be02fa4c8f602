"""The one module of xpnn that imports Dask and ``dask.distributed``.

Everything else in xpnn that needs Dask comes here: the Dask source of the
training loop (:mod:`xpnn.training.dask_source`) for computing, persisting
and waiting, and ``xpnn train --backend dask`` for its cluster
(:func:`cluster`, :func:`persist`). The layer, loss and optimizer code is
the same on every backend: it builds a lazy graph, and the callers of this
module decide when and where that graph is computed.

Without Dask the module still imports (documentation and doctest tools
import every module), with :data:`dask` and :data:`da` set to ``None``;
nothing reaches them without Dask arrays. This module imports nothing of
xpnn but :mod:`xpnn._compat`, so that it sits below every module that uses
it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ._compat import Array

__all__ = [
    "AHEAD",
    "REBASE",
    "active_client",
    "cluster",
    "compute",
    "concat",
    "da",
    "dask",
    "fresh_copy",
    "future_type",
    "persist",
    "persist_as_built",
    "row_chunk",
    "wait",
]

# Dask is typed in part only, and type checks run without it installed:
# reach it as Any.
dask: Any
"""The ``dask`` package, or ``None`` without Dask."""
da: Any
"""The ``dask.array`` package, or ``None`` without Dask."""
try:
    dask = importlib.import_module("dask")
    importlib.import_module("dask.core")
    importlib.import_module("dask.base")
    da = importlib.import_module("dask.array")
except ImportError:
    dask = da = None

#: Steps the host may submit before the oldest unfinished one completes.
AHEAD = 4
#: Steps between two fresh starts of the training state (see
#: :meth:`xpnn.training.dask_source.DaskSource.after_step`).
REBASE = 256


def row_chunk(x: Array) -> int:
    """Return the rows of the first row chunk of ``x``: its default shuffling block."""
    chunks = x.chunks[0]
    return max(int(chunks[0]), 1) if chunks else 1


def compute(*values: Array | None) -> tuple[Any, ...]:
    """Compute the given arrays in one go; ``None`` entries stay ``None``."""
    present = [value for value in values if value is not None]
    results = iter(dask.compute(*present))
    return tuple(None if value is None else next(results) for value in values)


def persist(*arrays: Array) -> tuple[Array, ...]:
    """Persist the arrays together (on the cluster under a distributed client)."""
    return tuple(dask.persist(*arrays))


def persist_as_built(*arrays: Array) -> tuple[Array, ...]:
    """Persist the arrays together without optimizing their graph first.

    For graphs that are already what should run (a block's two tasks):
    optimizing would only rename their tasks.
    """
    return tuple(dask.persist(*arrays, optimize_graph=False))


def fresh_copy(host: Any, like: Array) -> Array:
    """Return a Dask array of the host array ``host``, chunked as ``like``, with no history.

    The name is random rather than a hash of the data: hashing a large
    array costs a pass over it, and two copies must never share a name.
    """
    return da.from_array(host, chunks=like.chunks, name=False)


def concat(pieces: Sequence[Array]) -> Array:
    """Concatenate Dask arrays along the rows; one piece is returned as is."""
    return pieces[0] if len(pieces) == 1 else da.concatenate(list(pieces), axis=0)


def active_client() -> Any:
    """Return the active distributed client, or ``None``.

    A client exists only if ``distributed`` was imported, so this imports
    nothing new.
    """
    if "distributed" not in sys.modules:
        return None
    distributed = sys.modules["distributed"]
    try:
        return distributed.default_client()
    except ValueError:
        return None


def future_type() -> type | tuple[type, ...]:
    """Return ``distributed.Future``, or ``()`` (no type) if distributed is not imported.

    For ``isinstance``: persisted arrays hold futures in their graphs only
    once ``distributed`` has been imported.
    """
    distributed = sys.modules.get("distributed")
    found: type | tuple[type, ...] = getattr(distributed, "Future", ())
    return found


def wait(arrays: Array | Sequence[Array] | None) -> None:
    """Wait for persisted arrays to be computed (at once without a distributed client).

    Parameters
    ----------
    arrays : Dask array, sequence of them, or None
        ``None`` waits for nothing.
    """
    if arrays is not None and active_client() is not None:
        sys.modules["distributed"].wait(arrays)


@contextmanager
def cluster(
    scheduler: str | None = None,
    *,
    workers: int = 2,
    threads: int = 1,
    memory_limit: str | int = "auto",
) -> Iterator[Any]:
    """Join the cluster at ``scheduler``, or start a local one; close it at the end.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``). Without it a
        ``LocalCluster`` starts: worker processes listening on the loopback
        interface only, with no dashboard.
    workers, threads : int
        Worker processes of the local cluster and threads in each.
    memory_limit : str or int, default "auto"
        Memory limit of each local worker (``"auto"`` shares the machine's
        memory among the workers).

    Yields
    ------
    distributed.Client
        The client, the default scheduler of Dask while the block runs.
    """
    distributed: Any = importlib.import_module("distributed")
    Client, LocalCluster = distributed.Client, distributed.LocalCluster
    if scheduler is not None:
        with Client(scheduler, set_as_default=True) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=threads,
            processes=True,
            host="127.0.0.1",
            # The scheduler serves health and metrics over HTTP whatever the
            # dashboard; a free port, on loopback, never clashes.
            dashboard_address="127.0.0.1:0",
            scheduler_kwargs={"dashboard": False},
            memory_limit=memory_limit,
        ) as local,
        Client(local, set_as_default=True) as client,
    ):
        yield client

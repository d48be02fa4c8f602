"""The Dask cluster of ``xpnn train --backend dask``.

Training with ``--backend dask`` runs on a ``dask.distributed`` cluster:
a local one that :func:`connect` starts (``--workers``, ``--threads``), or
a running one that it joins (``--scheduler``). Dask is imported when a
cluster is asked for, never when the command line is: ``xpnn info`` and
``xpnn train`` on other backends run without it.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .._compat import Array
from .backends import SelectionError

__all__ = ["DASK_THREADS", "DASK_WORKERS", "Cluster", "check_options", "connect", "persist"]

# The local cluster: few, single-threaded processes, so that it shares a
# laptop politely.
#: Worker processes of the local cluster, unless ``--workers`` says otherwise.
DASK_WORKERS = 2
#: Threads in each local worker, unless ``--threads`` says otherwise.
DASK_THREADS = 1


@dataclass(frozen=True)
class Cluster:
    """What ``xpnn train`` found on the cluster it trains on.

    Attributes
    ----------
    scheduler : str
        The scheduler's address.
    workers, threads : int
        Workers connected when training starts, and their threads in all.
    joined : bool
        True for a running cluster given by ``--scheduler``, False for a
        local one started for the run.
    """

    scheduler: str
    workers: int
    threads: int
    joined: bool

    def describe(self) -> str:
        """Return the line ``xpnn train`` prints before training."""
        kind = "a Dask cluster" if self.joined else "a local Dask cluster"
        return f"on {kind} at {self.scheduler}: {self.workers} workers, {self.threads} threads"

    def as_dict(self) -> dict[str, Any]:
        """Return the ``cluster`` entry of ``metrics.json``."""
        return {"scheduler": self.scheduler, "workers": self.workers, "threads": self.threads}


def check_options(
    backend: str, scheduler: str | None, workers: int | None, threads: int | None
) -> None:
    """Refuse cluster options that do not fit the backend or one another.

    Parameters
    ----------
    backend : str
        The chosen backend's name.
    scheduler : str or None
        ``--scheduler``.
    workers, threads : int or None
        ``--workers`` and ``--threads``.

    Raises
    ------
    SelectionError
        If any of them is given without ``--backend dask``, or ``--workers``
        or ``--threads`` with ``--scheduler`` (they size a local cluster).
    """
    options = {"scheduler": scheduler, "workers": workers, "threads": threads}
    given = [f"--{name}" for name, value in options.items() if value]
    if backend != "dask":
        if given:
            raise SelectionError(
                f"{' and '.join(given)} {'need' if len(given) > 1 else 'needs'} --backend dask, "
                f"got --backend {backend}"
            )
        return
    if scheduler and len(given) > 1:
        raise SelectionError(
            "--workers and --threads size a local cluster; with --scheduler the cluster "
            "already runs, so leave them out"
        )


@contextlib.contextmanager
def connect(
    scheduler: str | None, workers: int | None = None, threads: int | None = None
) -> Iterator[Cluster]:
    """Join the cluster at ``scheduler``, or start a local one; close it at the end.

    The client is Dask's default scheduler while the block runs, so that
    the arrays of the training run compute on the cluster.

    Parameters
    ----------
    scheduler : str or None
        Address of a running scheduler (``tcp://host:8786``); ``None``
        starts a local cluster.
    workers, threads : int, optional
        Size of a local cluster: :data:`DASK_WORKERS` processes of
        :data:`DASK_THREADS` threads by default.

    Yields
    ------
    Cluster
        The scheduler's address and the workers found there.

    Raises
    ------
    SelectionError
        If ``distributed`` is not installed, or the scheduler cannot be
        reached.
    """
    if importlib.util.find_spec("distributed") is None:
        raise SelectionError(
            "xpnn train --backend dask runs on a dask.distributed cluster, and distributed "
            "is not installed; install it with pip install 'xpnn[dask]'"
        )
    # Imported here: xpnn._dask imports Dask.
    from .. import _dask

    with contextlib.ExitStack() as stack:
        # Only connecting is translated: errors of the training run inside
        # the block are not the scheduler's.
        try:
            client = stack.enter_context(
                _dask.cluster(
                    scheduler, workers=workers or DASK_WORKERS, threads=threads or DASK_THREADS
                )
            )
        except (OSError, ValueError) as exc:
            raise SelectionError(
                f"cannot reach the Dask scheduler at {scheduler}: {exc}; check the "
                "address and that the scheduler is running"
            ) from None
        found = client.scheduler_info().get("workers", {})
        yield Cluster(
            scheduler=client.scheduler.address,
            workers=len(found),
            threads=sum(worker.get("nthreads", 0) for worker in found.values()),
            joined=scheduler is not None,
        )


def persist(*arrays: Array) -> tuple[Array, ...]:
    """Compute Dask arrays on the cluster and keep them there, for the whole run.

    Parameters
    ----------
    *arrays : dask.array.Array
        The training or test data, still a graph of host chunks.

    Returns
    -------
    tuple of dask.array.Array
        The same arrays, held in the workers' memory: the data are sent
        once rather than at every epoch.
    """
    from .. import _dask

    return _dask.persist(*arrays)

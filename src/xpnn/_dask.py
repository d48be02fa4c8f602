"""Training on Dask arrays, on the local scheduler or a ``dask.distributed`` cluster.

:func:`xpnn.training.fit` and :func:`~xpnn.training.evaluate` come here when
their arrays are Dask arrays, and ``xpnn train --backend dask`` comes here
for its cluster; nothing else in xpnn imports Dask. The layer, loss and
optimizer code is the same as on every backend: it builds a lazy graph, and
this module decides when and where that graph is computed.

What a step computes where
--------------------------
- Batches are cut from *blocks*: contiguous runs of rows, shuffled in
  order and within themselves by the host plan of ``xpnn.training``. A
  window of blocks is persisted (gathered into its shuffled order on the
  worker that reads it) while the window before it trains, and released
  once its last batch has been submitted. A batch is a concatenation of
  slices of persisted blocks, so it stays a chunked array whose chunks live
  where the blocks do: the forward and backward passes run chunk by chunk
  on those workers, and each parameter's gradient is a reduction over the
  batch's chunks.
- After each step the parameters, their gradients, the buffers of xpnn's
  optimizers and the running sums of the epoch's loss and correct
  predictions are persisted together, in one graph: the next step starts
  from results held in memory (on the workers, under a distributed client)
  rather than from a graph that reaches back to the first step.
- Under a distributed client ``persist`` returns at once, so the host
  builds the next step while the cluster computes this one. The host stays
  at most :data:`AHEAD` steps ahead, which bounds how many blocks are alive.
- The running sums are read back once per epoch.
"""

from __future__ import annotations

import importlib
import itertools
import sys
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from ._compat import Array
from .layers import Module

if TYPE_CHECKING:
    from .training import _Window

__all__ = ["AHEAD", "Steps", "cluster", "compute", "persist", "row_chunk"]

# Dask is typed in part only, and type checks run without it installed:
# reach it as Any.
dask: Any = importlib.import_module("dask")
da: Any = importlib.import_module("dask.array")

#: Steps the host may submit before the oldest unfinished one completes.
AHEAD = 4


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


def _client() -> Any:
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


def _runs(window: _Window, lo: int, hi: int) -> Iterator[tuple[int, int, int]]:
    """Yield ``(slot, start, stop)``: rows ``lo:hi`` of ``window`` as slices of its blocks."""
    if window.slots is None or window.positions is None:
        yield 0, lo, hi
        return
    slots, positions = window.slots[lo:hi], window.positions[lo:hi]
    # Within a run of one block the positions are consecutive: the plan
    # deals each block's rows in order.
    edges = [0, *(np.flatnonzero(slots[1:] != slots[:-1]) + 1).tolist(), hi - lo]
    for begin, end in itertools.pairwise(edges):
        yield int(slots[begin]), int(positions[begin]), int(positions[end - 1]) + 1


class Steps:
    """Batches and per-step persistence for one :func:`~xpnn.training.fit` run.

    Parameters
    ----------
    model : Module
        The model being trained; its parameters and gradients are replaced
        by persisted arrays after each step.
    optimizer : object
        Its buffers are persisted too when it is an xpnn optimizer (it has
        ``_buffers`` and ``_replace_buffers``, as :meth:`xpnn.Module.to`
        uses); other optimizers' state is left as they keep it.
    """

    def __init__(self, model: Module, optimizer: object) -> None:
        self.model = model
        self.optimizer = optimizer
        self._pending: deque[Array] = deque()
        self._state: list[Array] = []

    def batches(
        self, x: Array, y: Array, windows: Sequence[_Window], batch_size: int
    ) -> Iterator[tuple[Array, Array]]:
        """Yield the epoch's batches, persisting each window one window ahead."""
        offsets = np.cumsum([0, *(window.rows for window in windows)])
        live: dict[int, list[tuple[Array, Array]]] = {}
        for begin in range(0, int(offsets[-1]), batch_size):
            end = min(begin + batch_size, int(offsets[-1]))
            first = int(np.searchsorted(offsets, begin, side="right")) - 1
            last = int(np.searchsorted(offsets, end - 1, side="right")) - 1
            for done in [w for w in live if w < first]:
                del live[done]
            for w in range(first, min(last + 2, len(windows))):
                if w not in live:
                    live[w] = self._persist_window(x, y, windows[w])
            xs, ys = [], []
            for w in range(first, last + 1):
                lo, hi = max(begin, offsets[w]) - offsets[w], min(end, offsets[w + 1]) - offsets[w]
                for slot, start, stop in _runs(windows[w], int(lo), int(hi)):
                    block_x, block_y = live[w][slot]
                    xs.append(block_x[start:stop])
                    ys.append(block_y[start:stop])
            yield _concat(xs), _concat(ys)

    @staticmethod
    def _persist_window(x: Array, y: Array, window: _Window) -> list[tuple[Array, Array]]:
        blocks = []
        for start, order in zip(window.starts, window.orders, strict=True):
            rows = slice(start, start + order.shape[0])
            blocks += [x[rows][order], y[rows][order]]
        persisted = dask.persist(*blocks)
        return list(zip(persisted[::2], persisted[1::2], strict=True))

    def persist(self, *values: Array | None) -> tuple[Array | None, ...]:
        """Persist the model's state with ``values``; return the persisted values.

        Parameters, gradients, optimizer buffers and ``values`` go in one
        graph, so the step they share is computed once.
        """
        slots = list(self.model.parameter_slots())
        buffers: dict[str, dict[str, Array]] = {}
        if hasattr(self.optimizer, "_buffers") and hasattr(self.optimizer, "_replace_buffers"):
            buffers = self.optimizer._buffers()
        arrays: list[Any] = list(values)
        arrays += [owner.params[local] for _, owner, local in slots]
        arrays += [owner.grads.get(local) for _, owner, local in slots]
        arrays += [buffer for entry in buffers.values() for buffer in entry.values()]
        everything = dask.persist(*arrays)
        self._state = [a for a in everything[len(values) :] if a is not None]
        persisted = iter(everything)
        kept = tuple(next(persisted) for _ in values)
        new_params = [next(persisted) for _ in slots]
        new_grads = [next(persisted) for _ in slots]
        for (_, owner, local), param, grad in zip(slots, new_params, new_grads, strict=True):
            owner.params[local] = param
            if local in owner.grads:
                owner.grads[local] = grad
        if buffers:
            self.optimizer._replace_buffers(  # type: ignore[attr-defined]
                {name: {key: next(persisted) for key in entry} for name, entry in buffers.items()}
            )
        self._throttle(kept[0])
        return kept

    def _throttle(self, done_marker: Array | None) -> None:
        client = _client()
        if client is None or done_marker is None:
            return
        self._pending.append(done_marker)
        if len(self._pending) > AHEAD:
            sys.modules["distributed"].wait(self._pending.popleft())

    def read(self, *values: Array | None) -> tuple[Any, ...]:
        """Compute the epoch's sums, once, and wait for the model's last update.

        The sums do not depend on the last step's update, which may still
        run; waiting for it makes the epoch's time cover its work, and an
        update that failed fail here.
        """
        self._pending.clear()
        results = compute(*values)
        if _client() is not None and self._state:
            distributed = sys.modules["distributed"]
            distributed.wait(self._state)
            failed = [f for f in distributed.futures_of(self._state) if f.status == "error"]
            if failed:
                failed[0].result()
        return results


def _concat(pieces: list[Array]) -> Array:
    return pieces[0] if len(pieces) == 1 else da.concatenate(pieces, axis=0)


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
        ``LocalCluster`` starts: worker processes on the loopback interface
        only, with no dashboard.
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
            dashboard_address=None,
            memory_limit=memory_limit,
        ) as local,
        Client(local, set_as_default=True) as client,
    ):
        yield client

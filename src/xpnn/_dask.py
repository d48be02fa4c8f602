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
  block is one task, which runs the block's part of the data's own graph
  (its chunks, drawn once per run) on its worker and gathers its rows in
  their shuffled order; see :class:`_Source` for why. A window of blocks is
  persisted while the window before it trains, and released once its last
  batch has been submitted. A batch is a concatenation of slices of
  persisted blocks, so it stays a chunked array whose chunks live where the
  blocks do: the forward and backward passes run chunk by chunk on those
  workers, and each parameter's gradient is a reduction over the batch's
  chunks.
- After each step the parameters, their gradients, the buffers of xpnn's
  optimizers and the running sums of the epoch's loss and correct
  predictions are persisted together, in one graph: the next step starts
  from results held in memory (on the workers, under a distributed client)
  rather than from a graph that reaches back to the first step.
- Under a distributed client ``persist`` returns at once, so the host
  builds the next step while the cluster computes this one. The host stays
  at most :data:`AHEAD` steps ahead, and a window is persisted only once
  the steps of the window two before it are done: at most three windows
  are on the workers at a time.
- The scheduler remembers how each persisted array was made; every
  :data:`REBASE` steps, and at the end of each epoch, the state goes to the
  host and back, so that it does not remember every step.
- The running sums are read back once per epoch, in the same computation
  as that end-of-epoch copy of the state.
"""

from __future__ import annotations

import importlib
import itertools
import operator
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

__all__ = ["AHEAD", "REBASE", "Steps", "cluster", "compute", "persist", "row_chunk"]

# Dask is typed in part only, and type checks run without it installed:
# reach it as Any. Without Dask the module still imports (documentation and
# doctest tools import every module); nothing reaches it without Dask arrays.
dask: Any
da: Any
try:
    dask = importlib.import_module("dask")
    importlib.import_module("dask.core")
    da = importlib.import_module("dask.array")
except ImportError:
    dask = da = None

#: Steps the host may submit before the oldest unfinished one completes.
AHEAD = 4
#: Steps between two fresh starts of the state (see ``Steps._rebase``).
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


class _Source:
    """The training data as one task graph, drawn once per run, and blocks cut from it.

    A block's task runs the block's part of that graph itself, on its worker,
    with Dask's synchronous scheduler: the distributed scheduler sees one
    task per block, with no task of the user's arrays in it. Two things
    follow. Blocks of different windows, in flight together, never submit
    the same task of the user's arrays twice; Dask's graph optimization can
    give such a task another definition under the same name, which the
    distributed scheduler does not survive. And what the scheduler keeps of
    a block's history is the block, not the tasks that made its rows.
    """

    def __init__(self, x: Array, y: Array) -> None:
        x, y = _one_chunk_across(x), _one_chunk_across(y)
        graph = {**dict(x.__dask_graph__()), **dict(y.__dask_graph__())}
        future_type = getattr(sys.modules.get("distributed"), "Future", ())
        # Persisted chunks appear as futures: they become the block task's
        # dependencies, and their values enter its graph on the worker.
        self.futures = {k: v for k, v in graph.items() if isinstance(v, future_type)}
        self.graph = graph
        self.x, self.y = _RowChunks(x), _RowChunks(y)

    def block(self, start: int, order: np.ndarray) -> tuple[Array, Array]:
        """Return rows ``start + order`` of x and of y, one chunk each."""
        stop = start + order.shape[0]
        x_keys, x_offset = self.x.covering(start, stop)
        y_keys, y_offset = self.y.covering(start, stop)
        graph, external = _cull(self.graph, [*x_keys, *y_keys], self.futures)
        token = dask.base.tokenize(x_keys, y_keys, x_offset, y_offset, order)
        pair = f"xpnn-rows-{token}"
        task = (
            _pair,
            _Graph(graph, x_keys, y_keys, external),
            x_offset,
            y_offset,
            order,
            *(self.futures[k] for k in external),
        )
        blocks = []
        for side, chunks in enumerate((self.x, self.y)):
            name = f"xpnn-block-{side}-{token}"
            key = (name,) + (0,) * (1 + len(chunks.tail))
            blocks.append(
                da.Array(
                    {pair: task, key: (operator.getitem, pair, side)},
                    name,
                    chunks=((order.shape[0],), *chunks.tail),
                    meta=chunks.meta,
                )
            )
        return blocks[0], blocks[1]


def _one_chunk_across(array: Array) -> Array:
    if any(len(chunks) > 1 for chunks in array.chunks[1:]):
        # One chunk across the other axes, so that a chunk of rows is one key.
        array = array.rechunk({axis: -1 for axis in range(1, array.ndim)})
    return array


class _RowChunks:
    """The keys of an array's chunks of rows, and where each begins."""

    def __init__(self, array: Array) -> None:
        # One chunk across the other axes: one key per chunk of rows, in order.
        self.keys = list(dask.core.flatten(array.__dask_keys__()))
        self.bounds = np.cumsum([0, *array.chunks[0]])
        self.tail = tuple((size,) for size in array.shape[1:])
        self.meta = array._meta

    def covering(self, start: int, stop: int) -> tuple[list[Any], int]:
        """Return the keys of the chunks that hold rows ``start:stop``, and ``start``'s offset."""
        first = int(np.searchsorted(self.bounds, start, side="right")) - 1
        last = int(np.searchsorted(self.bounds, stop - 1, side="right")) - 1
        return self.keys[first : last + 1], start - int(self.bounds[first])


class _Graph:
    """A task graph carried as an argument, which Dask passes on untouched."""

    __slots__ = ("external", "graph", "x_keys", "y_keys")

    def __init__(
        self, graph: dict[Any, Any], x_keys: list[Any], y_keys: list[Any], external: list[Any]
    ) -> None:
        self.graph, self.x_keys, self.y_keys, self.external = graph, x_keys, y_keys, external


def _cull(
    graph: dict[Any, Any], keys: list[Any], futures: dict[Any, Any]
) -> tuple[dict[Any, Any], list[Any]]:
    """Return the part of ``graph`` that ``keys`` need, and the futures among them."""
    culled: dict[Any, Any] = {}
    external: list[Any] = []
    todo = list(keys)
    while todo:
        key = todo.pop()
        if key in culled or key in external:
            continue
        if key in futures:
            external.append(key)
            continue
        culled[key] = graph[key]
        todo.extend(dask.core.get_dependencies(graph, key))
    return culled, external


def _pair(
    part: _Graph, x_offset: int, y_offset: int, order: np.ndarray, *external: Any
) -> tuple[Any, Any]:
    graph = {**part.graph, **dict(zip(part.external, external, strict=True))}
    chunks = dask.get(graph, [*part.x_keys, *part.y_keys])
    xs, ys = chunks[: len(part.x_keys)], chunks[len(part.x_keys) :]
    return _rows(xs, x_offset, order), _rows(ys, y_offset, order)


def _rows(chunks: Sequence[Any], offset: int, order: np.ndarray) -> Any:
    rows = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
    return rows[offset : offset + order.shape[0]][order]


class Steps:
    """Batches and per-step persistence for one :func:`~xpnn.training.fit` run.

    Parameters
    ----------
    model : Module
        The model being trained; its parameters and gradients are replaced
        by persisted arrays after each step.
    optimizer : object
        Its buffers are persisted too when it is an xpnn optimizer (it has
        ``buffers`` and ``replace_buffers``, as :meth:`xpnn.Module.to`
        uses); other optimizers' state is left as they keep it.
    x, y : Dask arrays
        The training data.
    """

    def __init__(self, model: Module, optimizer: object, x: Array, y: Array) -> None:
        self.model = model
        self.optimizer = optimizer
        self._source = _Source(x, y)
        self._pending: deque[Array] = deque()
        self._last: Array | None = None
        self._steps = 0

    def batches(self, windows: Sequence[_Window], batch_size: int) -> Iterator[tuple[Array, Array]]:
        """Yield the epoch's batches, persisting each window one window ahead."""
        offsets = np.cumsum([0, *(window.rows for window in windows)])
        live: dict[int, list[tuple[Array, Array]]] = {}
        # The last step that read each window, once the host has moved on.
        finished: dict[int, Array | None] = {}
        for begin in range(0, int(offsets[-1]), batch_size):
            end = min(begin + batch_size, int(offsets[-1]))
            first = int(np.searchsorted(offsets, begin, side="right")) - 1
            last = int(np.searchsorted(offsets, end - 1, side="right")) - 1
            for done in [w for w in live if w < first]:
                del live[done]
                finished[done] = self._last
            for w in range(first, min(last + 2, len(windows))):
                if w not in live:
                    # At most three windows on the workers: the one being
                    # finished, the one in use and the next one.
                    self._wait(finished.pop(w - 2, None))
                    live[w] = self._persist_window(windows[w])
            xs, ys = [], []
            for w in range(first, last + 1):
                lo, hi = max(begin, offsets[w]) - offsets[w], min(end, offsets[w + 1]) - offsets[w]
                for slot, start, stop in _runs(windows[w], int(lo), int(hi)):
                    block_x, block_y = live[w][slot]
                    xs.append(block_x[start:stop])
                    ys.append(block_y[start:stop])
            yield _concat(xs), _concat(ys)

    def _persist_window(self, window: _Window) -> list[tuple[Array, Array]]:
        blocks: list[Array] = []
        for start, order in zip(window.starts, window.orders, strict=True):
            blocks += self._source.block(start, order)
        # As built: there is nothing to optimize in a block's two tasks.
        persisted = dask.persist(*blocks, optimize_graph=False)
        return list(zip(persisted[::2], persisted[1::2], strict=True))

    def _state_arrays(self) -> tuple[list[Any], dict[str, dict[str, Array]], list[Any]]:
        slots = list(self.model.parameter_slots())
        buffers: dict[str, dict[str, Array]] = {}
        if hasattr(self.optimizer, "buffers") and hasattr(self.optimizer, "replace_buffers"):
            buffers = self.optimizer.buffers()
        arrays: list[Any] = [owner.params[local] for _, owner, local in slots]
        arrays += [owner.grads.get(local) for _, owner, local in slots]
        arrays += [buffer for entry in buffers.values() for buffer in entry.values()]
        return slots, buffers, arrays

    def _store_state(
        self, slots: list[Any], buffers: dict[str, dict[str, Array]], arrays: Sequence[Any]
    ) -> None:
        new = iter(arrays)
        new_params = [next(new) for _ in slots]
        new_grads = [next(new) for _ in slots]
        for (_, owner, local), param, grad in zip(slots, new_params, new_grads, strict=True):
            owner.params[local] = param
            if local in owner.grads:
                owner.grads[local] = grad
        if buffers:
            self.optimizer.replace_buffers(  # type: ignore[attr-defined]
                {name: {key: next(new) for key in entry} for name, entry in buffers.items()}
            )

    def persist(self, *values: Array | None) -> tuple[Array | None, ...]:
        """Persist the model's state with ``values``; return the persisted values.

        Parameters, gradients, optimizer buffers and ``values`` go in one
        graph, so the step they share is computed once.
        """
        slots, buffers, arrays = self._state_arrays()
        everything = dask.persist(*values, *arrays)
        self._store_state(slots, buffers, everything[len(values) :])
        kept = tuple(everything[: len(values)])
        self._steps += 1
        if self._steps % REBASE == 0:
            kept = self._rebase(kept)
        self._throttle(kept[0])
        return kept

    def _rebase(self, values: tuple[Array | None, ...], *, read: bool = False) -> tuple[Any, ...]:
        """Replace the state by copies of it that have no history; the same for ``values``.

        The scheduler keeps the tasks that made a persisted array, to make
        it again should a worker be lost, and those tasks' own: the state
        after step n remembers every step before it, some tens of tasks
        each. Bringing the state to the host and back starts it afresh; it
        waits for every step submitted so far. ``values`` come along in the
        same computation: as host values with ``read``, else as new arrays.
        """
        if _client() is None:  # the local scheduler keeps no history
            return compute(*values) if read else values
        slots, buffers, arrays = self._state_arrays()
        both: list[Any] = [*values, *arrays]
        hosts = iter(dask.compute(*(a for a in both if a is not None)))
        got = [None if a is None else np.asarray(next(hosts)) for a in both]
        fresh = dask.persist(
            *(
                None if a is None else da.from_array(host, chunks=a.chunks, name=False)
                for a, host in zip(both, got, strict=True)
            )
        )
        self._store_state(slots, buffers, fresh[len(values) :])
        self._pending.clear()
        return tuple(got[: len(values)]) if read else tuple(fresh[: len(values)])

    def _throttle(self, done_marker: Array | None) -> None:
        self._last = done_marker
        if _client() is None or done_marker is None:
            return
        self._pending.append(done_marker)
        if len(self._pending) > AHEAD:
            self._wait(self._pending.popleft())

    @staticmethod
    def _wait(marker: Array | None) -> None:
        """Wait for a persisted array (at once without a distributed client)."""
        if marker is not None and _client() is not None:
            sys.modules["distributed"].wait(marker)

    def read(self, *values: Array | None) -> tuple[Any, ...]:
        """Compute the epoch's sums and start the model's state afresh, in one computation.

        The sums do not depend on the last step's update, which may still
        run; bringing the state to the host waits for it, so the epoch's
        time covers its work and a failed update fails here.
        """
        results = self._rebase(values, read=True)
        if _client() is not None:
            # Between epochs and after fit the model's state is in memory.
            state = [array for array in self._state_arrays()[2] if array is not None]
            sys.modules["distributed"].wait(state)
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

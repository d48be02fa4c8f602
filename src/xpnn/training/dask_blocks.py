"""Blocks of shuffled rows cut from Dask arrays, one task each.

The Dask source (:mod:`xpnn.training.dask_source`) persists a window's
blocks and cuts its batches from them; this module makes the blocks. Dask
comes through :mod:`xpnn._dask`.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _dask
from .._compat import Array

__all__ = ["RowBlocks"]


class RowBlocks:
    """The training data as one task graph, drawn once per run, and blocks cut from it.

    A block's task runs the block's part of that graph itself, on its worker,
    with Dask's synchronous scheduler: the distributed scheduler sees one
    task per block, with no task of the user's arrays in it. Two things
    follow. Blocks of different windows, in flight together, never submit
    the same task of the user's arrays twice; Dask's graph optimization can
    give such a task another definition under the same name, which the
    distributed scheduler does not survive. And what the scheduler keeps of
    a block's history is the block, not the tasks that made its rows.

    Parameters
    ----------
    x : Dask array of shape (n, ...)
        Inputs, chunked in any way (persisted or not).
    y : Dask array of shape (n, ...)
        Targets, with the same rows; their row chunks may differ from ``x``'s.
    """

    def __init__(self, x: Array, y: Array) -> None:
        x, y = _one_chunk_across(x), _one_chunk_across(y)
        graph = {**dict(x.__dask_graph__()), **dict(y.__dask_graph__())}
        future_type = _dask.future_type()
        # Persisted chunks appear as futures: they become the block task's
        # dependencies, and their values enter its graph on the worker.
        self.futures = {k: v for k, v in graph.items() if isinstance(v, future_type)}
        self.graph = graph
        self.x, self.y = _RowChunks(x), _RowChunks(y)

    def block(self, start: int, order: np.ndarray) -> tuple[Array, Array]:
        """Return rows ``start + order`` of x and of y, one chunk each.

        Parameters
        ----------
        start : int
            First row of the block.
        order : ndarray of int, shape (rows,)
            The block's rows, relative to ``start``, in the order to give them.

        Returns
        -------
        x_block : Dask array of shape (rows, ...)
        y_block : Dask array of shape (rows, ...)
            One chunk each, both made by one task (two keys that pick its halves).
        """
        stop = start + order.shape[0]
        x_keys, x_offset = self.x.covering(start, stop)
        y_keys, y_offset = self.y.covering(start, stop)
        graph, external = _cull(self.graph, [*x_keys, *y_keys], self.futures)
        token = _dask.dask.base.tokenize(x_keys, y_keys, x_offset, y_offset, order)
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
                _dask.da.Array(
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
        self.keys = list(_dask.dask.core.flatten(array.__dask_keys__()))
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
        todo.extend(_dask.dask.core.get_dependencies(graph, key))
    return culled, external


def _pair(
    part: _Graph, x_offset: int, y_offset: int, order: np.ndarray, *external: Any
) -> tuple[Any, Any]:
    # Runs on the worker: the block's share of the data's graph, computed
    # there by the synchronous scheduler, then its rows in their order.
    graph = {**part.graph, **dict(zip(part.external, external, strict=True))}
    chunks = _dask.dask.get(graph, [*part.x_keys, *part.y_keys])
    xs, ys = chunks[: len(part.x_keys)], chunks[len(part.x_keys) :]
    return _rows(xs, x_offset, order), _rows(ys, y_offset, order)


def _rows(chunks: Sequence[Any], offset: int, order: np.ndarray) -> Any:
    rows = chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
    return rows[offset : offset + order.shape[0]][order]

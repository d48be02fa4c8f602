"""The batch source of Dask arrays, on the local scheduler or a ``dask.distributed`` cluster.

:func:`xpnn.training.fit` and :func:`~xpnn.training.evaluate` take this
source when their arrays are Dask arrays. The loop is the one of every
backend; this source decides which graph makes each batch, when the graphs
are computed and what is kept. Dask itself is reached through
:mod:`xpnn._dask`.

What a step computes where
--------------------------
- Batches are cut from *blocks*: contiguous runs of rows, shuffled in
  order and within themselves by the host plan
  (:func:`xpnn.training.plan.epoch_plan`). A block is one task, which runs
  the block's part of the data's own graph (its chunks, drawn once per run)
  on its worker and gathers its rows in their shuffled order; see
  :class:`~xpnn.training.dask_blocks.RowBlocks` for why. A window of blocks
  is persisted while the window before it trains, and released once its
  last batch has been submitted. A batch is a concatenation of slices of
  persisted blocks, so it stays a chunked array whose chunks live where the
  blocks do: the forward and backward passes run chunk by chunk on those
  workers, and each parameter's gradient is a reduction over the batch's
  chunks.
- After each step the parameters, their gradients, the model's buffers (a
  batch norm's running statistics), the buffers of xpnn's optimizers and
  the running sums of the epoch's loss and correct predictions are
  persisted together, in one graph: the next step starts from results held
  in memory (on the workers, under a distributed client) rather than from a
  graph that reaches back to the first step. Persisted copies replace the
  arrays in the model and the optimizer; nothing is written into an array.
- Under a distributed client ``persist`` returns at once, so the host
  builds the next step while the cluster computes this one. The host stays
  at most :data:`xpnn._dask.AHEAD` steps ahead, and a window is persisted
  only once the steps of the window two before it are done: at most three
  windows are on the workers at a time.
- The scheduler remembers how each persisted array was made; every
  :data:`xpnn._dask.REBASE` steps, and at the end of each epoch, the state
  goes to the host and back, so that it does not remember every step.
- The running sums are read back once per epoch, in the same computation
  as that end-of-epoch copy of the state.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from .. import _dask
from .._compat import Array
from ..layers import Module
from .dask_blocks import RowBlocks
from .plan import Window
from .sources import Score

__all__ = ["DaskSource"]


@runtime_checkable
class _Buffered(Protocol):
    """The public state interface of xpnn's optimizers that this source uses."""

    def buffers(self) -> dict[str, dict[str, Array]]:
        """Return the live buffers, by parameter name then buffer name."""
        ...

    def replace_buffers(self, buffers: Mapping[str, Mapping[str, Array]]) -> None:
        """Store new arrays for existing buffers."""
        ...


class _State(NamedTuple):
    """The training state that :meth:`DaskSource._state` collects, to persist as one.

    ``arrays`` is flat: the parameters, their gradients, the model's
    buffers, then the optimizer's buffers, in the order of the slots.
    """

    #: The model's parameter slots ``(name, owner, local)``.
    slots: list[tuple[str, Module, str]]
    #: The model's buffer slots ``(name, owner, local)``: a batch norm's statistics.
    buffer_slots: list[tuple[str, Module, str]]
    #: The optimizer's buffers, by parameter name then buffer name.
    buffers: dict[str, dict[str, Array]]
    arrays: list[Any]


def _runs(window: Window, lo: int, hi: int) -> Iterator[tuple[int, int, int]]:
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


class DaskSource:
    """Batches, per-step persistence and evaluation for Dask arrays.

    Parameters
    ----------
    x : Dask array of shape (n, ...)
        Inputs, with known row chunks.
    y : Dask array of shape (n, ...)
        Targets.
    model : Module, optional
        The model being trained; its parameters, gradients and buffers are
        replaced by persisted arrays after each step. Leave it out to
        evaluate only.
    optimizer : object, optional
        Its buffers are persisted too when it is an xpnn optimizer (it has
        ``buffers`` and ``replace_buffers``, as :meth:`xpnn.Module.to`
        uses); other optimizers' state is left as they keep it.
    """

    def __init__(
        self, x: Array, y: Array, model: Module | None = None, optimizer: object | None = None
    ) -> None:
        self.x, self.y = x, y
        self.model = model
        self.optimizer = optimizer
        # Drawn at the first epoch: evaluation never cuts blocks.
        self._blocks: RowBlocks | None = None
        self._pending: deque[Array] = deque()
        self._last: Array | None = None
        self._steps = 0

    @property
    def block_rows(self) -> int:
        """The rows of the first row chunk of ``x``: a block is a chunk by default."""
        return _dask.row_chunk(self.x)

    # -- batches ---------------------------------------------------------------

    def batches(self, windows: Sequence[Window], batch_size: int) -> Iterator[tuple[Array, Array]]:
        """Yield the epoch's batches, persisting each window one window ahead.

        Parameters
        ----------
        windows : sequence of Window
            The epoch's plan.
        batch_size : int
            Rows per batch; the last one may be smaller.

        Yields
        ------
        xb : Dask array of shape (b, ...)
        yb : Dask array of shape (b, ...)
            One chunk per block of the window that gives rows to the batch.
        """
        if self._blocks is None:
            self._blocks = RowBlocks(self.x, self.y)
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
                    _dask.wait(finished.pop(w - 2, None))
                    live[w] = self._persist_window(self._blocks, windows[w])
            xs, ys = [], []
            for w in range(first, last + 1):
                lo, hi = max(begin, offsets[w]) - offsets[w], min(end, offsets[w + 1]) - offsets[w]
                for slot, start, stop in _runs(windows[w], int(lo), int(hi)):
                    block_x, block_y = live[w][slot]
                    xs.append(block_x[start:stop])
                    ys.append(block_y[start:stop])
            yield _dask.concat(xs), _dask.concat(ys)

    @staticmethod
    def _persist_window(blocks: RowBlocks, window: Window) -> list[tuple[Array, Array]]:
        arrays: list[Array] = []
        for start, order in zip(window.starts, window.orders, strict=True):
            arrays += blocks.block(start, order)
        # As built: there is nothing to optimize in a block's two tasks.
        persisted = _dask.persist_as_built(*arrays)
        return list(zip(persisted[::2], persisted[1::2], strict=True))

    # -- the model's state -------------------------------------------------------

    def _state(self) -> _State:
        slots = list(self.model.parameter_slots()) if self.model is not None else []
        buffer_slots = list(self.model.buffer_slots()) if self.model is not None else []
        buffers: dict[str, dict[str, Array]] = {}
        if isinstance(self.optimizer, _Buffered):
            buffers = self.optimizer.buffers()
        arrays: list[Any] = [owner.params[local] for _, owner, local in slots]
        arrays += [owner.grads.get(local) for _, owner, local in slots]
        # A batch norm's statistics after step n are a graph of every batch
        # before it: persisted, like the parameters, they stay one step deep.
        arrays += [owner.buffers[local] for _, owner, local in buffer_slots]
        arrays += [buffer for entry in buffers.values() for buffer in entry.values()]
        return _State(slots, buffer_slots, buffers, arrays)

    def _store_state(self, state: _State, arrays: Sequence[Any]) -> None:
        """Put ``arrays``, new copies of ``state``'s, in the model and the optimizer."""
        slots, buffer_slots, buffers, _ = state
        new = iter(arrays)
        new_params = [next(new) for _ in slots]
        new_grads = [next(new) for _ in slots]
        for (_, owner, local), param, grad in zip(slots, new_params, new_grads, strict=True):
            owner.params[local] = param
            if local in owner.grads:
                owner.grads[local] = grad
        for _, owner, local in buffer_slots:
            owner.buffers[local] = next(new)
        if buffers and isinstance(self.optimizer, _Buffered):
            self.optimizer.replace_buffers(
                {name: {key: next(new) for key in entry} for name, entry in buffers.items()}
            )

    def after_step(
        self, loss_sum: Array | None, correct_sum: Array | None
    ) -> tuple[Array | None, Array | None]:
        """Persist the model's state with the running sums; return the persisted sums.

        Parameters, gradients, the model's and the optimizer's buffers and
        the sums go in one graph, so the step they share is computed once. Every
        :data:`xpnn._dask.REBASE` steps the state starts afresh (see
        :meth:`_rebase`); the host waits when it is :data:`xpnn._dask.AHEAD`
        steps ahead of the cluster.
        """
        state = self._state()
        everything = _dask.persist(loss_sum, correct_sum, *state.arrays)
        self._store_state(state, everything[2:])
        kept: tuple[Any, ...] = everything[:2]
        self._steps += 1
        # Read from the module, not bound at import: tests lower it.
        if self._steps % _dask.REBASE == 0:
            kept = self._rebase(kept)
        self._throttle(kept[0])
        return kept[0], kept[1]

    def _rebase(self, values: tuple[Array | None, ...], *, read: bool = False) -> tuple[Any, ...]:
        """Replace the state by copies of it that have no history; the same for ``values``.

        The scheduler keeps the tasks that made a persisted array, to make
        it again should a worker be lost, and those tasks' own: the state
        after step n remembers every step before it, some tens of tasks
        each. Bringing the state to the host and back starts it afresh; it
        waits for every step submitted so far. ``values`` come along in the
        same computation: as host values with ``read``, else as new arrays.
        """
        if _dask.active_client() is None:  # the local scheduler keeps no history
            return _dask.compute(*values) if read else values
        state = self._state()
        both: list[Any] = [*values, *state.arrays]
        got = [None if host is None else np.asarray(host) for host in _dask.compute(*both)]
        fresh = _dask.persist(
            *(
                None if a is None else _dask.fresh_copy(host, like=a)
                for a, host in zip(both, got, strict=True)
            )
        )
        self._store_state(state, fresh[len(values) :])
        self._pending.clear()
        return tuple(got[: len(values)]) if read else tuple(fresh[: len(values)])

    def _throttle(self, done_marker: Array | None) -> None:
        self._last = done_marker
        if _dask.active_client() is None or done_marker is None:
            return
        self._pending.append(done_marker)
        if len(self._pending) > _dask.AHEAD:
            _dask.wait(self._pending.popleft())

    def end_epoch(
        self, loss_sum: Array | None, correct_sum: Array | None
    ) -> tuple[float | None, float | None]:
        """Compute the epoch's sums and start the model's state afresh, in one computation.

        The sums do not depend on the last step's update, which may still
        run; bringing the state to the host waits for it, so the epoch's
        time covers its work and a failed update fails here.
        """
        loss_host, correct_host = self._rebase((loss_sum, correct_sum), read=True)
        if _dask.active_client() is not None:
            # Between epochs and after fit the model's state is in memory.
            _dask.wait([array for array in self._state().arrays if array is not None])
        return (
            None if loss_host is None else float(loss_host),
            None if correct_host is None else float(correct_host),
        )

    # -- evaluation --------------------------------------------------------------

    def evaluate(self, score: Score, batch_size: int) -> tuple[float | None, float | None]:
        """Score all rows in one forward pass, computed chunk by chunk.

        The whole array at once: Dask runs the forward pass chunk by chunk,
        so the chunks of ``x`` are the forward passes and ``batch_size`` is
        not used; both sums come back in one computation.
        """
        if not self.x.shape[0]:
            return None, None
        loss_sum, correct_sum = _dask.compute(*score(self.x, self.y))
        return (
            None if loss_sum is None else float(loss_sum),
            None if correct_sum is None else float(correct_sum),
        )

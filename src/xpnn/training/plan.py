"""The order of an epoch's rows, drawn on the host by NumPy.

Every backend trains on the order drawn here, so a run depends on its seed
(and ``block_rows`` and ``interleave``) only, never on the array library:
the eager source gathers rows by the indices of :meth:`Window.indices`, and
the Dask source cuts the same rows from blocks (``starts`` and ``orders``)
and deals them by ``slots`` and ``positions``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Window", "epoch_plan"]


@dataclass(frozen=True)
class Window:
    """Blocks of rows whose rows an epoch deals out together.

    Attributes
    ----------
    starts : list of int
        First row of each block of the window, in the epoch's block order.
    orders : list of ndarray of shape (block_rows_i,)
        Each block's own shuffled order: ``starts[j] + orders[j]`` are the
        block's rows in the order it gives them out.
    slots, positions : ndarray of shape (rows,), or None
        ``slots[i]`` and ``positions[i]`` name the ``i``-th row of the window
        in the epoch's order: block ``slots[i]`` of the window, at
        ``positions[i]`` in that block's own order, ``orders[slot]``. With
        one block both are ``None``: the rows come in the block's order.
    """

    starts: list[int]
    orders: list[np.ndarray]
    slots: np.ndarray | None
    positions: np.ndarray | None

    @property
    def rows(self) -> int:
        """Rows in the window."""
        return sum(order.shape[0] for order in self.orders)

    def indices(self) -> np.ndarray:
        """Return the window's rows of ``x``, in the epoch's order.

        Returns
        -------
        ndarray of int, shape (rows,)
            Row indices into the whole training data.
        """
        if self.slots is None or self.positions is None:
            return self.orders[0] + self.starts[0]
        offsets = np.cumsum([0] + [order.shape[0] for order in self.orders[:-1]])
        flat = np.concatenate(self.orders)
        starts = np.asarray(self.starts)
        rows: np.ndarray = flat[offsets[self.slots] + self.positions] + starts[self.slots]
        return rows


def epoch_plan(
    rng: np.random.Generator,
    rows: int,
    block_rows: int,
    interleave: int,
    batch_size: int,
    shuffle: bool,
) -> list[Window]:
    """Draw one epoch's order of the rows, as windows of blocks.

    The rows are cut into blocks of ``block_rows``; the order of the blocks
    is shuffled, then the rows within each block. Consecutive groups of
    ``interleave`` blocks form a window, whose rows are dealt round-robin,
    ``ceil(batch_size / interleave)`` rows of each block in turn, so that a
    batch draws on every block of its window. With one block this is
    ``rng.permutation(rows)``, the plain shuffle.

    Parameters
    ----------
    rng : numpy.random.Generator
        The run's host generator; each call advances it by one epoch.
    rows : int
        Rows of the training data.
    block_rows : int
        Rows per block (the last block may be shorter).
    interleave : int
        Blocks per window.
    batch_size : int
        Rows per step, which sets how many rows of a block are dealt in turn.
    shuffle : bool
        Whether to shuffle; if not, the blocks and rows keep their order.

    Returns
    -------
    list of Window
        The epoch's windows, in order; concatenating their
        :meth:`Window.indices` gives a permutation of ``range(rows)``.

    Examples
    --------
    >>> import numpy as np
    >>> (window,) = epoch_plan(np.random.default_rng(0), 5, 5, 1, 2, shuffle=False)
    >>> window.indices()
    array([0, 1, 2, 3, 4])
    >>> windows = epoch_plan(np.random.default_rng(0), 6, 2, 3, 3, shuffle=False)
    >>> [int(i) for i in windows[0].indices()]
    [0, 2, 4, 1, 3, 5]
    """
    starts = np.arange(0, rows, block_rows)
    if shuffle and starts.shape[0] > 1:
        starts = starts[rng.permutation(starts.shape[0])]
    sizes = np.minimum(starts + block_rows, rows) - starts
    orders = [rng.permutation(int(n)) if shuffle else np.arange(int(n)) for n in sizes]
    share = -(-batch_size // interleave)
    windows = []
    for first in range(0, starts.shape[0], interleave):
        blocks = orders[first : first + interleave]
        slots = positions = None
        if len(blocks) > 1:
            slots = np.concatenate([np.full(b.shape[0], j) for j, b in enumerate(blocks)])
            positions = np.concatenate([np.arange(b.shape[0]) for b in blocks])
            # Round r deals rows [r*share, (r+1)*share) of every block, in block order.
            dealt = np.argsort((positions // share) * len(blocks) + slots, kind="stable")
            slots, positions = slots[dealt], positions[dealt]
        windows.append(
            Window([int(s) for s in starts[first : first + interleave]], blocks, slots, positions)
        )
    return windows

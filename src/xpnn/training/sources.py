"""Where the training loop gets its batches, and what it does between steps.

:func:`~xpnn.training.fit` and :func:`~xpnn.training.evaluate` run one loop
on every backend; what differs between backends sits behind
:class:`BatchSource`:

- which arrays make a batch (:meth:`~BatchSource.batches`),
- what happens to the model's state after each step
  (:meth:`~BatchSource.after_step`),
- how the epoch's running sums reach the host (:meth:`~BatchSource.end_epoch`),
- and how an evaluation pass is split into forward passes
  (:meth:`~BatchSource.evaluate`).

A model may take several inputs (``model.forward(features, lengths)``):
``x`` is then a tuple of arrays sharing their first axis, and every batch
is the same rows of each (:data:`Inputs`). Sequences padded to a common
length may be cut, batch by batch, to the longest sequence of the batch
(:class:`EagerSource`'s ``lengths_input``).

:class:`EagerSource` is the source of every eager backend (and of JAX,
lazy but traced step by step like an eager one); Dask's source is
:class:`xpnn.training.dask_source.DaskSource`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import numpy as np

from .._compat import Array, Namespace, device
from .._transfer import to_numpy
from .plan import Window

__all__ = ["BatchSource", "EagerSource", "Inputs", "Score", "add", "first_input"]

#: A model's input: one array, or a tuple of arrays sharing their first axis
#: (the rows), given to the model as ``model.forward(*inputs)``.
Inputs = Array | tuple[Array, ...]


def first_input(x: Inputs) -> Array:
    """Return ``x``'s first array, whose first axis counts the rows."""
    return x[0] if isinstance(x, tuple) else x


#: ``score(x, y) -> (loss_sum, correct_sum)`` of one forward pass over rows
#: ``x`` with targets ``y``: the summed loss (a 0-d array) and the number of
#: correct predictions (a 0-d array, ``None`` for a model that is not a
#: classifier).
Score = Callable[[Inputs, Array], tuple[Array, Array | None]]


def add(total: Array | None, part: Array | None) -> Array | None:
    """Add ``part`` to a running sum that starts at the first part.

    ``None`` for either side stands for "nothing yet" (or "nothing to
    count"), so no zero of the right namespace, dtype and device is needed.

    Examples
    --------
    >>> add(None, 2.0), add(1.0, 2.0), add(1.0, None), add(None, None)
    (2.0, 3.0, 1.0, None)
    """
    if part is None:
        return total
    return part if total is None else total + part


class BatchSource(Protocol):
    """The training data of one :func:`~xpnn.training.fit` or evaluation, for one backend.

    The loop draws each epoch's :func:`~xpnn.training.plan.epoch_plan` on
    the host and hands it to :meth:`batches`; it keeps the running sums of
    loss and correct predictions itself, as arrays, and passes them through
    :meth:`after_step` after every step and :meth:`end_epoch` once per
    epoch.
    """

    @property
    def block_rows(self) -> int | None:
        """Rows per shuffling block when ``fit`` is given none; ``None`` for all rows."""
        ...

    def batches(self, windows: Sequence[Window], batch_size: int) -> Iterator[tuple[Inputs, Array]]:
        """Yield the epoch's batches ``(xb, yb)``, in the plan's order.

        Parameters
        ----------
        windows : sequence of Window
            The epoch's plan.
        batch_size : int
            Rows per batch; the last one may be smaller.

        Yields
        ------
        xb : array of shape (b, ...), or a tuple of them
        yb : array of shape (b, ...)
            Rows ``concatenate([w.indices() for w in windows])[i:i + b]``
            of ``x`` and ``y``, in that order.
        """
        ...

    def after_step(
        self, loss_sum: Array | None, correct_sum: Array | None
    ) -> tuple[Array | None, Array | None]:
        """Settle the model's state after a step; return the running sums to go on with.

        Parameters
        ----------
        loss_sum, correct_sum : 0-d array or None
            The epoch's running sums so far, this step included.

        Returns
        -------
        loss_sum, correct_sum : 0-d array or None
            The same sums, possibly as new arrays (persisted ones, on Dask).
        """
        ...

    def end_epoch(
        self, loss_sum: Array | None, correct_sum: Array | None
    ) -> tuple[float | None, float | None]:
        """Return the epoch's sums on the host, once every step of the epoch is done.

        Parameters
        ----------
        loss_sum, correct_sum : 0-d array or None
            The epoch's running sums, as :meth:`after_step` last returned them.

        Returns
        -------
        loss_sum, correct_sum : float or None
            ``None`` where the array was ``None``.
        """
        ...

    def evaluate(self, score: Score, batch_size: int) -> tuple[float | None, float | None]:
        """Score every row once, in forward passes of the source's choosing.

        Parameters
        ----------
        score : callable
            ``score(x, y) -> (loss_sum, correct_sum)`` of one forward pass.
        batch_size : int
            Rows per forward pass, where the source takes batches of rows.

        Returns
        -------
        loss_sum, correct_sum : float or None
            The sums over all rows on the host; ``None`` for no rows, or for
            a correct count of a model that is not a classifier.
        """
        ...


def _host(value: Array | None) -> float | None:
    # float() of a 0-d array copies it to the host, whatever its device.
    return None if value is None else float(value)


class EagerSource:
    """Batches gathered row by row with ``xp.take``, on the data's device.

    Parameters
    ----------
    xp : namespace
        The namespace of ``x`` and ``y``.
    x : array of shape (n, ...), or a tuple of them
        Inputs: one array, or several sharing their first axis, each batch
        taking the same rows of every one.
    y : array of shape (n, ...)
        Targets.
    lengths_input : int, optional
        For sequences padded to a common length: the position, in the tuple
        ``x``, of an integer array ``(n,)`` holding each row's number of
        valid steps. Every other input of two axes or more is then cut,
        batch by batch, to the longest sequence of the batch along its axis
        1 (its time axis, batch first): a batch of short recordings costs
        what short recordings cost. The lengths are read to the host once,
        here; each batch's width is then a host integer, so no step reads
        anything back (lazy arrays stay lazy, and a traced step sees a
        static shape). The steps past a row's length must not change what
        the model makes of it (a recurrent layer given ``lengths``, a
        masked mean), since they come and go with the batch.

    Examples
    --------
    >>> import array_api_compat.numpy as xp
    >>> from xpnn.training.plan import epoch_plan
    >>> x, y = xp.arange(10.0), xp.arange(10)
    >>> source = EagerSource(xp, x, y)
    >>> windows = epoch_plan(np.random.default_rng(0), 10, 10, 1, 4, shuffle=False)
    >>> [yb.tolist() for _, yb in source.batches(windows, 4)]
    [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]

    Two inputs, sequences cut to each batch's longest:

    >>> steps, lengths = xp.ones((4, 5, 2)), xp.asarray([1, 2, 5, 3])
    >>> source = EagerSource(xp, (steps, lengths), xp.arange(4), lengths_input=1)
    >>> windows = epoch_plan(np.random.default_rng(0), 4, 4, 1, 2, shuffle=False)
    >>> [(xb[0].shape, xb[1].tolist()) for xb, _ in source.batches(windows, 2)]
    [((2, 2, 2), [1, 2]), ((2, 5, 2), [5, 3])]
    """

    #: One block of all rows: the plain shuffle.
    block_rows = None

    def __init__(
        self, xp: Namespace, x: Inputs, y: Array, *, lengths_input: int | None = None
    ) -> None:
        self.xp, self.x, self.y = xp, x, y
        self.inputs = x if isinstance(x, tuple) else (x,)
        self.lengths_input = lengths_input
        # Read once: each batch's width is then known on the host.
        self.lengths = None if lengths_input is None else to_numpy(self.inputs[lengths_input])

    def _cut(self, index: int, array: Array, rows: np.ndarray) -> Array:
        """Return ``array`` cut to the longest sequence of ``rows``, if it is to be cut."""
        if self.lengths is None or index == self.lengths_input or array.ndim < 2:
            return array
        longest = int(self.lengths[rows].max()) if rows.size else 0
        return array[:, :longest, ...]

    def _take(self, order: np.ndarray, batch_size: int) -> Iterator[tuple[Inputs, Array]]:
        xp, where = self.xp, device(self.inputs[0])
        index_dtype = xp.__array_namespace_info__().default_dtypes(device=where)["indexing"]
        for start in range(0, order.shape[0], batch_size):
            rows = order[start : start + batch_size]
            # Indices travel from the host: the shuffle is NumPy's, identical
            # on every backend for a seed.
            index = xp.asarray(rows, dtype=index_dtype, device=where)
            taken = tuple(
                xp.take(self._cut(i, a, rows), index, axis=0) for i, a in enumerate(self.inputs)
            )
            yield (taken if isinstance(self.x, tuple) else taken[0]), xp.take(self.y, index, axis=0)

    def batches(self, windows: Sequence[Window], batch_size: int) -> Iterator[tuple[Inputs, Array]]:
        """Yield the epoch's batches, gathered by the plan's row indices."""
        order = np.concatenate([w.indices() for w in windows]) if windows else np.arange(0)
        return self._take(order, batch_size)

    def after_step(
        self, loss_sum: Array | None, correct_sum: Array | None
    ) -> tuple[Array | None, Array | None]:
        """Return the sums unchanged: eager state needs nothing between steps."""
        return loss_sum, correct_sum

    def end_epoch(
        self, loss_sum: Array | None, correct_sum: Array | None
    ) -> tuple[float | None, float | None]:
        """Return the sums as Python floats."""
        return _host(loss_sum), _host(correct_sum)

    def evaluate(self, score: Score, batch_size: int) -> tuple[float | None, float | None]:
        """Score the rows in order, ``batch_size`` rows per forward pass."""
        loss_sum: Array | None = None
        correct_sum: Array | None = None
        for xb, yb in self._take(np.arange(self.inputs[0].shape[0]), batch_size):
            value, correct = score(xb, yb)
            loss_sum, correct_sum = add(loss_sum, value), add(correct_sum, correct)
        return _host(loss_sum), _host(correct_sum)

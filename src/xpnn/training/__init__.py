"""A training loop with seeded shuffling that is identical on every backend.

:func:`fit` trains a model with mini-batches, :func:`evaluate` scores it,
and :class:`History` records a run. The package is layered, each module
importing only those listed before it:

- :mod:`~xpnn.training.plan`: the order of each epoch's rows, drawn on the
  host by NumPy from the seed, the same for every backend;
- :mod:`~xpnn.training.sources`: the batch-source interface
  (:class:`~xpnn.training.sources.BatchSource`) and the source of eager
  backends;
- :mod:`~xpnn.training.dask_blocks` and
  :mod:`~xpnn.training.dask_source`: the source of Dask arrays, which cuts
  batches from shuffled blocks of rows and persists the model's state
  after every step (imported only for Dask arrays);
- :mod:`~xpnn.training.loop`: :func:`fit` and :func:`evaluate`, one loop
  over whichever source the data calls for.
"""

from __future__ import annotations

from .loop import DivergedError, History, evaluate, fit

__all__ = ["DivergedError", "History", "evaluate", "fit"]

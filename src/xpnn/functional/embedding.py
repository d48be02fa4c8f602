"""Embedding lookup, and its weight gradient without a scatter-add.

The forward pass is a gather: ``y[..., :] = weight[indices[...], :]``. Its
weight gradient sums the rows of ``dy`` that share an index::

    dweight[v] = sum over positions p with indices[p] == v of dy[p]

(zero for a ``padding_idx`` row). The standard has no scatter-add, and
``array_api_extra.at(...).add`` does not accumulate repeated indices on
NumPy, PyTorch or Dask, so the sum is built from sorting and gathers, which
every backend has, with fixed shapes (JAX's ``jit``) and no data-dependent
sizes (Dask):

1. flatten the ``n`` indices, ``argsort`` them (stable) and take the rows
   of ``dy`` (``(n, E)``) in that order, so that equal indices form runs;
2. a segmented inclusive scan in ``ceil(log2(n))`` Hillis-Steele passes:
   pass ``d = 1, 2, 4, ...`` adds the row ``d`` places back to each row
   whose sorted index equals that row's. The last row of each run then
   holds the run's sum, added as a balanced tree (rounding error growing
   with ``log2`` of the run's length, as pairwise summation's);
3. ``searchsorted(sorted, arange(V), side="right")`` finds each word's
   last row; one gather of those rows from the sums behind a zero row,
   where a word that does not occur (or is ``padding_idx``) takes the zero
   row, is ``dweight``.

Nothing is written in place, and no ``(n, V)`` one-hot matrix is built.
Cost: time ``O(n log n)`` for the sort, ``O(n E log n)`` for the scan and
``O(V log n + V E)`` for the lookup; memory ``O(n E)`` for the scan (a few
arrays of the size of ``dy``) and ``O(V E)`` for the gradient itself, as a
dense gradient needs anyway.

Indices must be of an integer dtype. Their range ``[0, V)`` is checked on
eager arrays (NumPy, PyTorch, CuPy, array_api_strict), with one number read
back; lazy ones (JAX, Dask) are not read: an index out of range then gives
what the library's ``take`` gives (NaN rows on JAX, an error when Dask
computes) and adds to no gradient row.
"""

from __future__ import annotations

import math
import operator

from .._checks import (
    Checked,
    check_known_shape,
    check_real_floating,
    check_same_device,
    is_unknown,
    shape_str,
)
from .._compat import Array, DType, Namespace, array_namespace, is_lazy
from .._compat import device as device_of
from ._dtypes import as_dtype, gradient_as

__all__ = [
    "check_embedding",
    "check_embedding_backward",
    "check_index_values",
    "embedding",
    "embedding_backward",
    "embedding_backward_kernel",
    "embedding_kernel",
    "padding_index",
    "segment_sums",
]


def padding_index(padding_idx: object, num_embeddings: int) -> int | None:
    """Return ``padding_idx`` in ``[0, num_embeddings)`` (a negative one counts from the end).

    Raises
    ------
    TypeError
        For something that is neither ``None`` nor an int.
    ValueError
        For an index outside ``[-num_embeddings, num_embeddings)``, as PyTorch.
    """
    if padding_idx is None:
        return None
    if isinstance(padding_idx, bool):
        raise TypeError(f"padding_idx must be an int or None, got bool {padding_idx}")
    try:
        index = int(operator.index(padding_idx))  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"padding_idx must be an int or None, got {type(padding_idx).__name__} {padding_idx!r}"
        ) from None
    if not -num_embeddings <= index < num_embeddings:
        raise ValueError(
            f"Padding_idx must be within num_embeddings: padding_idx={index} is outside "
            f"[-{num_embeddings}, {num_embeddings})"
        )
    return index + num_embeddings if index < 0 else index


def check_embedding(indices: Array, weight: Array) -> Checked:
    """Check the inputs of :func:`embedding`; ``constants`` is ``num_embeddings``.

    Raises
    ------
    TypeError
        For ``indices`` of no integer dtype, a ``weight`` that is not real
        floating, or arrays of different libraries.
    ValueError
        For arrays on different devices or a ``weight`` that is not 2-d.
    """
    xp = array_namespace(indices=indices, weight=weight)
    if not xp.isdtype(indices.dtype, "integral"):
        raise TypeError(
            f"indices must have an integer dtype, got {indices.dtype}; convert them first, "
            "for example with xp.astype(indices, xp.int64)"
        )
    check_real_floating(xp, "embedding", weight=weight)
    check_same_device(indices=indices, weight=weight)
    if weight.ndim != 2:
        raise ValueError(
            f"weight must have shape (num_embeddings, embedding_dim), got shape "
            f"{shape_str(tuple(weight.shape))}"
        )
    shape = check_known_shape("weight", weight, "embedding")
    return Checked(xp=xp, dtype=weight.dtype, same_real_dtype=True, constants=shape[0])


def check_index_values(indices: Array, num_embeddings: int) -> None:
    """Raise ``ValueError`` unless every index is in ``[0, num_embeddings)``.

    One number is read back, so eager arrays only: lazy ones (JAX, Dask) are
    not read (see the module's notes). Called on every forward pass, outside
    the check boundary, since it depends on values.
    """
    if is_lazy(indices) or any(size == 0 for size in indices.shape):
        return
    xp = array_namespace(indices=indices)
    if bool(xp.any((indices < 0) | (indices >= num_embeddings))):
        low, high = int(xp.min(indices)), int(xp.max(indices))
        raise ValueError(
            f"index out of range: indices must be in [0, {num_embeddings}) for "
            f"num_embeddings={num_embeddings}, got {low if low < 0 else high}"
        )


def embedding_kernel(checked: Checked, indices: Array, weight: Array) -> Array:
    """Gather the rows of ``weight``: ``y`` of shape ``(*indices.shape, embedding_dim)``."""
    xp = checked.xp
    if indices.ndim == 1:
        return xp.take(weight, indices, axis=0)
    flat = xp.reshape(indices, (-1,))
    rows = xp.take(weight, flat, axis=0)
    # One size unknown until run (an exported graph's batch) is reshape's -1.
    shape = tuple(-1 if is_unknown(size) else size for size in indices.shape)
    return xp.reshape(rows, (*shape, weight.shape[1]))


def check_embedding_backward(
    dy: Array, indices: Array, weight: Array, *, forward: Checked | None = None
) -> Checked:
    """Check ``dy`` against the forward pass's ``indices`` and ``weight``.

    ``constants`` is ``(num_embeddings, n, index_dtype)``: ``n`` is the
    number of indices, ``index_dtype`` the device's default indexing dtype.

    Raises
    ------
    TypeError
        For a ``dy`` that is not real floating, or of another library.
    ValueError
        For a ``dy`` on another device or not of shape
        ``(*indices.shape, embedding_dim)``, or indices of unknown size.
    """
    xp = array_namespace(dy=dy, weight=weight)
    check_real_floating(xp, "embedding", dy=dy)
    check_same_device(weight=weight, dy=dy)
    shape = check_known_shape("indices", indices, "the weight gradient")
    expected = (*shape, int(weight.shape[1]))
    if tuple(dy.shape) != expected:
        raise ValueError(
            f"dy must have the shape of the output, {shape_str(expected)} (indices' shape and "
            f"embedding_dim), got {shape_str(tuple(dy.shape))}"
        )
    base = forward.dtype if forward is not None and forward.dtype is not None else weight.dtype
    # Indices are sorted and compared in the device's indexing dtype, wide
    # enough for arange(num_embeddings) whatever narrow dtype they came in.
    info = xp.__array_namespace_info__()
    index_dtype = info.default_dtypes(device=device_of(weight))["indexing"]
    return Checked(
        xp=xp,
        dtype=xp.result_type(dy.dtype, base),
        constants=(int(weight.shape[0]), math.prod(shape), index_dtype),
    )


def segment_sums(xp: Namespace, keys: Array, values: Array) -> Array:
    """Inclusive segmented scan of ``values`` (n, E) over runs of equal sorted ``keys`` (n,).

    ``ceil(log2(n))`` Hillis-Steele passes; the last row of each run ends up
    holding the run's sum (a balanced tree of additions). Fixed shapes, no
    write in place. Each pass gathers the row ``step`` places back through
    an index array rather than a slice, so that every pass has the same
    shapes and operations: JAX compiles them once, not once per pass.
    """
    n = int(keys.shape[0])
    positions = xp.arange(n, dtype=keys.dtype, device=device_of(keys))
    step = 1
    while step < n:
        back = positions - step
        inside = back >= 0
        back = xp.where(inside, back, positions)  # any index in range: masked below
        same = inside & (xp.take(keys, back) == keys)
        values = xp.where(same[:, None], values + xp.take(values, back, axis=0), values)
        step *= 2
    return values


def embedding_backward_kernel(
    checked: Checked,
    dy: Array,
    indices: Array,
    *,
    weight_dtype: DType,
    padding_idx: int | None = None,
) -> Array:
    """Return ``dweight`` (V, E) on inputs :func:`check_embedding_backward` passed.

    The way and its cost are in the module's notes.
    """
    xp, dtype = checked.xp, checked.dtype
    vocabulary, n, index_dtype = checked.constants
    width = dy.shape[-1]
    where = device_of(dy)
    if n == 0:
        return xp.zeros((vocabulary, width), dtype=weight_dtype, device=where)
    flat = as_dtype(xp, xp.reshape(indices, (-1,)), index_dtype)
    rows = xp.reshape(as_dtype(xp, dy, dtype), (n, width))
    order = xp.argsort(flat, stable=True)
    keys = xp.take(flat, order)
    sums = segment_sums(xp, keys, xp.take(rows, order, axis=0))
    words = xp.arange(vocabulary, dtype=keys.dtype, device=where)
    # One past each word's last row, in [0, n]; 0 where nothing sorts at or below it.
    ends = xp.searchsorted(keys, words, side="right")
    zero_row = xp.zeros((1, width), dtype=dtype, device=where)
    padded_sums = xp.concat([zero_row, sums], axis=0)
    padded_keys = xp.concat([keys[:1], keys], axis=0)
    found = (ends > 0) & (xp.take(padded_keys, ends) == words)
    if padding_idx is not None:
        found = found & (words != padding_idx)
    # Row 0 of padded_sums is zeros: a word without rows gathers it, so the
    # (V, E) gradient is one gather, with no select over it.
    grad = xp.take(padded_sums, xp.where(found, ends, xp.zeros_like(ends)), axis=0)
    return gradient_as(xp, grad, weight_dtype)


def embedding(indices: Array, weight: Array, padding_idx: int | None = None) -> Array:
    """Look up rows of ``weight``, as ``torch.nn.functional.embedding``.

    Parameters
    ----------
    indices : integer array of any shape
        Row numbers in ``[0, num_embeddings)``.
    weight : array of shape (num_embeddings, embedding_dim)
        Real floating table.
    padding_idx : int, optional
        Only checked here (it matters for the gradient): in
        ``[-num_embeddings, num_embeddings)``.

    Returns
    -------
    y : array of shape ``(*indices.shape, embedding_dim)``
        In ``weight``'s dtype.

    Raises
    ------
    TypeError, ValueError
        As :func:`check_embedding`; ``ValueError`` for an index out of range
        (eager arrays only).

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional import embedding
    >>> embedding(np.array([[2, 0]]), np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]))
    array([[[4., 5.],
            [0., 1.]]])
    """
    checked = check_embedding(indices, weight)
    padding_index(padding_idx, checked.constants)
    check_index_values(indices, checked.constants)
    return embedding_kernel(checked, indices, weight)


def embedding_backward(
    dy: Array, indices: Array, weight: Array, padding_idx: int | None = None
) -> Array:
    """Return the weight gradient of :func:`embedding`: rows of ``dy`` summed per index.

    Parameters
    ----------
    dy : array of shape ``(*indices.shape, embedding_dim)``
        The gradient of the output.
    indices : integer array
        As given to :func:`embedding`.
    weight : array of shape (num_embeddings, embedding_dim)
        The table (its shape, dtype and device decide the gradient's).
    padding_idx : int, optional
        A row that gets zero gradient (negative counts from the end).

    Returns
    -------
    dweight : array of the shape and dtype of weight
        ``dweight[v]`` is the sum of ``dy`` over the positions holding
        ``v``; zero for words that do not occur and for ``padding_idx``.
        Built by sorting, a segmented scan and a gather (see the module's
        notes), with no scatter and no ``(n, V)`` array.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional import embedding_backward
    >>> embedding_backward(np.ones((4, 1)), np.array([2, 0, 2, 2]), np.zeros((3, 1)))
    array([[1.],
           [0.],
           [3.]])
    """
    forward = check_embedding(indices, weight)
    pad = padding_index(padding_idx, forward.constants)
    checked = check_embedding_backward(dy, indices, weight, forward=forward)
    return embedding_backward_kernel(
        checked, dy, indices, weight_dtype=weight.dtype, padding_idx=pad
    )

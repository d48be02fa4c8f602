"""``Embedding``: the stateful layer over :func:`xpnn.functional.embedding`."""

from __future__ import annotations

import operator

from .._compat import Array, Device, DType, resolve_device, resolve_dtype, resolve_namespace
from .._random import place, standard_normal
from ..functional.embedding import (
    check_embedding,
    check_embedding_backward,
    check_index_values,
    embedding_backward_kernel,
    embedding_kernel,
    padding_index,
)
from ..init import Seed, host_generator
from ._module import Backward, Module, backward_again

__all__ = ["Embedding"]


def _size(name: str, value: object) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool {value}")
    try:
        size = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}") from None
    if size < 1:
        raise ValueError(f"{name} must be at least 1, got {size}")
    return int(size)


class Embedding(Module):
    """A lookup table of learned vectors, as ``torch.nn.Embedding``.

    ``y[..., :] = weight[indices[...], :]``. The weight gradient sums the
    rows of ``dy`` that share an index, without a scatter-add: the indices
    are sorted, runs of equal ones summed by a segmented scan in
    ``log2(n)`` passes, and each word's sum gathered (see
    :mod:`xpnn.functional.embedding` for the way and its cost). It works
    the same on every backend, under ``jax.jit`` and on Dask.

    Parameters
    ----------
    num_embeddings : int
        ``V``, the size of the vocabulary.
    embedding_dim : int
        ``E``, the size of each vector.
    padding_idx : int, optional
        A row that starts at zero and never gets a gradient (it stays what
        it is set to); negative counts from the end, as in PyTorch, and is
        stored as the row number.
    seed : int or numpy.random.Generator, optional
        Seed of the host generator drawing the weight.
    xp, device, dtype
        Where the weight is made, as for :class:`~xpnn.Linear`.

    Attributes
    ----------
    weight : array of shape (num_embeddings, embedding_dim)
        Drawn from ``N(0, 1)``, as PyTorch's, the ``padding_idx`` row zero.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn import Embedding
    >>> table = Embedding(4, 2, padding_idx=0, seed=0)
    >>> y, backward = table.forward(np.array([[1, 1, 0]]))
    >>> y.shape, backward(np.ones((1, 3, 2)))
    ((1, 3, 2), None)
    >>> table.grads["weight"]
    array([[0., 0.],
           [2., 2.],
           [0., 0.],
           [0., 0.]])
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        *,
        seed: Seed = None,
        xp: object | None = None,
        device: Device | str | None = None,
        dtype: DType | None = None,
    ) -> None:
        vocabulary = _size("num_embeddings", num_embeddings)
        width = _size("embedding_dim", embedding_dim)
        pad = padding_index(padding_idx, vocabulary)
        namespace = resolve_namespace(xp)
        where = resolve_device(namespace, device)
        dtype = resolve_dtype(namespace, dtype, where)
        super().__init__()
        self.num_embeddings = vocabulary
        self.embedding_dim = width
        self.padding_idx = pad
        host = standard_normal(host_generator(seed), (vocabulary, width))
        if pad is not None:
            host[pad] = 0.0
        self.params["weight"] = place(host, xp=namespace, device=where, dtype=dtype)
        self.grads["weight"] = None

    @property
    def weight(self) -> Array:
        """The table, (num_embeddings, embedding_dim), N(0, 1) at first."""
        return self.params["weight"]

    @weight.setter
    def weight(self, value: Array) -> None:
        self.set_parameter("weight", value)

    def forward(self, indices: Array, *, input_grad: bool = True) -> tuple[Array, Backward]:
        """Look up ``indices`` and return ``(y, backward)``.

        Parameters
        ----------
        indices : integer array of any shape
            Rows in ``[0, num_embeddings)`` (checked on eager arrays), in the
            layer's namespace and on its device.
        input_grad : bool, default True
            Accepted as by every layer; indices have no gradient anyway.

        Returns
        -------
        y : array of shape ``(*indices.shape, embedding_dim)``
        backward : callable
            ``backward(dy, *, retain_graph=False) -> None``: adds the weight
            gradient into ``grads["weight"]`` (zero on the ``padding_idx``
            row). It may be called once unless ``retain_graph=True`` is passed.
        """
        weight = self.params["weight"]
        forward = self._checks.check(check_embedding, indices, weight)
        check_index_values(indices, self.num_embeddings)
        y = embedding_kernel(forward, indices, weight)
        pad = self.padding_idx
        used = False

        def backward(dy: Array, *, retain_graph: bool = False) -> None:
            nonlocal used
            if used:
                raise backward_again("Embedding")
            checked = self._checks.check(
                check_embedding_backward, dy, context=(indices, weight), forward=forward
            )
            dweight = embedding_backward_kernel(
                checked, dy, indices, weight_dtype=weight.dtype, padding_idx=pad
            )
            self._accumulate("weight", dweight)
            used = not retain_graph
            return None

        return y, backward

    def __call__(self, indices: Array) -> Array:
        """Look up ``indices`` and return ``y`` only, keeping nothing alive."""
        weight = self.params["weight"]
        forward = self._checks.check(check_embedding, indices, weight)
        check_index_values(indices, self.num_embeddings)
        return embedding_kernel(forward, indices, weight)

    def _settings(self) -> dict[str, object]:
        return {
            "num_embeddings": self.num_embeddings,
            "embedding_dim": self.embedding_dim,
            "padding_idx": self.padding_idx,
        }

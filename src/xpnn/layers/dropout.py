"""``Dropout``, with masks that are the same on every backend for a seed."""

from __future__ import annotations

import numbers

from .._checks import (
    Checked,
    check_floating,
    check_known_shape,
    check_same_device,
    shape_str,
)
from .._compat import Array, Namespace, array_namespace, device
from .._random import Seed, bernoulli_mask, host_generator
from ._module import Backward, Module, backward_again

__all__ = ["Dropout"]


class Dropout(Module):
    """Zero each element with probability ``p`` in training; identity in eval.

    Kept elements are scaled by ``1 / (1 - p)`` so the expected output equals
    the input, as in PyTorch.

    Parameters
    ----------
    p : float, default 0.5
        Probability of zeroing an element, in ``[0, 1]``.
    seed : int or numpy.random.Generator, optional
        Seed of the host generator that draws the masks.

    Notes
    -----
    The standard has no random numbers, so masks are drawn on the host by a
    seeded NumPy ``Generator`` (uniform doubles compared with ``p``), cast
    there to the input's dtype, and moved to the input's device. The same
    seed therefore gives the same sequence of masks on every backend and
    device, at the price of one host-to-device copy of the mask per forward
    pass in training mode. Drawing a mask needs the input's shape: in
    training mode, a dimension of unknown size (a Dask array after boolean
    indexing) raises ``ValueError``; in eval mode any shape passes through.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn import Dropout
    >>> drop = Dropout(0.5, seed=0)
    >>> drop(np.ones(6))
    array([2., 0., 0., 0., 2., 2.])
    >>> drop.eval()(np.ones(6))
    array([1., 1., 1., 1., 1., 1.])
    """

    def __init__(self, p: float = 0.5, *, seed: Seed = None) -> None:
        super().__init__()
        value: object = p
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"p must be a float in [0, 1], got {type(p).__name__} {p!r}")
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p: float = float(p)
        self._rng = host_generator(seed)

    def keeps_shape(self) -> bool:
        """Dropout scales elementwise: the shape stays."""
        return True

    def _mask(self, xp: Namespace, x: Array) -> Array:
        shape = check_known_shape(
            "x", x, "Dropout in training mode (its mask is drawn on the host)"
        )
        return bernoulli_mask(self._rng, shape, p=self.p, xp=xp, device=device(x), dtype=x.dtype)

    @property
    def draws_on_host(self) -> bool:
        """True in training mode with ``p > 0``: each forward pass draws a mask on the host."""
        return self.training and self.p > 0.0

    def forward(self, x: Array, *, input_grad: bool = True) -> tuple[Array, Backward]:
        """Return ``(y, backward)``; in eval mode or with ``p == 0``, ``y`` is ``x``.

        With ``input_grad=False``, ``backward`` returns ``None``: the layer
        has no parameters, so there is nothing else to compute. In eval mode
        or with ``p == 0``, ``backward(dy)`` returns ``dy`` itself. Like
        every backward closure, it may be called once unless
        ``retain_graph=True`` is passed; a second call raises
        ``RuntimeError``.
        """
        forward = self._checks.check(_check_dropout, x)
        used = False
        if not self.training or self.p == 0.0:
            mask = None
            y = x
        else:
            mask = self._mask(forward.xp, x)
            y = x * mask

        def backward(dy: Array, *, retain_graph: bool = False) -> Array | None:
            nonlocal used
            if used:
                raise backward_again("Dropout")
            if not input_grad:
                dx = None
            elif mask is None:
                dx = dy
            else:
                self._checks.check(_check_dropout_backward, dy, context=(x,), forward=forward)
                dx = dy * mask
            used = not retain_graph
            return dx

        return y, backward

    def _settings(self) -> dict[str, object]:
        return {"p": self.p}


def _check_dropout(x: Array) -> Checked:
    xp = array_namespace(x=x)
    check_floating(xp, x=x)
    return Checked(xp=xp, dtype=x.dtype)


def _check_dropout_backward(dy: Array, x: Array, *, forward: Checked) -> Checked:
    xp = array_namespace(dy=dy, x=x)
    check_floating(xp, dy=dy)
    check_same_device(x=x, dy=dy)
    expected = tuple(x.shape)
    if tuple(dy.shape) != expected:
        raise ValueError(
            f"dy must have the shape of the output, {shape_str(expected)}, "
            f"got {shape_str(tuple(dy.shape))}"
        )
    return Checked(xp=xp, dtype=dy.dtype)

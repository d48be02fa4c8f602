"""How a loss combines its terms: ``reduction``, shared by every loss function.

A loss computes one term per element (elementwise losses) or per row
(cross-entropy), then

- ``'none'`` returns the terms as they are, one per element or row;
- ``'sum'`` adds them up into a 0-D array;
- ``'mean'`` divides that sum by a count ``N`` known from the static shape
  (or, for class weights and ignored labels, by a sum of weights), NaN for
  no terms, as in PyTorch.

The gradient a loss function returns is always that of the *sum of the
terms it returns*: for ``'mean'`` the terms' gradients divided by ``N``, for
``'sum'`` and ``'none'`` the terms' gradients themselves. Each term depends
on its own element or row only, so for ``'none'`` the gradient of term ``i``
is slice ``i`` of the returned gradient; weighting the terms by ``dloss``
afterwards means multiplying that slice by ``dloss[i]``.
"""

from __future__ import annotations

import math

from .._compat import Array, Namespace, device

__all__ = ["REDUCTIONS", "check_reduction", "reduce_terms", "scale_gradient"]

#: The reductions every loss accepts, in the order messages list them.
REDUCTIONS = ("none", "mean", "sum")


def check_reduction(reduction: object, choices: tuple[str, ...] = REDUCTIONS) -> str:
    """Return ``reduction`` if it is one of ``choices``.

    Raises
    ------
    ValueError
        For any other value; the message lists the choices.
    """
    if not isinstance(reduction, str) or reduction not in choices:
        listed = ", ".join(repr(r) for r in choices)
        raise ValueError(f"reduction must be one of {listed}, got {reduction!r}")
    return reduction


def reduce_terms(
    xp: Namespace, terms: Array, count: int | Array, reduction: str, like: Array
) -> Array:
    """Combine ``terms`` as ``reduction`` says: themselves, their sum, or the sum over ``count``.

    Parameters
    ----------
    xp : namespace
        The namespace of ``terms``.
    terms : array
        One loss term per element or row.
    count : int or array
        The divisor of the mean: a Python int from the static shape (0 gives
        NaN without a floating-point warning), or a 0-D array (a sum of class
        weights), divided as it is.
    reduction : {'none', 'mean', 'sum'}
        Checked already.
    like : array
        An input of the loss, whose device the 0-D result takes.

    Returns
    -------
    array
        ``terms`` for ``'none'``, else a 0-D array of ``terms``'s dtype.
    """
    if reduction == "none":
        return terms
    total = xp.sum(terms)
    if reduction == "mean":
        if isinstance(count, int):
            # The mean of nothing is NaN, as in PyTorch; multiplying the zero
            # sum by NaN gives it without a floating-point warning.
            total = total / count if count else total * math.nan
        else:
            total = total / count
    # NumPy's reductions return scalars; make the loss a 0-D array everywhere
    # (the other libraries already hand back one).
    if type(total) is type(like):
        return total
    return xp.asarray(total, device=device(like))


def scale_gradient(grad: Array, count: int | Array, reduction: str) -> Array:
    """Divide the terms' gradient by ``count`` for the mean; leave it for a sum or ``'none'``."""
    if reduction != "mean":
        return grad
    if isinstance(count, int):
        return grad / count if count else grad
    return grad / count

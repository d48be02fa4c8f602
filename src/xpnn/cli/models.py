"""The models of ``xpnn train``, built on the chosen backend, device and dtype.

A model is a function ``(choice, features, classes, hidden, seed) -> Module``
whose input is ``features`` wide and whose output is ``classes`` logits.
"""

from __future__ import annotations

from ..layers import Linear, ReLU, Sequential
from .backends import Choice

__all__ = ["mlp"]


def mlp(choice: Choice, features: int, classes: int, hidden: int, seed: int) -> Sequential:
    """Return Linear-ReLU-Linear with ``hidden`` units, on ``choice``'s backend.

    Parameters
    ----------
    choice : Choice
        The namespace, device and dtype of the parameters.
    features, classes : int
        The widths of the input and of the output (the logits).
    hidden : int
        The width of the hidden layer.
    seed : int
        Seed of the first layer's initialization; the second takes
        ``seed + 1``.

    Returns
    -------
    Sequential
        The model, in training mode.

    Examples
    --------
    >>> from xpnn.cli.backends import choose
    >>> model = mlp(choose("numpy"), 64, 10, hidden=8, seed=0)
    >>> [(name, p.shape) for name, p in model.named_parameters()][:2]
    [('0.weight', (64, 8)), ('0.bias', (8,))]
    """
    where = {"xp": choice.xp, "device": choice.device, "dtype": choice.dtype}
    return Sequential(
        Linear(features, hidden, seed=seed, **where),
        ReLU(),
        Linear(hidden, classes, seed=seed + 1, **where),
    )

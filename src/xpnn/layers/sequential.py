"""``Sequential``: layers applied one after another."""

from __future__ import annotations

from .._compat import Array
from ._module import Backward, Module, backward_again, call_backward, forward_on_data

__all__ = ["Sequential"]


class Sequential(Module):
    """A chain of modules: ``y = layers[-1](... layers[0](x))``.

    Parameters
    ----------
    *layers : Module
        The modules, applied in order. Their parameters are named
        ``"<index>.<name>"`` (``"0.weight"``), as in PyTorch.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn import Linear, ReLU, Sequential
    >>> model = Sequential(Linear(4, 8, seed=0), ReLU(), Linear(8, 2, seed=1))
    >>> y, backward = model.forward(np.ones((3, 4)))
    >>> dx = backward(np.ones((3, 2)))
    >>> [name for name, _ in model.named_parameters()]
    ['0.weight', '0.bias', '2.weight', '2.bias']
    """

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for index, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(
                    f"Sequential takes xpnn modules, got {type(layer).__name__} at position {index}"
                )
        self.layers = list(layers)

    def children(self) -> list[Module]:
        """Return the layers, in order."""
        return list(self.layers)

    def keeps_shape(self) -> bool:
        """Tell whether every layer keeps the shape of its input."""
        return all(child.keeps_shape() for child in self.children())

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int) -> Module:
        return self.layers[index]

    def forward(self, x: Array, *, input_grad: bool = True) -> tuple[Array, Backward]:
        """Run every layer and return ``(y, backward)``.

        ``backward(dy, *, retain_graph=False)`` runs the layers' backward
        closures in reverse order, accumulating each layer's parameter
        gradients, and returns ``dx``. With ``input_grad=False`` the first
        layer is told so (a module whose ``forward`` takes no ``input_grad``
        computes its ``dx`` anyway), and ``backward`` returns ``None``.

        Like every backward closure it may be called once: a second call
        raises ``RuntimeError`` rather than add the gradients twice, unless
        the earlier calls passed ``retain_graph=True``, which is passed on
        to the layers' closures. A closure of a user's module that takes no
        ``retain_graph`` keyword is called plainly, ``backward(dy)``.
        """
        backwards = []
        layers = self.layers
        start = 0
        if not input_grad and layers:
            x, layer_backward = forward_on_data(layers[0], x)
            backwards.append(layer_backward)
            start = 1
        for layer in layers[start:] if start else layers:
            x, layer_backward = layer.forward(x)
            backwards.append(layer_backward)

        used = False

        def backward(dy: Array, *, retain_graph: bool = False) -> Array | None:
            nonlocal used
            if used:
                raise backward_again("Sequential")
            if retain_graph:
                for layer_backward in reversed(backwards):
                    dy = call_backward(layer_backward, dy, retain_graph=True)
            else:
                for layer_backward in reversed(backwards):
                    dy = layer_backward(dy)
                # Used up with its layers' closures. (A layer that raised has
                # kept its own closure, and those after it are used up.)
                used = True
            return dy if input_grad else None

        return x, backward

    def __call__(self, x: Array) -> Array:
        """Apply every layer and return ``y`` only, keeping nothing alive."""
        for layer in self.layers:
            x = layer(x)
        return x

    def __repr__(self) -> str:
        if not self.layers:
            return "Sequential()"
        lines = [f"  ({index}): {layer!r}" for index, layer in enumerate(self.layers)]
        return "Sequential(\n" + "\n".join(lines) + "\n)"

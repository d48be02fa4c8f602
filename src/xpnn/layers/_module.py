"""The base class of stateful layers: parameters, gradients, namespace."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .._compat import Array, Device, DType, Namespace, library_name

__all__ = ["Backward", "Module"]

#: ``backward(dy) -> dx``: returned by ``forward``, it holds what the
#: gradient needs, so layers cache nothing between calls.
Backward = Callable[[Array], Array]


class Module:
    """Base class of xpnn layers.

    A module keeps its parameters in ``params`` and their accumulated
    gradients in ``grads``, both dictionaries keyed by parameter name.
    Gradients start as ``None`` (nothing accumulated), as in PyTorch.

    Subclasses implement ``forward(x) -> (y, backward)``; calling the module,
    ``module(x)``, returns ``y`` alone and keeps nothing alive.
    """

    params: dict[str, Array]
    grads: dict[str, Array | None]

    def __init__(self, *, xp: Namespace, device: Device, dtype: DType) -> None:
        self.xp = xp
        self.device = device
        self.dtype = dtype
        self.params = {}
        self.grads = {}

    def forward(self, x: Array) -> tuple[Array, Backward]:
        """Return the output and a closure that back-propagates through it."""
        raise NotImplementedError

    def __call__(self, x: Array) -> Array:
        y, _ = self.forward(x)
        return y

    def named_parameters(self) -> Iterator[tuple[str, Array]]:
        """Yield ``(name, array)`` for every parameter."""
        yield from self.params.items()

    def parameters(self) -> list[Array]:
        """Return the parameter arrays, in a fixed order."""
        return list(self.params.values())

    def zero_grad(self) -> None:
        """Forget accumulated gradients (they become ``None`` again)."""
        for name in self.grads:
            self.grads[name] = None

    def _accumulate(self, name: str, grad: Array) -> None:
        # A new array rather than ``+=``: JAX arrays are immutable, and a
        # caller may hold the previous gradient.
        current = self.grads[name]
        self.grads[name] = grad if current is None else current + grad

    def _settings(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self._settings().items())
        where = f"xp={library_name(self.xp)}, device={device_repr(self.device)}"
        return f"{type(self).__name__}({settings}, {where}, dtype={self.dtype})"


def device_repr(where: Device) -> str:
    """Show a device the short way users type it."""
    text = str(where)
    return repr(text) if isinstance(where, str) else text

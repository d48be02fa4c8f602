"""The base class of layers: parameters, gradients, train/eval mode."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from .._compat import Array

__all__ = ["Backward", "Module"]

#: ``backward(dy) -> dx``: returned by ``forward``, it holds what the
#: gradient needs, so layers cache nothing between calls.
Backward = Callable[[Array], Array]


class Module:
    """Base class of xpnn layers and models.

    A module keeps its own parameters in ``params`` and their accumulated
    gradients in ``grads``, both dictionaries keyed by parameter name.
    Gradients start as ``None`` (nothing accumulated), as in PyTorch.
    Containers such as :class:`~xpnn.Sequential` hold child modules and name
    their parameters with dotted paths (``"0.weight"``).

    Subclasses implement ``forward(x) -> (y, backward)``; calling the module,
    ``module(x)``, returns ``y`` alone and keeps nothing alive.
    """

    params: dict[str, Array]
    grads: dict[str, Array | None]
    training: bool

    def __init__(self) -> None:
        self.params = {}
        self.grads = {}
        self.training = True

    def forward(self, x: Array) -> tuple[Array, Backward]:
        """Return the output and a closure that back-propagates through it."""
        raise NotImplementedError

    def __call__(self, x: Array) -> Array:
        """Apply the module and return ``y`` only, keeping nothing alive."""
        y, _ = self.forward(x)
        return y

    # -- structure -------------------------------------------------------

    def children(self) -> list[Module]:
        """Return the direct sub-modules, in order (none for a leaf)."""
        return []

    def _named_children(self) -> Iterator[tuple[str, Module]]:
        for index, child in enumerate(self.children()):
            yield str(index), child

    def parameter_slots(self) -> Iterator[tuple[str, Module, str]]:
        """Yield ``(name, owner, local_name)`` for every parameter.

        ``owner.params[local_name]`` is the parameter called ``name`` and
        ``owner.grads[local_name]`` its gradient: one walk of the model gives
        optimizers both, and the place to write an update back.
        """
        for local in self.params:
            yield local, self, local
        for prefix, child in self._named_children():
            for name, owner, local in child.parameter_slots():
                yield f"{prefix}.{name}", owner, local

    def named_parameters(self) -> Iterator[tuple[str, Array]]:
        """Yield ``(name, array)`` for every parameter, children included."""
        for name, owner, local in self.parameter_slots():
            yield name, owner.params[local]

    def parameters(self) -> list[Array]:
        """Return the parameter arrays, in the order of ``named_parameters``."""
        return [value for _, value in self.named_parameters()]

    def named_gradients(self) -> Iterator[tuple[str, Array | None]]:
        """Yield ``(name, gradient or None)`` in the order of ``named_parameters``."""
        for name, owner, local in self.parameter_slots():
            yield name, owner.grads.get(local)

    def _owner(self, name: str) -> tuple[Module, str]:
        """Return the module that holds parameter ``name`` and its local name."""
        module: Module = self
        *path, leaf = name.split(".")
        for part in path:
            children = dict(module._named_children())
            if part not in children:
                raise KeyError(f"{type(self).__name__} has no parameter {name!r}")
            module = children[part]
        if leaf not in module.params:
            known = ", ".join(n for n, _ in self.named_parameters()) or "none"
            raise KeyError(f"{type(self).__name__} has no parameter {name!r}; it has {known}")
        return module, leaf

    def set_parameter(self, name: str, value: Array) -> None:
        """Replace parameter ``name`` (a dotted path in containers).

        Optimizers call this to write updates back, so that the model sees
        them on every backend, immutable JAX arrays included.
        """
        module, leaf = self._owner(name)
        module.params[leaf] = value

    def set_gradient(self, name: str, value: Array | None) -> None:
        """Replace the accumulated gradient of parameter ``name``."""
        module, leaf = self._owner(name)
        module.grads[leaf] = value

    def zero_grad(self) -> None:
        """Forget accumulated gradients (they become ``None`` again)."""
        for name in self.grads:
            self.grads[name] = None
        for child in self.children():
            child.zero_grad()

    def train(self, mode: bool = True) -> Module:
        """Switch training mode on (or off with ``mode=False``); return self."""
        self.training = mode
        for child in self.children():
            child.train(mode)
        return self

    def eval(self) -> Module:
        """Switch to evaluation mode (dropout off); return self."""
        return self.train(False)

    def _accumulate(self, name: str, grad: Array) -> None:
        # A new array rather than ``+=``: JAX arrays are immutable, and a
        # caller may hold the previous gradient.
        current = self.grads[name]
        self.grads[name] = grad if current is None else current + grad

    # -- display ---------------------------------------------------------

    def _settings(self) -> dict[str, object]:
        """Return the constructor settings shown by ``repr``."""
        return {}

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self._settings().items())
        return f"{type(self).__name__}({settings})"


def device_repr(where: object) -> str:
    """Show a device the short way users type it."""
    text = str(where)
    return repr(text) if isinstance(where, str) else text

"""Bind arrays into a model for the length of one call, then put it back.

Tracing libraries (JAX under ``jax.jit``, ndonnx, ``torch.compile``) run a
model on stand-ins for its parameters: tracers, graph arguments. The model
must not keep them afterwards, nor anything the layers derived from them
(the arrays and namespaces their checks remember), so that the model is
unchanged by being traced.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from .._compat import Array
from ..layers import Module

__all__ = ["bound", "modules"]


def modules(model: Module) -> Iterator[Module]:
    """Yield ``model`` and every module inside it, depth first, in order."""
    yield model
    for child in model.children():
        yield from modules(child)


@contextmanager
def bound(model: Module, params: Mapping[str, Array]) -> Iterator[None]:
    """Run a block with ``params`` in the model and no gradients accumulated.

    Parameters
    ----------
    model : Module
        The model; every parameter name of it must be in ``params``.
    params : mapping of str to array
        The arrays to bind, by parameter name (``"0.weight"``).

    Notes
    -----
    Everything a module holds is put back on exit, also when the block
    raises: not only the parameters and gradients but every attribute,
    since layers remember the arrays they last checked, and those are
    stand-ins here.
    """
    saved = [
        (module, dict(vars(module)), dict(module.params), dict(module.grads))
        for module in modules(model)
    ]
    try:
        for name, owner, local in model.parameter_slots():
            owner.params[local] = params[name]
            owner.grads[local] = None
        yield
    finally:
        for module, attributes, module_params, module_grads in saved:
            vars(module).clear()
            vars(module).update(attributes)
            module.params.clear()
            module.params.update(module_params)
            module.grads.clear()
            module.grads.update(module_grads)

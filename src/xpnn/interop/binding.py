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

from .._checks import key_difference
from .._compat import Array
from ..layers import Module

__all__ = ["bound", "buffers_bound", "check_params", "distinct_parameter_names"]


def distinct_parameter_names(model: Module, who: str) -> tuple[str, ...]:
    """Return the model's parameter names, refusing one array under two of them.

    A layer used twice would give its array one name per use; bound from
    explicit parameters, each name would get the sum of both uses'
    gradients and its own, diverging update. ``who`` names what needs every
    parameter once, for the message.
    """
    seen: dict[tuple[int, str], str] = {}
    for name, owner, local in model.parameter_slots():
        first = seen.setdefault((id(owner), local), name)
        if first != name:
            raise ValueError(
                f"parameters {first!r} and {name!r} are one array (a layer used twice); "
                f"{who} needs every parameter once: use a separate layer for each use"
            )
    return tuple(seen.values())


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
    The parameters and gradients are put back on exit, also when the block
    raises, and every module forgets the kinds of input it checked
    (:meth:`xpnn.Module.reset_checks`): those were stand-ins here.
    """
    saved = [(module, dict(module.params), dict(module.grads)) for module in model.modules()]
    try:
        for name, owner, local in model.parameter_slots():
            owner.params[local] = params[name]
            owner.grads[local] = None
        yield
    finally:
        for module, module_params, module_grads in saved:
            module.params.clear()
            module.params.update(module_params)
            module.grads.clear()
            module.grads.update(module_grads)
        model.reset_checks()


def check_params(
    params: object, names: tuple[str, ...], *, made_by: str, container: type = Mapping
) -> None:
    """Check that ``params`` maps every one of ``names``, and nothing else, to an array.

    ``made_by`` names what returns such parameters, for the message;
    ``container`` is the type they must have (a plain ``dict`` where JAX
    must see a pytree).
    """
    if not isinstance(params, container):
        raise TypeError(
            f"params must be a dict of parameter name to array, as {made_by}, "
            f"got {type(params).__name__}"
        )
    assert isinstance(params, Mapping)
    if set(params) != set(names):
        unexpected, missing = key_difference(map(str, params), names)
        unexpected.sort()
        raise ValueError(
            f"params must have one entry per parameter of the model ({', '.join(names)}); "
            f"missing: {', '.join(missing) or 'none'}; unexpected: "
            f"{', '.join(unexpected) or 'none'}"
        )


@contextmanager
def buffers_bound(model: Module, buffers: Mapping[str, Array]) -> Iterator[None]:
    """Run a block with ``buffers`` in the model's buffer slots, then put its own back.

    What :func:`bound` does for the parameters, for the buffers (a batch
    norm's running statistics): a traced step or an exported graph takes
    them as arguments, so that nothing folds them in as constants.

    Parameters
    ----------
    model : Module
        The model; every buffer name of it must be in ``buffers``.
    buffers : mapping of str to array
        The arrays to bind, by buffer name (``"1.running_mean"``).

    Notes
    -----
    A batch norm in training mode replaces its buffers inside the block; the
    caller reads the new ones before the block ends. The model's own arrays
    are put back on exit, also when the block raises, so no tracer stays in
    the model after a trace.
    """
    slots = model.buffer_slots()
    saved = [(owner, local, owner.buffers[local]) for _, owner, local in slots]
    try:
        for name, owner, local in slots:
            owner.buffers[local] = buffers[name]
        yield
    finally:
        for owner, local, value in saved:
            owner.buffers[local] = value

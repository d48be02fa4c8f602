"""An xpnn model as a JAX function, differentiated by xpnn's own backward.

:func:`as_function` wraps a model whose parameters are JAX arrays in a
``jax.custom_vjp`` function ``f(params, x) -> y``. JAX transforms it like
any other function (``jax.grad``, ``jax.value_and_grad``, ``jax.jit``,
``jax.vmap``), and the gradient it takes is the one the layers' hand-written
``backward`` closures compute, not one JAX derives from the forward pass.
Parameters travel as an argument, a dict of name to array, so that they can
be differentiated and updated the way JAX code (optax, for one) expects.

A ``custom_vjp`` rule may keep only JAX arrays between the forward and the
backward pass, not the ``backward`` closure that ``model.forward`` returns.
The forward rule keeps ``params`` and ``x``; the backward rule runs
``model.forward(x)`` again with those parameters and calls the closure it
gets. The forward pass is therefore computed twice per gradient; under
``jax.jit`` XLA may merge the two copies.

Each rule binds the parameters it is given into the model for the length
of one call and puts the model's own arrays, gradients and per-layer
caches back afterwards, also when the call fails: after tracing the model
holds no tracers, and its ``grads`` are as they were. The rules run under
``jax.jit`` of their own, so that the layers see parameters and inputs that
are all traced alike, whichever of them the caller closed over.

What it cannot do:

- Forward-mode differentiation (``jax.jvp``, ``jax.jacfwd``) is not
  available: JAX refuses it for every ``custom_vjp`` function.
- :class:`~xpnn.Dropout` in training mode is refused. Its masks come from a
  host generator, so a traced function would keep one mask for every call,
  and the recomputed forward pass would draw a different mask from the
  first. Call ``model.eval()`` first.
- A batch norm that tracks running statistics is refused in training mode:
  ``f`` returns the output alone, so the statistics it would replace have
  nowhere to go (and its tracers would stay in the model). Call
  ``model.eval()``, build it with ``track_running_stats=False``, or train
  with :func:`train_step`, which threads them.
- The function follows the structure the model has when it is traced for an
  input shape; build a new one after adding or replacing layers.

Training steps under ``jax.jit``
--------------------------------
:func:`train_step` compiles a whole training step, the layers' forward and
backward passes, the loss and an xpnn optimizer's update, into one XLA
computation: ``step(params, state, x, y) -> (params, state, loss)``, with
the parameters, the model's buffers and the optimizer's state as explicit
arguments (see :class:`xpnn.interop.step.TrainStep`). A batch norm's running
statistics go in and come out with the parameters, as new arrays.

JAX is imported when :func:`as_function` or :func:`train_step` is called,
never when xpnn is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._compat import Array, library_of
from ..layers import BatchNorm1d, BatchNorm2d, Dropout, Module
from ..optim import Optimizer
from .binding import bound as _bound
from .binding import check_params, distinct_parameter_names
from .step import Loss, Params, State, StepFunction, TrainStep, check_traceable

__all__ = ["TrainStep", "as_function", "train_step"]

#: ``f(params, x) -> y``, the function :func:`as_function` returns.
ModelFunction = Callable[[dict[str, Array], Array], Array]


def _check_model(model: Module, who: str = "as_function") -> None:
    if not isinstance(model, Module):
        raise TypeError(f"{who} takes an xpnn Module, got {type(model).__name__}")
    arrays = [("parameter", name, value) for name, value in model.named_parameters()]
    arrays += [("buffer", name, value) for name, value in model.named_buffers()]
    for what, name, value in arrays:
        library = library_of(value)
        if library != "jax":
            raise TypeError(
                f"{who} needs a model whose parameters are JAX arrays; {what} "
                f"{name!r} is a {library or type(value).__module__} array. Move the model "
                "first: model.to(jax.numpy)"
            )
    distinct_parameter_names(model, who)


def _check_modes(model: Module) -> None:
    """Refuse the layers in training mode that a function of ``(params, x)`` cannot run."""
    for module in model.modules():
        if module.draws_on_host:
            kind = "a Dropout layer" if isinstance(module, Dropout) else repr(module)
            raise ValueError(
                f"the model has {kind} in training mode, which the JAX function cannot "
                "run: its mask would be drawn once per trace, and again, differently, when the "
                "backward rule recomputes the forward pass. Call model.eval() first"
            )
        if (
            isinstance(module, BatchNorm1d | BatchNorm2d)
            and module.training
            and module.track_running_stats
        ):
            raise ValueError(
                f"the model has {type(module).__name__}({module.num_features}) in training "
                "mode, which the JAX function cannot run: it replaces its running statistics, "
                "and f(params, x) returns the output alone. Call model.eval(), build it with "
                "track_running_stats=False, or train with xpnn.interop.jax.train_step, which "
                "threads the statistics through the step"
            )


def as_function(model: Module) -> tuple[ModelFunction, dict[str, Array]]:
    """Return the model as a differentiable JAX function, and its parameters.

    Parameters
    ----------
    model : Module
        A model whose parameters are JAX arrays (``model.to(jax.numpy)``),
        with no :class:`~xpnn.Dropout` in training mode, nor a batch norm
        that tracks running statistics in training mode, when it is called.

    Returns
    -------
    f : callable
        ``f(params, x) -> y``: the model's output for input ``x`` with the
        parameters ``params``. ``x`` and ``y`` have the shapes the model
        takes and gives, ``(..., in_features)`` and ``(..., out_features)``
        for an MLP. The vector-Jacobian products JAX takes of ``f``, for
        ``params`` and ``x`` alike, are the layers' ``backward`` closures;
        ``f`` works under ``jax.grad``, ``jax.jit`` and ``jax.vmap``, not
        under forward-mode differentiation.
    params : dict of str to jax.Array
        The model's parameters by name, ``dict(model.named_parameters())``:
        the same arrays, not copies. Gradients of ``f`` with respect to
        ``params`` are dicts with the same names, shapes and dtypes.

    Raises
    ------
    TypeError
        If ``model`` is not an xpnn Module or a parameter is not a JAX
        array; ``f`` raises it if ``params`` is not a dict.
    ValueError
        If the model uses one layer twice, so that two parameter names
        share an array. Raised by ``f`` if ``params`` lacks a parameter of
        the model or has one it lacks, or if the model has a Dropout layer,
        or a batch norm that tracks running statistics, in training mode.

    Notes
    -----
    ``f`` leaves the model as it was: its parameters, gradients and caches
    are restored after every call and every trace. To put trained
    parameters back into the model, set them one by one:
    ``for name, value in params.items(): model.set_parameter(name, value)``.

    The backward rule computes the forward pass again, from the parameters
    and input that the forward rule keeps, since a JAX rule cannot keep the
    closure ``model.forward`` returns.

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from xpnn import Linear, Sequential, Tanh
    >>> from xpnn.interop.jax import as_function
    >>> model = Sequential(Linear(3, 2, seed=0), Tanh()).to(jnp, dtype="float32")
    >>> f, params = as_function(model)
    >>> loss = lambda params, x: jnp.sum(f(params, x) ** 2)
    >>> grads = jax.jit(jax.grad(loss))(params, jnp.ones((4, 3), dtype=jnp.float32))
    >>> sorted(grads), grads["0.weight"].shape
    (['0.bias', '0.weight'], (3, 2))
    """
    import jax

    _check_model(model)
    names = tuple(name for name, _ in model.named_parameters())

    def forward(params: dict[str, Array], x: Array) -> Array:
        with _bound(model, params):
            return model(x)

    def backward(params: dict[str, Array], x: Array, dy: Array) -> tuple[dict[str, Array], Array]:
        with _bound(model, params):
            _, pullback = model.forward(x)
            dx = pullback(dy)
            assert dx is not None  # asked for with forward's default, input_grad=True
            found = {name: owner.grads[local] for name, owner, local in model.parameter_slots()}
        grads = {}
        for name, value in params.items():
            grad = found[name]
            if grad is None:
                # A parameter the output does not depend on.
                grad = jax.numpy.zeros_like(value)
            # JAX requires cotangents of the primal dtypes; a model with
            # mixed dtypes may accumulate in a promoted one.
            grads[name] = grad.astype(value.dtype) if grad.dtype != value.dtype else grad
        if dx.dtype != x.dtype:
            dx = dx.astype(x.dtype)
        return grads, dx

    # Under jit every array the layers see is a tracer of one trace: their
    # device checks would otherwise compare a concrete array's device with
    # a tracer's, which has none.
    traced_forward = jax.jit(forward)
    traced_backward = jax.jit(backward)

    @jax.custom_vjp
    def apply(params: dict[str, Array], x: Array) -> Array:
        return traced_forward(params, x)

    def apply_forward(
        params: dict[str, Array], x: Array
    ) -> tuple[Array, tuple[dict[str, Array], Array]]:
        return traced_forward(params, x), (params, x)

    def apply_backward(
        residuals: tuple[dict[str, Array], Array], dy: Array
    ) -> tuple[dict[str, Array], Array]:
        params, x = residuals
        grads, dx = traced_backward(params, x, dy)
        return grads, dx

    apply.defvjp(apply_forward, apply_backward)

    def f(params: dict[str, Array], x: Array) -> Array:
        check_params(params, names, made_by="as_function returned", container=dict)
        _check_modes(model)
        return apply(params, x)

    f.__doc__ = f"``f(params, x) -> y`` for {type(model).__name__}, from xpnn.interop.jax."
    return f, dict(model.named_parameters())


def train_step(
    model: Module, loss_fn: Loss, optimizer: Optimizer, *, jit: bool = True
) -> TrainStep:
    """Return a training step of ``model`` compiled by ``jax.jit``.

    Parameters
    ----------
    model : Module
        A model whose parameters are JAX arrays (``model.to(jax.numpy)``),
        each used once, with no :class:`~xpnn.Dropout` in training mode.
        Batch norms train: their running statistics are buffers, which
        the step takes and returns in ``params``.
    loss_fn : callable
        ``loss_fn(prediction, target) -> (value, grad)``, such as
        :class:`xpnn.CrossEntropyLoss`.
    optimizer : xpnn.optim.Optimizer
        An xpnn optimizer of ``model`` (SGD, Adam, AdamW). It may hold state
        already (eager steps, a loaded checkpoint): :meth:`TrainStep.init`
        starts from it.
    jit : bool, default True
        Compile the step; ``False`` runs the same pure step eagerly (to
        debug it, or to compare).

    Returns
    -------
    TrainStep
        ``step(params, state, x, y) -> (params, state, loss)`` for inputs
        ``x`` of the shape the model takes (``(batch, in_features)``,
        ``(batch, channels, height, width)``) and targets ``y``; ``loss``
        is a 0-d array. ``params`` holds the parameters, then the model's
        buffers; on JAX every returned array is a new one. Start from
        ``params, state = step.init()`` and put the result back with
        ``step.write_back(params, state)``.

    Raises
    ------
    TypeError
        If a parameter is not a JAX array, or ``optimizer`` is not an xpnn
        optimizer of ``model``.
    ValueError
        If the model uses one layer twice. Raised by the step if the model
        has a Dropout layer in training mode (its masks come from a host
        generator: a compiled step would keep the first one).

    Notes
    -----
    JAX traces the step twice: once for the first update, when the
    optimizer's buffers do not exist yet, and once for the others. It traces
    again for a new batch shape (a last, smaller batch) and whenever a
    hyper-parameter such as ``optimizer.lr`` changes: those are Python
    numbers, which the trace keeps as constants, so they key the trace, as
    do the layers' training modes (``model.eval()`` between two calls
    traces a step whose batch norms use and keep their running
    statistics). The model's structure and its layers' settings (``negative_slope``, ...)
    are read when the step is traced: build a new step after changing them.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> import xpnn
    >>> from xpnn.interop.jax import train_step
    >>> model = xpnn.Sequential(xpnn.Linear(4, 8, seed=0), xpnn.ReLU(), xpnn.Linear(8, 3, seed=1))
    >>> model.to(jnp, dtype="float32")  # doctest: +ELLIPSIS
    Sequential(...)
    >>> step = train_step(model, xpnn.CrossEntropyLoss(), xpnn.optim.Adam(model, lr=1e-2))
    >>> params, state = step.init()
    >>> x, y = jnp.ones((16, 4), dtype=jnp.float32), jnp.zeros(16, dtype=jnp.int32)
    >>> for _ in range(3):
    ...     params, state, loss = step(params, state, x, y)
    >>> step.write_back(params, state)
    >>> loss.shape, model[0].weight is params["0.weight"]
    ((), True)
    """
    import jax

    _check_model(model, "train_step")

    def compile(function: StepFunction) -> StepFunction:
        def keyed(
            params: Params, state: State, x: Array, y: Array, settings: object
        ) -> tuple[Params, State, Any]:
            return function(params, state, x, y)

        # The hyper-parameters and the layers' modes as a static argument: a
        # new learning rate, or a batch norm put in eval mode, is a new
        # trace, not the old one's constant.
        compiled = jax.jit(keyed, static_argnums=4) if jit else keyed

        def step(params: Params, state: State, x: Array, y: Array) -> tuple[Params, State, Any]:
            # Checked at every call, outside the trace: eval() and train()
            # may switch Dropout between calls.
            check_traceable(model, "jax.jit")
            modes = tuple(module.training for module in model.modules())
            return compiled(params, state, x, y, (made.settings(), modes))

        return step

    made = TrainStep(model, loss_fn, optimizer, compile=compile)
    return made

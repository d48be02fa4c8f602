"""A training step as a pure function of explicit parameters, buffers and optimizer state.

Tracing compilers (``jax.jit``, ``torch.compile``) see what flows through a
function's arguments and results. An xpnn training step, as ``xpnn.fit``
runs it, keeps its state on the side instead: parameters and gradients in
the model's dictionaries, the model's buffers (a batch norm's running
statistics) in its layers, the optimizer's buffers and step counts in the
optimizer. A :class:`TrainStep` turns that step into ``step(params, state,
x, y) -> (params, state, loss)``: the parameters and the model's buffers
(``params``, as ``torch.func.functional_call`` takes them) and the
optimizer's state go in and come out as dictionaries of arrays, and every
call binds them into the model and the optimizer for its length only, so
the same layer, loss and optimizer code runs, unchanged, under a tracer.
A batch norm replaces its running statistics at every training step; the
step reads the new arrays back from the model and returns them, and puts
the model's own arrays back: nothing is written into an array, which JAX's
arrays would not allow.

The state is ``{parameter name: {"step": count, <buffer>: array or None}}``,
the optimizer's own per-parameter state, with the step count a 0-d array
of the parameter's real floating dtype rather than a Python int: a traced
step then takes the count as an input instead of compiling it in as a
constant, and Adam's bias corrections are computed in the parameter's
precision. Buffers are ``None`` until a parameter's first update, as in
the optimizer; the first call therefore has another structure than the
next ones, and compilers trace the step twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from .._compat import Array, DType, Namespace, array_namespace, device, dtype_name
from ..functional.losses import check_label_values
from ..layers import Module, edge_features, forward_on_data
from ..losses import LabelLoss
from ..losses import Loss as LossObject
from ..optim import Optimizer
from .binding import bound, buffers_bound, check_params, distinct_parameter_names

__all__ = ["Params", "State", "StepFunction", "TrainStep", "check_traceable"]

#: Parameters, then buffers, by name: ``dict(model.named_parameters())`` and
#: ``dict(model.named_buffers())`` in one dictionary.
Params = dict[str, Array]
#: Optimizer state by parameter name: ``{"step": count, <buffer>: array or None}``.
State = dict[str, dict[str, Any]]
#: ``step(params, state, x, y) -> (params, state, loss)``.
StepFunction = Callable[[Params, State, Array, Array], tuple[Params, State, Array]]
#: ``loss(prediction, target) -> (value, grad)``, as :mod:`xpnn.losses` objects.
Loss = Callable[[Array, Array], tuple[Array, Array]]


@contextmanager
def _threaded(optimizer: Optimizer, loss_fn: Loss, state: State) -> Iterator[None]:
    """Run a block with ``state`` in the optimizer; put its own state back afterwards.

    The optimizer, and the loss where it is one of xpnn's, forget what their
    checks remembered when the block ends: under a tracer those were
    stand-ins, which must not outlive the trace.
    """
    saved = optimizer.per_parameter_state()
    check_labels = getattr(loss_fn, "check_labels", None)
    optimizer.replace_state(state)
    try:
        yield
    finally:
        optimizer.replace_state(saved)
        if isinstance(loss_fn, LossObject):
            loss_fn.reset_checks()
        if isinstance(loss_fn, LabelLoss) and check_labels is not None:
            loss_fn.check_labels = check_labels


def check_traceable(model: Module, why: str) -> None:
    """Refuse a layer that draws masks on the host now, since a trace would freeze them.

    ``why`` names what would trace the step, for the message (``"jax.jit"``).
    Batch norms pass: their running statistics travel through the step as
    buffers. :attr:`~xpnn.Module.draws_on_host` tells the layers that draw
    (``Dropout``, a recurrent layer's or an attention's dropout, in training
    mode).
    """
    for module in model.modules():
        if module.draws_on_host:
            raise ValueError(
                f"the model has {module!r} in training mode, which {why} cannot run: it draws "
                "dropout masks by a host random generator, and a traced step would keep the "
                "first masks for every step. Set its dropout to 0, call eval() on it, or train "
                "eagerly (xpnn.fit)"
            )


class TrainStep:
    """A training step of an xpnn model as a pure function of its state.

    ``step(params, state, x, y) -> (params, state, loss)`` runs what one step
    of ``xpnn.fit`` runs: ``model.forward(x)``, ``loss_fn(prediction, y)``,
    the model's backward pass and ``optimizer.step()``, with the parameters,
    the model's buffers and the optimizer's state taken from the arguments
    and returned, and leaves the model and the optimizer as they were. The
    layers, the loss and the optimizer are xpnn's own, unchanged.

    Parameters
    ----------
    model : Module
        The model, every parameter used once (no layer appears twice).
    loss_fn : callable
        ``loss_fn(prediction, target) -> (value, grad)``, such as
        :class:`xpnn.CrossEntropyLoss`.
    optimizer : xpnn.optim.Optimizer
        An optimizer of ``model`` (``optimizer.model is model``). Its
        hyper-parameters are read at every call; changing one (``lr``)
        retraces a compiled step.
    compile : callable, optional
        Applied to the whole pure step, ``compile(f) -> f``, such as
        ``jax.jit``, which traces the binding of the arguments into the
        model too. None runs the step as it is.
    compile_body : callable, optional
        Applied to the step's body alone, ``body(x, y) -> loss``, which
        runs on the model and the optimizer once the arguments are bound
        into them: for compilers that must not see the binding, such as
        ``torch.compile`` (its graph breaks cannot resume inside the
        binding's context managers).

    Attributes
    ----------
    function : callable
        The pure step, compiled by ``compile`` if given.
    body : callable
        ``body(x, y) -> loss``, compiled by ``compile_body`` if given.
    names : tuple of str
        The model's parameter names, the first entries of ``params``.
    buffer_names : tuple of str
        The model's buffer names (``"1.running_mean"``), the last entries
        of ``params``; empty for a model without buffers.

    Notes
    -----
    Obtain the first ``params, state`` from :meth:`init`, thread them
    through the calls, and put the last ones back with :meth:`write_back`
    (to save a checkpoint, or go on with ``xpnn.fit``). ``params`` holds the
    model's buffers after its parameters, by their dotted names
    (``"1.running_mean"``): a batch norm in training mode gets new running
    statistics at every step, which come back in the returned ``params``
    while the model keeps its own until :meth:`write_back`. Arrays that a
    library lets xpnn's optimizers update in place (PyTorch, NumPy) are
    updated in place by the step: the returned dictionaries then hold the
    arrays that were passed in. Buffers are never updated in place: they
    come back as new arrays.
    """

    def __init__(
        self,
        model: Module,
        loss_fn: Loss,
        optimizer: Optimizer,
        *,
        compile: Callable[[StepFunction], StepFunction] | None = None,
        compile_body: Callable[[Callable[[Array, Array], Array]], Callable[[Array, Array], Array]]
        | None = None,
    ) -> None:
        if not isinstance(model, Module):
            raise TypeError(f"model must be an xpnn Module, got {type(model).__name__}")
        if not callable(loss_fn):
            raise TypeError(
                f"loss_fn must be callable as loss_fn(prediction, target) -> (value, grad), "
                f"such as xpnn.CrossEntropyLoss(); got {type(loss_fn).__name__}"
            )
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"optimizer must be an xpnn optimizer (xpnn.optim.SGD, Adam, AdamW), got "
                f"{type(optimizer).__name__}"
            )
        if optimizer.model is not model:
            raise ValueError(
                "optimizer must optimise this model (optimizer.model is model); it holds "
                "another one"
            )
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.names = distinct_parameter_names(model, "a step with explicit parameters")
        self.buffer_names = tuple(name for name, _ in model.named_buffers())
        self.body: Callable[[Array, Array], Array] = (
            self.eager_body if compile_body is None else compile_body(self.eager_body)
        )
        self.function: StepFunction = self.pure if compile is None else compile(self.pure)
        # CrossEntropyLoss reads back whether every label is in range, which
        # splits a compiled body's graph. When the model's output width is
        # known, the labels are checked before the body instead, eagerly,
        # and the loss skips its own check.
        self._classes = (
            edge_features(model, last=True)
            if compile_body is not None and isinstance(loss_fn, LabelLoss) and loss_fn.axis == -1
            else None
        )

    def __call__(
        self, params: Params, state: State, x: Array, y: Array
    ) -> tuple[Params, State, Array]:
        """Run one step; return the new parameters, the new state and the loss.

        Parameters
        ----------
        params : dict of str to array
            Every parameter, then every buffer of the model, by name, as
            :meth:`init` gives.
        state : dict of str to dict
            The optimizer's state, as :meth:`init` gives.
        x : array of shape (batch, ...)
            Inputs, as the model takes them: ``(batch, in_features)`` for
            an MLP, ``(batch, channels, height, width)`` for a CNN.
        y : array
            Targets, as ``loss_fn`` takes them.

        Returns
        -------
        params : dict of str to array
            The updated parameters and buffers (a batch norm's new running
            statistics in training mode), same names, shapes and dtypes.
        state : dict of str to dict
            The updated state.
        loss : array of shape ()
            The loss of this batch before the update.
        """
        return self.function(params, state, x, y)

    def pure(self, params: Params, state: State, x: Array, y: Array) -> tuple[Params, State, Array]:
        """Run one step (what :attr:`function` compiles when ``compile`` is given)."""
        return self.run_with(self.body, params, state, x, y)

    def run_with(
        self,
        body: Callable[[Array, Array], Any],
        params: Params,
        state: State,
        x: Array,
        y: Array,
    ) -> tuple[Params, State, Any]:
        """Bind ``params`` and ``state``, call ``body(x, y)``, and read them back.

        :meth:`pure` with another body: ``body`` runs with the model and the
        optimizer holding the arguments, and what it returns is returned in
        place of the loss (``torch._dynamo.explain`` of :attr:`body`, for
        one).
        """
        self._check_arrays(params)
        model, optimizer = self.model, self.optimizer
        with (
            bound(model, params),
            buffers_bound(model, params),
            _threaded(optimizer, self.loss_fn, state),
        ):
            if self._classes is not None:
                assert isinstance(self.loss_fn, LabelLoss)
                check_label_values(y, self._classes, self.loss_fn.ignore_index)
                self.loss_fn.check_labels = False
            result = body(x, y)
            # Read before the model gets its own arrays back: a batch norm
            # in training mode has replaced its buffers.
            new_params = dict(model.named_parameters())
            new_params.update(model.named_buffers())
            new_state = optimizer.per_parameter_state()
        return new_params, new_state, result

    def _check_arrays(self, params: object) -> None:
        """Check that ``params`` has every parameter and buffer name, and nothing else."""
        if isinstance(params, Mapping) and self.buffer_names:
            missing = [name for name in self.buffer_names if name not in params]
            if missing and all(name in params for name in self.names):
                raise ValueError(
                    f"params must hold the model's buffers after its parameters, as "
                    f"TrainStep.init() returns them; missing: {', '.join(missing)}"
                )
        check_params(params, self.names + self.buffer_names, made_by="TrainStep.init() returns")

    def eager_body(self, x: Array, y: Array) -> Array:
        """One step of the bound model and optimizer: forward, loss, backward, update."""
        prediction, backward = forward_on_data(self.model, x)
        loss, dprediction = self.loss_fn(prediction, y)
        backward(dprediction)
        self.optimizer.step()
        return loss

    def settings(self) -> tuple[tuple[str, Any], ...]:
        """Return the optimizer's hyper-parameters as a hashable key.

        They are Python numbers, which a trace keeps as constants: a
        compiled step must be traced again when they change (a learning
        rate schedule), and compilers that cannot see the change themselves
        (``jax.jit``) take this key as a static argument.
        """
        return tuple(sorted(self.optimizer.hyperparameters.items()))

    def init(self) -> tuple[Params, State]:
        """Return the model's parameters and buffers and the optimizer's state, to start from.

        Returns
        -------
        params : dict of str to array
            ``dict(model.named_parameters())``, then
            ``dict(model.named_buffers())``: the model's own arrays.
        state : dict of str to dict
            For every parameter, ``{"step": count, <buffer>: array or None}``
            from the optimizer (after a loaded checkpoint or eager steps) or
            fresh; counts are 0-d arrays of the parameter's real dtype.
        """
        params = dict(self.model.named_parameters())
        buffers = self.optimizer.buffer_names
        current = self.optimizer.per_parameter_state()
        state: State = {}
        for name, value in params.items():
            entry = current.get(name)
            xp = array_namespace(**{f"parameter {name!r}": value})
            count = 0 if entry is None else int(entry["step"])
            state[name] = {
                "step": xp.asarray(
                    float(count), dtype=_real(xp, value.dtype), device=device(value)
                ),
                **{b: None if entry is None else entry[b] for b in buffers},
            }
        params.update(self.model.named_buffers())
        return params, state

    def write_back(self, params: Params, state: State) -> None:
        """Put ``params`` (parameters and buffers) into the model and ``state`` into the optimizer.

        Step counts become Python ints again (read from the device once),
        so that ``optimizer.state_dict()`` and :func:`xpnn.save` see the
        optimizer as eager steps leave it.
        """
        self._check_arrays(params)
        for name in self.names:
            self.model.set_parameter(name, params[name])
        for name in self.buffer_names:
            self.model.set_buffer(name, params[name])
        self.optimizer.replace_state(
            {name: {**entry, "step": int(entry["step"])} for name, entry in state.items()}
        )


def _real(xp: Namespace, dtype: DType) -> DType:
    """Return the real floating dtype of ``dtype``'s precision."""
    if not xp.isdtype(dtype, "complex floating"):
        return dtype
    name = {"complex64": "float32", "complex128": "float64"}[dtype_name(xp, dtype)]
    return xp.__array_namespace_info__().dtypes()[name]

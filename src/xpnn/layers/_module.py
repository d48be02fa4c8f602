"""The base class of layers: parameters, gradients, train/eval mode."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, NamedTuple, Protocol, TypeVar

from .._checks import CheckBoundary, has_unknown, is_unknown, shape_str
from .._compat import (
    Array,
    Device,
    DType,
    Namespace,
    array_namespace,
    check_device,
    describe_type,
    dtype_name,
    is_array,
    library_name,
    resolve_device,
    resolve_dtype,
    resolve_namespace,
)
from .._compat import device as device_of
from .._transfer import transfer

__all__ = [
    "Backward",
    "IncompatibleKeys",
    "Module",
    "backward_again",
    "call_backward",
    "check_buffer_replacement",
    "check_replacement",
    "forward_on_data",
]

M = TypeVar("M", bound="Module")


class _MovableOptimizer(Protocol):
    """What :meth:`Module.to` needs of an optimizer (see ``xpnn.optim``)."""

    model: Module

    def buffers(self) -> dict[str, dict[str, Array]]: ...

    def replace_buffers(self, buffers: dict[str, dict[str, Array]]) -> None: ...


#: ``backward(dy, *, retain_graph=False) -> dx``: returned by ``forward``, it
#: holds what the gradient needs, so layers cache nothing between calls. It
#: may be called once, as PyTorch's graph may be back-propagated once: a
#: second call raises ``RuntimeError`` rather than add the gradients twice,
#: unless the earlier calls passed ``retain_graph=True``.
Backward = Callable[..., Array | None]


def backward_again(what: str) -> RuntimeError:
    """Return the error of a backward closure called after it was used up.

    ``what`` names the module whose ``forward`` returned the closure.
    """
    return RuntimeError(
        f"Trying to backward through the graph a second time: this backward closure of "
        f"{what} was called already, and a second call would add its gradients again. "
        f"Call forward again for a new closure, or specify retain_graph=True on the first "
        f"call, backward(dy, retain_graph=True), to call it again."
    )


_TAKES_RETAIN_GRAPH: dict[object, bool] = {}


def call_backward(backward: Backward, dy: Array, *, retain_graph: bool = False) -> Array | None:
    """Call a backward closure, passing ``retain_graph=True`` where it takes it.

    Containers (:class:`~xpnn.Sequential`) and interop code call the closures
    of modules they do not know: xpnn's layers take ``retain_graph``, a user
    module's closure may not. Such a closure is called plainly,
    ``backward(dy)``, and whether it may be called again is its own affair.
    Whether a closure takes the keyword is found out once per function
    (closures made by one ``def`` share their code).

    Parameters
    ----------
    backward : callable
        A closure that a module's ``forward`` returned.
    dy : array
        The gradient of the output.
    retain_graph : bool, default False
        Keep the closure usable for another call.

    Returns
    -------
    array or None
        What the closure returns.
    """
    if not retain_graph:
        return backward(dy)
    code = getattr(backward, "__code__", None)
    takes = _TAKES_RETAIN_GRAPH.get(code) if code is not None else None
    if takes is None:
        try:
            parameters = inspect.signature(backward).parameters.values()
        except (TypeError, ValueError):  # no signature to read: call it plainly
            takes = False
        else:
            takes = any(
                p.name == "retain_graph" or p.kind is inspect.Parameter.VAR_KEYWORD
                for p in parameters
            )
        if code is not None:
            _TAKES_RETAIN_GRAPH[code] = takes
    return backward(dy, retain_graph=True) if takes else backward(dy)


class IncompatibleKeys(NamedTuple):
    """What :meth:`Module.load_state_dict` returns, as PyTorch's ``_IncompatibleKeys``.

    Both lists are empty after a strict load (a strict load with keys to
    report raises instead).
    """

    #: The model's keys the state dict lacked (those entries kept their values).
    missing_keys: list[str]
    #: The state dict's keys the model has no entry for (ignored).
    unexpected_keys: list[str]

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return (
            f"IncompatibleKeys(missing_keys={self.missing_keys!r}, "
            f"unexpected_keys={self.unexpected_keys!r})"
        )


class Module:
    """Base class of xpnn layers and models.

    A module keeps its own parameters in ``params`` and their accumulated
    gradients in ``grads``, both dictionaries keyed by parameter name.
    Gradients start as ``None`` (nothing accumulated), as in PyTorch.
    Containers such as :class:`~xpnn.Sequential` hold child modules and name
    their parameters with dotted paths (``"0.weight"``), as PyTorch does;
    :meth:`state_dict` and :meth:`load_state_dict` exchange them by those
    names in PyTorch's layouts.

    Subclasses implement ``forward(x, *, input_grad=True) -> (y, backward)``;
    calling the module, ``module(x)``, returns ``y`` alone and keeps nothing
    alive. ``input_grad=False`` says that nobody needs the gradient of the
    input (a batch of data, as in PyTorch, whose inputs do not require
    gradients): ``backward(dy)`` then accumulates the parameter gradients
    and returns ``None``, and skips the work of ``dx``.

    A closure may be called once, as a PyTorch graph may be
    back-propagated once: a second call raises ``RuntimeError`` instead of
    adding the gradients twice. ``backward(dy, retain_graph=True)`` keeps it
    usable for another call (the call after the last one may leave the
    keyword out). A call that raises before any arithmetic (a ``dy`` of the
    wrong shape) does not use the closure up.
    """

    params: dict[str, Array]
    grads: dict[str, Array | None]
    buffers: dict[str, Array]
    training: bool

    #: Local names of the parameters this layer stores as the transpose (the
    #: last two axes swapped) of PyTorch's layout; state dicts hold PyTorch's
    #: (:meth:`state_dict`). ``Linear`` lists ``"weight"``.
    _torch_transposed: ClassVar[frozenset[str]] = frozenset()

    def __init__(self) -> None:
        self.params = {}
        self.grads = {}
        # State that is no parameter: no gradient, no optimizer (a BatchNorm's
        # running statistics). Replaced by new arrays, never written into.
        self.buffers = {}
        self.training = True
        # What the checks of this module's inputs concluded, by kind of
        # input (see xpnn._checks): a training loop's steps are checked once.
        self._checks = CheckBoundary()

    def forward(self, x: Array, *, input_grad: bool = True) -> tuple[Array, Backward]:
        """Return the output and a closure that back-propagates through it.

        With ``input_grad=False`` the closure returns ``None`` instead of
        ``dx``, and need not compute it. The closure,
        ``backward(dy, *, retain_graph=False)``, may be called once unless
        ``retain_graph=True`` is passed (see the class).
        """
        raise NotImplementedError

    def __call__(self, x: Array) -> Array:
        """Apply the module and return ``y`` only, keeping nothing alive."""
        y, _ = self.forward(x)
        return y

    # -- structure -------------------------------------------------------

    def children(self) -> list[Module]:
        """Return the direct sub-modules, in order (none for a leaf)."""
        return []

    def modules(self) -> Iterator[Module]:
        """Yield this module and every module inside it, depth first, in order."""
        yield self
        for child in self.children():
            yield from child.modules()

    def keeps_shape(self) -> bool:
        """Tell whether the output always has the input's shape (activations, Dropout)."""
        return False

    @property
    def draws_on_host(self) -> bool:
        """Tell whether a forward pass now draws random masks on the host.

        True for a dropout (of ``Dropout``, between a recurrent layer's
        layers, on attention weights) in training mode with a probability
        above 0. A traced step (``jax.jit``, ``torch.compile``) would keep
        the first masks for every step, so tracing code refuses such a
        module. The module's own layer only; children answer for
        themselves.
        """
        return False

    def named_children(self) -> list[tuple[str, Module]]:
        """Return ``(name, module)`` for the direct sub-modules, in order.

        The names are the positions (``"0"``, ``"1"``, ...), the first part
        of the children's parameter names.
        """
        return [(str(index), child) for index, child in enumerate(self.children())]

    def parameter_slots(self) -> list[tuple[str, Module, str]]:
        """Return ``(name, owner, local_name)`` for every parameter, in order.

        ``owner.params[local_name]`` is the parameter called ``name`` and
        ``owner.grads[local_name]`` its gradient: one walk of the model gives
        optimizers both, and the place to write an update back.
        """
        slots: list[tuple[str, Module, str]] = []
        self._collect_slots("", slots)
        return slots

    def _collect_slots(self, prefix: str, slots: list[tuple[str, Module, str]]) -> None:
        # One list for the whole walk: optimizers walk the model every step.
        for local in self.params:
            slots.append((prefix + local, self, local))
        children = self.children()
        if children:  # leaves have none: no names to make
            # The default names are the positions: no second walk to make them.
            named = (
                enumerate(children)
                if type(self).named_children is Module.named_children
                else self.named_children()
            )
            for name, child in named:
                child._collect_slots(f"{prefix}{name}.", slots)

    def named_parameters(self) -> Iterator[tuple[str, Array]]:
        """Yield ``(name, array)`` for every parameter, children included."""
        for name, owner, local in self.parameter_slots():
            yield name, owner.params[local]

    def parameters(self) -> list[Array]:
        """Return the parameter arrays, in the order of ``named_parameters``."""
        return [owner.params[local] for _, owner, local in self.parameter_slots()]

    def named_gradients(self) -> Iterator[tuple[str, Array | None]]:
        """Yield ``(name, gradient or None)`` in the order of ``named_parameters``."""
        for name, owner, local in self.parameter_slots():
            yield name, owner.grads.get(local)

    def buffer_slots(self) -> list[tuple[str, Module, str]]:
        """Return ``(name, owner, local_name)`` for every buffer, in order.

        ``owner.buffers[local_name]`` is the buffer called ``name``
        (``"1.running_mean"``), as :meth:`parameter_slots` does for parameters.
        """
        slots: list[tuple[str, Module, str]] = []
        self._collect_buffer_slots("", slots)
        return slots

    def _collect_buffer_slots(self, prefix: str, slots: list[tuple[str, Module, str]]) -> None:
        for local in self.buffers:
            slots.append((prefix + local, self, local))
        for name, child in self.named_children():
            child._collect_buffer_slots(f"{prefix}{name}.", slots)

    def named_buffers(self) -> Iterator[tuple[str, Array]]:
        """Yield ``(name, array)`` for every buffer, children included.

        Buffers are the state that is no parameter: they get no gradient and
        no optimizer updates them (a BatchNorm's ``running_mean``,
        ``running_var`` and ``num_batches_tracked``). Layers replace them
        with new arrays as they change, never writing into them, so an
        array taken from here keeps its values. :meth:`to` moves them,
        :meth:`state_dict` and checkpoints hold them.
        """
        for name, owner, local in self.buffer_slots():
            yield name, owner.buffers[local]

    def set_buffer(self, name: str, value: Array) -> None:
        """Replace buffer ``name`` (a dotted path in containers).

        Checked as :meth:`set_parameter` checks: an array of the buffer's
        library, of its shape, and of its kind of dtype (floating for the
        running statistics, integer for ``num_batches_tracked``). Kept as
        it is (not copied).

        Raises
        ------
        KeyError
            If the model has no buffer ``name``.
        TypeError
            If ``value`` is no array, belongs to another library, or has
            another kind of dtype.
        ValueError
            If ``value`` has another shape.
        """
        module, leaf = self._buffer_owner(name)
        check_buffer_replacement(name, module.buffers[leaf], value)
        module.buffers[leaf] = value

    def _buffer_owner(self, name: str) -> tuple[Module, str]:
        for full, owner, local in self.buffer_slots():
            if full == name:
                return owner, local
        known = ", ".join(n for n, _ in self.named_buffers()) or "none"
        raise KeyError(f"{type(self).__name__} has no buffer {name!r}; it has {known}")

    def _owner(self, name: str) -> tuple[Module, str]:
        """Return the module that holds parameter ``name`` and its local name."""
        module: Module = self
        *path, leaf = name.split(".")
        for part in path:
            children = dict(module.named_children())
            if part not in children:
                raise KeyError(f"{type(self).__name__} has no parameter {name!r}")
            module = children[part]
        if leaf not in module.params:
            known = ", ".join(n for n, _ in self.named_parameters()) or "none"
            raise KeyError(f"{type(self).__name__} has no parameter {name!r}; it has {known}")
        return module, leaf

    def set_parameter(self, name: str, value: Array) -> None:
        """Replace parameter ``name`` (a dotted path in containers).

        The new array must be able to stand in for the old one: an array of
        the same library, with a floating dtype and the same shape (a size
        unknown until computed, as Dask's, counts as equal). Its dtype and
        device may differ; the layers check those against their inputs.
        A model that keeps what it was given here saves and loads.

        Parameters
        ----------
        name : str
            The parameter's name, as :meth:`named_parameters` gives it
            (``"0.weight"``).
        value : array
            The new parameter, kept as it is (not copied).

        Raises
        ------
        KeyError
            If the model has no parameter ``name``.
        TypeError
            If ``value`` is not an array, belongs to another library than
            the parameter it replaces (move the whole model with
            :meth:`to` instead), or has no floating dtype.
        ValueError
            If ``value`` has another shape; the message names the parameter,
            the shape expected and the one given.
        """
        module, leaf = self._owner(name)
        check_replacement(name, module.params[leaf], value)
        module.params[leaf] = value

    def set_gradient(self, name: str, value: Array | None) -> None:
        """Replace the accumulated gradient of parameter ``name``."""
        module, leaf = self._owner(name)
        module.grads[leaf] = value

    # -- state dicts, in PyTorch's names and layouts --------------------------

    def _local_state(self) -> dict[str, Array]:
        """Return this module's own state-dict entries, children excluded, in xpnn's layout.

        The parameters, then the buffers (a BatchNorm's running
        statistics), by default: PyTorch's order. A layer whose state is
        laid out otherwise overrides this and :meth:`_load_local_state`.
        """
        if not self.buffers:
            return self.params
        return {**self.params, **self.buffers}

    def _load_local_state(self, local: str, value: Array) -> None:
        """Store ``value`` as this module's entry ``local`` of :meth:`_local_state`.

        ``value`` is already checked and converted: a new array in xpnn's
        layout, with the namespace, device, dtype and shape of the entry.
        """
        if local in self.buffers:
            self.set_buffer(local, value)
        else:
            self.set_parameter(local, value)

    def _state_slots(self) -> list[tuple[str, Module, str, Array]]:
        """Return ``(name, owner, local_name, current)`` for every state-dict entry, in order."""
        slots: list[tuple[str, Module, str, Array]] = []
        self._collect_state("", slots)
        return slots

    def _collect_state(self, prefix: str, slots: list[tuple[str, Module, str, Array]]) -> None:
        for local, value in self._local_state().items():
            slots.append((prefix + local, self, local, value))
        for name, child in self.named_children():
            child._collect_state(f"{prefix}{name}.", slots)

    def state_dict(self) -> dict[str, Array]:
        """Return a copy of every parameter, by PyTorch's name and in PyTorch's layout.

        The names are those of :meth:`named_parameters`, which are those of
        the equal ``torch.nn`` model (``"0.weight"``, ``"0.bias"``, ...), and
        the layouts are PyTorch's: a :class:`~xpnn.Linear` weight comes as
        ``(out_features, in_features)``, the transpose of what the layer
        holds. So ``to_torch(model).state_dict()`` and ``model.state_dict()``
        have the same keys and shapes, and either loads into the other
        model.

        Returns
        -------
        dict of str to array
            In the order of :meth:`named_parameters`. Each value is a new
            array of the parameter's own namespace, device and dtype, sharing
            no memory with it (transposed ones laid out contiguously where the
            library allows): writing into it leaves the model as it was, and
            later training steps leave it as it was. (PyTorch's
            ``state_dict()`` returns views of the parameters instead; xpnn's
            layouts differ, and its optimizers write in place.) JAX may hand
            back a parameter itself where nothing is transposed: its arrays
            are immutable, so nobody can write through it.

        Examples
        --------
        >>> from xpnn import Linear, ReLU, Sequential
        >>> model = Sequential(Linear(3, 4, seed=0), ReLU(), Linear(4, 2, seed=1))
        >>> {name: value.shape for name, value in model.state_dict().items()}
        {'0.weight': (4, 3), '0.bias': (4,), '2.weight': (2, 4), '2.bias': (2,)}
        """
        return {
            name: _copy_of(value, transposed=local in owner._torch_transposed)
            for name, owner, local, value in self._state_slots()
        }

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True
    ) -> IncompatibleKeys:
        """Load parameters from a state dict in PyTorch's names and layouts.

        The inverse of :meth:`state_dict`; it also takes
        ``torch_model.state_dict()`` of the equal ``torch.nn`` model. Every
        value is checked before any parameter changes, so a load that raises
        leaves the model as it was. Each loaded parameter is replaced, as
        :meth:`set_parameter` replaces it, by a new array: arrays taken from
        the model before the load keep the old values, and the model keeps
        no reference to the values given (JAX's immutable arrays excepted,
        which nobody can write into).

        Parameters
        ----------
        state_dict : mapping of str to array
            Arrays of any library xpnn supports (NumPy, PyTorch tensors,
            CuPy, JAX, Dask, array_api_strict, ...), with real or complex
            floating dtypes, in PyTorch's layout (a Linear weight as
            ``(out_features, in_features)``). Each is converted to its
            parameter's namespace, device and dtype (float64 values load
            into a float32 model, rounded), through DLPack where the libraries
            speak it and through the host otherwise. Complex values load only
            into complex parameters.
        strict : bool, default True
            Require the keys to be exactly those of :meth:`state_dict`. With
            ``strict=False`` missing entries keep their values and unexpected
            ones are ignored; both are reported in the result.

        Returns
        -------
        IncompatibleKeys
            ``(missing_keys, unexpected_keys)``, a named tuple as PyTorch's
            (both lists empty after a strict load).

        Raises
        ------
        TypeError
            If ``state_dict`` is no mapping, if a value is no array (the
            message names its key), or has no floating dtype, or is complex
            for a real parameter.
        ValueError
            With ``strict=True``, if keys are missing or unexpected: one
            error lists both, as PyTorch's does. With any ``strict``, if
            values have other shapes than expected: one error lists every
            such key with the shape given and the shape expected, in
            PyTorch's layout.

        Examples
        --------
        >>> from xpnn import Linear, ReLU, Sequential
        >>> model = Sequential(Linear(3, 4, seed=0), ReLU(), Linear(4, 2, seed=1))
        >>> other = Sequential(Linear(3, 4, seed=2), ReLU(), Linear(4, 2, seed=3))
        >>> other.load_state_dict(model.state_dict())
        <All keys matched successfully>
        >>> bool((other[0].weight == model[0].weight).all())
        True
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                f"state_dict must be a mapping of names to arrays (a dict, as "
                f"model.state_dict() returns), got {describe_type(state_dict)}"
            )
        slots = self._state_slots()
        expected = {name for name, *_ in slots}
        missing = [name for name, *_ in slots if name not in state_dict]
        unexpected = [key for key in state_dict if key not in expected]
        heading = f"Error(s) in loading state_dict for {type(self).__name__}:"
        if strict and (missing or unexpected):
            lines = [heading]
            if missing:
                lines.append(f"\tMissing key(s) in state_dict: {', '.join(map(repr, missing))}.")
            if unexpected:
                lines.append(
                    f"\tUnexpected key(s) in state_dict: {', '.join(map(repr, unexpected))}."
                )
            lines.append(
                f"The model's keys are {', '.join(repr(name) for name, *_ in slots) or 'none'}; "
                "pass strict=False to load the matching keys and ignore the others."
            )
            raise ValueError("\n".join(lines))
        loads: list[tuple[Module, str, Array]] = []
        mismatches: list[str] = []
        for name, owner, local, current in slots:
            if name not in state_dict:
                continue
            loaded = _loaded(
                name, state_dict[name], current, transposed=local in owner._torch_transposed
            )
            if isinstance(loaded, str):
                mismatches.append(loaded)
            else:
                loads.append((owner, local, loaded))
        if mismatches:
            raise ValueError("\n\t".join([heading, *mismatches]))
        for owner, local, value in loads:
            owner._load_local_state(local, value)
        return IncompatibleKeys(missing, unexpected)

    def reset_checks(self) -> None:
        """Forget which kinds of input this module and those inside it checked.

        The next input of every kind is checked again. Code that runs the
        model on stand-in arrays (a tracer) calls it once the trace ends, so
        that nothing derived from a stand-in outlives it.
        """
        for module in self.modules():
            module._checks.reset()

    def zero_grad(self) -> None:
        """Forget accumulated gradients (they become ``None`` again)."""
        grads = self.grads
        for name in grads:
            grads[name] = None
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

    # -- moving ----------------------------------------------------------

    def to(
        self: M,
        xp: object | None = None,
        device: Device | str | None = None,
        dtype: DType | str | None = None,
        *,
        optimizer: _MovableOptimizer | None = None,
    ) -> M:
        """Move the parameters to another library, device or dtype; return self.

        Gradients move with their parameters, and so does the state of
        ``optimizer``. Like ``torch.nn.Module.to``, the module itself is
        changed and returned. Every new array is made before any is stored,
        so a failed move leaves the module and the optimizer as they were.
        Moved arrays share no memory with the old ones: arrays a caller
        still holds are never changed by later in-place updates.

        Parameters
        ----------
        xp : module, optional
            The target library (``numpy``, ``torch``, ``jax.numpy``, ...).
            Each parameter's own library when omitted.
        device : device or str, optional
            The target device. When omitted: the parameter's device if the
            library stays, else the target library's default device.
        dtype : dtype or str, optional
            A floating dtype of the target library, or a standard name such
            as ``"float64"``. When omitted each parameter keeps its dtype
            (by name: ``float32`` stays ``float32`` across libraries).
        optimizer : xpnn.optim.Optimizer, optional
            An optimizer of this module whose buffers (momentum, moments)
            move with their parameters.

        Returns
        -------
        Module
            ``self``, moved.

        Raises
        ------
        TypeError
            For an ``xp`` that is no array library, or a ``dtype`` that is not
            floating.
        ValueError
            If the target device does not support a dtype, if ``dtype`` would
            turn a complex parameter real or a real one complex, or if
            ``optimizer`` optimises another model.

        Examples
        --------
        >>> import numpy as np
        >>> import array_api_strict as xps
        >>> from xpnn import Linear
        >>> layer = Linear(3, 2, seed=0).to(xps, device="device1", dtype="float32")
        >>> layer.weight.device, layer.weight.dtype
        (array_api_strict.Device('device1'), array_api_strict.float32)
        """
        if optimizer is not None and getattr(optimizer, "model", None) is not self:
            raise ValueError(
                "optimizer must be an optimizer of this module (its .model), got one of "
                "another model; move that model with its own optimizer"
            )
        target = resolve_namespace(xp) if xp is not None else None
        buffers = optimizer.buffers() if optimizer is not None else {}
        moved: list[tuple[Module, str, Array, Array | None]] = []
        moved_buffers: dict[str, dict[str, Array]] = {}
        for name, owner, local in self.parameter_slots():
            param = owner.params[local]
            where = _target(name, param, target, device, dtype)
            grad = owner.grads.get(local)
            moved.append(
                (
                    owner,
                    local,
                    transfer(param, **where),
                    None if grad is None else transfer(grad, **where),
                )
            )
            if buffers.get(name):
                moved_buffers[name] = {
                    key: transfer(buffer, **where) for key, buffer in buffers[name].items()
                }
        moved_own_buffers = [
            (
                owner,
                local,
                transfer(
                    owner.buffers[local],
                    **_buffer_target(name, owner.buffers[local], target, device, dtype),
                ),
            )
            for name, owner, local in self.buffer_slots()
        ]
        for owner, local, param, grad in moved:
            owner.params[local] = param
            owner.grads[local] = grad
        for owner, local, buffer in moved_own_buffers:
            owner.buffers[local] = buffer
        if optimizer is not None:
            optimizer.replace_buffers(moved_buffers)
        return self

    # -- structure, for checkpoints ---------------------------------------

    def config(self) -> dict[str, Any]:
        """Describe the module's structure, without its arrays.

        Returns
        -------
        dict
            ``{"type": class name, "settings": {...}, "children": [...]}``,
            made of JSON types only. :func:`xpnn.layers.from_config` builds
            the module back from it.
        """
        return {
            "type": type(self).__name__,
            "settings": self._settings(),
            "children": [child.config() for child in self.children()],
        }

    # -- display ---------------------------------------------------------

    def _settings(self) -> dict[str, object]:
        """Return the constructor settings shown by ``repr``."""
        return {}

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self._settings().items())
        return f"{type(self).__name__}({settings})"


class Placed(Module):
    """A module that lives where one of its parameters lives.

    ``xp``, ``device`` and ``dtype`` are read from the parameter named by
    the class attribute ``_placed_by`` (``"weight"`` unless a layer names
    another), so they follow :meth:`Module.to` and assignments.
    """

    _placed_by: ClassVar[str] = "weight"

    @property
    def xp(self) -> Namespace:
        """The namespace of the parameters (it follows :meth:`to`)."""
        return array_namespace(weight=self.params[self._placed_by])

    @property
    def device(self) -> Device:
        """Where the parameters live (JAX reports no default device: this is where they landed)."""
        return device_of(self.params[self._placed_by])

    @property
    def dtype(self) -> DType:
        """The dtype of the parameters."""
        return self.params[self._placed_by].dtype


def device_repr(where: object) -> str:
    """Show a device the short way users type it."""
    text = str(where)
    return repr(text) if isinstance(where, str) else text


def _target(
    name: str,
    param: Array,
    target: Namespace | None,
    device: Device | str | None,
    dtype: DType | str | None,
) -> dict[str, Any]:
    """Resolve where parameter ``name`` goes: ``{"xp", "device", "dtype"}``."""
    source = array_namespace(**{f"parameter {name!r}": param})
    xp = source if target is None else target
    if device is not None:
        where = resolve_device(xp, device)
    elif xp is source:
        where = device_of(param)
    else:
        where = xp.__array_namespace_info__().default_device()
    # Before the dtype: a device that cannot be used at all is no dtype's fault.
    check_device(xp, where)
    current = dtype_name(source, param.dtype)
    try:
        new_dtype = resolve_dtype(xp, current if dtype is None else dtype, where)
    except ValueError as exc:
        if dtype is not None:
            raise
        if current not in xp.__array_namespace_info__().dtypes():
            # The library lacks the dtype altogether: the message says how to get it.
            raise ValueError(f"parameter {name!r} is {current}, but {exc}") from None
        raise ValueError(
            f"parameter {name!r} is {current}, which the target device does not support ({exc}); "
            f"pass dtype= as well, for example dtype='float32'"
        ) from None
    was_complex = source.isdtype(param.dtype, "complex floating")
    if xp.isdtype(new_dtype, "complex floating") != was_complex:
        raise ValueError(
            f"dtype {dtype_name(xp, new_dtype)!r} would turn the {current} parameter {name!r} "
            f"{'real' if was_complex else 'complex'}; pass a "
            f"{'complex' if was_complex else 'real'} floating dtype"
        )
    return {"xp": xp, "device": where, "dtype": new_dtype}


def _buffer_target(
    name: str,
    buffer: Array,
    target: Namespace | None,
    device: Device | str | None,
    dtype: DType | str | None,
) -> dict[str, Any]:
    """Resolve where buffer ``name`` goes; an integer buffer stays integer."""
    source = array_namespace(**{f"buffer {name!r}": buffer})
    if source.isdtype(buffer.dtype, ("real floating", "complex floating")):
        return _target(name, buffer, target, device, dtype)
    xp = source if target is None else target
    if device is not None:
        where = resolve_device(xp, device)
    elif xp is source:
        where = device_of(buffer)
    else:
        where = xp.__array_namespace_info__().default_device()
    check_device(xp, where)
    info = xp.__array_namespace_info__()
    current = dtype_name(source, buffer.dtype)
    kept = info.dtypes(device=where).get(current)
    new_dtype = kept if kept is not None else info.default_dtypes(device=where)["integral"]
    return {"xp": xp, "device": where, "dtype": new_dtype}


def check_buffer_replacement(name: str, current: Array, value: Array) -> None:
    """Raise unless ``value`` may replace the buffer ``current`` called ``name``.

    An array of ``current``'s library, of its shape, floating where it is
    floating and integer where it is integer. Nothing is computed.
    """
    label = f"buffer {name!r}"
    if not is_array(value):
        raise TypeError(f"{label} must be an array, got {describe_type(value)}")
    xp = array_namespace(**{label: value})
    expected = array_namespace(**{label: current})
    if xp is not expected:
        raise TypeError(
            f"{label} must be an array of {library_name(expected)}, like the buffer it "
            f"replaces, got an array of {library_name(xp)}; convert it first, or move the "
            f"whole module to another library with module.to(xp=...)"
        )
    kind = "real floating" if xp.isdtype(current.dtype, "real floating") else "integral"
    if not xp.isdtype(value.dtype, kind):
        raise TypeError(
            f"{label} must have a {kind} dtype, like the buffer it replaces "
            f"({current.dtype}), got {value.dtype}"
        )
    shape, given = tuple(current.shape), tuple(value.shape)
    if len(given) != len(shape) or any(
        a != b and not (is_unknown(a) or is_unknown(b)) for a, b in zip(shape, given, strict=True)
    ):
        raise ValueError(
            f"{label} must have shape {shape_str(shape)}, the shape of the buffer it "
            f"replaces, got shape {shape_str(given)}"
        )


def _torch_shape(shape: tuple[Any, ...], transposed: bool) -> tuple[Any, ...]:
    return (*shape[:-2], shape[-1], shape[-2]) if transposed else shape


def _copy_of(value: Array, *, transposed: bool) -> Array:
    """Return a new array holding ``value`` (its matrix transpose if ``transposed``)."""
    xp = array_namespace(value=value)
    view = xp.matrix_transpose(value) if transposed else value
    shape = tuple(view.shape)
    if has_unknown(shape):
        return xp.asarray(view, copy=True)
    # reshape(copy=True) lays the copy out contiguously (NumPy, PyTorch), where
    # asarray(copy=True) keeps a transpose's strides: safetensors refuses
    # non-contiguous torch tensors.
    return xp.reshape(view, shape, copy=True)


def _loaded(name: str, value: Any, current: Array, *, transposed: bool) -> Array | str:
    """Return ``value`` ready to replace ``current``, or the line saying why its shape is wrong.

    The result is a new array in xpnn's layout with ``current``'s namespace,
    device and dtype. Raises ``TypeError`` for what no shape could fix.
    """
    label = f"state_dict[{name!r}]"
    if not is_array(value):
        raise TypeError(
            f"{label} must be an array (numpy, torch, cupy, jax, dask, array_api_strict, ...), "
            f"got {describe_type(value)}; wrap data with xp.asarray(...) first"
        )
    source = array_namespace(**{label: value})
    xp = array_namespace(**{f"parameter {name!r}": current})
    if xp.isdtype(current.dtype, "integral"):  # a counter buffer (num_batches_tracked)
        if not source.isdtype(value.dtype, "integral"):
            raise TypeError(
                f"{label} must have an integer dtype, like the buffer it loads into "
                f"({current.dtype}), got {value.dtype}"
            )
        if tuple(value.shape) != tuple(current.shape):
            return (
                f"size mismatch for {name!r}: the state dict has shape "
                f"{shape_str(tuple(value.shape))}, the model expects "
                f"{shape_str(tuple(current.shape))}."
            )
        moved = transfer(value, xp=xp, device=device_of(current), dtype=current.dtype)
        return _copy_of(moved, transposed=False) if moved is value else moved
    if not source.isdtype(value.dtype, ("real floating", "complex floating")):
        raise TypeError(
            f"{label} must have a real or complex floating dtype, like the parameter it "
            f"loads into, got {value.dtype}"
        )
    if source.isdtype(value.dtype, "complex floating") and not xp.isdtype(
        current.dtype, "complex floating"
    ):
        raise TypeError(
            f"{label} is complex ({value.dtype}), but the parameter {name!r} is real "
            f"({current.dtype}): loading would drop the imaginary parts; move the model to a "
            f"complex dtype first, model.to(dtype='complex128')"
        )
    shape, given = _torch_shape(tuple(current.shape), transposed), tuple(value.shape)
    if len(given) != len(shape) or any(
        a != b and not (is_unknown(a) or is_unknown(b)) for a, b in zip(shape, given, strict=True)
    ):
        line = (
            f"size mismatch for {name!r}: the state dict has shape {shape_str(given)}, the "
            f"model expects {shape_str(shape)}"
        )
        if transposed and given == tuple(current.shape) and given != shape:
            line += (
                " (PyTorch's layout; the value given has the layout xpnn's layer holds, "
                "its transpose: state dicts hold PyTorch's, as model.state_dict() gives them)"
            )
        return line + "."
    moved = transfer(value, xp=xp, device=device_of(current), dtype=current.dtype)
    if transposed or moved is value:  # a transpose, or the caller's own array: copy
        moved = _copy_of(moved, transposed=transposed)
    check_replacement(name, current, moved)
    return moved


def check_replacement(name: str, current: Array, value: Array) -> None:
    """Raise unless ``value`` may replace the parameter ``current`` called ``name``.

    What :meth:`Module.set_parameter` and the layers' property setters check:
    an array of ``current``'s library, of a floating dtype, with its shape
    (sizes unknown until computed count as equal). Nothing is computed, so
    Dask arrays and JAX tracers pass as they are.

    Raises
    ------
    TypeError
        For something that is no array, an array of another library, or a
        dtype that is not floating.
    ValueError
        For another shape.
    """
    label = f"parameter {name!r}"
    xp = array_namespace(**{label: value})
    expected = array_namespace(**{label: current})
    if xp is not expected:
        raise TypeError(
            f"{label} must be an array of {library_name(expected)}, like the parameter it "
            f"replaces, got an array of {library_name(xp)}; convert it first, or move the "
            f"whole module to another library with module.to(xp=...)"
        )
    if not xp.isdtype(value.dtype, ("real floating", "complex floating")):
        raise TypeError(
            f"{label} must have a real or complex floating dtype, got {value.dtype}; "
            f"convert it first, for example with xp.astype(value, xp.float32)"
        )
    shape, given = tuple(current.shape), tuple(value.shape)
    if len(given) != len(shape) or any(
        a != b and not (is_unknown(a) or is_unknown(b)) for a, b in zip(shape, given, strict=True)
    ):
        raise ValueError(
            f"{label} must have shape {shape_str(shape)}, the shape of the parameter it "
            f"replaces, got shape {shape_str(given)}; build a new layer for other sizes"
        )


def forward_on_data(module: Module, x: Array) -> tuple[Array, Backward]:
    """Return ``module.forward(x, input_grad=False)``: ``x`` is data, whose gradient nobody needs.

    Training loops call this: the first layer then skips computing ``dx``
    (for a Linear layer, a product as large as its forward pass). A module
    whose ``forward`` takes no ``input_grad`` (a user's own) gets a plain
    ``forward(x)``, and its ``dx`` is computed and dropped.

    Parameters
    ----------
    module : Module
        The model.
    x : array
        A batch of inputs.

    Returns
    -------
    y, backward
        As :meth:`Module.forward` returns them; ``backward(dy)`` accumulates
        the parameter gradients, and its return value is to be ignored.
    """
    if _takes_input_grad(type(module)):
        return module.forward(x, input_grad=False)
    return module.forward(x)


_TAKES_INPUT_GRAD: dict[type[Module], bool] = {}


def _takes_input_grad(kind: type[Module]) -> bool:
    takes = _TAKES_INPUT_GRAD.get(kind)
    if takes is None:
        takes = _TAKES_INPUT_GRAD[kind] = "input_grad" in inspect.signature(kind.forward).parameters
    return takes

"""``Optimizer``: the base class of xpnn's optimizers.

An optimizer holds a model, not copies of its arrays: every :meth:`~Optimizer.step`
reads the parameters and gradients by name from the model, so it sees
whatever the model holds at that moment (after ``set_parameter``, a load, a
move to another device, ...). Optimizer state (step counts and buffers such
as momentum) is kept per parameter name.

Where updates are written
-------------------------
Every update of an optimizer, to a parameter or to one of its buffers, has
the affine form ``x <- scale * x + increment``, with ``scale`` a Python float
and ``increment`` an array computed from the gradient and the state. Each
formula is written once, in that form, and one helper, :func:`scale_add`,
decides per array how the new value is stored:

- arrays that may be changed in place (:func:`xpnn._compat.is_writeable`:
  NumPy, PyTorch, CuPy, array_api_strict) are updated with the standard's
  in-place operators, ``x *= scale`` and ``x += increment``. The parameter
  keeps its identity (``layer.weight is w`` after a step) and no copy of it
  is made; only the increment is a temporary.
- immutable arrays (JAX), read-only arrays (a NumPy array with
  ``writeable=False``) and lazy arrays (Dask) get a new array,
  ``scale * x + increment``. A parameter is then written back into the
  module that holds it (what ``model.set_parameter(name, new)`` does, without
  its checks: the new array has the old one's library, dtype and shape), and
  a buffer is replaced in the state.

Both branches round identically (``x * scale`` first, then the sum), so the
choice changes no result. Plain SGD (no momentum, weight decay or maximize),
whose update is ``param + (-lr) * grad``, is written by ``step`` itself with
the same two branches, without a call per parameter. The arithmetic stays in each parameter's dtype:
gradients are cast to it and hyper-parameters are Python floats, which the
standard's operators combine with an array without changing its dtype. No
step converts an array to a Python scalar, so lazy arrays are never computed
behind the caller's back; step counts are Python ints.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from .._checks import CheckBoundary, Checked, check_exact_keys, check_known_shape
from .._compat import (
    Array,
    Namespace,
    array_namespace,
    is_lazy,
    is_writeable,
    library_name,
)
from .._compat import device as device_of
from ..layers import Module

__all__ = ["Optimizer", "scale_add"]

_FLOATING = ("real floating", "complex floating")


def scale_add(x: Array, scale: float, increment: Array) -> Array:
    """Return ``scale * x + increment``, written into ``x`` where allowed.

    Parameters
    ----------
    x : array
        The array to update.
    scale : float
        Factor applied to ``x`` first; ``1.0`` skips the multiplication.
    increment : array
        Added after scaling; same dtype as ``x`` and broadcastable to it.

    Returns
    -------
    array
        ``x`` itself, updated in place, when ``x`` is writeable
        (:func:`xpnn._compat.is_writeable`); otherwise a new array, for the
        caller to store.
    """
    if is_writeable(x):
        if scale != 1.0:
            x *= scale
        x += increment
        return x
    return (x * scale if scale != 1.0 else x) + increment


# -- hyper-parameter checks shared by the optimizers ------------------------


def check_real(name: str, value: object) -> float:
    """Return ``value`` as a float, or raise ``TypeError`` if it is no real number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a real number (a Python int or float), got "
            f"{type(value).__name__} {value!r}"
        )
    return float(value)


def check_at_least(name: str, value: object, low: float) -> float:
    """Return ``value`` as a float if it is a finite number ``>= low``; raise otherwise.

    Raises
    ------
    TypeError
        If ``value`` is not a real number.
    ValueError
        If ``value`` is below ``low``, ``nan``, or infinite: an infinite
        hyper-parameter turns every parameter it touches into ``inf`` or
        ``nan`` at the first step.
    """
    number = check_real(name, value)
    if not number >= low:  # also catches nan
        raise ValueError(f"{name} must be >= {low:g}, got {number!r}")
    if math.isinf(number):
        raise ValueError(
            f"{name} must be a finite number >= {low:g}, got {number!r}: it would turn the "
            "parameters into inf or nan at the first step; pass a finite value"
        )
    return number


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is a bool, or raise ``TypeError``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value


def _describe(value: object) -> str:
    if value is None:
        return "None"
    try:
        xp = array_namespace(value=value)
    except TypeError:
        return type(value).__name__
    return f"an array of {library_name(xp)}"


def _snapshot(x: Array | None) -> Array | None:
    """Return a copy of a buffer that later in-place steps cannot change."""
    if x is None or is_lazy(x):  # JAX and Dask arrays are immutable values
        return x
    xp = array_namespace(buffer=x)
    return xp.asarray(x, copy=True, device=device_of(x))


def _not_a_module(optimizer: str, model: object) -> str:
    """Return the message for an optimizer given ``model`` that is no Module."""
    message = f"model must be an xpnn Module (Linear, Sequential, ...), got {type(model).__name__}"
    if isinstance(model, (list, tuple, Iterator)):
        # torch.optim's habit: torch.optim.SGD(net.parameters(), lr=0.1).
        message += (
            f": xpnn optimizers take the model itself, e.g. {optimizer}(model, lr=0.1), not "
            f"model.parameters(); they read each parameter and its gradient from the model by "
            f"name at every step"
        )
    return message


class Optimizer:
    """Base class of xpnn's optimizers.

    Parameters
    ----------
    model : Module
        The model whose parameters are optimised: a layer such as
        :class:`~xpnn.Linear`, or a container such as ``Sequential``. The
        optimizer keeps a reference to it and reads parameters and gradients
        by name at each step.
    **hyperparameters
        The optimizer's settings, checked by the subclass.

    Attributes
    ----------
    model : Module
        The model being optimised.

    Notes
    -----
    Subclasses define ``buffer_names``, ``_check_hyperparameters`` and
    ``_update``; the base class does the bookkeeping: skipping parameters
    without gradient, checking each gradient against its parameter,
    counting steps, and the state dict.
    """

    #: Names of the per-parameter buffers, in state-dict order.
    buffer_names: ClassVar[tuple[str, ...]] = ()
    #: Hyper-parameters added after the first release, with the value that
    #: gives the old behaviour: a state dict (or checkpoint) saved before they
    #: existed loads with these values.
    _added_hyperparameters: ClassVar[tuple[tuple[str, object], ...]] = ()

    def __init__(self, model: Module, **hyperparameters: object) -> None:
        if not isinstance(model, Module):
            raise TypeError(_not_a_module(type(self).__name__, model))
        self._hyper: dict[str, Any] = self._check_hyperparameters(hyperparameters)
        self.model = model
        self._state: dict[str, dict[str, Any]] = {}
        # What the checks of the gradients concluded, by kind (xpnn._checks).
        self._checks = CheckBoundary()
        self._scalars: dict[tuple[object, object], dict[float, Array]] = {}

    # -- subclass hooks --------------------------------------------------

    @classmethod
    def _check_hyperparameters(cls, values: Mapping[str, object]) -> dict[str, Any]:
        """Return the checked hyper-parameters; raise TypeError/ValueError."""
        raise NotImplementedError

    def _required_buffers(self, hyper: Mapping[str, Any], step: int) -> tuple[str, ...]:
        """Return the buffers that exist after ``step`` steps under ``hyper``."""
        return self.buffer_names if step > 0 else ()

    def _update(
        self, xp: Namespace, param: Array, grad: Array, entry: dict[str, Any], step: int
    ) -> tuple[float, Array]:
        """Compute step number ``step`` of one parameter: ``(scale, increment)``.

        The new parameter is ``scale * param + increment``, which :meth:`step`
        writes (see the module notes). ``grad`` has the dtype, shape and
        device of ``param``. Buffers are read from and stored into ``entry``.
        """
        raise NotImplementedError

    def _plain_factor(self) -> float | None:
        """Return ``c`` if every update is ``param + c * grad`` under the current settings.

        Such an update needs no state but the step count (plain SGD):
        :meth:`step` then writes it itself, without a call of :meth:`_update`
        per parameter. ``None`` (the default) means :meth:`_update` decides.
        """
        return None

    def _scalar(self, xp: Namespace, value: float, like: Array) -> Array:
        """Return ``value`` as a 0-d array of ``like``'s dtype and device.

        The standard's operators cast a Python scalar to the array's dtype,
        so multiplying by this array gives the same result; but PyTorch
        wraps a Python scalar into a new tensor at every operation, which
        costs about 1 µs, as much as the product of a 64 x 64 matrix. The
        arrays are kept between steps (a few per learning rate).
        """
        scalar = self._scalars_of(like).get(value)
        return self._new_scalar(xp, value, like) if scalar is None else scalar

    def _scalars_of(self, like: Array) -> dict[float, Array]:
        """Return the 0-d arrays kept for ``like``'s dtype and device, by value."""
        try:
            where = like.device  # the standard's attribute: no call on every step
        except Exception:  # Dask arrays have none, and a JAX tracer may refuse it
            where = device_of(like)
        key = (like.dtype, where)
        kept = self._scalars.get(key)
        if kept is None:
            kept = self._scalars[key] = {}
        return kept

    def _new_scalar(self, xp: Namespace, value: float, like: Array) -> Array:
        kept = self._scalars_of(like)
        if len(kept) >= 64:  # a learning-rate schedule: forget old rates
            kept.clear()
        scalar = kept[value] = xp.asarray(value, dtype=like.dtype, device=device_of(like))
        return scalar

    # -- public API ------------------------------------------------------

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """A copy of the hyper-parameters, by name."""
        return dict(self._hyper)

    @property
    def lr(self) -> float:
        """The learning rate; may be set (to a number >= 0) between steps, for schedules."""
        return float(self._hyper["lr"])

    @lr.setter
    def lr(self, value: float) -> None:
        self._hyper["lr"] = check_at_least("lr", value, 0.0)

    def step(self) -> None:
        """Update every parameter whose gradient is not ``None``.

        Gradients are checked against their parameters (library, floating
        dtype, shape, device) before any parameter changes, so a bad
        gradient leaves the whole model as it was. A gradient of another
        real dtype is cast to the parameter's dtype.

        Raises
        ------
        TypeError
            If a gradient is not an array of the parameter's library, or has
            a dtype that cannot be cast to the parameter's.
        ValueError
            If a gradient's shape or device differs from its parameter's, or
            if the optimizer's buffers no longer match a parameter the model
            replaced (another shape, dtype or device).
        """
        live = []
        arrays: list[Array] = []
        for slot in self.model.parameter_slots():
            grads = slot[1].grads
            grad = grads.get(slot[2])
            if grad is not None:
                live.append(slot)
                arrays += (slot[1].params[slot[2]], grad)
        if not live:
            return
        # The checks depend only on the kinds of parameter and gradient (type,
        # dtype, shape, device) and on which parameters have buffers, so a
        # training loop that feeds the same kinds every step runs them once.
        state = self._state
        # Between resets the state only gains entries (here, below): its size
        # tells which parameters have some, for the buffers' checks.
        checked = self._checks.check(
            self._check_step, *arrays, slots=tuple(live), state_size=len(state)
        )
        update = self._update
        # Plain SGD: every update is param + factor * grad, written here.
        factor = self._plain_factor()
        index = 0
        # Per parameter: its namespace, whether its gradient needs a cast, and
        # the 0-d arrays kept for its dtype and device, all decided by the
        # kinds the check saw.
        for (name, owner, local), (xp, cast, kept) in zip(live, checked.constants, strict=True):
            param, grad = arrays[index], arrays[index + 1]
            index += 2
            if cast:
                grad = xp.astype(grad, param.dtype)
            entry = state.get(name)
            if entry is None:
                entry = state[name] = {"step": 0, **dict.fromkeys(self.buffer_names)}
            step = entry["step"] + 1
            if factor is None:
                scale, increment = update(xp, param, grad, entry, step)
                new = scale_add(param, scale, increment)
                if new is not param:
                    owner.params[local] = new
            else:
                scalar = kept.get(factor)
                if scalar is None:
                    scalar = self._new_scalar(xp, factor, param)
                # scale_add(param, 1.0, grad * scalar), without the call.
                if is_writeable(param):
                    param += grad * scalar
                else:
                    owner.params[local] = param + grad * scalar
            entry["step"] = step

    def _check_step(
        self, *arrays: Array, slots: tuple[tuple[str, Module, str], ...], state_size: int
    ) -> Checked:
        """Check each gradient against its parameter, and existing buffers too.

        ``arrays`` alternate parameter and gradient, those of ``slots``;
        ``constants`` of the result holds ``(namespace, cast, scalars)`` for
        each parameter: ``cast`` tells whether its gradient has another
        dtype, ``scalars`` are the 0-d arrays kept for its dtype and device.
        """
        plan = []
        for index, (name, _, _) in enumerate(slots):
            param, grad = arrays[2 * index], arrays[2 * index + 1]
            xp = self._check_gradient(name, param, grad)
            plan.append((xp, grad.dtype != param.dtype, self._scalars_of(param)))
            if name in self._state:
                self._check_buffers(name, param, self._state[name])
        return Checked(xp=plan[0][0], constants=tuple(plan))

    def zero_grad(self) -> None:
        """Forget the model's accumulated gradients (``model.zero_grad()``)."""
        self.model.zero_grad()

    def state_dict(self) -> dict[str, Any]:
        """Return the optimizer's settings and state, to save or to load later.

        Returns
        -------
        dict
            ``{"optimizer": name, "hyperparameters": {...}, "state": {...}}``.
            ``"state"`` maps every parameter name of the model to
            ``{"step": int, <buffer>: array or None, ...}``; buffers are
            ``None`` until the parameter's first update (and, for
            :class:`SGD`, whenever momentum is 0). Buffers are arrays of the
            parameter's library, on its device, with its shape and dtype;
            they are snapshots, which later steps do not change.
        """
        state: dict[str, dict[str, Any]] = {}
        for name, _ in self.model.named_parameters():
            entry = self._state.get(name)
            if entry is None:
                state[name] = {"step": 0, **dict.fromkeys(self.buffer_names)}
            else:
                state[name] = {"step": entry["step"]}
                state[name].update((b, _snapshot(entry[b])) for b in self.buffer_names)
        return {
            "optimizer": type(self).__name__,
            "hyperparameters": dict(self._hyper),
            "state": state,
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore settings and state saved by :meth:`state_dict`.

        Everything is checked before anything changes, so a failed load
        leaves the optimizer as it was. Buffers are copied in.

        Parameters
        ----------
        state_dict : mapping
            As returned by :meth:`state_dict` of an optimizer of the same
            class, for a model with the same parameter names.

        Raises
        ------
        ValueError
            Naming what does not fit: the optimizer class, unknown or
            missing keys, hyper-parameters, unknown or missing parameter
            names, step counts, or a buffer that is not an array of the
            model's library (buffers of another library are not converted),
            or whose shape, dtype or device differs from its parameter's.
        """
        where = "state_dict"
        top = _mapping(where, state_dict)
        check_exact_keys(where, top, ("optimizer", "hyperparameters", "state"))
        kind = type(self).__name__
        if top["optimizer"] != kind:
            raise ValueError(
                f"{where}['optimizer'] must be {kind!r}, the class of this optimizer, got "
                f"{top['optimizer']!r}"
            )
        hyper_in = _mapping(f"{where}['hyperparameters']", top["hyperparameters"])
        missing = {k: v for k, v in self._added_hyperparameters if k not in hyper_in}
        if missing:
            hyper_in = {**hyper_in, **missing}
        check_exact_keys(f"{where}['hyperparameters']", hyper_in, tuple(self._hyper))
        try:
            hyper = self._check_hyperparameters(hyper_in)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}['hyperparameters']: {exc}") from None
        entries = _mapping(f"{where}['state']", top["state"])
        params = dict(self.model.named_parameters())
        check_exact_keys(f"{where}['state']", entries, tuple(params), what="parameter names")
        new_state: dict[str, dict[str, Any]] = {}
        for name, param in params.items():
            new_state[name] = self._checked_entry(
                f"{where}['state'][{name!r}]", entries[name], param, hyper
            )
        self._hyper = hyper
        self._state = new_state
        self.reset_checks()

    # -- state, for code that moves, persists, saves or threads it ---------

    def buffers(self) -> dict[str, dict[str, Array]]:
        """Return the buffers that exist, by parameter name then buffer name.

        The live arrays, not copies (unlike :meth:`state_dict`): what
        :meth:`xpnn.Module.to`, Dask training and :func:`xpnn.save` move,
        persist or write. Parameters without state, and buffers that are
        still ``None``, are left out.
        """
        return {
            name: {b: entry[b] for b in self.buffer_names if entry.get(b) is not None}
            for name, entry in self._state.items()
        }

    def replace_buffers(self, buffers: Mapping[str, Mapping[str, Array]]) -> None:
        """Store new arrays for existing buffers; step counts stay.

        For moved or persisted copies of :meth:`buffers` (same names, same
        shapes); nothing is checked here, the next :meth:`step` checks them
        against their parameters.
        """
        for name, moved in buffers.items():
            self._state[name].update(moved)
        self.reset_checks()

    def step_counts(self) -> dict[str, int]:
        """Return how many updates each parameter of the model has had, by name."""
        return {
            name: int(self._state[name]["step"]) if name in self._state else 0
            for name, _ in self.model.named_parameters()
        }

    def per_parameter_state(self) -> dict[str, dict[str, Any]]:
        """Return ``{name: {"step": count, <buffer>: array or None}}``, unchecked.

        New dictionaries holding the live arrays, for tracing code that
        threads the state through a pure function (:class:`xpnn.interop.step.TrainStep`).
        Parameters that were never updated are absent.
        """
        return {name: dict(entry) for name, entry in self._state.items()}

    def replace_state(self, state: Mapping[str, Mapping[str, Any]]) -> None:
        """Replace the per-parameter state with ``state``, unchecked.

        The counterpart of :meth:`per_parameter_state`: step counts may be
        0-d arrays there (a traced step takes the count as an input). Use
        :meth:`load_state_dict` for state from elsewhere, which checks it.
        """
        self._state = {name: dict(entry) for name, entry in state.items()}
        self.reset_checks()

    def reset_checks(self) -> None:
        """Forget which kinds of gradient were checked, and the cached scalars.

        The next :meth:`step` checks every gradient again. Tracing code calls
        it once a trace ends, so that no stand-in array outlives it.
        """
        self._checks.reset()
        self._scalars.clear()

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={value!r}" for key, value in self._hyper.items())
        return f"{type(self).__name__}({settings})"

    # -- checks ----------------------------------------------------------

    def _check_gradient(self, name: str, param: Array, grad: Array) -> Namespace:
        xp = array_namespace(**{f"parameter {name!r}": param, f"gradient of {name!r}": grad})
        if not xp.isdtype(param.dtype, _FLOATING):
            raise TypeError(f"parameter {name!r} must have a floating dtype, got {param.dtype}")
        complex_param = xp.isdtype(param.dtype, "complex floating")
        allowed = _FLOATING if complex_param else "real floating"
        if not xp.isdtype(grad.dtype, allowed):
            raise TypeError(
                f"gradient of {name!r} must have a "
                f"{'floating' if complex_param else 'real floating'} dtype to update a "
                f"{param.dtype} parameter, got {grad.dtype}"
            )
        check_known_shape(f"parameter {name!r}", param, "the optimizer")
        check_known_shape(f"gradient of {name!r}", grad, "the optimizer")
        if tuple(grad.shape) != tuple(param.shape):
            raise ValueError(
                f"gradient of {name!r} must have the parameter's shape {tuple(param.shape)}, "
                f"got {tuple(grad.shape)}"
            )
        if device_of(grad) != device_of(param):
            raise ValueError(
                f"gradient of {name!r} is on device {device_of(grad)!r} but the parameter is "
                f"on device {device_of(param)!r}; move the gradient to the parameter's device"
            )
        return xp

    def _check_buffers(self, name: str, param: Array, entry: dict[str, Any]) -> None:
        for buffer_name in self.buffer_names:
            buffer = entry[buffer_name]
            if buffer is None:
                continue
            problem = _mismatch(buffer, param)
            if problem:
                raise ValueError(
                    f"{buffer_name} of parameter {name!r} no longer fits the parameter the "
                    f"model holds ({problem}); load a state dict for the new parameters or "
                    f"create a new optimizer"
                )

    def _checked_entry(
        self, where: str, entry: object, param: Array, hyper: Mapping[str, Any]
    ) -> dict[str, Any]:
        entry = _mapping(where, entry)
        check_exact_keys(where, entry, ("step", *self.buffer_names))
        raw_step = entry["step"]
        try:
            if isinstance(raw_step, bool):
                raise TypeError
            step = operator.index(raw_step)
        except TypeError:
            raise ValueError(
                f"{where}['step'] must be an int, got {type(raw_step).__name__} {raw_step!r}"
            ) from None
        if step < 0:
            raise ValueError(f"{where}['step'] must be >= 0, got {step}")
        required = self._required_buffers(hyper, step)
        xp = array_namespace(parameter=param)
        checked: dict[str, Any] = {"step": step}
        for buffer_name in self.buffer_names:
            buffer = entry[buffer_name]
            label = f"{where}[{buffer_name!r}]"
            if buffer_name not in required:
                if buffer is not None:
                    raise ValueError(
                        f"{label} must be None at step {step} with these hyperparameters, "
                        f"got {_describe(buffer)}"
                    )
                checked[buffer_name] = None
                continue
            if buffer is None:
                raise ValueError(f"{label} must be an array at step {step}, got None")
            try:
                same_library = array_namespace(buffer=buffer) is xp
            except TypeError:
                same_library = False
            if not same_library:
                raise ValueError(
                    f"{label} must be an array of the model's library, {library_name(xp)}, got "
                    f"{_describe(buffer)}; buffers of another library are not converted, "
                    f"convert it first with xp.asarray(...)"
                )
            problem = _mismatch(buffer, param)
            if problem:
                raise ValueError(f"{label} must match its parameter: {problem}")
            checked[buffer_name] = _snapshot(buffer)
        return checked


def _mismatch(buffer: Array, param: Array) -> str:
    """Describe how a buffer differs from its parameter, or return ``''``."""
    if tuple(buffer.shape) != tuple(param.shape):
        return f"expected shape {tuple(param.shape)}, got {tuple(buffer.shape)}"
    if buffer.dtype != param.dtype:
        return f"expected dtype {param.dtype}, got {buffer.dtype}"
    if device_of(buffer) != device_of(param):
        return f"expected device {device_of(param)!r}, got {device_of(buffer)!r}"
    return ""


def _mapping(where: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be a dict, got {type(value).__name__}")
    return value

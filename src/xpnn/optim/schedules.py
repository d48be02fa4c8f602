"""Learning-rate schedules, step for step those of ``torch.optim.lr_scheduler``.

A schedule drives any xpnn optimizer through its public ``lr`` property: it
reads the learning rate the optimizer has and writes the next one. Like
torch, constructing a schedule sets the first learning rate (a step 0), and
:meth:`LRScheduler.step` is called after each ``optimizer.step()`` (or each
epoch). Each schedule computes its values with the same formulas as its torch
namesake, recursive where torch is recursive, so the learning rates agree to
rounding.

The learning rate a schedule starts from (torch's ``group["initial_lr"]``)
is remembered per optimizer: the first schedule built on an optimizer records
the optimizer's learning rate at that moment, and later schedules on the same
optimizer start from it too (:class:`OneCycleLR` sets it to
``max_lr / div_factor``, as torch does). :class:`SequentialLR` relies on it.
"""

from __future__ import annotations

import math
import numbers
import weakref
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from .._checks import check_exact_keys
from ._base import Optimizer, check_real

__all__ = [
    "CosineAnnealingLR",
    "ExponentialLR",
    "LRScheduler",
    "LinearLR",
    "MultiStepLR",
    "OneCycleLR",
    "SequentialLR",
    "StepLR",
]

# torch keeps group["initial_lr"] in the optimizer; xpnn optimizers have no
# param groups, so the schedules keep it here, per optimizer.
_initial_lrs: weakref.WeakKeyDictionary[Optimizer, float] = weakref.WeakKeyDictionary()


def _check_int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def _check_finite(name: str, value: object, low: float, high: float = math.inf) -> float:
    number = check_real(name, value)
    if not (low <= number <= high) or math.isinf(number):
        bounds = f"in [{low:g}, {high:g}]" if math.isfinite(high) else f">= {low:g}"
        raise ValueError(f"{name} must be a finite number {bounds}, got {number!r}")
    return number


def _check_optimizer(optimizer: object) -> Optimizer:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            f"optimizer must be an xpnn optimizer (SGD, Adam, ...), got {type(optimizer).__name__}"
        )
    return optimizer


class LRScheduler:
    """Base class of the learning-rate schedules.

    Subclasses set their settings in ``_configure`` (which checks them) and
    compute the next learning rate in ``get_lr``, from ``self.last_epoch``,
    ``self.base_lr`` and the optimizer's current ``lr``; a closed form, used
    where torch uses one (:class:`SequentialLR` at a milestone), goes in
    ``_closed_form_lr``.

    Attributes
    ----------
    optimizer : Optimizer
        The optimizer whose ``lr`` is set.
    base_lr : float
        The learning rate the schedule starts from.
    last_epoch : int
        How many times :meth:`step` was called (0 right after construction).
    """

    #: Names of the settings, saved in the state dict.
    settings: ClassVar[tuple[str, ...]] = ()

    optimizer: Optimizer
    base_lr: float
    last_epoch: int
    _step_count: int
    _last_lr: float
    _is_initial: bool = False
    #: Checks the settings and stores them (each subclass defines it).
    _configure: Callable[..., None]

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = _check_optimizer(optimizer)
        self.base_lr = _initial_lrs.setdefault(optimizer, optimizer.lr)
        self.last_epoch = -1
        self._initial_step()

    def _initial_step(self) -> None:
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> float:
        """Return the learning rate for ``self.last_epoch`` (already advanced)."""
        raise NotImplementedError

    def _closed_form_lr(self) -> float | None:
        return None

    def step(self) -> None:
        """Advance the schedule by one step and set the optimizer's learning rate.

        Call it after ``optimizer.step()``.
        """
        self._step_count += 1
        self._update_lr(None)

    def _update_lr(self, epoch: int | None) -> None:
        if epoch is None:
            self.last_epoch += 1
            value = self.get_lr()
        else:
            self.last_epoch = epoch
            closed = self._closed_form_lr()
            value = self.get_lr() if closed is None else closed
        self.optimizer.lr = value
        self._last_lr = self.optimizer.lr

    def get_last_lr(self) -> list[float]:
        """Return the last learning rate set, as a one-element list (as torch's)."""
        return [self._last_lr]

    def state_dict(self) -> dict[str, Any]:
        """Return the schedule's settings and position as plain Python data."""
        return {
            "scheduler": type(self).__name__,
            **{name: _plain(getattr(self, name)) for name in self.settings},
            "base_lr": self.base_lr,
            "last_epoch": self.last_epoch,
            "step_count": self._step_count,
            "last_lr": self._last_lr,
        }

    def state_keys(self) -> tuple[str, ...]:
        """Return the keys of :meth:`state_dict`, which :meth:`load_state_dict` requires."""
        return ("scheduler", *self.settings, "base_lr", "last_epoch", "step_count", "last_lr")

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; the schedule then continues from there.

        The optimizer's learning rate is set to the restored last learning
        rate as well (torch leaves that to the optimizer's own state dict),
        so that the next :meth:`step` gives what the saved schedule would
        have given. A failed load leaves the schedule, the schedules inside
        a :class:`SequentialLR`, and the optimizer's learning rate as they
        were.

        Raises
        ------
        ValueError
            If ``state_dict`` is no dict, comes from another schedule class,
            or has missing or unknown keys.
        TypeError, ValueError
            If a setting or a counter is not valid.
        """
        saved = self._save_attributes()
        initial_lr = _initial_lrs.get(self.optimizer)
        try:
            self._load(state_dict)
        except BaseException:
            for scheduler, attributes in saved:
                vars(scheduler).clear()
                vars(scheduler).update(attributes)
            if initial_lr is not None:
                _initial_lrs[self.optimizer] = initial_lr
            raise
        self.optimizer.lr = self._last_lr

    def _load(self, state_dict: Mapping[str, Any]) -> None:
        self._restore(self._check_state(state_dict))

    def _save_attributes(self) -> list[tuple[LRScheduler, dict[str, Any]]]:
        """Return what a load changes: the attributes of this schedule (and those inside)."""
        return [(self, dict(vars(self)))]

    def _check_state(self, state_dict: object) -> Mapping[str, Any]:
        if not isinstance(state_dict, Mapping):
            raise ValueError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        name = type(self).__name__
        if state_dict.get("scheduler") != name:
            raise ValueError(
                f"state_dict is of scheduler {state_dict.get('scheduler')!r}, expected {name!r}"
            )
        check_exact_keys(f"state_dict of {name}", state_dict, self.state_keys())
        return state_dict

    def _restore(self, values: Mapping[str, Any]) -> None:
        self._configure(**{name: values[name] for name in self.settings})
        base_lr = _check_finite("base_lr", values["base_lr"], 0.0)
        last_lr = _check_finite("last_lr", values["last_lr"], 0.0)
        last_epoch = _check_int("last_epoch", values["last_epoch"], -1)
        step_count = _check_int("step_count", values["step_count"], 0)
        self.base_lr, self._last_lr = base_lr, last_lr
        self.last_epoch, self._step_count = last_epoch, step_count
        _initial_lrs[self.optimizer] = base_lr

    def __repr__(self) -> str:
        settings = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.settings)
        return f"{type(self).__name__}({settings}, last_epoch={self.last_epoch})"


def _plain(value: object) -> object:
    if isinstance(value, Counter):
        return sorted(value.elements())
    if isinstance(value, tuple):
        return list(value)
    return value


class StepLR(LRScheduler):
    r"""Multiply the learning rate by ``gamma`` every ``step_size`` steps.

    :math:`\eta_t = \eta_0 \gamma^{\lfloor t / s \rfloor}`, computed as torch does,
    by multiplying the current rate at each multiple of ``step_size``.

    Parameters
    ----------
    optimizer : Optimizer
        Any xpnn optimizer.
    step_size : int
        Period of the decay, at least 1.
    gamma : float, default 0.1
        Factor of the decay, a finite number >= 0.
    """

    settings = ("step_size", "gamma")

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        self._configure(step_size=step_size, gamma=gamma)
        super().__init__(optimizer)

    def _configure(self, *, step_size: object, gamma: object) -> None:
        self.step_size = _check_int("step_size", step_size, 1)
        self.gamma = _check_finite("gamma", gamma, 0.0)

    def get_lr(self) -> float:  # noqa: D102
        lr = self.optimizer.lr
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return lr
        return lr * self.gamma

    def _closed_form_lr(self) -> float:
        return self.base_lr * self.gamma ** (self.last_epoch // self.step_size)


class MultiStepLR(LRScheduler):
    r"""Multiply the learning rate by ``gamma`` at each milestone.

    :math:`\eta_t = \eta_0 \gamma^{n(t)}`, with :math:`n(t)` the number of
    milestones :math:`\le t` (a milestone given twice counts twice).

    Parameters
    ----------
    optimizer : Optimizer
        Any xpnn optimizer.
    milestones : sequence of int
        Steps (>= 1) at which the rate decays.
    gamma : float, default 0.1
        Factor of the decay, a finite number >= 0.
    """

    settings = ("milestones", "gamma")
    milestones: Counter[int]

    def __init__(self, optimizer: Optimizer, milestones: Sequence[int], gamma: float = 0.1) -> None:
        self._configure(milestones=milestones, gamma=gamma)
        super().__init__(optimizer)

    def _configure(self, *, milestones: object, gamma: object) -> None:
        if isinstance(milestones, str | bytes | Mapping) or not isinstance(
            milestones, Sequence | Counter
        ):
            raise TypeError(f"milestones must be a list of ints, got {type(milestones).__name__}")
        values = milestones.elements() if isinstance(milestones, Counter) else milestones
        self.milestones = Counter(_check_int("milestone", m, 1) for m in values)
        self.gamma = _check_finite("gamma", gamma, 0.0)

    def get_lr(self) -> float:  # noqa: D102
        lr = self.optimizer.lr
        if self.last_epoch not in self.milestones:
            return lr
        return lr * self.gamma ** self.milestones[self.last_epoch]

    def _closed_form_lr(self) -> float:
        milestones = sorted(self.milestones.elements())
        return self.base_lr * self.gamma ** bisect_right(milestones, self.last_epoch)


class ExponentialLR(LRScheduler):
    r"""Multiply the learning rate by ``gamma`` at every step: :math:`\eta_t = \eta_0 \gamma^t`.

    Parameters
    ----------
    optimizer : Optimizer
        Any xpnn optimizer.
    gamma : float
        Factor of the decay, a finite number >= 0.
    """

    settings = ("gamma",)

    def __init__(self, optimizer: Optimizer, gamma: float) -> None:
        self._configure(gamma=gamma)
        super().__init__(optimizer)

    def _configure(self, *, gamma: object) -> None:
        self.gamma = _check_finite("gamma", gamma, 0.0)

    def get_lr(self) -> float:  # noqa: D102
        lr = self.optimizer.lr
        if self._is_initial:
            return lr
        return lr * self.gamma

    def _closed_form_lr(self) -> float:
        return self.base_lr * self.gamma**self.last_epoch


class CosineAnnealingLR(LRScheduler):
    r"""Anneal the learning rate along a cosine from its start to ``eta_min`` in ``T_max`` steps.

    .. math::

        \eta_t = \eta_{min} + \tfrac12 (\eta_0 - \eta_{min})
                 \left(1 + \cos\frac{\pi t}{T_{max}}\right)

    computed recursively, as torch does; past ``T_max`` the rate rises
    again along the same cosine.

    Parameters
    ----------
    optimizer : Optimizer
        Any xpnn optimizer.
    T_max : int
        Half period, at least 1.
    eta_min : float, default 0.0
        Smallest learning rate, a finite number >= 0.
    """

    settings = ("T_max", "eta_min")

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        self._configure(T_max=T_max, eta_min=eta_min)
        super().__init__(optimizer)

    def _configure(self, *, T_max: object, eta_min: object) -> None:
        self.T_max = _check_int("T_max", T_max, 1)
        self.eta_min = _check_finite("eta_min", eta_min, 0.0)

    def get_lr(self) -> float:  # noqa: D102
        lr, t, t_max, eta_min = self.optimizer.lr, self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return lr
        if self._step_count == 1 and t > 0:
            return eta_min + (self.base_lr - eta_min) * (1 + math.cos(t * math.pi / t_max)) / 2
        if (t - 1 - t_max) % (2 * t_max) == 0:
            return lr + (self.base_lr - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
        return (1 + math.cos(math.pi * t / t_max)) / (1 + math.cos(math.pi * (t - 1) / t_max)) * (
            lr - eta_min
        ) + eta_min

    def _closed_form_lr(self) -> float:
        t = self.last_epoch
        return (
            self.eta_min
            + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2
        )


class LinearLR(LRScheduler):
    r"""Scale the learning rate linearly from ``start_factor`` to ``end_factor`` of its start.

    :math:`\eta_t = \eta_0 \left(f_s + (f_e - f_s) \min(t, T) / T\right)`,
    computed recursively, as torch does; constant after ``total_iters``.

    Parameters
    ----------
    optimizer : Optimizer
        Any xpnn optimizer.
    start_factor : float, default 1/3
        Factor at step 0, in (0, 1].
    end_factor : float, default 1.0
        Factor from step ``total_iters`` on, in [0, 1].
    total_iters : int, default 5
        Number of steps of the ramp, at least 1.
    """

    settings = ("start_factor", "end_factor", "total_iters")

    def __init__(
        self,
        optimizer: Optimizer,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
    ) -> None:
        self._configure(start_factor=start_factor, end_factor=end_factor, total_iters=total_iters)
        super().__init__(optimizer)

    def _configure(self, *, start_factor: object, end_factor: object, total_iters: object) -> None:
        start = _check_finite("start_factor", start_factor, 0.0, 1.0)
        if start == 0:
            raise ValueError("start_factor must be in (0, 1], got 0.0")
        self.start_factor = start
        self.end_factor = _check_finite("end_factor", end_factor, 0.0, 1.0)
        self.total_iters = _check_int("total_iters", total_iters, 1)

    def get_lr(self) -> float:  # noqa: D102
        lr = self.optimizer.lr
        if self.last_epoch == 0:
            return lr * self.start_factor
        if self._is_initial or self.last_epoch > self.total_iters:
            return lr
        return lr * (
            1.0
            + (self.end_factor - self.start_factor)
            / (
                self.total_iters * self.start_factor
                + (self.last_epoch - 1) * (self.end_factor - self.start_factor)
            )
        )

    def _closed_form_lr(self) -> float:
        return self.base_lr * (
            self.start_factor
            + (self.end_factor - self.start_factor)
            * min(self.total_iters, self.last_epoch)
            / self.total_iters
        )


class OneCycleLR(LRScheduler):
    r"""The 1cycle policy: warm up to ``max_lr``, then anneal far below the start.

    The rate starts at :math:`\eta_{init} = \eta_{max} / d` (``div_factor``),
    rises to :math:`\eta_{max}` at step :math:`p T - 1` (``pct_start``,
    ``total_steps``), then falls to :math:`\eta_{init} / f`
    (``final_div_factor``) at step :math:`T - 1`; each phase interpolates
    from ``a`` to ``b`` with ``pct`` going from 0 to 1, by
    :math:`b + (a - b)(1 + \cos \pi\,pct)/2` (``'cos'``) or
    :math:`a + (b - a)\,pct` (``'linear'``). With ``three_phase=True`` the
    rate comes back down to :math:`\eta_{init}` at step :math:`2 p T - 2`
    before the last phase.

    Unlike torch, which also cycles the momentum (SGD's ``momentum``, Adam's
    ``beta1``) unless ``cycle_momentum=False``, only the learning rate is
    scheduled: xpnn optimizers expose only ``lr`` to be set between steps.
    The values equal torch's with ``cycle_momentum=False``.

    Parameters
    ----------
    optimizer : Optimizer
        Any xpnn optimizer; its ``lr`` is replaced by ``max_lr / div_factor``.
    max_lr : float
        Peak learning rate, a finite number >= 0.
    total_steps : int
        Number of steps of the cycle, at least 1; stepping beyond it raises.
    pct_start : float, default 0.3
        Fraction of the cycle spent rising, in [0, 1].
    anneal_strategy : {'cos', 'linear'}, default 'cos'
    div_factor : float, default 25.0
        ``max_lr / div_factor`` is the starting rate; finite, > 0.
    final_div_factor : float, default 1e4
        The last rate is the starting rate over this; finite, > 0.
    three_phase : bool, default False
    """

    settings = (
        "max_lr",
        "total_steps",
        "pct_start",
        "anneal_strategy",
        "div_factor",
        "final_div_factor",
        "three_phase",
    )

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float,
        total_steps: int,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
    ) -> None:
        _check_optimizer(optimizer)
        self._configure(
            max_lr=max_lr,
            total_steps=total_steps,
            pct_start=pct_start,
            anneal_strategy=anneal_strategy,
            div_factor=div_factor,
            final_div_factor=final_div_factor,
            three_phase=three_phase,
        )
        _initial_lrs[optimizer] = self.max_lr / self.div_factor
        super().__init__(optimizer)

    def _configure(
        self,
        *,
        max_lr: object,
        total_steps: object,
        pct_start: object,
        anneal_strategy: object,
        div_factor: object,
        final_div_factor: object,
        three_phase: object,
    ) -> None:
        self.max_lr = _check_finite("max_lr", max_lr, 0.0)
        self.total_steps = _check_int("total_steps", total_steps, 1)
        self.pct_start = _check_finite("pct_start", pct_start, 0.0, 1.0)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.anneal_strategy = str(anneal_strategy)
        self.div_factor = _check_finite("div_factor", div_factor, 0.0)
        self.final_div_factor = _check_finite("final_div_factor", final_div_factor, 0.0)
        for name in ("div_factor", "final_div_factor"):
            if getattr(self, name) == 0:
                raise ValueError(f"{name} must be a finite number > 0, got 0.0")
        if not isinstance(three_phase, bool):
            raise TypeError(
                f"three_phase must be a bool, got {type(three_phase).__name__} {three_phase!r}"
            )
        self.three_phase = three_phase

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            cos_out = math.cos(math.pi * pct) + 1
            return end + (start - end) / 2.0 * cos_out
        return (end - start) * pct + start

    def get_lr(self) -> float:  # noqa: D102
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(
                f"Tried to step {step} times; OneCycleLR was made for total_steps="
                f"{self.total_steps}"
            )
        initial = self.max_lr / self.div_factor
        low = initial / self.final_div_factor
        total, pct_start = self.total_steps, self.pct_start
        phases: list[tuple[float, float, float]]
        if self.three_phase:
            phases = [
                (float(pct_start * total) - 1, initial, self.max_lr),
                (float(2 * pct_start * total) - 2, self.max_lr, initial),
                (total - 1, initial, low),
            ]
        else:
            phases = [
                (float(pct_start * total) - 1, initial, self.max_lr),
                (total - 1, self.max_lr, low),
            ]
        start_step = 0.0
        for index, (end_step, start_lr, end_lr) in enumerate(phases):
            if step <= end_step or index == len(phases) - 1:
                pct = (step - start_step) / (end_step - start_step)
                return self._anneal(start_lr, end_lr, pct)
            start_step = end_step
        raise AssertionError("unreachable")  # pragma: no cover


class SequentialLR(LRScheduler):
    """Run schedules one after another, switching at the milestones.

    ``schedulers[i]`` drives the optimizer from step ``milestones[i - 1]``
    on; at a milestone the next schedule starts from its step 0 (its closed
    form at 0, from the optimizer's initial rate), as in torch.

    Parameters
    ----------
    optimizer : Optimizer
        The optimizer every schedule drives.
    schedulers : sequence of LRScheduler
        At least one, all built on ``optimizer``.
    milestones : sequence of int
        ``len(schedulers) - 1`` increasing steps, each at least 1.
    """

    settings = ("milestones",)

    def __init__(
        self,
        optimizer: Optimizer,
        schedulers: Sequence[LRScheduler],
        milestones: Sequence[int],
    ) -> None:
        self.optimizer = _check_optimizer(optimizer)
        if not isinstance(schedulers, Sequence):
            raise TypeError(
                f"schedulers must be a list of schedules, got {type(schedulers).__name__}"
            )
        if not schedulers:
            raise ValueError("SequentialLR needs at least one scheduler, got none")
        for index, scheduler in enumerate(schedulers):
            if not isinstance(scheduler, LRScheduler):
                raise TypeError(
                    f"schedulers[{index}] must be an xpnn LRScheduler, got "
                    f"{type(scheduler).__name__}"
                )
            if scheduler.optimizer is not optimizer:
                raise ValueError(
                    f"schedulers[{index}] ({type(scheduler).__name__}) drives another optimizer; "
                    "every schedule must be built on the optimizer given to SequentialLR"
                )
        self._schedulers = list(schedulers)
        self._configure(milestones=milestones)
        if len(self.milestones) != len(schedulers) - 1:
            raise ValueError(
                f"SequentialLR needs one milestone fewer than schedulers: got "
                f"{len(schedulers)} schedulers and {len(self.milestones)} milestones"
            )
        self.last_epoch = 0
        self.base_lr = _initial_lrs.setdefault(optimizer, optimizer.lr)
        self._step_count = 0
        # Back to the initial rate, and undo the step 0 of every schedule.
        optimizer.lr = self.base_lr
        self._undo(self)
        index = bisect_right(self.milestones, 0)
        self._schedulers[index]._initial_step()
        self._last_lr = self._schedulers[index].get_last_lr()[0]

    def _configure(self, *, milestones: object) -> None:
        if isinstance(milestones, str | bytes) or not isinstance(milestones, Sequence):
            raise TypeError(f"milestones must be a list of ints, got {type(milestones).__name__}")
        values = [_check_int("milestone", m, 1) for m in milestones]
        if values != sorted(values):
            raise ValueError(f"milestones must be increasing, got {values}")
        self.milestones = values

    @staticmethod
    def _undo(scheduler: LRScheduler) -> None:
        if isinstance(scheduler, SequentialLR):
            for inner in scheduler._schedulers:
                SequentialLR._undo(inner)
        else:
            scheduler.last_epoch -= 1

    def step(self) -> None:
        """Advance by one step: the active schedule steps, or starts at a milestone."""
        self.last_epoch += 1
        index = bisect_right(self.milestones, self.last_epoch)
        scheduler = self._schedulers[index]
        if index > 0 and self.milestones[index - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()[0]

    @property
    def schedulers(self) -> tuple[LRScheduler, ...]:
        """The schedules run one after another, in order."""
        return tuple(self._schedulers)

    def state_dict(self) -> dict[str, Any]:
        """Return the position and the state dicts of the schedules, as plain data."""
        return {
            **super().state_dict(),
            "schedulers": [scheduler.state_dict() for scheduler in self._schedulers],
        }

    def state_keys(self) -> tuple[str, ...]:
        """Return the keys of :meth:`state_dict`: a schedule's, and ``"schedulers"``."""
        return (*super().state_keys(), "schedulers")

    def _load(self, state_dict: Mapping[str, Any]) -> None:
        values = self._check_state(state_dict)
        inner = values["schedulers"]
        if (
            isinstance(inner, str | bytes)
            or not isinstance(inner, Sequence)
            or len(inner) != len(self._schedulers)
        ):
            raise ValueError(
                f"state_dict['schedulers'] must be a list of {len(self._schedulers)} state dicts"
            )
        for scheduler, saved in zip(self._schedulers, inner, strict=True):
            scheduler._load(saved)
        self._restore(values)

    def _save_attributes(self) -> list[tuple[LRScheduler, dict[str, Any]]]:
        saved = super()._save_attributes()
        for scheduler in self._schedulers:
            saved.extend(scheduler._save_attributes())
        return saved

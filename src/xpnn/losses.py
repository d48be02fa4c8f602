"""Loss objects for training loops, over :mod:`xpnn.functional.losses`.

A loss object holds its ``reduction`` and nothing else: calling it,
``loss_fn(input, target)``, returns ``(loss, grad)`` from the functional
form, and ``grad`` is what the model's backward pass takes next.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from ._checks import CheckBoundary, Checked
from ._compat import Array, is_array
from .functional.cross_entropy import check_options
from .functional.losses import (
    KL_REDUCTIONS,
    REDUCTIONS,
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    check_bool_option,
    check_cross_entropy,
    check_elementwise_loss,
    check_nll_loss,
    check_reduction,
    check_scale_option,
    huber_loss,
    kl_div,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
    softmax_cross_entropy,
)

__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "HuberLoss",
    "KLDivLoss",
    "L1Loss",
    "LabelLoss",
    "Loss",
    "MSELoss",
    "NLLLoss",
    "SmoothL1Loss",
]


class Loss:
    """Base class of the loss objects: read-only settings, and checks once per kind.

    A loss object holds its settings (``reduction``, and options such as
    ``ignore_index``), the arrays it was given (class weights), and a check
    boundary. Calling it, ``loss_fn(input, target)``, checks the inputs once
    per kind (``xpnn._checks``) and returns ``(loss, grad)`` from its function
    of :mod:`xpnn.functional.losses`.

    Subclasses name that function and its check (``_function``, ``_check``)
    and pass their options and arrays to ``__init__``; ``_check`` receives
    the input, the target, the arrays that are not ``None`` (in the order of
    ``arrays``) and the options as keywords.
    """

    __slots__ = ("_arrays", "_checks", "_held", "_keywords", "_options")

    _function: Callable[..., tuple[Array, Array]]
    #: The reductions this loss accepts.
    _reductions: tuple[str, ...] = REDUCTIONS

    def __init__(
        self,
        reduction: str = "mean",
        *,
        options: Mapping[str, Any] | None = None,
        arrays: Mapping[str, Array | None] | None = None,
    ) -> None:
        self._options: dict[str, Any] = {
            "reduction": check_reduction(reduction, self._reductions),
            **(options or {}),
        }
        self._arrays: dict[str, Array | None] = dict(arrays or {})
        for name, value in self._arrays.items():
            if value is not None and not is_array(value):
                raise TypeError(
                    f"{name} must be an array (of the library and on the device of the "
                    f"inputs), got {type(value).__name__}"
                )
        # Only the arrays given enter the check's key: a None would send
        # every call down the slow path of the key function.
        self._held = tuple(value for value in self._arrays.values() if value is not None)
        self._keywords = {**self._options, **self._arrays}
        self._checks = CheckBoundary()

    @property
    def reduction(self) -> str:
        """How the terms are combined: ``'mean'``, ``'sum'`` or ``'none'``."""
        return str(self._options["reduction"])

    def _check(self, input: Array, target: Array, *held: Array, **options: Any) -> Checked:
        raise NotImplementedError

    def _check_settings(self, input: Array, target: Array, *held: Array) -> Checked:
        # The settings are fixed when the loss is made: they need no place in
        # the key that the check boundary builds at every call.
        return self._check(input, target, *held, **self._options)

    def _given(self, held: tuple[Array, ...]) -> dict[str, Array | None]:
        """Map the arrays a check received back to their names (absent ones are None)."""
        given = iter(held)
        return {
            name: None if value is None else next(given) for name, value in self._arrays.items()
        }

    def __call__(self, input: Array, target: Array) -> tuple[Array, Array]:
        """Return ``(loss, grad)``: the loss and its gradient for ``input``.

        ``grad`` is the gradient of the sum of the returned loss terms (see
        :mod:`xpnn.functional.losses`): of the loss itself unless the
        reduction is ``'none'``.
        """
        checked = self._checks.check(self._check_settings, input, target, *self._held)
        return type(self)._function(input, target, checked=checked, **self._keywords)

    def reset_checks(self) -> None:
        """Forget which kinds of input were checked; the next call checks again."""
        self._checks.reset()

    def settings(self) -> dict[str, Any]:
        """Return the settings by keyword, arrays included: ``type(self)(**settings)`` is a twin."""
        return {**self._options, **self._arrays}

    def __repr__(self) -> str:
        parts = [f"reduction={self._options['reduction']!r}"]
        defaults = self._defaults()
        for name, value in self._options.items():
            if name != "reduction" and defaults.get(name, object()) != value:
                parts.append(f"{name}={value!r}")
        for name, value in self._arrays.items():
            if value is not None:
                parts.append(f"{name}=<array of shape {tuple(value.shape)}>")
        return f"{type(self).__name__}({', '.join(parts)})"

    @classmethod
    def _defaults(cls) -> dict[str, Any]:
        return {
            name: parameter.default
            for name, parameter in inspect.signature(cls.__init__).parameters.items()
            if parameter.default is not inspect.Parameter.empty
            and name not in ("options", "arrays")  # the base class's, not settings
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Loss) or type(other) is not type(self):
            return NotImplemented
        return self._options == other._options and all(
            mine is theirs
            for mine, theirs in zip(self._arrays.values(), other._arrays.values(), strict=True)
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(self._options.items())))


class MSELoss(Loss):
    """Mean squared error, :func:`xpnn.functional.losses.mse_loss`.

    Parameters
    ----------
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        Average the squared errors over every element, add them up, or
        return them, one per element.

    Raises
    ------
    ValueError
        For an unknown ``reduction``.

    Notes
    -----
    ``loss_fn(input, target)`` takes predictions and targets of one shape,
    both real floating, and returns ``(loss, dinput)`` with
    ``dinput = 2 * (input - target) / N`` (``N = 1`` unless the reduction
    is ``'mean'``).

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.losses import MSELoss
    >>> loss_fn = MSELoss()
    >>> loss_fn
    MSELoss(reduction='mean')
    >>> loss, grad = loss_fn(np.array([1.0, 2.0]), np.array([0.0, 0.0]))
    >>> loss, grad
    (array(2.5), array([1., 2.]))
    """

    __slots__ = ()

    _function = staticmethod(mse_loss)

    def _check(self, input: Array, target: Array, *held: Array, **options: Any) -> Checked:
        return check_elementwise_loss(input, target, "mse_loss")


class LabelLoss(Loss):
    """Base class of the losses that take class labels: :class:`CrossEntropyLoss`, :class:`NLLLoss`.

    Besides the settings of :class:`Loss`, they hold ``check_labels``: whether
    each call reads back whether every label is a class index or
    ``ignore_index`` (eager arrays only). A compiled step that checked its
    labels eagerly before its body
    (:func:`xpnn.functional.losses.check_label_values`) turns it off
    for the body's length (:class:`xpnn.interop.step.TrainStep`).
    """

    __slots__ = ("check_labels",)

    def __init__(
        self,
        reduction: str = "mean",
        *,
        options: Mapping[str, Any],
        arrays: Mapping[str, Array | None],
    ) -> None:
        super().__init__(reduction, options=options, arrays=arrays)
        self.check_labels = True

    @property
    def weight(self) -> Array | None:
        """The weight of each class, shape (C,), or None."""
        return self._arrays["weight"]

    @property
    def ignore_index(self) -> int:
        """The label whose rows are ignored."""
        return int(self._options["ignore_index"])

    @property
    def axis(self) -> int:
        """The class axis of inputs with two or more dimensions (-1: the last; PyTorch's is 1)."""
        return int(self._options["axis"])

    def __call__(self, input: Array, target: Array) -> tuple[Array, Array]:
        """Return ``(loss, grad)``: the loss and its gradient for ``input``."""
        checked = self._checks.check(self._check_settings, input, target, *self._held)
        return type(self)._function(
            input, target, checked=checked, check_labels=self.check_labels, **self._keywords
        )


class CrossEntropyLoss(LabelLoss):
    """Softmax cross-entropy, with PyTorch's options.

    The functional form is :func:`xpnn.functional.losses.softmax_cross_entropy`.

    Parameters
    ----------
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        The (weighted) mean of the rows' losses, their sum, or the rows'
        losses themselves.
    weight : array of shape (C,), optional
        A weight per class, in the namespace and on the device of the inputs.
    ignore_index : int, default -100
        Rows with this label add nothing, and get a zero gradient.
    label_smoothing : float, default 0.0
        In ``[0, 1]``: how much of the uniform distribution the target mixes in.
    axis : int, default -1
        **The class axis.** xpnn puts the classes last; PyTorch puts them on
        axis 1 for inputs of two or more dimensions, which is ``axis=1``
        here. The two agree for 1-D and 2-D inputs. ``from_torch`` of an
        ``nn.CrossEntropyLoss`` gives ``axis=1``.

    Raises
    ------
    TypeError
        For a ``weight`` that is not an array, or options of the wrong type.
    ValueError
        For an unknown ``reduction``, or ``label_smoothing`` outside ``[0, 1]``.

    Notes
    -----
    ``loss_fn(input, target)`` takes logits with the classes on ``axis``, and
    either integer labels (the shape of ``input`` without the class axis,
    values in ``[0, C)`` or ``ignore_index``) or class probabilities (the
    shape of ``input``). It returns ``(loss, dinput)``; with no option set,
    ``dinput = (softmax(input) - onehot(target)) / N``, ``N`` the number of
    rows.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.losses import CrossEntropyLoss
    >>> loss_fn = CrossEntropyLoss(reduction="sum")
    >>> loss_fn
    CrossEntropyLoss(reduction='sum')
    >>> loss, grad = loss_fn(np.zeros((3, 4)), np.array([0, 1, 3]))
    >>> loss  # 3 log(4)
    array(4.15888308)
    >>> grad[0]
    array([-0.75,  0.25,  0.25,  0.25])
    >>> CrossEntropyLoss(label_smoothing=0.1, axis=1)
    CrossEntropyLoss(reduction='mean', label_smoothing=0.1, axis=1)
    """

    __slots__ = ()

    _function = staticmethod(softmax_cross_entropy)

    def __init__(
        self,
        reduction: str = "mean",
        *,
        weight: Array | None = None,
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
        axis: int = -1,
    ) -> None:
        ignore_index, label_smoothing, axis = check_options(
            ignore_index=ignore_index, label_smoothing=label_smoothing, axis=axis
        )
        super().__init__(
            reduction,
            options={
                "ignore_index": ignore_index,
                "label_smoothing": label_smoothing,
                "axis": axis,
            },
            arrays={"weight": weight},
        )

    @property
    def label_smoothing(self) -> float:
        """How much of the uniform distribution the target mixes in."""
        return float(self._options["label_smoothing"])

    def _check(self, input: Array, target: Array, *held: Array, **options: Any) -> Checked:
        return check_cross_entropy(input, target, self._given(held)["weight"], **options)


class NLLLoss(LabelLoss):
    """Negative log-likelihood of log-probabilities, as ``torch.nn.NLLLoss``.

    The functional form is :func:`xpnn.functional.losses.nll_loss`. Put a
    :class:`~xpnn.LogSoftmax` before it, or use :class:`CrossEntropyLoss`,
    which does both in one stable step.

    Parameters
    ----------
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        The weighted mean (divided by the summed weights of the rows' classes),
        the sum, or the rows' losses.
    weight : array of shape (C,), optional
        A weight per class.
    ignore_index : int, default -100
        Rows with this label add nothing, and get a zero gradient.
    axis : int, default -1
        The class axis, as for :class:`CrossEntropyLoss` (PyTorch's is 1).

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.losses import NLLLoss
    >>> loss, grad = NLLLoss()(np.log(np.array([[0.5, 0.5], [0.25, 0.75]])), np.array([0, 1]))
    >>> loss  # (log(2) + log(4/3)) / 2
    array(0.49041463)
    >>> grad + 0.0  # -onehot / 2 (+ 0.0 turns -0.0 into 0.0 for printing)
    array([[-0.5,  0. ],
           [ 0. , -0.5]])
    """

    __slots__ = ()

    _function = staticmethod(nll_loss)

    def __init__(
        self,
        reduction: str = "mean",
        *,
        weight: Array | None = None,
        ignore_index: int = -100,
        axis: int = -1,
    ) -> None:
        ignore_index, _, axis = check_options(
            ignore_index=ignore_index, label_smoothing=0.0, axis=axis
        )
        super().__init__(
            reduction,
            options={"ignore_index": ignore_index, "axis": axis},
            arrays={"weight": weight},
        )

    def _check(self, input: Array, target: Array, *held: Array, **options: Any) -> Checked:
        return check_nll_loss(input, target, self._given(held)["weight"], **options)


class BCEWithLogitsLoss(Loss):
    """Binary cross-entropy on logits, stable for logits of any size.

    The functional form is
    :func:`xpnn.functional.losses.binary_cross_entropy_with_logits`.

    Parameters
    ----------
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        Average the elements' losses, add them up, or return them.
    weight : array, optional
        A weight per element, broadcast to the input's shape, in the
        namespace and on the device of the inputs.
    pos_weight : array, optional
        A weight of the positive targets, broadcast to the input's shape:
        shape ``(C,)`` weighs each class of the last axis, as in PyTorch.

    Raises
    ------
    TypeError
        For a ``weight`` or ``pos_weight`` that is not an array.
    ValueError
        For an unknown ``reduction``.

    Notes
    -----
    ``loss_fn(input, target)`` takes logits and targets in ``[0, 1]`` of one
    shape, both real floating, and returns ``(loss, dinput)`` with
    ``dinput = (sigmoid(input) - target) / N`` without weights.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.losses import BCEWithLogitsLoss
    >>> loss_fn = BCEWithLogitsLoss()
    >>> loss_fn
    BCEWithLogitsLoss(reduction='mean')
    >>> loss, grad = loss_fn(np.array([0.0, 0.0]), np.array([1.0, 0.0]))
    >>> loss, grad  # log(2); (0.5 - t) / 2
    (array(0.69314718), array([-0.25,  0.25]))
    >>> weighted = BCEWithLogitsLoss("none", pos_weight=np.array([3.0, 1.0]))
    >>> weighted
    BCEWithLogitsLoss(reduction='none', pos_weight=<array of shape (2,)>)
    >>> weighted(np.zeros((1, 2)), np.ones((1, 2)))[0]  # 3 log(2), log(2)
    array([[2.07944154, 0.69314718]])
    """

    __slots__ = ()

    _function = staticmethod(binary_cross_entropy_with_logits)

    def __init__(
        self,
        reduction: str = "mean",
        *,
        weight: Array | None = None,
        pos_weight: Array | None = None,
    ) -> None:
        super().__init__(reduction, arrays={"weight": weight, "pos_weight": pos_weight})

    @property
    def weight(self) -> Array | None:
        """The weight of each element (broadcast to the input), or None."""
        return self._arrays["weight"]

    @property
    def pos_weight(self) -> Array | None:
        """The weight of the positive targets (broadcast to the input), or None."""
        return self._arrays["pos_weight"]

    def _check(self, input: Array, target: Array, *held: Array, **options: Any) -> Checked:
        return check_elementwise_loss(
            input,
            target,
            "binary_cross_entropy_with_logits",
            ("logits", "targets"),
            **self._given(held),
        )


class L1Loss(Loss):
    """Mean absolute error, :func:`xpnn.functional.losses.l1_loss`.

    Parameters
    ----------
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        Average the absolute errors over every element, add them up, or
        return them.

    Raises
    ------
    ValueError
        For an unknown ``reduction``.

    Notes
    -----
    ``loss_fn(input, target)`` takes predictions and targets of one shape,
    both real floating, and returns ``(loss, dinput)`` with
    ``dinput = sign(input - target) / N``.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.losses import L1Loss
    >>> loss_fn = L1Loss("sum")
    >>> loss_fn
    L1Loss(reduction='sum')
    >>> loss_fn(np.array([1.0, -2.0, 0.0]), np.zeros(3))
    (array(3.), array([ 1., -1.,  0.]))
    """

    __slots__ = ()

    _function = staticmethod(l1_loss)

    def _check(self, input: Array, target: Array, *held: Array, **options: Any) -> Checked:
        return check_elementwise_loss(input, target, "l1_loss")


class HuberLoss(Loss):
    """Huber loss: quadratic for errors below ``delta``, linear beyond.

    The functional form is :func:`xpnn.functional.losses.huber_loss`.

    Parameters
    ----------
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        Average the terms over every element, add them up, or return them.
    delta : float, default 1.0
        Where the loss turns from quadratic to linear; > 0.

    Raises
    ------
    TypeError
        For a ``delta`` that is not a real number.
    ValueError
        For an unknown ``reduction``, or ``delta <= 0``.

    Notes
    -----
    ``loss_fn(input, target)`` takes predictions and targets of one shape,
    both real floating, and returns ``(loss, dinput)`` with
    ``dinput = clip(input - target, -delta, delta) / N``.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.losses import HuberLoss
    >>> loss_fn = HuberLoss("none", delta=2.0)
    >>> loss_fn
    HuberLoss(reduction='none', delta=2.0)
    >>> loss_fn(np.array([1.0, -3.0]), np.zeros(2))  # 0.5 * 1, 2 * (3 - 1)
    (array([0.5, 4. ]), array([ 1., -2.]))
    """

    __slots__ = ()

    _function = staticmethod(huber_loss)

    def __init__(self, reduction: str = "mean", *, delta: float = 1.0) -> None:
        super().__init__(reduction, options={"delta": check_scale_option("delta", delta)})

    @property
    def delta(self) -> float:
        """Where the loss turns from quadratic to linear."""
        return float(self._options["delta"])

    def _check(self, input: Array, target: Array, *held: Array, **options: Any) -> Checked:
        return check_elementwise_loss(input, target, "huber_loss")


class SmoothL1Loss(Loss):
    """Smooth L1 loss: the Huber loss with ``delta = beta``, divided by ``beta``.

    The functional form is :func:`xpnn.functional.losses.smooth_l1_loss`.

    Parameters
    ----------
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        Average the terms over every element, add them up, or return them.
    beta : float, default 1.0
        Where the loss turns from quadratic to linear; >= 0, and 0 gives the
        L1 loss, as in PyTorch.

    Raises
    ------
    TypeError
        For a ``beta`` that is not a real number.
    ValueError
        For an unknown ``reduction``, or ``beta < 0``.

    Notes
    -----
    ``loss_fn(input, target)`` takes predictions and targets of one shape,
    both real floating, and returns ``(loss, dinput)`` with
    ``dinput = clip((input - target) / beta, -1, 1) / N``.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.losses import SmoothL1Loss
    >>> loss_fn = SmoothL1Loss("none", beta=0.5)
    >>> loss_fn
    SmoothL1Loss(reduction='none', beta=0.5)
    >>> loss_fn(np.array([0.25, -3.0]), np.zeros(2))  # 0.5 * 0.25**2 / 0.5, 3 - 0.25
    (array([0.0625, 2.75  ]), array([ 0.5, -1. ]))
    """

    __slots__ = ()

    _function = staticmethod(smooth_l1_loss)

    def __init__(self, reduction: str = "mean", *, beta: float = 1.0) -> None:
        super().__init__(
            reduction, options={"beta": check_scale_option("beta", beta, zero_ok=True)}
        )

    @property
    def beta(self) -> float:
        """Where the loss turns from quadratic to linear (0: the L1 loss)."""
        return float(self._options["beta"])

    def _check(self, input: Array, target: Array, *held: Array, **options: Any) -> Checked:
        return check_elementwise_loss(input, target, "smooth_l1_loss")


class BCELoss(Loss):
    """Binary cross-entropy of probabilities, as ``torch.nn.BCELoss``.

    The functional form is :func:`xpnn.functional.losses.binary_cross_entropy`.
    Prefer :class:`BCEWithLogitsLoss` on logits: it is stable where the
    sigmoid saturates.

    Parameters
    ----------
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        Average the terms over every element, add them up, or return them.
    weight : array, optional
        A weight per element, broadcast to the input's shape, in the
        namespace and on the device of the inputs.

    Raises
    ------
    TypeError
        For a ``weight`` that is not an array.
    ValueError
        For an unknown ``reduction``.

    Notes
    -----
    ``loss_fn(input, target)`` takes probabilities and targets in ``[0, 1]``
    of one shape, both real floating (eager arrays out of range raise
    ``ValueError``, as in PyTorch), and returns ``(loss, dinput)`` with
    ``dinput = weight * (input - target) / max(input (1 - input), 1e-12) / N``.
    Each logarithm is floored at -100, as in PyTorch.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.losses import BCELoss
    >>> loss_fn = BCELoss(weight=np.array([1.0, 2.0]))
    >>> loss_fn
    BCELoss(reduction='mean', weight=<array of shape (2,)>)
    >>> loss, grad = loss_fn(np.array([0.5, 0.5]), np.array([1.0, 0.0]))
    >>> loss, grad  # 3 log(2) / 2; (-2, 4) / 2
    (array(1.03972077), array([-1.,  2.]))
    """

    __slots__ = ()

    _function = staticmethod(binary_cross_entropy)

    def __init__(self, reduction: str = "mean", *, weight: Array | None = None) -> None:
        super().__init__(reduction, arrays={"weight": weight})

    @property
    def weight(self) -> Array | None:
        """The weight of each element (broadcast to the input), or None."""
        return self._arrays["weight"]

    def _check(self, input: Array, target: Array, *held: Array, **options: Any) -> Checked:
        return check_elementwise_loss(
            input, target, "binary_cross_entropy", ("probs", "targets"), **self._given(held)
        )


class KLDivLoss(Loss):
    """Kullback-Leibler divergence of log-probabilities from a target, as ``torch.nn.KLDivLoss``.

    The functional form is :func:`xpnn.functional.losses.kl_div`.

    Parameters
    ----------
    reduction : {'mean', 'batchmean', 'sum', 'none'}, default 'mean'
        ``'mean'`` averages the terms over every element (PyTorch's default);
        ``'batchmean'`` divides their sum by the size of the first axis,
        which gives the mean divergence of the rows; ``'sum'`` adds them up;
        ``'none'`` returns them.
    log_target : bool, default False
        Whether the target holds log-probabilities rather than probabilities.

    Raises
    ------
    TypeError
        For a ``log_target`` that is not a bool.
    ValueError
        For an unknown ``reduction``.

    Notes
    -----
    ``loss_fn(input, target)`` takes log-probabilities and a target of one
    shape, both real floating, and returns ``(loss, dinput)`` with
    ``dinput = -target / N`` (``-exp(target) / N`` with ``log_target``).

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.losses import KLDivLoss
    >>> loss_fn = KLDivLoss("batchmean", log_target=True)
    >>> loss_fn
    KLDivLoss(reduction='batchmean', log_target=True)
    >>> log_probs = np.log(np.array([[0.25, 0.75]]))
    >>> loss, grad = loss_fn(log_probs, np.log(np.array([[0.5, 0.5]])))
    >>> loss  # 0.5 log(2) + 0.5 log(2/3)
    array(0.14384104)
    >>> grad
    array([[-0.5, -0.5]])
    """

    __slots__ = ()

    _function = staticmethod(kl_div)
    _reductions = KL_REDUCTIONS

    def __init__(self, reduction: str = "mean", *, log_target: bool = False) -> None:
        super().__init__(
            reduction, options={"log_target": check_bool_option("log_target", log_target)}
        )

    @property
    def log_target(self) -> bool:
        """Whether the target holds log-probabilities."""
        return bool(self._options["log_target"])

    def _check(self, input: Array, target: Array, *held: Array, **options: Any) -> Checked:
        return check_elementwise_loss(input, target, "kl_div", ("log_probs", "target"))

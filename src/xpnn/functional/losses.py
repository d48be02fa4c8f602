"""Loss functions: the loss and its gradient with respect to the input.

Each function returns ``(loss, grad)``: ``loss`` is a 0-D array, the mean
(``reduction="mean"``, the default) or the sum (``reduction="sum"``) of the
per-element or per-row losses, or those terms themselves
(``reduction="none"``), and ``grad`` is the gradient of the sum of the
returned terms with respect to the first argument, of the same shape. The
gradients, derived in ``docs/losses.md``, are (``d = pred - target``,
``s = sigmoid(logits)``, ``w`` the weight, ``lw = 1 + (pos_weight - 1) t``)::

    mse_loss                          2 d / N
    l1_loss                           sign(d) / N
    huber_loss                        clip(d, -delta, delta) / N
    smooth_l1_loss                    clip(d / beta, -1, 1) / N   (sign(d) for beta = 0)
    binary_cross_entropy              w (p - t) / max(p (1 - p), 1e-12) / N
    binary_cross_entropy_with_logits  w (lw s - pos_weight t) / N   (w (s - t) / N plain)
    kl_div                            -t / N   (-exp(t) / N for log_target)
    softmax_cross_entropy             (softmax(logits) - onehot(labels)) / N

where ``N`` is the number of terms averaged (1 for ``reduction="sum"`` and
``"none"``): the number of elements for the elementwise losses (``kl_div``'s
``"batchmean"`` divides by ``input.shape[0]`` instead), the number of rows,
``prod(logits.shape[:-1])``, for cross-entropy. ``N`` comes from the static
shape, never from the data. The mean of no terms is NaN, as in PyTorch.
Every dimension must therefore be known: one of unknown size (a Dask array
after boolean indexing) raises ``ValueError`` before any arithmetic, for
every reduction, since the two arguments' shapes could not be checked to
agree either.

Mixed floating dtypes follow the standard's type promotion: the loss has
``result_type`` of the input and the target, and the gradient has the dtype
of the array it belongs to, as in ``torch.autograd``. Weights
(``weight``, ``pos_weight``) are cast to the loss's dtype, as PyTorch does;
they broadcast to the input's shape. The losses are defined for real
floating arrays only.

Every function checks its inputs (:func:`check_elementwise_loss`,
:func:`check_cross_entropy`) unless it is given what the check returned,
``checked=``: the loss objects of :mod:`xpnn.losses` check each kind of
input once and then call these same functions.
"""

from __future__ import annotations

import math

from .._checks import Checked, check_known_shape, check_real_floating, check_same_device, shape_str
from .._compat import Array, Namespace, array_namespace, device, is_lazy
from ._dtypes import as_dtype
from ._reduction import REDUCTIONS, check_reduction, reduce_terms, scale_gradient
from .cross_entropy import (
    CrossEntropyConstants,
    check_cross_entropy,
    check_label_values,
    check_nll_loss,
    nll_loss,
    softmax_cross_entropy,
)

__all__ = [
    "KL_REDUCTIONS",
    "REDUCTIONS",
    "CrossEntropyConstants",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "check_bool_option",
    "check_cross_entropy",
    "check_elementwise_loss",
    "check_label_values",
    "check_nll_loss",
    "check_probability_values",
    "check_reduction",
    "check_scale_option",
    "huber_loss",
    "kl_div",
    "l1_loss",
    "mse_loss",
    "nll_loss",
    "smooth_l1_loss",
    "softmax_cross_entropy",
]

#: The reductions :func:`kl_div` accepts: the usual three and ``'batchmean'``.
KL_REDUCTIONS = (*REDUCTIONS, "batchmean")

#: PyTorch's floor of each logarithm in :func:`binary_cross_entropy`.
LOG_FLOOR = -100.0
#: PyTorch's floor of ``p (1 - p)`` in the gradient of :func:`binary_cross_entropy`:
#: 1e-12 rounded to float32, as PyTorch keeps it, for every dtype.
BCE_EPSILON = 9.999999960041972e-13


# -- checks --------------------------------------------------------------------


def check_elementwise_loss(
    first: Array,
    second: Array,
    what: str,
    names: tuple[str, str] = ("pred", "target"),
    **weights: Array | None,
) -> Checked:
    """Check the two arguments of an elementwise loss (:func:`mse_loss`, ...), and its weights.

    Both real floating, of one library, device and known shape. Each weight
    given by keyword (``weight=``, ``pos_weight=``; ``None`` for an absent
    one) must be real floating, of that library and device too, and
    broadcast to the shape of ``first``. The result holds the namespace,
    ``result_type`` of the two arguments (the weights are cast to it), and
    ``constants``, the number of elements.

    Raises
    ------
    TypeError
        For arrays that are not real floating, or from different libraries.
    ValueError
        For arrays on different devices, shapes that differ or are unknown,
        or weights that do not broadcast to the shape of ``first``.
    """
    first_name, second_name = names
    given = {name: value for name, value in weights.items() if value is not None}
    named = {first_name: first, second_name: second, **given}
    xp = array_namespace(**named)
    check_real_floating(xp, what, **named)
    check_same_device(**named)
    shape = check_known_shape(first_name, first, "the loss")
    _check_same_shape(
        first_name, shape, second_name, check_known_shape(second_name, second, "the loss")
    )
    for name, value in given.items():
        _check_broadcasts(name, check_known_shape(name, value, "the loss"), first_name, shape)
    dtype = xp.result_type(first.dtype, second.dtype)
    return Checked(
        xp=xp,
        dtype=dtype,
        same_real_dtype=first.dtype == second.dtype,
        constants=math.prod(shape),
    )


def _check_same_shape(
    first: str, first_shape: tuple[int, ...], second: str, second_shape: tuple[int, ...]
) -> None:
    if second_shape != first_shape:
        raise ValueError(
            f"{second} must have the shape of {first}, {shape_str(first_shape)}, "
            f"got {shape_str(second_shape)}"
        )


def _check_broadcasts(
    name: str, shape: tuple[int, ...], to_name: str, to_shape: tuple[int, ...]
) -> None:
    """Raise unless ``shape`` broadcasts to ``to_shape`` (without growing it)."""
    fits = len(shape) <= len(to_shape) and all(
        size in (1, target) for size, target in zip(shape[::-1], to_shape[::-1], strict=False)
    )
    if not fits:
        raise ValueError(
            f"{name} must broadcast to the shape of {to_name}, {shape_str(to_shape)}, got "
            f"{shape_str(shape)} (sizes that are 1 or equal, counted from the last axis)"
        )


def check_scale_option(name: str, value: object, *, zero_ok: bool = False) -> float:
    """Return ``value`` as a float if it is a real number > 0 (>= 0 with ``zero_ok``).

    Used for ``delta`` (> 0, as PyTorch's ``huber_loss``) and ``beta``
    (>= 0, as ``smooth_l1_loss``), by the functions and the loss objects.

    Raises
    ------
    TypeError
        For anything but an int or float (``bool`` included).
    ValueError
        For a value out of range, NaN included.
    """
    bound = ">= 0" if zero_ok else "> 0"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{name} must be a real number {bound}, got {type(value).__name__} {value!r}"
        )
    number = float(value)
    if not (number >= 0 if zero_ok else number > 0):
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return number


def check_bool_option(name: str, value: object) -> bool:
    """Return ``value`` if it is a bool (``log_target``); raise ``TypeError`` otherwise."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def _outside_unit(a: Array) -> Array:
    """Where ``a`` is not in ``[0, 1]`` (NaN included)."""
    return ~((a >= 0) & (a <= 1))


def check_probability_values(probs: Array, targets: Array) -> None:
    """Raise ``ValueError`` unless every element of both arrays is in ``[0, 1]``.

    As ``torch.nn.functional.binary_cross_entropy`` does (NaN is refused
    too). One number is read back when all is well; lazy arrays (JAX, Dask)
    are not read, and :func:`binary_cross_entropy` gives NaN where a value is
    out of range instead.
    """
    if is_lazy(probs) or is_lazy(targets):
        return
    xp = array_namespace(probs=probs, targets=targets)
    if not bool(xp.any(_outside_unit(probs)) | xp.any(_outside_unit(targets))):
        return
    for name, values in (("probs", probs), ("targets", targets)):
        flat = xp.reshape(values, (-1,))
        outside = _outside_unit(flat)
        if bool(xp.any(outside)):
            first = int(xp.argmax(xp.astype(outside, flat.dtype)))
            value = float(flat[first])
            hint = (
                "binary_cross_entropy takes probabilities, such as the output of a sigmoid; "
                "for logits use binary_cross_entropy_with_logits (BCEWithLogitsLoss)"
                if name == "probs"
                else "targets are probabilities of the positive class"
            )
            raise ValueError(f"{name} must be in [0, 1], got {value!r} ({hint})")


# -- regression losses -------------------------------------------------------------


def _difference(checked: Checked, pred: Array, target: Array) -> Array:
    xp, dtype = checked.xp, checked.dtype
    return as_dtype(xp, pred, dtype) - as_dtype(xp, target, dtype)


def _finish(
    checked: Checked, terms: Array, grad: Array, count: int, reduction: str, first: Array
) -> tuple[Array, Array]:
    """Reduce the terms; scale the gradient of their sum and give it ``first``'s dtype."""
    xp = checked.xp
    loss = reduce_terms(xp, terms, count, reduction, first)
    return loss, as_dtype(xp, scale_gradient(grad, count, reduction), first.dtype)


def mse_loss(
    pred: Array, target: Array, *, reduction: str = "mean", checked: Checked | None = None
) -> tuple[Array, Array]:
    """Return the mean squared error and its gradient with respect to ``pred``.

    ``loss = sum((pred - target) ** 2) / N`` with ``N`` the number of
    elements (``N = 1`` for ``reduction="sum"``), or the squared errors
    themselves for ``reduction="none"``, like
    ``torch.nn.functional.mse_loss``.

    Parameters
    ----------
    pred : array of shape (...)
        Predictions, real floating, any shape (a 0-D array included).
    target : array of shape (...)
        Targets, real floating, with the shape of ``pred``.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        Average the squared errors, add them up, or return them.
    checked : Checked, optional
        What :func:`check_elementwise_loss` returned for inputs of this kind.

    Returns
    -------
    loss : array of shape () or pred.shape
        In the namespace and on the device of the inputs, with dtype
        ``result_type(pred, target)``; of ``pred``'s shape for
        ``reduction="none"``. NaN for the mean of zero elements.
    dpred : array of shape pred.shape
        ``2 * (pred - target) / N``, in the dtype of ``pred``: the gradient
        of the sum of the returned terms.

    Raises
    ------
    TypeError
        For arrays that are not real floating, or from different libraries.
    ValueError
        For an unknown ``reduction``, arrays on different devices, or shapes
        that differ.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.losses import mse_loss
    >>> loss, dpred = mse_loss(np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 0.0]))
    >>> loss
    array(4.33333333)
    >>> dpred
    array([0.        , 1.33333333, 2.        ])
    >>> mse_loss(np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 0.0]), reduction="sum")[0]
    array(13.)
    >>> mse_loss(np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 0.0]), reduction="none")[0]
    array([0., 4., 9.])
    """
    reduction = check_reduction(reduction)
    checked = checked or check_elementwise_loss(pred, target, "mse_loss")
    diff = _difference(checked, pred, target)
    return _finish(checked, diff * diff, 2 * diff, checked.constants, reduction, pred)


def l1_loss(
    pred: Array, target: Array, *, reduction: str = "mean", checked: Checked | None = None
) -> tuple[Array, Array]:
    """Return the mean absolute error and its gradient with respect to ``pred``.

    Each element contributes ``|pred - target|``, like
    ``torch.nn.functional.l1_loss``. The gradient of a term is
    ``sign(pred - target)``, 0 where the two are equal (PyTorch's choice).

    Parameters
    ----------
    pred : array of shape (...)
        Predictions, real floating, any shape.
    target : array of shape (...)
        Targets, real floating, with the shape of ``pred``.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        Average the absolute errors, add them up, or return them.
    checked : Checked, optional
        What :func:`check_elementwise_loss` returned for inputs of this kind.

    Returns
    -------
    loss : array of shape () or pred.shape
        With dtype ``result_type(pred, target)``; NaN for the mean of zero
        elements.
    dpred : array of shape pred.shape
        ``sign(pred - target) / N``, in the dtype of ``pred``.

    Raises
    ------
    TypeError, ValueError
        As :func:`mse_loss`.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.losses import l1_loss
    >>> loss, dpred = l1_loss(np.array([1.0, 2.0, -3.0]), np.array([1.0, 0.0, 0.0]))
    >>> loss
    array(1.66666667)
    >>> dpred
    array([ 0.        ,  0.33333333, -0.33333333])
    """
    reduction = check_reduction(reduction)
    checked = checked or check_elementwise_loss(pred, target, "l1_loss")
    diff = _difference(checked, pred, target)
    xp = checked.xp
    return _finish(checked, xp.abs(diff), xp.sign(diff), checked.constants, reduction, pred)


def huber_loss(
    pred: Array,
    target: Array,
    *,
    reduction: str = "mean",
    delta: float = 1.0,
    checked: Checked | None = None,
) -> tuple[Array, Array]:
    """Return the Huber loss and its gradient with respect to ``pred``.

    With ``d = pred - target``, each element contributes ``0.5 d**2`` where
    ``|d| < delta`` and ``delta (|d| - 0.5 delta)`` elsewhere, like
    ``torch.nn.functional.huber_loss``: quadratic near zero, linear beyond
    ``delta``, and continuous with its first derivative, ``clip(d, -delta,
    delta)``.

    Parameters
    ----------
    pred : array of shape (...)
        Predictions, real floating, any shape.
    target : array of shape (...)
        Targets, real floating, with the shape of ``pred``.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        Average the terms, add them up, or return them.
    delta : float, default 1.0
        Where the loss turns from quadratic to linear; > 0.
    checked : Checked, optional
        What :func:`check_elementwise_loss` returned for inputs of this kind.

    Returns
    -------
    loss : array of shape () or pred.shape
        With dtype ``result_type(pred, target)``; NaN for the mean of zero
        elements.
    dpred : array of shape pred.shape
        ``clip(pred - target, -delta, delta) / N``, in the dtype of ``pred``.

    Raises
    ------
    TypeError
        As :func:`mse_loss`, or for a ``delta`` that is not a real number.
    ValueError
        As :func:`mse_loss`, or for ``delta <= 0``.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.losses import huber_loss
    >>> loss, dpred = huber_loss(np.array([0.5, 3.0]), np.array([0.0, 0.0]), reduction="none")
    >>> loss  # 0.5 * 0.5**2, 1 * (3 - 0.5)
    array([0.125, 2.5  ])
    >>> dpred
    array([0.5, 1. ])
    """
    reduction = check_reduction(reduction)
    delta = check_scale_option("delta", delta)
    checked = checked or check_elementwise_loss(pred, target, "huber_loss")
    xp = checked.xp
    diff = _difference(checked, pred, target)
    size = xp.abs(diff)
    terms = xp.where(size < delta, 0.5 * diff * diff, delta * (size - 0.5 * delta))
    grad = xp.clip(diff, min=-delta, max=delta)
    return _finish(checked, terms, grad, checked.constants, reduction, pred)


def smooth_l1_loss(
    pred: Array,
    target: Array,
    *,
    reduction: str = "mean",
    beta: float = 1.0,
    checked: Checked | None = None,
) -> tuple[Array, Array]:
    """Return the smooth L1 loss and its gradient with respect to ``pred``.

    With ``d = pred - target``, each element contributes ``0.5 d**2 / beta``
    where ``|d| < beta`` and ``|d| - 0.5 beta`` elsewhere, like
    ``torch.nn.functional.smooth_l1_loss``: the Huber loss with ``delta =
    beta``, divided by ``beta``. ``beta = 0`` is the L1 loss, as in PyTorch.

    Parameters
    ----------
    pred : array of shape (...)
        Predictions, real floating, any shape.
    target : array of shape (...)
        Targets, real floating, with the shape of ``pred``.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        Average the terms, add them up, or return them.
    beta : float, default 1.0
        Where the loss turns from quadratic to linear; >= 0.
    checked : Checked, optional
        What :func:`check_elementwise_loss` returned for inputs of this kind.

    Returns
    -------
    loss : array of shape () or pred.shape
        With dtype ``result_type(pred, target)``; NaN for the mean of zero
        elements.
    dpred : array of shape pred.shape
        ``clip((pred - target) / beta, -1, 1) / N`` (``sign(pred - target) /
        N`` for ``beta = 0``), in the dtype of ``pred``.

    Raises
    ------
    TypeError
        As :func:`mse_loss`, or for a ``beta`` that is not a real number.
    ValueError
        As :func:`mse_loss`, or for ``beta < 0``.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.losses import smooth_l1_loss
    >>> loss, dpred = smooth_l1_loss(
    ...     np.array([0.5, 3.0]), np.array([0.0, 0.0]), reduction="none", beta=2.0
    ... )
    >>> loss  # 0.5 * 0.5**2 / 2, 3 - 1
    array([0.0625, 2.    ])
    >>> dpred
    array([0.25, 1.  ])
    """
    reduction = check_reduction(reduction)
    beta = check_scale_option("beta", beta, zero_ok=True)
    checked = checked or check_elementwise_loss(pred, target, "smooth_l1_loss")
    xp = checked.xp
    diff = _difference(checked, pred, target)
    size = xp.abs(diff)
    if beta == 0.0:
        # PyTorch's own special case: the L1 loss (and no division by zero).
        terms, grad = size, xp.sign(diff)
    else:
        terms = xp.where(size < beta, (0.5 / beta) * diff * diff, size - 0.5 * beta)
        grad = xp.clip(diff / beta, min=-1.0, max=1.0)
    return _finish(checked, terms, grad, checked.constants, reduction, pred)


# -- binary cross-entropy ---------------------------------------------------------


def _weight_as(checked: Checked, weight: Array | None) -> Array | None:
    return None if weight is None else as_dtype(checked.xp, weight, checked.dtype)


def binary_cross_entropy(
    probs: Array,
    targets: Array,
    *,
    weight: Array | None = None,
    reduction: str = "mean",
    checked: Checked | None = None,
    check_values: bool = True,
) -> tuple[Array, Array]:
    """Return the binary cross-entropy of probabilities and its gradient with respect to them.

    Each element contributes
    ``-weight * (t * max(log(p), -100) + (1 - t) * max(log(1 - p), -100))``
    for ``p = probs`` and ``t = targets``, like
    ``torch.nn.functional.binary_cross_entropy``: the logarithms are floored
    at -100 so that a probability of exactly 0 or 1 costs a finite amount.
    Prefer :func:`binary_cross_entropy_with_logits` on logits, which is
    stable where the sigmoid saturates.

    Parameters
    ----------
    probs : array of shape (...)
        Probabilities in ``[0, 1]``, real floating, any shape.
    targets : array of shape (...)
        Target probabilities in ``[0, 1]``, real floating, with the shape of
        ``probs``.
    weight : array, optional
        A weight per element, real floating, broadcast to the shape of
        ``probs`` (cast to the loss's dtype).
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        Average the terms over every element, add them up, or return them.
    checked : Checked, optional
        What :func:`check_elementwise_loss` returned for inputs of this kind.
    check_values : bool, default True
        Whether to read back whether every value is in ``[0, 1]`` (eager
        arrays only; see :func:`check_probability_values`).

    Returns
    -------
    loss : array of shape () or probs.shape
        With dtype ``result_type(probs, targets)``; NaN for the mean of zero
        elements.
    dprobs : array of shape probs.shape
        ``weight * (p - t) / max(p (1 - p), 1e-12) / N``, PyTorch's
        gradient, in the dtype of ``probs``.

    Raises
    ------
    TypeError
        For arrays that are not real floating, or from different libraries.
    ValueError
        For an unknown ``reduction``, arrays on different devices, shapes
        that do not fit, or (eager arrays) values outside ``[0, 1]``, NaN
        included, as PyTorch refuses them.

    Notes
    -----
    For lazy arrays (JAX, Dask) the values are not read: an element out of
    ``[0, 1]`` gets a NaN loss and gradient instead.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.losses import binary_cross_entropy
    >>> loss, dprobs = binary_cross_entropy(
    ...     np.array([0.5, 0.8, 1.0]), np.array([1.0, 1.0, 0.0]), reduction="none"
    ... )
    >>> loss  # log(2), -log(0.8), and 100 for a certain mistake
    array([  0.69314718,   0.22314355, 100.        ])
    >>> dprobs  # -1/p, -1/p, and 1 / 1e-12
    array([-2.00e+00, -1.25e+00,  1.00e+12])
    """
    reduction = check_reduction(reduction)
    checked = checked or check_elementwise_loss(
        probs, targets, "binary_cross_entropy", ("probs", "targets"), weight=weight
    )
    xp, dtype = checked.xp, checked.dtype
    p = as_dtype(xp, probs, dtype)
    t = as_dtype(xp, targets, dtype)
    lazy = is_lazy(p) or is_lazy(t)
    if check_values:
        check_probability_values(p, t)
    if lazy:
        bad = _outside_unit(p) | _outside_unit(t)
        p = xp.clip(p, min=0.0, max=1.0)  # no warning from the logarithms below
    # log(p) floored at -100, written without log(0): where p == 0 the
    # logarithm sees 1 and the floor comes from the subtraction.
    at_zero = xp.astype(p == 0, dtype)
    at_one = xp.astype(p == 1, dtype)
    log_p = xp.clip(xp.log(p + at_zero) + LOG_FLOOR * at_zero, min=LOG_FLOOR)
    log_q = xp.clip(xp.log1p(at_one - p) + LOG_FLOOR * at_one, min=LOG_FLOOR)
    terms = -(t * log_p + (1 - t) * log_q)
    grad = (p - t) / xp.clip((1 - p) * p, min=BCE_EPSILON)
    w = _weight_as(checked, weight)
    if w is not None:
        terms, grad = terms * w, grad * w
    if lazy:
        nan = xp.full_like(terms, math.nan, device=device(terms))
        terms, grad = xp.where(bad, nan, terms), xp.where(bad, nan, grad)
    return _finish(checked, terms, grad, checked.constants, reduction, probs)


def binary_cross_entropy_with_logits(
    logits: Array,
    targets: Array,
    *,
    weight: Array | None = None,
    pos_weight: Array | None = None,
    reduction: str = "mean",
    checked: Checked | None = None,
) -> tuple[Array, Array]:
    """Return the binary cross-entropy of sigmoid(logits) and its gradient.

    Each element contributes ``-(t log(sigmoid(x)) + (1 - t) log(1 - sigmoid(x)))``
    for ``x = logits`` and ``t = targets``, computed in the stable form
    ``max(x, 0) - x t + log1p(exp(-|x|))``, which never overflows. With
    ``pos_weight`` the positive part is weighted, PyTorch's form
    ``(1 - t) x + (1 + (pos_weight - 1) t) softplus(-x)``, and ``weight``
    multiplies each term. The terms are averaged (``reduction="mean"``),
    added up (``"sum"``) or returned (``"none"``), like
    ``torch.nn.functional.binary_cross_entropy_with_logits``.

    Parameters
    ----------
    logits : array of shape (...)
        Log-odds, real floating, any shape (a 0-D array included).
    targets : array of shape (...)
        Probabilities of the positive class, real floating, with the shape
        of ``logits``. Values are expected in ``[0, 1]`` and not checked.
    weight : array, optional
        A weight per element, real floating, broadcast to the shape of
        ``logits`` (cast to the loss's dtype).
    pos_weight : array, optional
        A weight of the positive targets, real floating, broadcast to the
        shape of ``logits``: shape ``(C,)`` weighs class ``c`` of the last
        axis, as in PyTorch (the number of negatives over the number of
        positives of a class balances it).
    reduction : {'mean', 'sum', 'none'}, default 'mean'
        Average the elements' losses (over every element; the weights do
        not enter the divisor), add them up, or return them.
    checked : Checked, optional
        What :func:`check_elementwise_loss` returned for inputs of this kind.

    Returns
    -------
    loss : array of shape () or logits.shape
        In the namespace and on the device of the inputs, with dtype
        ``result_type(logits, targets)``. NaN for the mean of zero
        elements.
    dlogits : array of shape logits.shape
        ``weight * ((1 + (pos_weight - 1) t) sigmoid(x) - pos_weight t) / N``
        with ``N`` the number of elements (1 unless ``reduction="mean"``),
        ``(sigmoid(x) - t) / N`` without weights, in the dtype of ``logits``.

    Raises
    ------
    TypeError
        For arrays that are not real floating, or from different libraries.
    ValueError
        For an unknown ``reduction``, arrays on different devices, shapes
        that differ, or weights that do not broadcast to ``logits``.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.losses import binary_cross_entropy_with_logits
    >>> loss, dlogits = binary_cross_entropy_with_logits(
    ...     np.array([0.0, 0.0, 1e4]), np.array([1.0, 0.5, 1.0])
    ... )
    >>> loss  # 2 log(2) / 3: the third element costs nothing
    array(0.46209812)
    >>> dlogits
    array([-0.16666667,  0.        ,  0.        ])
    >>> binary_cross_entropy_with_logits(
    ...     np.zeros(2), np.array([1.0, 0.0]), pos_weight=np.array([3.0]), reduction="none"
    ... )[0]  # 3 log(2), log(2)
    array([2.07944154, 0.69314718])
    """
    reduction = check_reduction(reduction)
    checked = checked or check_elementwise_loss(
        logits,
        targets,
        "binary_cross_entropy_with_logits",
        ("logits", "targets"),
        weight=weight,
        pos_weight=pos_weight,
    )
    xp, dtype = checked.xp, checked.dtype
    x = as_dtype(xp, logits, dtype)
    t = as_dtype(xp, targets, dtype)
    small = xp.exp(-xp.abs(x))  # in (0, 1]: never overflows
    # sigmoid(x) = 1 / (1 + exp(-x)) for x >= 0 and exp(x) / (1 + exp(x)) for
    # x < 0; both written with exp(-|x|).
    inverse = 1 / (1 + small)
    sigmoid = xp.where(x >= 0, inverse, small * inverse)
    zero = xp.zeros_like(x, device=device(x))
    pw = _weight_as(checked, pos_weight)
    if pw is None:
        terms = xp.maximum(x, zero) - x * t + xp.log1p(small)
        grad = sigmoid - t
    else:
        log_weight = 1 + (pw - 1) * t
        softplus_neg = xp.maximum(-x, zero) + xp.log1p(small)  # softplus(-x) = -log sigmoid(x)
        terms = (1 - t) * x + log_weight * softplus_neg
        grad = log_weight * sigmoid - pw * t
    w = _weight_as(checked, weight)
    if w is not None:
        terms, grad = terms * w, grad * w
    return _finish(checked, terms, grad, checked.constants, reduction, logits)


# -- Kullback-Leibler divergence ----------------------------------------------------


def _xlogx(xp: Namespace, t: Array) -> Array:
    """``t log(t)``, 0 where ``t == 0`` (PyTorch's ``xlogy(t, t)``)."""
    return t * xp.log(t + xp.astype(t == 0, t.dtype))


def kl_div(
    log_probs: Array,
    target: Array,
    *,
    reduction: str = "mean",
    log_target: bool = False,
    checked: Checked | None = None,
) -> tuple[Array, Array]:
    """Return the Kullback-Leibler divergence and its gradient with respect to ``log_probs``.

    ``torch.nn.functional.kl_div``: for log-probabilities ``x`` and target
    probabilities ``t``, each element contributes ``t (log(t) - x)`` (0 where
    ``t == 0``); with ``log_target=True`` the target holds log-probabilities
    ``u`` and the term is ``exp(u) (u - x)``. The sum over a row is
    ``KL(target || exp(log_probs))``.

    Parameters
    ----------
    log_probs : array of shape (...)
        Log-probabilities (the output of ``log_softmax``), real floating.
    target : array of shape (...)
        Probabilities, or log-probabilities with ``log_target=True``, real
        floating, with the shape of ``log_probs``.
    reduction : {'mean', 'batchmean', 'sum', 'none'}, default 'mean'
        ``'mean'`` averages over **every element**, PyTorch's default, which
        is not the divergence; ``'batchmean'`` divides the sum by
        ``log_probs.shape[0]`` (the sum itself for a 0-D input), which is
        the mean divergence of the rows; ``'sum'`` adds the terms up;
        ``'none'`` returns them.
    log_target : bool, default False
        Whether ``target`` holds log-probabilities.
    checked : Checked, optional
        What :func:`check_elementwise_loss` returned for inputs of this kind.

    Returns
    -------
    loss : array of shape () or log_probs.shape
        With dtype ``result_type(log_probs, target)``. NaN for the mean of
        zero elements, and for ``'batchmean'`` of zero rows.
    dlog_probs : array of shape log_probs.shape
        ``-target / N`` (``-exp(target) / N`` with ``log_target``), in the
        dtype of ``log_probs``.

    Raises
    ------
    TypeError
        As :func:`mse_loss`, or for a ``log_target`` that is not a bool.
    ValueError
        As :func:`mse_loss`, with ``'batchmean'`` among the reductions.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.losses import kl_div
    >>> log_probs = np.log(np.array([[0.5, 0.5], [0.25, 0.75]]))
    >>> target = np.array([[0.5, 0.5], [0.5, 0.5]])
    >>> loss, grad = kl_div(log_probs, target, reduction="batchmean")
    >>> loss  # (0 + 0.5 log(4/3)) / 2: the first row matches
    array(0.07192052)
    >>> grad
    array([[-0.25, -0.25],
           [-0.25, -0.25]])
    """
    reduction = check_reduction(reduction, KL_REDUCTIONS)
    log_target = check_bool_option("log_target", log_target)
    checked = checked or check_elementwise_loss(
        log_probs, target, "kl_div", ("log_probs", "target")
    )
    xp, dtype = checked.xp, checked.dtype
    x = as_dtype(xp, log_probs, dtype)
    t = as_dtype(xp, target, dtype)
    if log_target:
        probs = xp.exp(t)
        terms = probs * (t - x)
    else:
        probs = t
        terms = _xlogx(xp, t) - t * x
    count: int = checked.constants
    if reduction == "batchmean":
        reduction = "mean"
        count = int(log_probs.shape[0]) if log_probs.ndim else 1
    return _finish(checked, terms, -probs, count, reduction, log_probs)

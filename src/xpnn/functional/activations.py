"""Activation functions: forward and hand-derived backward.

Every activation comes as a pair, ``f(x) -> y`` and ``f_backward(dy, ...)
-> dx``. The backward takes whatever its derivative is cheapest to compute
from: the input ``x`` for :func:`relu`, :func:`leaky_relu` and :func:`gelu`,
the output ``y`` for :func:`tanh`, :func:`sigmoid`, :func:`softmax` and
:func:`log_softmax`. The derivations are in ``docs/activations.md``::

    relu          dx = dy * (x > 0)
    leaky_relu    dx = dy * where(x > 0, 1, negative_slope)
    tanh          dx = dy * conj(1 - y**2)
    sigmoid       dx = dy * conj(y * (1 - y))
    gelu          dx = dy * (0.5 * (1 + t) + 0.5 * x * (1 - t**2) * du/dx)
    softmax       dx = y * (dy - sum(dy * y, axis))
    log_softmax   dx = dy - exp(y) * sum(dy, axis)

:func:`tanh` and :func:`sigmoid` accept complex numbers and follow
PyTorch's convention for their gradients (``dx = dy * conj(f'(x))``); the
others are defined for real numbers only.

Each backward returns ``dx`` in the dtype of the array it takes from the
forward pass (``x`` or ``y``, which share one dtype), computing in
``result_type(dy, x)`` first, as ``torch.autograd`` does when the two
precisions differ. A complex ``dy`` for a real output is rejected.

The forward functions accept dimensions of unknown size (a Dask array after
boolean indexing). The backward functions raise ``ValueError`` for them,
before any arithmetic: sizes that cannot be compared without computing them
cannot be checked to agree (call ``compute_chunk_sizes()`` first).
"""

from __future__ import annotations

import math
import numbers
import operator

from .._checks import (
    check_floating,
    check_known_shape,
    check_same_device,
    has_unknown,
    shape_str,
)
from .._compat import Array, DType, Namespace, array_namespace, device

__all__ = [
    "gelu",
    "gelu_backward",
    "leaky_relu",
    "leaky_relu_backward",
    "log_softmax",
    "log_softmax_backward",
    "relu",
    "relu_backward",
    "sigmoid",
    "sigmoid_backward",
    "softmax",
    "softmax_backward",
    "tanh",
    "tanh_backward",
]

# GELU, tanh form: 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3))).
_GELU_SCALE = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715
# From |x| = 10 on, the argument of the tanh exceeds 43 and the tanh is ±1 to
# double precision, so clipping x there changes no result; it keeps x**3
# finite for every finite input.
_GELU_SATURATION = 10.0


# -- validation ------------------------------------------------------------


def _check_real_floating(xp: Namespace, what: str, **named: Array) -> None:
    """Raise ``TypeError`` unless every named array has a real floating dtype."""
    for name, value in named.items():
        if xp.isdtype(value.dtype, "real floating"):
            continue
        if xp.isdtype(value.dtype, "complex floating"):
            raise TypeError(
                f"{name} must have a real floating dtype, got {value.dtype}: {what} is "
                f"defined for real numbers only; apply it to xp.real({name}) or "
                f"xp.abs({name}) if one of those is meant"
            )
        raise TypeError(
            f"{name} must have a real floating dtype, got {value.dtype}; convert it "
            f"first, for example with xp.astype({name}, xp.float32)"
        )


def _check_shape(dy: Array, name: str, reference: Array) -> None:
    # Sizes unknown until computed (Dask's, after boolean indexing) cannot be
    # checked against each other, and Dask's elementwise arithmetic would
    # broadcast a chunk of one row against a longer one without a word.
    check_known_shape(name, reference, "the backward pass")
    check_known_shape("dy", dy, "the backward pass")
    if tuple(dy.shape) != tuple(reference.shape):
        raise ValueError(
            f"dy must have the shape of {name}: expected {shape_str(tuple(reference.shape))}, "
            f"got {shape_str(tuple(dy.shape))}"
        )


def _check_backward(
    dy: Array, name: str, saved: Array, what: str | None
) -> tuple[Namespace, DType]:
    """Validate ``dy`` against the array kept from the forward pass.

    ``what`` names a real-only activation; ``None`` allows complex arrays.
    Returns the namespace and the dtype the gradient is computed in.
    """
    xp = array_namespace(dy=dy, **{name: saved})
    if what is None:
        check_floating(xp, dy=dy, **{name: saved})
        if xp.isdtype(dy.dtype, "complex floating") and not xp.isdtype(
            saved.dtype, "complex floating"
        ):
            raise TypeError(
                f"dy has the complex dtype {dy.dtype} but {name} is real ({saved.dtype}): "
                f"the gradient of a real output is real; pass xp.real(dy)"
            )
    else:
        _check_real_floating(xp, what, dy=dy, **{name: saved})
    check_same_device(**{name: saved}, dy=dy)
    _check_shape(dy, name, saved)
    return xp, xp.result_type(dy.dtype, saved.dtype)


def _check_slope(negative_slope: object) -> float:
    """Return ``negative_slope`` as a Python float, or raise."""
    if isinstance(negative_slope, bool) or not isinstance(negative_slope, numbers.Real):
        raise TypeError(
            f"negative_slope must be a real number, got {type(negative_slope).__name__} "
            f"{negative_slope!r}"
        )
    # A plain float keeps the array's dtype (NumPy scalars would promote).
    slope = float(negative_slope)
    if not math.isfinite(slope):
        raise ValueError(f"negative_slope must be finite, got {slope}")
    return slope


def _check_axis_type(axis: object) -> int:
    """Return ``axis`` as an int, or raise ``TypeError``."""
    if isinstance(axis, bool):
        raise TypeError(f"axis must be an int, got bool {axis}")
    try:
        return operator.index(axis)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"axis must be an int, got {type(axis).__name__} {axis!r}") from None


def _check_axis(axis: object, name: str, a: Array) -> int:
    """Return ``axis`` if it is a valid axis of ``a``, or raise."""
    index = _check_axis_type(axis)
    ndim = a.ndim
    if ndim == 0:
        raise ValueError(
            f"{name} is a 0-d array, which has no axis {index} to normalise over; "
            f"reshape scalars with xp.reshape({name}, (1,))"
        )
    if not -ndim <= index < ndim:
        raise ValueError(
            f"axis {index} is out of range for {name} of shape {shape_str(tuple(a.shape))}: "
            f"expected an axis from {-ndim} to {ndim - 1}"
        )
    return index


# -- helpers ---------------------------------------------------------------


def _as(xp: Namespace, a: Array, dtype: DType) -> Array:
    # astype always copies in some libraries; skip it when nothing changes.
    return a if a.dtype == dtype else xp.astype(a, dtype)


def _gradient_as(xp: Namespace, grad: Array, dtype: DType) -> Array:
    """Cast a gradient to the dtype of its input; real inputs keep Re."""
    if grad.dtype == dtype:
        return grad
    if xp.isdtype(grad.dtype, "complex floating") and not xp.isdtype(dtype, "complex floating"):
        grad = xp.real(grad)
    return xp.astype(grad, dtype)


def _is_empty(a: Array) -> bool:
    # Unknown sizes (None, or NaN in Dask) never compare equal to 0.
    return any(size == 0 for size in a.shape)


# -- ReLU ------------------------------------------------------------------


def relu(x: Array) -> Array:
    """Apply the rectified linear unit: ``y = max(x, 0)``.

    Parameters
    ----------
    x : array of any shape
        Input with a real floating dtype. NaN stays NaN, as in PyTorch.

    Returns
    -------
    y : array of the shape of ``x``
        In the namespace, on the device and with the dtype of ``x``.

    Raises
    ------
    TypeError
        If ``x`` is not an array, or has no real floating dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.activations import relu
    >>> relu(np.array([-2.0, -0.5, 0.0, 1.5]))
    array([0. , 0. , 0. , 1.5])
    """
    xp = array_namespace(x=x)
    _check_real_floating(xp, "relu", x=x)
    return xp.where(x < 0, xp.zeros_like(x), x)


def relu_backward(dy: Array, x: Array) -> Array:
    """Return the input gradient of :func:`relu`: ``dx = dy * (x > 0)``.

    Parameters
    ----------
    dy : array of the shape of ``x``
        Gradient of the loss with respect to ``y = relu(x)``.
    x : array of any shape
        The input of the forward pass. The gradient at ``x == 0`` is 0, as
        in PyTorch.

    Returns
    -------
    dx : array of the shape of ``x``
        In the dtype of ``x``.

    Raises
    ------
    TypeError
        For arrays from different libraries, or dtypes that are not real
        floating.
    ValueError
        For arrays on different devices, or if ``dy`` and ``x`` differ in
        shape.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.activations import relu_backward
    >>> relu_backward(np.ones(4), np.array([-2.0, -0.5, 0.0, 1.5]))
    array([0., 0., 0., 1.])
    """
    xp, dtype = _check_backward(dy, "x", x, "relu")
    g = _as(xp, dy, dtype)
    dx = xp.where(x <= 0, xp.zeros_like(g), g)
    return _gradient_as(xp, dx, x.dtype)


# -- Leaky ReLU ------------------------------------------------------------


def leaky_relu(x: Array, *, negative_slope: float = 0.01) -> Array:
    """Apply the leaky ReLU: ``y = x`` where ``x > 0``, else ``negative_slope * x``.

    Parameters
    ----------
    x : array of any shape
        Input with a real floating dtype.
    negative_slope : float, default 0.01
        Slope for negative inputs; any finite real number.

    Returns
    -------
    y : array of the shape of ``x``
        In the namespace, on the device and with the dtype of ``x``.

    Raises
    ------
    TypeError
        If ``x`` is not an array or has no real floating dtype, or if
        ``negative_slope`` is not a real number.
    ValueError
        If ``negative_slope`` is not finite.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.activations import leaky_relu
    >>> leaky_relu(np.array([-2.0, 3.0]), negative_slope=0.1)
    array([-0.2,  3. ])
    """
    slope = _check_slope(negative_slope)
    xp = array_namespace(x=x)
    _check_real_floating(xp, "leaky_relu", x=x)
    return xp.where(x > 0, x, x * slope)


def leaky_relu_backward(dy: Array, x: Array, *, negative_slope: float = 0.01) -> Array:
    """Return the input gradient of :func:`leaky_relu`.

    ``dx = dy`` where ``x > 0``, else ``negative_slope * dy`` (so at
    ``x == 0`` the slope is ``negative_slope``, as in PyTorch).

    Parameters
    ----------
    dy : array of the shape of ``x``
        Gradient of the loss with respect to ``y = leaky_relu(x)``.
    x : array of any shape
        The input of the forward pass.
    negative_slope : float, default 0.01
        The slope of the forward pass.

    Returns
    -------
    dx : array of the shape of ``x``
        In the dtype of ``x``.

    Raises
    ------
    TypeError
        For arrays from different libraries, dtypes that are not real
        floating, or a ``negative_slope`` that is not a real number.
    ValueError
        For arrays on different devices, shapes that differ, or a
        ``negative_slope`` that is not finite.
    """
    slope = _check_slope(negative_slope)
    xp, dtype = _check_backward(dy, "x", x, "leaky_relu")
    g = _as(xp, dy, dtype)
    dx = xp.where(x > 0, g, g * slope)
    return _gradient_as(xp, dx, x.dtype)


# -- tanh ------------------------------------------------------------------


def tanh(x: Array) -> Array:
    """Apply the hyperbolic tangent elementwise.

    Parameters
    ----------
    x : array of any shape
        Input with a real or complex floating dtype.

    Returns
    -------
    y : array of the shape of ``x``
        In the namespace, on the device and with the dtype of ``x``.

    Raises
    ------
    TypeError
        If ``x`` is not an array, or has no floating dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.activations import tanh
    >>> tanh(np.array([0.0, 1e4]))
    array([0., 1.])
    """
    xp = array_namespace(x=x)
    check_floating(xp, x=x)
    return xp.tanh(x)


def tanh_backward(dy: Array, y: Array) -> Array:
    """Return the input gradient of :func:`tanh` from its output.

    ``dx = dy * conj(1 - y**2)``; the conjugate is PyTorch's convention for
    complex numbers and changes nothing for real ones.

    Parameters
    ----------
    dy : array of the shape of ``y``
        Gradient of the loss with respect to ``y``.
    y : array of any shape
        The output of the forward pass, ``y = tanh(x)``.

    Returns
    -------
    dx : array of the shape of ``y``
        In the dtype of ``y``.

    Raises
    ------
    TypeError
        For arrays from different libraries, non-floating dtypes, or a
        complex ``dy`` for a real ``y``.
    ValueError
        For arrays on different devices, or if ``dy`` and ``y`` differ in
        shape.
    """
    xp, dtype = _check_backward(dy, "y", y, None)
    y_c = _as(xp, y, dtype)
    derivative = 1 - y_c * y_c
    if xp.isdtype(dtype, "complex floating"):
        derivative = xp.conj(derivative)
    return _gradient_as(xp, _as(xp, dy, dtype) * derivative, y.dtype)


# -- sigmoid ---------------------------------------------------------------


def sigmoid(x: Array) -> Array:
    """Apply the logistic sigmoid: ``y = 1 / (1 + exp(-x))``.

    Computed without overflow: with ``z = exp(-|x|)``, which lies in
    ``(0, 1]``, ``y = 1 / (1 + z)`` for ``x >= 0`` and ``z / (1 + z)``
    otherwise. Complex inputs use the sign of the real part the same way.

    Parameters
    ----------
    x : array of any shape
        Input with a real or complex floating dtype.

    Returns
    -------
    y : array of the shape of ``x``
        In the namespace, on the device and with the dtype of ``x``.

    Raises
    ------
    TypeError
        If ``x`` is not an array, or has no floating dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.activations import sigmoid
    >>> sigmoid(np.array([-1e4, 0.0, 1e4]))
    array([0. , 0.5, 1. ])
    """
    xp = array_namespace(x=x)
    check_floating(xp, x=x)
    if xp.isdtype(x.dtype, "complex floating"):
        positive = xp.real(x) >= 0
        z = xp.exp(xp.where(positive, -x, x))
    else:
        positive = x >= 0
        z = xp.exp(-xp.abs(x))
    one_plus_z = 1 + z
    return xp.where(positive, 1 / one_plus_z, z / one_plus_z)


def sigmoid_backward(dy: Array, y: Array) -> Array:
    """Return the input gradient of :func:`sigmoid` from its output.

    ``dx = dy * conj(y * (1 - y))``; the conjugate is PyTorch's convention
    for complex numbers and changes nothing for real ones.

    Parameters
    ----------
    dy : array of the shape of ``y``
        Gradient of the loss with respect to ``y``.
    y : array of any shape
        The output of the forward pass, ``y = sigmoid(x)``.

    Returns
    -------
    dx : array of the shape of ``y``
        In the dtype of ``y``.

    Raises
    ------
    TypeError
        For arrays from different libraries, non-floating dtypes, or a
        complex ``dy`` for a real ``y``.
    ValueError
        For arrays on different devices, or if ``dy`` and ``y`` differ in
        shape.
    """
    xp, dtype = _check_backward(dy, "y", y, None)
    y_c = _as(xp, y, dtype)
    derivative = y_c * (1 - y_c)
    if xp.isdtype(dtype, "complex floating"):
        derivative = xp.conj(derivative)
    return _gradient_as(xp, _as(xp, dy, dtype) * derivative, y.dtype)


# -- GELU ------------------------------------------------------------------


def _gelu_parts(xp: Namespace, x: Array) -> tuple[Array, Array]:
    """Return ``t = tanh(u)`` and ``x_c**2``, with ``x_c = clip(x, ±10)``."""
    if has_unknown(tuple(x.shape)):
        # array_api_compat's clip for Dask needs every size known; maximum and
        # minimum do not, and keep NaN as clip does (clip is faster elsewhere).
        bound = xp.asarray(_GELU_SATURATION, dtype=x.dtype, device=device(x))
        x_c = xp.minimum(xp.maximum(x, -bound), bound)
    else:
        x_c = xp.clip(x, min=-_GELU_SATURATION, max=_GELU_SATURATION)
    x_sq = x_c * x_c
    t = xp.tanh(_GELU_SCALE * (x_c + _GELU_CUBIC * x_sq * x_c))
    return t, x_sq


def gelu(x: Array) -> Array:
    """Apply the Gaussian error linear unit in its tanh form.

    ``y = 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3)))``, as
    ``torch.nn.functional.gelu(x, approximate="tanh")``. The exact form
    needs ``erf``, which the array API standard does not define.

    Parameters
    ----------
    x : array of any shape
        Input with a real floating dtype.

    Returns
    -------
    y : array of the shape of ``x``
        In the namespace, on the device and with the dtype of ``x``.

    Raises
    ------
    TypeError
        If ``x`` is not an array, or has no real floating dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.activations import gelu
    >>> gelu(np.array([-3.0, 0.0, 1.0, 3.0])).round(4)
    array([-0.0036,  0.    ,  0.8412,  2.9964])
    """
    xp = array_namespace(x=x)
    _check_real_floating(xp, "gelu", x=x)
    t, _ = _gelu_parts(xp, x)
    return 0.5 * x * (1 + t)


def gelu_backward(dy: Array, x: Array) -> Array:
    """Return the input gradient of :func:`gelu` (tanh form).

    With ``u = sqrt(2/pi) * (x + 0.044715 * x**3)`` and ``t = tanh(u)``::

        dx = dy * (0.5 * (1 + t)
                   + 0.5 * x * (1 - t**2) * sqrt(2/pi) * (1 + 3 * 0.044715 * x**2))

    Parameters
    ----------
    dy : array of the shape of ``x``
        Gradient of the loss with respect to ``y = gelu(x)``.
    x : array of any shape
        The input of the forward pass.

    Returns
    -------
    dx : array of the shape of ``x``
        In the dtype of ``x``.

    Raises
    ------
    TypeError
        For arrays from different libraries, or dtypes that are not real
        floating.
    ValueError
        For arrays on different devices, or if ``dy`` and ``x`` differ in
        shape.
    """
    xp, dtype = _check_backward(dy, "x", x, "gelu")
    x_c = _as(xp, x, dtype)
    t, x_sq = _gelu_parts(xp, x_c)
    du = _GELU_SCALE * (1 + (3 * _GELU_CUBIC) * x_sq)
    derivative = 0.5 * (1 + t) + (0.5 * x_c) * (1 - t * t) * du
    return _gradient_as(xp, _as(xp, dy, dtype) * derivative, x.dtype)


# -- softmax ---------------------------------------------------------------


def softmax(x: Array, *, axis: int = -1) -> Array:
    """Normalise exponentials along an axis: ``y = exp(x) / sum(exp(x), axis)``.

    The maximum along ``axis`` is subtracted first, which changes nothing
    mathematically and keeps every exponential in ``(0, 1]``.

    Parameters
    ----------
    x : array of shape (..., n, ...)
        Input with a real floating dtype and at least one dimension;
        zero-size arrays give zero-size results.
    axis : int, default -1
        The axis to normalise over; negative values count from the end.

    Returns
    -------
    y : array of the shape of ``x``
        Positive values that sum to 1 along ``axis``, in the namespace, on
        the device and with the dtype of ``x``.

    Raises
    ------
    TypeError
        If ``x`` is not an array or has no real floating dtype, or if
        ``axis`` is not an int.
    ValueError
        If ``axis`` is out of range for ``x``, or ``x`` is 0-d.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.activations import softmax
    >>> y = softmax(np.array([[1.0, 2.0, 3.0], [1e4, 0.0, -1e4]]))
    >>> y.round(6)
    array([[0.090031, 0.244728, 0.665241],
           [1.      , 0.      , 0.      ]])
    >>> y.sum(axis=-1)
    array([1., 1.])
    """
    xp = array_namespace(x=x)
    _check_real_floating(xp, "softmax", x=x)
    axis = _check_axis(axis, "x", x)
    if _is_empty(x):
        # A maximum over no element is undefined; the result holds none.
        return xp.zeros_like(x)
    e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


def softmax_backward(dy: Array, y: Array, *, axis: int = -1) -> Array:
    """Return the input gradient of :func:`softmax` from its output.

    The Jacobian-vector product ``dx = y * (dy - sum(dy * y, axis))``,
    which never forms the Jacobian.

    Parameters
    ----------
    dy : array of the shape of ``y``
        Gradient of the loss with respect to ``y``.
    y : array of shape (..., n, ...)
        The output of the forward pass, ``y = softmax(x, axis=axis)``.
    axis : int, default -1
        The axis of the forward pass.

    Returns
    -------
    dx : array of the shape of ``y``
        In the dtype of ``y``.

    Raises
    ------
    TypeError
        For arrays from different libraries, dtypes that are not real
        floating, or an ``axis`` that is not an int.
    ValueError
        For arrays on different devices, shapes that differ, or an ``axis``
        out of range.
    """
    xp, dtype = _check_backward(dy, "y", y, "softmax")
    axis = _check_axis(axis, "y", y)
    g = _as(xp, dy, dtype)
    y_c = _as(xp, y, dtype)
    dx = y_c * (g - xp.sum(g * y_c, axis=axis, keepdims=True))
    return _gradient_as(xp, dx, y.dtype)


# -- log-softmax -----------------------------------------------------------


def log_softmax(x: Array, *, axis: int = -1) -> Array:
    """Return the logarithm of :func:`softmax`, computed stably.

    ``y = s - log(sum(exp(s), axis))`` with ``s = x - max(x, axis)``: every
    exponential lies in ``(0, 1]`` and the sum in ``[1, n]``, so neither
    overflows nor takes the log of 0.

    Parameters
    ----------
    x : array of shape (..., n, ...)
        Input with a real floating dtype and at least one dimension;
        zero-size arrays give zero-size results.
    axis : int, default -1
        The axis to normalise over; negative values count from the end.

    Returns
    -------
    y : array of the shape of ``x``
        Values ``<= 0`` whose exponentials sum to 1 along ``axis``, in the
        namespace, on the device and with the dtype of ``x``.

    Raises
    ------
    TypeError
        If ``x`` is not an array or has no real floating dtype, or if
        ``axis`` is not an int.
    ValueError
        If ``axis`` is out of range for ``x``, or ``x`` is 0-d.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.activations import log_softmax
    >>> log_softmax(np.array([0.0, 1e4])).round(6)
    array([-10000.,      0.])
    """
    xp = array_namespace(x=x)
    _check_real_floating(xp, "log_softmax", x=x)
    axis = _check_axis(axis, "x", x)
    if _is_empty(x):
        return xp.zeros_like(x)
    s = x - xp.max(x, axis=axis, keepdims=True)
    return s - xp.log(xp.sum(xp.exp(s), axis=axis, keepdims=True))


def log_softmax_backward(dy: Array, y: Array, *, axis: int = -1) -> Array:
    """Return the input gradient of :func:`log_softmax` from its output.

    ``dx = dy - exp(y) * sum(dy, axis)``, where ``exp(y)`` is the softmax
    of the input.

    Parameters
    ----------
    dy : array of the shape of ``y``
        Gradient of the loss with respect to ``y``.
    y : array of shape (..., n, ...)
        The output of the forward pass, ``y = log_softmax(x, axis=axis)``.
    axis : int, default -1
        The axis of the forward pass.

    Returns
    -------
    dx : array of the shape of ``y``
        In the dtype of ``y``.

    Raises
    ------
    TypeError
        For arrays from different libraries, dtypes that are not real
        floating, or an ``axis`` that is not an int.
    ValueError
        For arrays on different devices, shapes that differ, or an ``axis``
        out of range.
    """
    xp, dtype = _check_backward(dy, "y", y, "log_softmax")
    axis = _check_axis(axis, "y", y)
    g = _as(xp, dy, dtype)
    dx = g - xp.exp(_as(xp, y, dtype)) * xp.sum(g, axis=axis, keepdims=True)
    return _gradient_as(xp, dx, y.dtype)

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
    gelu          dx = dy * (Phi(x) + x * phi(x))         (exact, the default)
    gelu tanh     dx = dy * (0.5 * (1 + t) + 0.5 * x * (1 - t**2) * du/dx)
    softmax       dx = y * (dy - sum(dy * y, axis))
    log_softmax   dx = dy - exp(y) * sum(dy, axis)
    silu          dx = dy * s * (1 + x * (1 - s)),   s = sigmoid(x)
    softplus      dx = dy * where(beta * x > threshold, 1, sigmoid(beta * x))
    elu           dx = dy * where(x > 0, 1, alpha * exp(x))
    hardtanh      dx = dy * (min_val < x < max_val)
    mish          dx = dy * (t + x * sigmoid(x) * (1 - t**2)),   t = tanh(softplus(x))
    identity      dx = dy

:func:`tanh` and :func:`sigmoid` accept complex numbers and follow
PyTorch's convention for their gradients (``dx = dy * conj(f'(x))``); the
others are defined for real numbers only.

Each backward returns ``dx`` in the dtype of the array it takes from the
forward pass (``x`` or ``y``, which share one dtype), computing in
``result_type(dy, x)`` first, as ``torch.autograd`` does when the two
precisions differ. A complex ``dy`` for a real output is rejected.

Every function checks its inputs with :func:`check_activation` or
:func:`check_activation_backward` unless it is given what those returned,
``checked=``: the layers of :mod:`xpnn.layers.activations` check each kind
of input once (see ``xpnn._checks``) and then call these same functions,
so the math is written here only.

The forward functions accept dimensions of unknown size (a Dask array after
boolean indexing). The backward functions raise ``ValueError`` for them,
before any arithmetic: sizes that cannot be compared without computing them
cannot be checked to agree (call ``compute_chunk_sizes()`` first).
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Callable

from .._checks import (
    Checked,
    check_floating,
    check_known_shape,
    check_real_floating,
    check_same_device,
    has_unknown,
    shape_str,
)
from .._compat import Array, Namespace, array_namespace, device
from ._dtypes import as_dtype, broadcast_zero, gradient_as, is_empty
from .special import _normal_cdf

__all__ = [
    "check_activation",
    "check_activation_backward",
    "check_axis",
    "check_gelu_approximate",
    "check_hardtanh",
    "check_real_setting",
    "check_slope",
    "check_softplus",
    "elu",
    "elu_backward",
    "gelu",
    "gelu_backward",
    "hardtanh",
    "hardtanh_backward",
    "identity",
    "identity_backward",
    "leaky_relu",
    "leaky_relu_backward",
    "log_softmax",
    "log_softmax_backward",
    "mish",
    "mish_backward",
    "relu",
    "relu_backward",
    "sigmoid",
    "sigmoid_backward",
    "silu",
    "silu_backward",
    "softmax",
    "softmax_backward",
    "softplus",
    "softplus_backward",
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
# GELU, exact form: x * Phi(x), with the density phi(x) = exp(-x**2 / 2) / sqrt(2 pi)
# in its derivative. From |x| = 40 on, x * phi(x) is 0 in float64 (exp(-800)
# underflows); clipping x there keeps x * phi(x) from inf * 0 at infinity.
_GELU_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GELU_DENSITY_END = 40.0
_GELU_FORMS = ("none", "tanh")


# -- validation ------------------------------------------------------------


def check_activation(
    x: Array, what: str, *, complex_ok: bool = False, axis: int | None = None
) -> Checked:
    """Check the input of an activation; keep a 0-d zero of its dtype.

    Parameters
    ----------
    x : array
        The input.
    what : str
        The activation's name, for messages (``"relu"``).
    complex_ok : bool, default False
        Whether complex inputs are allowed (:func:`tanh`, :func:`sigmoid`).
    axis : int, optional
        The axis an activation normalises over, checked against ``x``.

    Returns
    -------
    Checked
        The namespace, ``x``'s dtype, and ``constants``, a zero of that
        dtype on ``x``'s device, which broadcasts against ``x``.

    Raises
    ------
    TypeError
        If ``x`` is not an array or has a dtype the activation does not take.
    ValueError
        If ``axis`` is out of range for ``x`` (a 0-d ``x`` takes 0 and -1).
    """
    xp = array_namespace(x=x)
    if complex_ok:
        check_floating(xp, x=x)
    else:
        check_real_floating(xp, what, x=x)
    if axis is not None:
        check_axis(axis, "x", x)
    return Checked(
        xp=xp,
        dtype=x.dtype,
        same_real_dtype=not complex_ok or xp.isdtype(x.dtype, "real floating"),
        constants=broadcast_zero(xp, x.dtype, x),
    )


def check_activation_backward(
    dy: Array,
    saved: Array,
    what: str,
    *,
    saved_name: str,
    complex_ok: bool = False,
    axis: int | None = None,
    forward: Checked | None = None,
) -> Checked:
    """Check ``dy`` against the array an activation's backward takes from its forward pass.

    Parameters
    ----------
    dy : array
        The output gradient.
    saved : array
        ``x`` or ``y`` of the forward pass.
    what : str
        The activation's name, for messages.
    saved_name : str
        How messages name ``saved`` (``"x"`` or ``"y"``).
    complex_ok : bool, default False
        Whether complex arrays are allowed.
    axis : int, optional
        The axis of the forward pass, checked against ``saved``.
    forward : Checked, optional
        What :func:`check_activation` returned for the forward pass, which a
        layer's check boundary keys the backward pass on; unused here.

    Returns
    -------
    Checked
        The namespace, the dtype the gradient is computed in
        (``result_type(dy, saved)``), and ``constants``, a zero of it that
        broadcasts against ``saved``.

    Raises
    ------
    TypeError
        For arrays from different libraries, dtypes the activation does not
        take, or a complex ``dy`` for a real ``saved``.
    ValueError
        For arrays on different devices, shapes that differ or are unknown,
        or an ``axis`` out of range.
    """
    xp = array_namespace(dy=dy, **{saved_name: saved})
    if complex_ok:
        check_floating(xp, dy=dy, **{saved_name: saved})
        if xp.isdtype(dy.dtype, "complex floating") and not xp.isdtype(
            saved.dtype, "complex floating"
        ):
            raise TypeError(
                f"dy has the complex dtype {dy.dtype} but {saved_name} is real ({saved.dtype}): "
                f"the gradient of a real output is real; pass xp.real(dy)"
            )
    else:
        check_real_floating(xp, what, dy=dy, **{saved_name: saved})
    check_same_device(**{saved_name: saved}, dy=dy)
    # Sizes unknown until computed (Dask's, after boolean indexing) cannot be
    # checked against each other, and Dask's elementwise arithmetic would
    # broadcast a chunk of one row against a longer one without a word.
    check_known_shape(saved_name, saved, "the backward pass")
    check_known_shape("dy", dy, "the backward pass")
    if tuple(dy.shape) != tuple(saved.shape):
        raise ValueError(
            f"dy must have the shape of {saved_name}: expected "
            f"{shape_str(tuple(saved.shape))}, got {shape_str(tuple(dy.shape))}"
        )
    if axis is not None:
        check_axis(axis, saved_name, saved)
    dtype = xp.result_type(dy.dtype, saved.dtype)
    return Checked(
        xp=xp,
        dtype=dtype,
        same_real_dtype=dy.dtype == saved.dtype and xp.isdtype(dtype, "real floating"),
        constants=broadcast_zero(xp, dtype, saved),
    )


def check_slope(negative_slope: object) -> float:
    """Return ``negative_slope`` as a Python float, or raise.

    Raises
    ------
    TypeError
        If it is not a real number.
    ValueError
        If it is not finite.
    """
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


def check_axis(axis: object, name: str | None = None, a: Array | None = None) -> int:
    """Return ``axis`` as an int; with an array, also check it is an axis of it.

    Raises
    ------
    TypeError
        If ``axis`` is not an int.
    ValueError
        If ``axis`` is out of range for ``a`` (a 0-d ``a`` takes 0 and -1).
    """
    if isinstance(axis, bool):
        raise TypeError(f"axis must be an int, got bool {axis}")
    try:
        index = operator.index(axis)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"axis must be an int, got {type(axis).__name__} {axis!r}") from None
    if a is None:
        return index
    ndim = a.ndim
    if ndim == 0:
        # PyTorch takes axis 0 or -1 of a 0-d input as the input itself, a
        # group of one: softmax 1, log-softmax 0.
        if index in (0, -1):
            return index
        raise ValueError(
            f"{name} is a 0-d array, which has no axis {index} to normalise over: "
            f"expected axis 0 or -1 (or reshape it with xp.reshape({name}, (1,)))"
        )
    if not -ndim <= index < ndim:
        raise ValueError(
            f"axis {index} is out of range for {name} of shape {shape_str(tuple(a.shape))}: "
            f"expected an axis from {-ndim} to {ndim - 1}"
        )
    return index


def _conj_if_complex(xp: Namespace, checked: Checked, a: Array) -> Array:
    return (
        a if checked.same_real_dtype or not xp.isdtype(a.dtype, "complex floating") else xp.conj(a)
    )


def _along(reduce: Callable[..., Array], a: Array, axis: int) -> Array:
    """Reduce ``a`` along ``axis``, keeping it; a 0-d ``a`` is its own group of one.

    The standard defines no axis of a 0-d array, which PyTorch's softmax
    treats as one group (``softmax(3.0) == 1``).
    """
    return a if a.ndim == 0 else reduce(a, axis=axis, keepdims=True)


# -- ReLU ------------------------------------------------------------------


def relu(x: Array, *, checked: Checked | None = None) -> Array:
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
    checked = checked or check_activation(x, "relu")
    # max(x, 0) keeps NaN, as torch.relu does.
    return checked.xp.maximum(x, checked.constants)


def relu_backward(dy: Array, x: Array, *, checked: Checked | None = None) -> Array:
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
    checked = checked or check_activation_backward(dy, x, "relu", saved_name="x")
    xp = checked.xp
    zero = checked.constants
    # Compared with an array, not the number 0: PyTorch wraps a number into
    # a new tensor at every comparison.
    if checked.same_real_dtype:
        return xp.where(x <= zero, zero, dy)
    dx = xp.where(x <= zero, zero, as_dtype(xp, dy, checked.dtype))
    return gradient_as(xp, dx, x.dtype)


# -- Leaky ReLU ------------------------------------------------------------


def leaky_relu(x: Array, *, negative_slope: float = 0.01, checked: Checked | None = None) -> Array:
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
    slope = check_slope(negative_slope)
    checked = checked or check_activation(x, "leaky_relu")
    return checked.xp.where(x > 0, x, x * slope)


def leaky_relu_backward(
    dy: Array, x: Array, *, negative_slope: float = 0.01, checked: Checked | None = None
) -> Array:
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
    slope = check_slope(negative_slope)
    checked = checked or check_activation_backward(dy, x, "leaky_relu", saved_name="x")
    xp = checked.xp
    g = as_dtype(xp, dy, checked.dtype)
    return gradient_as(xp, xp.where(x > 0, g, g * slope), x.dtype)


# -- tanh ------------------------------------------------------------------


def tanh(x: Array, *, checked: Checked | None = None) -> Array:
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
    checked = checked or check_activation(x, "tanh", complex_ok=True)
    return checked.xp.tanh(x)


def tanh_backward(dy: Array, y: Array, *, checked: Checked | None = None) -> Array:
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
    checked = checked or check_activation_backward(dy, y, "tanh", saved_name="y", complex_ok=True)
    xp, dtype = checked.xp, checked.dtype
    y_c = as_dtype(xp, y, dtype)
    derivative = _conj_if_complex(xp, checked, 1 - y_c * y_c)
    return gradient_as(xp, as_dtype(xp, dy, dtype) * derivative, y.dtype)


# -- sigmoid ---------------------------------------------------------------


def sigmoid(x: Array, *, checked: Checked | None = None) -> Array:
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
    checked = checked or check_activation(x, "sigmoid", complex_ok=True)
    xp = checked.xp
    if not checked.same_real_dtype:
        positive = xp.real(x) >= 0
        z = xp.exp(xp.where(positive, -x, x))
    else:
        positive = x >= 0
        z = xp.exp(-xp.abs(x))
    one_plus_z = 1 + z
    return xp.where(positive, 1 / one_plus_z, z / one_plus_z)


def sigmoid_backward(dy: Array, y: Array, *, checked: Checked | None = None) -> Array:
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
    checked = checked or check_activation_backward(
        dy, y, "sigmoid", saved_name="y", complex_ok=True
    )
    xp, dtype = checked.xp, checked.dtype
    y_c = as_dtype(xp, y, dtype)
    derivative = _conj_if_complex(xp, checked, y_c * (1 - y_c))
    return gradient_as(xp, as_dtype(xp, dy, dtype) * derivative, y.dtype)


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


def check_gelu_approximate(approximate: object) -> str:
    """Return ``approximate`` if it names a form of GELU (``"none"``, ``"tanh"``), else raise.

    Raises
    ------
    ValueError
        If ``approximate`` is neither ``"none"`` nor ``"tanh"``.
    """
    if not isinstance(approximate, str) or approximate not in _GELU_FORMS:
        raise ValueError(
            f"approximate must be 'none' (the exact GELU) or 'tanh', got {approximate!r}"
        )
    return approximate


def _clip_symmetric(xp: Namespace, x: Array, bound: float) -> Array:
    if has_unknown(tuple(x.shape)):
        # array_api_compat's clip for Dask needs every size known; maximum and
        # minimum do not, and keep NaN as clip does (clip is faster elsewhere).
        b = xp.asarray(bound, dtype=x.dtype, device=device(x))
        return xp.minimum(xp.maximum(x, -b), b)
    return xp.clip(x, min=-bound, max=bound)


def gelu(x: Array, *, approximate: str = "none", checked: Checked | None = None) -> Array:
    """Apply the Gaussian error linear unit.

    Exact (``approximate="none"``, the default): ``y = x * Phi(x) = x / 2 *
    (1 + erf(x / sqrt(2)))``, with :func:`xpnn.functional.special.erf`, as
    ``torch.nn.functional.gelu(x)``; ``Phi`` is computed from ``erfc`` for
    negative ``x``, without the cancellation of ``1 + erf``. Tanh form
    (``approximate="tanh"``): ``y = 0.5 * x * (1 + tanh(sqrt(2/pi) * (x +
    0.044715 * x**3)))``, as ``torch.nn.functional.gelu(x,
    approximate="tanh")``.

    Parameters
    ----------
    x : array of any shape
        Input with a real floating dtype.
    approximate : {"none", "tanh"}, default "none"
        The form: exact, or the tanh approximation.

    Returns
    -------
    y : array of the shape of ``x``
        In the namespace, on the device and with the dtype of ``x``.

    Raises
    ------
    TypeError
        If ``x`` is not an array, or has no real floating dtype.
    ValueError
        If ``approximate`` is neither ``"none"`` nor ``"tanh"``.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.activations import gelu
    >>> gelu(np.array([-3.0, 0.0, 1.0, 3.0])).round(4)
    array([-0.004 ,  0.    ,  0.8413,  2.996 ])
    >>> gelu(np.array([-3.0, 0.0, 1.0, 3.0]), approximate="tanh").round(4)
    array([-0.0036,  0.    ,  0.8412,  2.9964])
    """
    check_gelu_approximate(approximate)
    checked = checked or check_activation(x, "gelu")
    if approximate == "none":
        return x * _normal_cdf(checked.xp, x)
    t, _ = _gelu_parts(checked.xp, x)
    return 0.5 * x * (1 + t)


def gelu_backward(
    dy: Array, x: Array, *, approximate: str = "none", checked: Checked | None = None
) -> Array:
    """Return the input gradient of :func:`gelu`.

    Exact form, with ``Phi`` the standard normal distribution function and
    ``phi(x) = exp(-x**2 / 2) / sqrt(2 pi)`` its density::

        dx = dy * (Phi(x) + x * phi(x))

    Tanh form, with ``u = sqrt(2/pi) * (x + 0.044715 * x**3)`` and ``t =
    tanh(u)``::

        dx = dy * (0.5 * (1 + t)
                   + 0.5 * x * (1 - t**2) * sqrt(2/pi) * (1 + 3 * 0.044715 * x**2))

    Parameters
    ----------
    dy : array of the shape of ``x``
        Gradient of the loss with respect to ``y = gelu(x)``.
    x : array of any shape
        The input of the forward pass.
    approximate : {"none", "tanh"}, default "none"
        The form of the forward pass.

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
        For arrays on different devices, if ``dy`` and ``x`` differ in
        shape, or if ``approximate`` is neither ``"none"`` nor ``"tanh"``.
    """
    check_gelu_approximate(approximate)
    checked = checked or check_activation_backward(dy, x, "gelu", saved_name="x")
    xp, dtype = checked.xp, checked.dtype
    x_c = as_dtype(xp, x, dtype)
    if approximate == "none":
        x_d = _clip_symmetric(xp, x_c, _GELU_DENSITY_END)
        density = _GELU_INV_SQRT_2PI * xp.exp(-0.5 * (x_d * x_d))
        exact = _normal_cdf(xp, x_c) + x_d * density
        return gradient_as(xp, as_dtype(xp, dy, dtype) * exact, x.dtype)
    t, x_sq = _gelu_parts(xp, x_c)
    du = _GELU_SCALE * (1 + (3 * _GELU_CUBIC) * x_sq)
    derivative = 0.5 * (1 + t) + (0.5 * x_c) * (1 - t * t) * du
    return gradient_as(xp, as_dtype(xp, dy, dtype) * derivative, x.dtype)


# -- softmax ---------------------------------------------------------------


def softmax(x: Array, *, axis: int = -1, checked: Checked | None = None) -> Array:
    """Normalise exponentials along an axis: ``y = exp(x) / sum(exp(x), axis)``.

    The maximum along ``axis`` is subtracted first, which changes nothing
    mathematically and keeps every exponential in ``(0, 1]``.

    Parameters
    ----------
    x : array of shape (..., n, ...)
        Input with a real floating dtype; a 0-d one, with ``axis`` 0 or -1,
        is a group of one, as in PyTorch;
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
        If ``axis`` is out of range for ``x`` (a 0-d ``x`` takes 0 and -1).

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
    checked = checked or check_activation(x, "softmax", axis=check_axis(axis))
    xp = checked.xp
    if is_empty(x):
        # A maximum over no element is undefined; the result holds none.
        return xp.zeros_like(x)
    e = xp.exp(x - _along(xp.max, x, axis))
    return e / _along(xp.sum, e, axis)


def softmax_backward(
    dy: Array, y: Array, *, axis: int = -1, checked: Checked | None = None
) -> Array:
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
    checked = checked or check_activation_backward(
        dy, y, "softmax", saved_name="y", axis=check_axis(axis)
    )
    xp, dtype = checked.xp, checked.dtype
    g = as_dtype(xp, dy, dtype)
    y_c = as_dtype(xp, y, dtype)
    dx = y_c * (g - _along(xp.sum, g * y_c, axis))
    return gradient_as(xp, dx, y.dtype)


# -- log-softmax -----------------------------------------------------------


def log_softmax(x: Array, *, axis: int = -1, checked: Checked | None = None) -> Array:
    """Return the logarithm of :func:`softmax`, computed stably.

    ``y = s - log(sum(exp(s), axis))`` with ``s = x - max(x, axis)``: every
    exponential lies in ``(0, 1]`` and the sum in ``[1, n]``, so neither
    overflows nor takes the log of 0.

    Parameters
    ----------
    x : array of shape (..., n, ...)
        Input with a real floating dtype; a 0-d one, with ``axis`` 0 or -1,
        is a group of one, as in PyTorch;
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
        If ``axis`` is out of range for ``x`` (a 0-d ``x`` takes 0 and -1).

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.activations import log_softmax
    >>> log_softmax(np.array([0.0, 1e4])).round(6)
    array([-10000.,      0.])
    """
    checked = checked or check_activation(x, "log_softmax", axis=check_axis(axis))
    xp = checked.xp
    if is_empty(x):
        return xp.zeros_like(x)
    s = x - _along(xp.max, x, axis)
    return s - xp.log(_along(xp.sum, xp.exp(s), axis))


def log_softmax_backward(
    dy: Array, y: Array, *, axis: int = -1, checked: Checked | None = None
) -> Array:
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
    checked = checked or check_activation_backward(
        dy, y, "log_softmax", saved_name="y", axis=check_axis(axis)
    )
    xp, dtype = checked.xp, checked.dtype
    g = as_dtype(xp, dy, dtype)
    dx = g - xp.exp(as_dtype(xp, y, dtype)) * _along(xp.sum, g, axis)
    return gradient_as(xp, dx, y.dtype)


# -- settings of the activations below ---------------------------------------


def check_real_setting(value: object, name: str) -> float:
    """Return the setting ``name`` as a finite Python float, or raise.

    Raises
    ------
    TypeError
        If ``value`` is not a real number (booleans included).
    ValueError
        If it is not finite.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    # A plain float keeps the array's dtype (NumPy scalars would promote).
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {number}")
    return number


def check_softplus(beta: object, threshold: object) -> tuple[float, float]:
    """Return ``(beta, threshold)`` of :func:`softplus` as floats, or raise.

    Raises
    ------
    TypeError
        If either is not a real number.
    ValueError
        If either is not finite, or ``beta`` is 0 (the result divides by it).
    """
    b = check_real_setting(beta, "beta")
    if b == 0.0:
        raise ValueError("beta must be a nonzero real number: softplus divides by it, got 0.0")
    return b, check_real_setting(threshold, "threshold")


def check_hardtanh(min_val: object, max_val: object) -> tuple[float, float]:
    """Return ``(min_val, max_val)`` of :func:`hardtanh` as floats, or raise.

    Raises
    ------
    TypeError
        If either is not a real number.
    ValueError
        If either is not finite, or ``min_val >= max_val``.
    """
    low, high = check_real_setting(min_val, "min_val"), check_real_setting(max_val, "max_val")
    if not low < high:
        raise ValueError(f"min_val must be less than max_val, got min_val={low}, max_val={high}")
    return low, high


def _sigmoid_real(xp: Namespace, x: Array) -> Array:
    """Return the logistic sigmoid of a real ``x``, without overflow (as :func:`sigmoid`)."""
    z = xp.exp(-xp.abs(x))
    one_plus_z = 1 + z
    return xp.where(x >= 0, 1 / one_plus_z, z / one_plus_z)


def _softplus_real(xp: Namespace, z: Array, zero: Array) -> Array:
    """``log(1 + exp(z))`` as ``max(z, 0) + log1p(exp(-|z|))``: no exponential overflows."""
    return xp.maximum(z, zero) + xp.log1p(xp.exp(-xp.abs(z)))


# -- SiLU ------------------------------------------------------------------


def silu(x: Array, *, checked: Checked | None = None) -> Array:
    """Apply the sigmoid linear unit (swish): ``y = x * sigmoid(x)``.

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
    >>> from xpnn.functional.activations import silu
    >>> silu(np.array([-1e4, 0.0, 1e4]))
    array([   -0.,     0., 10000.])
    """
    checked = checked or check_activation(x, "silu")
    return x * _sigmoid_real(checked.xp, x)


def silu_backward(dy: Array, x: Array, *, checked: Checked | None = None) -> Array:
    """Return the input gradient of :func:`silu`.

    ``dx = dy * s * (1 + x * (1 - s))`` with ``s = sigmoid(x)``.

    Parameters
    ----------
    dy : array of the shape of ``x``
        Gradient of the loss with respect to ``y = silu(x)``.
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
    checked = checked or check_activation_backward(dy, x, "silu", saved_name="x")
    xp, dtype = checked.xp, checked.dtype
    x_c = as_dtype(xp, x, dtype)
    s = _sigmoid_real(xp, x_c)
    return gradient_as(xp, as_dtype(xp, dy, dtype) * (s * (1 + x_c * (1 - s))), x.dtype)


# -- softplus --------------------------------------------------------------


def softplus(
    x: Array, *, beta: float = 1.0, threshold: float = 20.0, checked: Checked | None = None
) -> Array:
    """Apply the softplus: ``y = log(1 + exp(beta * x)) / beta``, or ``x`` past a threshold.

    As ``torch.nn.functional.softplus``: where ``beta * x > threshold`` the
    result is ``x`` itself (the two differ there by less than
    ``exp(-threshold) / beta``).

    Parameters
    ----------
    x : array of any shape
        Input with a real floating dtype.
    beta : float, default 1.0
        Sharpness; any finite nonzero real number.
    threshold : float, default 20.0
        Where ``beta * x`` exceeds it, ``y = x``; any finite real number.

    Returns
    -------
    y : array of the shape of ``x``
        In the namespace, on the device and with the dtype of ``x``.

    Raises
    ------
    TypeError
        If ``x`` is not an array or has no real floating dtype, or if
        ``beta`` or ``threshold`` is not a real number.
    ValueError
        If ``beta`` or ``threshold`` is not finite, or ``beta`` is 0.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.activations import softplus
    >>> softplus(np.array([-1e4, 0.0, 1e4])).round(6)
    array([0.00000e+00, 6.93147e-01, 1.00000e+04])
    """
    b, t = check_softplus(beta, threshold)
    checked = checked or check_activation(x, "softplus")
    xp = checked.xp
    z = x * b
    # Computed stably everywhere, then replaced past the threshold, as torch.
    return xp.where(z > t, x, _softplus_real(xp, z, checked.constants) / b)


def softplus_backward(
    dy: Array,
    x: Array,
    *,
    beta: float = 1.0,
    threshold: float = 20.0,
    checked: Checked | None = None,
) -> Array:
    """Return the input gradient of :func:`softplus`.

    ``dx = dy`` where ``beta * x > threshold``, else
    ``dy * sigmoid(beta * x)``, as in PyTorch.

    Parameters
    ----------
    dy : array of the shape of ``x``
        Gradient of the loss with respect to ``y = softplus(x)``.
    x : array of any shape
        The input of the forward pass.
    beta, threshold : float
        The settings of the forward pass.

    Returns
    -------
    dx : array of the shape of ``x``
        In the dtype of ``x``.

    Raises
    ------
    TypeError
        For arrays from different libraries, dtypes that are not real
        floating, or settings that are not real numbers.
    ValueError
        For arrays on different devices, shapes that differ, or settings
        that are not finite (or ``beta == 0``).
    """
    b, t = check_softplus(beta, threshold)
    checked = checked or check_activation_backward(dy, x, "softplus", saved_name="x")
    xp, dtype = checked.xp, checked.dtype
    g = as_dtype(xp, dy, dtype)
    z = as_dtype(xp, x, dtype) * b
    return gradient_as(xp, xp.where(z > t, g, g * _sigmoid_real(xp, z)), x.dtype)


# -- ELU -------------------------------------------------------------------


def elu(x: Array, *, alpha: float = 1.0, checked: Checked | None = None) -> Array:
    """Apply the exponential linear unit: ``y = x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``.

    Parameters
    ----------
    x : array of any shape
        Input with a real floating dtype.
    alpha : float, default 1.0
        The value ``y`` tends to as ``x -> -inf``, negated; any finite real
        number.

    Returns
    -------
    y : array of the shape of ``x``
        In the namespace, on the device and with the dtype of ``x``.

    Raises
    ------
    TypeError
        If ``x`` is not an array or has no real floating dtype, or if
        ``alpha`` is not a real number.
    ValueError
        If ``alpha`` is not finite.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.activations import elu
    >>> elu(np.array([-1e4, 0.0, 2.0]))
    array([-1.,  0.,  2.])
    """
    a = check_real_setting(alpha, "alpha")
    checked = checked or check_activation(x, "elu")
    xp = checked.xp
    # expm1 is exact near 0; min(x, 0) keeps it from overflowing where
    # the branch is not taken.
    return xp.where(x > 0, x, xp.expm1(xp.minimum(x, checked.constants)) * a)


def elu_backward(
    dy: Array, x: Array, *, alpha: float = 1.0, checked: Checked | None = None
) -> Array:
    """Return the input gradient of :func:`elu`.

    ``dx = dy`` where ``x > 0``, else ``dy * alpha * exp(x)`` (so at
    ``x == 0`` the slope is ``alpha``, as in PyTorch).

    Parameters
    ----------
    dy : array of the shape of ``x``
        Gradient of the loss with respect to ``y = elu(x)``.
    x : array of any shape
        The input of the forward pass.
    alpha : float, default 1.0
        The setting of the forward pass.

    Returns
    -------
    dx : array of the shape of ``x``
        In the dtype of ``x``.

    Raises
    ------
    TypeError
        For arrays from different libraries, dtypes that are not real
        floating, or an ``alpha`` that is not a real number.
    ValueError
        For arrays on different devices, shapes that differ, or an
        ``alpha`` that is not finite.
    """
    a = check_real_setting(alpha, "alpha")
    checked = checked or check_activation_backward(dy, x, "elu", saved_name="x")
    xp, dtype = checked.xp, checked.dtype
    g = as_dtype(xp, dy, dtype)
    x_c = as_dtype(xp, x, dtype)
    slope = xp.exp(xp.minimum(x_c, checked.constants)) * a
    return gradient_as(xp, xp.where(x_c > 0, g, g * slope), x.dtype)


# -- hardtanh --------------------------------------------------------------


def hardtanh(
    x: Array, *, min_val: float = -1.0, max_val: float = 1.0, checked: Checked | None = None
) -> Array:
    """Clip ``x`` to ``[min_val, max_val]``: ``y = min(max(x, min_val), max_val)``.

    Parameters
    ----------
    x : array of any shape
        Input with a real floating dtype. NaN stays NaN.
    min_val, max_val : float, default -1.0 and 1.0
        The bounds; finite real numbers with ``min_val < max_val``.

    Returns
    -------
    y : array of the shape of ``x``
        In the namespace, on the device and with the dtype of ``x``.

    Raises
    ------
    TypeError
        If ``x`` is not an array or has no real floating dtype, or if a
        bound is not a real number.
    ValueError
        If a bound is not finite, or ``min_val >= max_val``.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.functional.activations import hardtanh
    >>> hardtanh(np.array([-3.0, 0.5, 3.0]))
    array([-1. ,  0.5,  1. ])
    """
    low, high = check_hardtanh(min_val, max_val)
    checked = checked or check_activation(x, "hardtanh")
    xp = checked.xp
    # maximum and minimum with arrays, not clip: array_api_compat's clip for
    # Dask needs every size known. Both keep NaN.
    zero = checked.constants
    return xp.minimum(xp.maximum(x, zero + low), zero + high)


def hardtanh_backward(
    dy: Array,
    x: Array,
    *,
    min_val: float = -1.0,
    max_val: float = 1.0,
    checked: Checked | None = None,
) -> Array:
    """Return the input gradient of :func:`hardtanh`.

    ``dx = dy`` where ``min_val < x < max_val``, else 0: at either bound
    the gradient is 0, as in PyTorch.

    Parameters
    ----------
    dy : array of the shape of ``x``
        Gradient of the loss with respect to ``y = hardtanh(x)``.
    x : array of any shape
        The input of the forward pass.
    min_val, max_val : float
        The bounds of the forward pass.

    Returns
    -------
    dx : array of the shape of ``x``
        In the dtype of ``x``.

    Raises
    ------
    TypeError
        For arrays from different libraries, dtypes that are not real
        floating, or bounds that are not real numbers.
    ValueError
        For arrays on different devices, shapes that differ, or bounds that
        are not finite or not in order.
    """
    low, high = check_hardtanh(min_val, max_val)
    checked = checked or check_activation_backward(dy, x, "hardtanh", saved_name="x")
    xp, dtype = checked.xp, checked.dtype
    zero = checked.constants
    outside = (x <= low) | (x >= high)
    return gradient_as(xp, xp.where(outside, zero, as_dtype(xp, dy, dtype)), x.dtype)


# -- Mish ------------------------------------------------------------------


def mish(x: Array, *, checked: Checked | None = None) -> Array:
    """Apply Mish: ``y = x * tanh(softplus(x))``.

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
    >>> from xpnn.functional.activations import mish
    >>> mish(np.array([-1e4, 0.0, 1e4]))
    array([   -0.,     0., 10000.])
    """
    checked = checked or check_activation(x, "mish")
    xp = checked.xp
    return x * xp.tanh(_softplus_real(xp, x, checked.constants))


def mish_backward(dy: Array, x: Array, *, checked: Checked | None = None) -> Array:
    """Return the input gradient of :func:`mish`.

    ``dx = dy * (t + x * sigmoid(x) * (1 - t**2))`` with
    ``t = tanh(softplus(x))`` (softplus' derivative is the sigmoid).

    Parameters
    ----------
    dy : array of the shape of ``x``
        Gradient of the loss with respect to ``y = mish(x)``.
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
    checked = checked or check_activation_backward(dy, x, "mish", saved_name="x")
    xp, dtype = checked.xp, checked.dtype
    x_c = as_dtype(xp, x, dtype)
    t = xp.tanh(_softplus_real(xp, x_c, checked.constants))
    derivative = t + x_c * _sigmoid_real(xp, x_c) * (1 - t * t)
    return gradient_as(xp, as_dtype(xp, dy, dtype) * derivative, x.dtype)


# -- identity --------------------------------------------------------------


def identity(x: Array, *, checked: Checked | None = None) -> Array:
    """Return ``x`` itself, as ``torch.nn.Identity`` does (no copy).

    Parameters
    ----------
    x : array of any shape
        Input with a real or complex floating dtype.

    Returns
    -------
    y : array
        ``x``, the same object.

    Raises
    ------
    TypeError
        If ``x`` is not an array, or has no floating dtype.
    """
    if checked is None:
        check_activation(x, "identity", complex_ok=True)
    return x


def identity_backward(dy: Array, x: Array, *, checked: Checked | None = None) -> Array:
    """Return the input gradient of :func:`identity`: ``dx = dy``, in ``x``'s dtype.

    Parameters
    ----------
    dy : array of the shape of ``x``
        Gradient of the loss with respect to ``y = x``.
    x : array of any shape
        The input of the forward pass.

    Returns
    -------
    dx : array of the shape of ``x``
        ``dy`` itself when it has ``x``'s dtype, else ``dy`` cast to it.

    Raises
    ------
    TypeError
        For arrays from different libraries, dtypes that are not floating,
        or a complex ``dy`` for a real ``x``.
    ValueError
        For arrays on different devices, or if ``dy`` and ``x`` differ in
        shape.
    """
    checked = checked or check_activation_backward(
        dy, x, "identity", saved_name="x", complex_ok=True
    )
    return gradient_as(checked.xp, dy, x.dtype)

"""Activation layers: parameter-free modules over the functional pairs.

Each layer applies one function of :mod:`xpnn.functional.activations`, and
its ``backward`` closure keeps only the array that the derivative needs:
the input for ``ReLU``, ``LeakyReLU``, ``GELU``, ``SiLU``, ``Softplus``,
``ELU``, ``Hardtanh``, ``Mish`` and ``Identity``, the output for ``Tanh``,
``Sigmoid``, ``Softmax`` and ``LogSoftmax``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from .._checks import Checked
from .._compat import Array
from ..functional.activations import (
    check_activation,
    check_activation_backward,
    check_axis,
    check_gelu_approximate,
    check_hardtanh,
    check_real_setting,
    check_slope,
    check_softplus,
    elu,
    elu_backward,
    gelu,
    gelu_backward,
    hardtanh,
    hardtanh_backward,
    identity,
    identity_backward,
    leaky_relu,
    leaky_relu_backward,
    log_softmax,
    log_softmax_backward,
    mish,
    mish_backward,
    relu,
    relu_backward,
    sigmoid,
    sigmoid_backward,
    silu,
    silu_backward,
    softmax,
    softmax_backward,
    softplus,
    softplus_backward,
    tanh,
    tanh_backward,
)
from ._module import Backward, Module, backward_again

__all__ = [
    "ELU",
    "GELU",
    "Hardtanh",
    "Identity",
    "LeakyReLU",
    "LogSoftmax",
    "Mish",
    "ReLU",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
]


class _Activation(Module):
    """A layer without parameters over one pair of :mod:`xpnn.functional.activations`.

    Subclasses name the pair (``_function``, ``_backward_function``) and
    what it needs: ``_what`` for messages, ``_keeps_output`` (the backward
    takes ``y`` rather than ``x``), ``_complex_ok``, and the keyword
    settings it takes (:meth:`_options`). The inputs are checked once per
    kind (``xpnn._checks``); the functions then run unchecked.
    """

    _function: ClassVar[Callable[..., Array]]
    _backward_function: ClassVar[Callable[..., Array]]
    _what: ClassVar[str]
    _keeps_output: ClassVar[bool] = False
    _complex_ok: ClassVar[bool] = False

    def keeps_shape(self) -> bool:
        """Activations apply elementwise (or along an axis): the shape stays."""
        return True

    def _options(self) -> dict[str, Any]:
        """Return the keyword settings of the functional pair (``axis=``, ...)."""
        return {}

    def _axis(self) -> int | None:
        return None

    def _check(self, x: Array) -> Checked:
        return check_activation(x, self._what, complex_ok=self._complex_ok, axis=self._axis())

    def _check_backward(self, dy: Array, kept: Array, *, forward: Checked) -> Checked:
        return check_activation_backward(
            dy,
            kept,
            self._what,
            saved_name="y" if self._keeps_output else "x",
            complex_ok=self._complex_ok,
            axis=self._axis(),
            forward=forward,
        )

    def forward(self, x: Array, *, input_grad: bool = True) -> tuple[Array, Backward]:
        """Apply the activation and return ``(y, backward)``.

        Parameters
        ----------
        x : array
            Input; see the class for the shapes and dtypes it accepts.
        input_grad : bool, default True
            Whether ``backward`` returns ``dx``. Without it there is nothing
            to compute (no parameters): ``backward`` returns ``None``.

        Returns
        -------
        y : array of the shape of ``x``
            The output, in the namespace, on the device and with the dtype
            of ``x``.
        backward : callable
            ``backward(dy, *, retain_graph=False) -> dx``, with ``dy`` and
            ``dx`` of the shape of ``x``. It keeps its own forward's input
            (or output), so several forwards may be back-propagated in any
            order. It raises ``ValueError`` for dimensions of unknown size
            (Dask's, after boolean indexing), which ``y`` may have. It may be
            called once, unless the earlier calls passed
            ``retain_graph=True``; a second call raises ``RuntimeError``.
        """
        options = self._options()
        forward = self._checks.check(self._check, x)
        y = type(self)._function(x, checked=forward, **options)
        kept = y if self._keeps_output else x
        backward_function = type(self)._backward_function

        what = type(self).__name__
        used = False

        if not input_grad:

            def no_input_grad(dy: Array, *, retain_graph: bool = False) -> None:
                # No parameters and no dx: nothing to compute, but a closure
                # is used up all the same, as every other.
                nonlocal used
                if used:
                    raise backward_again(what)
                used = not retain_graph

            return y, no_input_grad

        def backward(dy: Array, *, retain_graph: bool = False) -> Array:
            nonlocal used
            if used:
                raise backward_again(what)
            # Once per kind of dy and of this forward pass's input.
            checked = self._checks.check(self._check_backward, dy, context=(kept,), forward=forward)
            dx = backward_function(dy, kept, checked=checked, **options)
            used = not retain_graph
            return dx

        return y, backward

    def __call__(self, x: Array) -> Array:
        """Apply the activation and return ``y`` only."""
        return type(self)._function(
            x, checked=self._checks.check(self._check, x), **self._options()
        )


class ReLU(_Activation):
    """The rectified linear unit, ``y = max(x, 0)``, elementwise.

    Real floating inputs of any shape. The gradient at ``x == 0`` is 0.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.layers.activations import ReLU
    >>> y, backward = ReLU().forward(np.array([-1.0, 2.0]))
    >>> y, backward(np.ones(2))
    (array([0., 2.]), array([0., 1.]))
    """

    _function = staticmethod(relu)
    _backward_function = staticmethod(relu_backward)
    _what = "relu"


class LeakyReLU(_Activation):
    """The leaky ReLU: ``y = x`` where ``x > 0``, else ``negative_slope * x``.

    Real floating inputs of any shape.

    Parameters
    ----------
    negative_slope : float, default 0.01
        Slope for negative inputs; any finite real number.

    Raises
    ------
    TypeError
        If ``negative_slope`` is not a real number.
    ValueError
        If ``negative_slope`` is not finite.
    """

    _function = staticmethod(leaky_relu)
    _backward_function = staticmethod(leaky_relu_backward)
    _what = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01) -> None:
        slope = check_slope(negative_slope)
        super().__init__()
        self.negative_slope = slope

    def _options(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}

    def _settings(self) -> dict[str, object]:
        return {"negative_slope": self.negative_slope}


class Tanh(_Activation):
    """The hyperbolic tangent, elementwise.

    Real or complex floating inputs of any shape; complex gradients follow
    PyTorch's convention, ``dx = dy * conj(1 - y**2)``.
    """

    _function = staticmethod(tanh)
    _backward_function = staticmethod(tanh_backward)
    _what = "tanh"
    _keeps_output = True
    _complex_ok = True


class Sigmoid(_Activation):
    """The logistic sigmoid, ``y = 1 / (1 + exp(-x))``, elementwise.

    Real or complex floating inputs of any shape, computed without
    overflow; complex gradients follow PyTorch's convention,
    ``dx = dy * conj(y * (1 - y))``.
    """

    _function = staticmethod(sigmoid)
    _backward_function = staticmethod(sigmoid_backward)
    _what = "sigmoid"
    _keeps_output = True
    _complex_ok = True


class GELU(_Activation):
    """The Gaussian error linear unit, elementwise, as ``torch.nn.GELU``.

    Exact by default, ``y = x * Phi(x) = x / 2 * (1 + erf(x / sqrt(2)))``
    (``erf`` is :func:`xpnn.functional.special.erf`); with
    ``approximate="tanh"``, ``y = 0.5 * x * (1 + tanh(sqrt(2/pi) * (x +
    0.044715 * x**3)))``. Real floating inputs of any shape.

    Parameters
    ----------
    approximate : {"none", "tanh"}, default "none"
        The form: exact, or the tanh approximation.

    Raises
    ------
    ValueError
        If ``approximate`` is neither ``"none"`` nor ``"tanh"``.
    """

    _function = staticmethod(gelu)
    _backward_function = staticmethod(gelu_backward)
    _what = "gelu"

    def __init__(self, approximate: str = "none") -> None:
        form = check_gelu_approximate(approximate)
        super().__init__()
        self.approximate = form

    def _options(self) -> dict[str, Any]:
        return {"approximate": self.approximate}

    def _settings(self) -> dict[str, object]:
        return {"approximate": self.approximate}


class Softmax(_Activation):
    """Exponentials normalised to sum to 1 along ``axis``.

    Real floating inputs of any shape; a 0-d input (``axis`` 0 or -1) is a
    group of one, as in PyTorch.

    Parameters
    ----------
    axis : int, default -1
        The axis to normalise over; negative values count from the end. It
        is checked against each input's number of dimensions.

    Raises
    ------
    TypeError
        If ``axis`` is not an int.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.layers.activations import Softmax
    >>> Softmax(axis=0)(np.array([[0.0], [0.0]]))
    array([[0.5],
           [0.5]])
    """

    _function = staticmethod(softmax)
    _backward_function = staticmethod(softmax_backward)
    _what = "softmax"
    _keeps_output = True

    def __init__(self, axis: int = -1) -> None:
        index = check_axis(axis)
        super().__init__()
        self.axis = index

    def _options(self) -> dict[str, Any]:
        return {"axis": self.axis}

    def _axis(self) -> int | None:
        return self.axis

    def _settings(self) -> dict[str, object]:
        return {"axis": self.axis}


class LogSoftmax(_Activation):
    """The logarithm of :class:`Softmax`, computed stably.

    Real floating inputs of any shape; a 0-d input (``axis`` 0 or -1) is a
    group of one, as in PyTorch.

    Parameters
    ----------
    axis : int, default -1
        The axis to normalise over; negative values count from the end. It
        is checked against each input's number of dimensions.

    Raises
    ------
    TypeError
        If ``axis`` is not an int.
    """

    _function = staticmethod(log_softmax)
    _backward_function = staticmethod(log_softmax_backward)
    _what = "log_softmax"
    _keeps_output = True

    def __init__(self, axis: int = -1) -> None:
        index = check_axis(axis)
        super().__init__()
        self.axis = index

    def _options(self) -> dict[str, Any]:
        return {"axis": self.axis}

    def _axis(self) -> int | None:
        return self.axis

    def _settings(self) -> dict[str, object]:
        return {"axis": self.axis}


class SiLU(_Activation):
    """The sigmoid linear unit (swish), ``y = x * sigmoid(x)``, elementwise.

    Real floating inputs of any shape.
    """

    _function = staticmethod(silu)
    _backward_function = staticmethod(silu_backward)
    _what = "silu"


class Softplus(_Activation):
    """The softplus, ``y = log(1 + exp(beta * x)) / beta``, elementwise, as ``torch.nn.Softplus``.

    Real floating inputs of any shape. Where ``beta * x > threshold``,
    ``y = x`` and the gradient is 1.

    Parameters
    ----------
    beta : float, default 1.0
        Sharpness; any finite nonzero real number.
    threshold : float, default 20.0
        Past it (in ``beta * x``) the layer is linear; any finite real number.

    Raises
    ------
    TypeError
        If ``beta`` or ``threshold`` is not a real number.
    ValueError
        If either is not finite, or ``beta`` is 0.
    """

    _function = staticmethod(softplus)
    _backward_function = staticmethod(softplus_backward)
    _what = "softplus"

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        b, t = check_softplus(beta, threshold)
        super().__init__()
        self.beta = b
        self.threshold = t

    def _options(self) -> dict[str, Any]:
        return {"beta": self.beta, "threshold": self.threshold}

    def _settings(self) -> dict[str, object]:
        return {"beta": self.beta, "threshold": self.threshold}


class ELU(_Activation):
    """The exponential linear unit: ``y = x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``.

    Real floating inputs of any shape. The gradient at ``x == 0`` is
    ``alpha``, as in PyTorch.

    Parameters
    ----------
    alpha : float, default 1.0
        Any finite real number.

    Raises
    ------
    TypeError
        If ``alpha`` is not a real number.
    ValueError
        If ``alpha`` is not finite.
    """

    _function = staticmethod(elu)
    _backward_function = staticmethod(elu_backward)
    _what = "elu"

    def __init__(self, alpha: float = 1.0) -> None:
        a = check_real_setting(alpha, "alpha")
        super().__init__()
        self.alpha = a

    def _options(self) -> dict[str, Any]:
        return {"alpha": self.alpha}

    def _settings(self) -> dict[str, object]:
        return {"alpha": self.alpha}


class Hardtanh(_Activation):
    """``x`` clipped to ``[min_val, max_val]``, elementwise.

    Real floating inputs of any shape. The gradient is 1 strictly inside
    the bounds and 0 elsewhere, at the bounds included, as in PyTorch.

    Parameters
    ----------
    min_val, max_val : float, default -1.0 and 1.0
        Finite real numbers with ``min_val < max_val``.

    Raises
    ------
    TypeError
        If a bound is not a real number.
    ValueError
        If a bound is not finite, or ``min_val >= max_val``.
    """

    _function = staticmethod(hardtanh)
    _backward_function = staticmethod(hardtanh_backward)
    _what = "hardtanh"

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0) -> None:
        low, high = check_hardtanh(min_val, max_val)
        super().__init__()
        self.min_val = low
        self.max_val = high

    def _options(self) -> dict[str, Any]:
        return {"min_val": self.min_val, "max_val": self.max_val}

    def _settings(self) -> dict[str, object]:
        return {"min_val": self.min_val, "max_val": self.max_val}


class Mish(_Activation):
    """Mish, ``y = x * tanh(softplus(x))``, elementwise.

    Real floating inputs of any shape.
    """

    _function = staticmethod(mish)
    _backward_function = staticmethod(mish_backward)
    _what = "mish"


class Identity(_Activation):
    """The identity: ``y`` is ``x`` itself (no copy), as ``torch.nn.Identity``.

    Real or complex floating inputs of any shape; ``dx = dy``.
    """

    _function = staticmethod(identity)
    _backward_function = staticmethod(identity_backward)
    _what = "identity"
    _complex_ok = True

"""Activation layers: parameter-free modules over the functional pairs.

Each layer applies one function of :mod:`xpnn.functional.activations`, and
its ``backward`` closure keeps only the array that the derivative needs:
the input for ``ReLU``, ``LeakyReLU`` and ``GELU``, the output for ``Tanh``,
``Sigmoid``, ``Softmax`` and ``LogSoftmax``.
"""

from __future__ import annotations

from .._checks import has_unknown
from .._compat import Array, Namespace, array_namespace
from .._compat import device as device_of
from ..functional.activations import (
    _check_axis_type,
    _check_slope,
    gelu,
    gelu_backward,
    leaky_relu,
    leaky_relu_backward,
    log_softmax,
    log_softmax_backward,
    relu,
    relu_backward,
    sigmoid,
    sigmoid_backward,
    softmax,
    softmax_backward,
    tanh,
    tanh_backward,
)
from ._module import Backward, Module

__all__ = ["GELU", "LeakyReLU", "LogSoftmax", "ReLU", "Sigmoid", "Softmax", "Tanh"]


class _Activation(Module):
    """A layer without parameters whose backward needs one array.

    Subclasses set ``_keeps_output`` (``True``: the backward needs ``y``;
    ``False``: it needs ``x``) and implement ``_forward`` and ``_backward``.
    """

    _keeps_output = False

    def keeps_shape(self) -> bool:
        """Activations apply elementwise (or along an axis): the shape stays."""
        return True

    #: Whether the subclass has unchecked kernels (``_kernel``,
    #: ``_kernel_backward``) for inputs of a kind already checked once.
    _has_kernels = False

    def __init__(self) -> None:
        super().__init__()
        self._memo: tuple[object, Namespace, Array] | None = None

    def _forward(self, x: Array) -> Array:
        raise NotImplementedError

    def _backward(self, dy: Array, kept: Array) -> Array:
        raise NotImplementedError

    def _kernel(self, xp: Namespace, x: Array, zero: Array) -> Array:
        raise NotImplementedError

    def _kernel_backward(self, xp: Namespace, dy: Array, kept: Array, zero: Array) -> Array:
        raise NotImplementedError

    def forward(self, x: Array) -> tuple[Array, Backward]:
        """Apply the activation and return ``(y, backward)``.

        Parameters
        ----------
        x : array
            Input; see the class for the shapes and dtypes it accepts.

        Returns
        -------
        y : array of the shape of ``x``
            The output, in the namespace, on the device and with the dtype
            of ``x``.
        backward : callable
            ``backward(dy) -> dx``, with ``dy`` and ``dx`` of the shape of
            ``x``. It keeps its own forward's input (or output), so several
            forwards may be back-propagated in any order. It raises
            ``ValueError`` for dimensions of unknown size (Dask's, after
            boolean indexing), which ``y`` may have.
        """
        if not self._has_kernels:
            y = self._forward(x)
            kept = y if self._keeps_output else x
            return y, lambda dy: self._backward(dy, kept)
        # The checks depend only on the input's type, dtype and device: the
        # first input of a kind goes through the checked functions, later
        # ones (a training loop's) straight to the kernels.
        where = device_of(x)
        key = (type(x), x.dtype, where)
        memo = self._memo
        if memo is not None and memo[0] == key:
            xp, zero = memo[1], memo[2]
            y = self._kernel(xp, x, zero)
        else:
            y = self._forward(x)
            xp = array_namespace(x=x)
            zero = xp.zeros((), dtype=x.dtype, device=where)
            self._memo = (key, xp, zero)
        kept = y if self._keeps_output else x
        # Unknown (NaN) sizes may compare equal by identity; such inputs must
        # meet the checks, which reject them.
        kept_shape = None if has_unknown(kept.shape) else kept.shape

        def backward(dy: Array) -> Array:
            if (
                type(dy) is key[0]
                and dy.dtype == key[1]
                and dy.shape == kept_shape
                and device_of(dy) == where
            ):
                return self._kernel_backward(xp, dy, kept, zero)
            return self._backward(dy, kept)

        return y, backward


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

    _has_kernels = True

    def _forward(self, x: Array) -> Array:
        return relu(x)

    def _backward(self, dy: Array, kept: Array) -> Array:
        return relu_backward(dy, kept)

    def _kernel(self, xp: Namespace, x: Array, zero: Array) -> Array:
        # max(x, 0) keeps NaN, as relu() does.
        return xp.maximum(x, zero)

    def _kernel_backward(self, xp: Namespace, dy: Array, kept: Array, zero: Array) -> Array:
        return xp.where(kept <= 0, zero, dy)


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

    def __init__(self, negative_slope: float = 0.01) -> None:
        slope = _check_slope(negative_slope)
        super().__init__()
        self.negative_slope = slope

    def _forward(self, x: Array) -> Array:
        return leaky_relu(x, negative_slope=self.negative_slope)

    def _backward(self, dy: Array, kept: Array) -> Array:
        return leaky_relu_backward(dy, kept, negative_slope=self.negative_slope)

    def _settings(self) -> dict[str, object]:
        return {"negative_slope": self.negative_slope}


class Tanh(_Activation):
    """The hyperbolic tangent, elementwise.

    Real or complex floating inputs of any shape; complex gradients follow
    PyTorch's convention, ``dx = dy * conj(1 - y**2)``.
    """

    _keeps_output = True

    def _forward(self, x: Array) -> Array:
        return tanh(x)

    def _backward(self, dy: Array, kept: Array) -> Array:
        return tanh_backward(dy, kept)


class Sigmoid(_Activation):
    """The logistic sigmoid, ``y = 1 / (1 + exp(-x))``, elementwise.

    Real or complex floating inputs of any shape, computed without
    overflow; complex gradients follow PyTorch's convention,
    ``dx = dy * conj(y * (1 - y))``.
    """

    _keeps_output = True

    def _forward(self, x: Array) -> Array:
        return sigmoid(x)

    def _backward(self, dy: Array, kept: Array) -> Array:
        return sigmoid_backward(dy, kept)


class GELU(_Activation):
    """The Gaussian error linear unit in its tanh form, elementwise.

    ``y = 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x**3)))``, as
    ``torch.nn.GELU(approximate="tanh")``. Real floating inputs of any
    shape.

    Parameters
    ----------
    approximate : {"tanh"}, default "tanh"
        The only form available: the exact one needs ``erf``, which the
        array API standard does not define.

    Raises
    ------
    ValueError
        If ``approximate`` is not ``"tanh"``.
    """

    def __init__(self, approximate: str = "tanh") -> None:
        if approximate != "tanh":
            raise ValueError(
                f"GELU supports approximate='tanh' only, got {approximate!r}: the exact form "
                "needs erf, which the array API standard does not define"
            )
        super().__init__()

    def _forward(self, x: Array) -> Array:
        return gelu(x)

    def _backward(self, dy: Array, kept: Array) -> Array:
        return gelu_backward(dy, kept)

    def _settings(self) -> dict[str, object]:
        return {"approximate": "tanh"}


class Softmax(_Activation):
    """Exponentials normalised to sum to 1 along ``axis``.

    Real floating inputs with at least one dimension.

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

    _keeps_output = True

    def __init__(self, axis: int = -1) -> None:
        index = _check_axis_type(axis)
        super().__init__()
        self.axis = index

    def _forward(self, x: Array) -> Array:
        return softmax(x, axis=self.axis)

    def _backward(self, dy: Array, kept: Array) -> Array:
        return softmax_backward(dy, kept, axis=self.axis)

    def _settings(self) -> dict[str, object]:
        return {"axis": self.axis}


class LogSoftmax(_Activation):
    """The logarithm of :class:`Softmax`, computed stably.

    Real floating inputs with at least one dimension.

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

    _keeps_output = True

    def __init__(self, axis: int = -1) -> None:
        index = _check_axis_type(axis)
        super().__init__()
        self.axis = index

    def _forward(self, x: Array) -> Array:
        return log_softmax(x, axis=self.axis)

    def _backward(self, dy: Array, kept: Array) -> Array:
        return log_softmax_backward(dy, kept, axis=self.axis)

    def _settings(self) -> dict[str, object]:
        return {"axis": self.axis}

"""Pooling layers: parameter-free modules over :mod:`xpnn.functional.pooling`.

Each layer checks its settings when it is made, checks each kind of input
once (the windows' geometry is worked out there, from static sizes), and
keeps its input for the backward pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from .._checks import Checked
from .._compat import Array
from ..functional.pooling import (
    adaptive_avg_pool_backward_kernel,
    adaptive_avg_pool_kernel,
    avg_pool_backward_kernel,
    avg_pool_kernel,
    check_adaptive_pool,
    check_output_size,
    check_pool,
    check_pool_backward,
    max_pool_backward_kernel,
    max_pool_kernel,
    pool_settings,
)
from ._module import Backward, Module, backward_again

__all__ = [
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "MaxPool1d",
    "MaxPool2d",
]


def _plain(values: tuple[int, ...]) -> int | tuple[int, ...]:
    """Show ``(2, 2)`` as ``2``, as PyTorch's constructors take it."""
    return values[0] if len(set(values)) == 1 else values


class _Pool(Module):
    """A pooling layer: ``_d`` spatial axes, a kernel pair and a check."""

    _d: ClassVar[int]
    _what: ClassVar[str]
    _kernel: ClassVar[Callable[..., Array]]
    _backward_kernel: ClassVar[Callable[..., Array]]

    def _check(self, x: Array) -> Checked:
        raise NotImplementedError

    def _check_backward(self, dy: Array, x: Array, *, forward: Checked) -> Checked:
        return check_pool_backward(dy, x, self._what, forward=forward)

    def forward(self, x: Array, *, input_grad: bool = True) -> tuple[Array, Backward]:
        """Pool ``x`` and return ``(y, backward)``.

        Parameters
        ----------
        x : array
            ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``, real floating.
        input_grad : bool, default True
            Whether ``backward`` returns ``dx``; without it, it returns ``None``.

        Returns
        -------
        y : array
            The pooled output, in ``x``'s namespace, device and dtype.
        backward : callable
            ``backward(dy, *, retain_graph=False) -> dx``, which may be called
            once unless ``retain_graph=True``.
        """
        forward = self._checks.check(self._check, x)
        y = type(self)._kernel(x, forward)
        what = type(self).__name__
        used = False

        def backward(dy: Array, *, retain_graph: bool = False) -> Array | None:
            nonlocal used
            if used:
                raise backward_again(what)
            if not input_grad:
                used = not retain_graph
                return None
            checked = self._checks.check(self._check_backward, dy, context=(x,), forward=forward)
            dx = type(self)._backward_kernel(dy, x, checked)
            used = not retain_graph
            return dx

        return y, backward

    def __call__(self, x: Array) -> Array:
        """Pool ``x`` and return ``y`` only."""
        return type(self)._kernel(x, self._checks.check(self._check, x))


class _WindowPool(_Pool):
    def __init__(
        self,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] | None = None,
        padding: int | tuple[int, ...] = 0,
        dilation: int | tuple[int, ...] = 1,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        kernel, steps, pads, dilations = pool_settings(
            self._d, kernel_size, stride, padding, dilation, what=type(self).__name__
        )
        for name, flag in (("ceil_mode", ceil_mode), ("count_include_pad", count_include_pad)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, got {flag!r}")
        super().__init__()
        self.kernel_size = _plain(kernel)
        self.stride = _plain(steps)
        self.padding = _plain(pads)
        self.dilation = _plain(dilations)
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad

    def _check(self, x: Array) -> Checked:
        return check_pool(
            x,
            self._what,
            self._d,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            self.ceil_mode,
            self.count_include_pad,
        )


def _refuse(name: str, value: object, default: object, why: str) -> None:
    if value is not default and value != default:
        raise ValueError(f"{name}={value!r} is not supported: {why}")


class _MaxPool(_WindowPool):
    _kernel = staticmethod(max_pool_kernel)
    _backward_kernel = staticmethod(max_pool_backward_kernel)

    def __init__(
        self,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] | None = None,
        padding: int | tuple[int, ...] = 0,
        dilation: int | tuple[int, ...] = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        _refuse(
            "return_indices",
            return_indices,
            False,
            "xpnn's pooling returns the output only (the backward pass finds each window's "
            "first maximum itself)",
        )
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode)

    def _settings(self) -> dict[str, object]:
        return {
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "ceil_mode": self.ceil_mode,
        }


class MaxPool1d(_MaxPool):
    """Max over sliding windows of the last axis, as ``torch.nn.MaxPool1d``.

    Input ``(N, C, L)`` or ``(C, L)``. ``stride`` defaults to ``kernel_size``;
    ``padding`` (at most half the kernel) pads with ``-inf``; ``dilation``
    spaces the window's elements; with ``ceil_mode`` the last window may run
    past the end, but must start inside the input or the left padding. The
    gradient of each window goes to its first maximum. ``return_indices=True``
    is refused.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.layers.pooling import MaxPool1d
    >>> y, backward = MaxPool1d(2).forward(np.array([[1.0, 3.0, 3.0, 2.0]]))
    >>> y, backward(np.ones((1, 2)))
    (array([[3., 3.]]), array([[0., 1., 1., 0.]]))
    """

    _d = 1
    _what = "max_pool1d"


class MaxPool2d(_MaxPool):
    """Max over sliding windows of the last two axes, as ``torch.nn.MaxPool2d``.

    Input ``(N, C, H, W)`` or ``(C, H, W)``; settings as in :class:`MaxPool1d`,
    ints or pairs.
    """

    _d = 2
    _what = "max_pool2d"


class _AvgPool(_WindowPool):
    _kernel = staticmethod(avg_pool_kernel)
    _backward_kernel = staticmethod(avg_pool_backward_kernel)

    def __init__(
        self,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] | None = None,
        padding: int | tuple[int, ...] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        _refuse(
            "divisor_override",
            divisor_override,
            None,
            "xpnn divides by the window's count (count_include_pad chooses which)",
        )
        super().__init__(kernel_size, stride, padding, 1, ceil_mode, count_include_pad)

    def _settings(self) -> dict[str, object]:
        return {
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "ceil_mode": self.ceil_mode,
            "count_include_pad": self.count_include_pad,
        }


class AvgPool1d(_AvgPool):
    """Mean over sliding windows of the last axis, as ``torch.nn.AvgPool1d``.

    Input ``(N, C, L)`` or ``(C, L)``; zero padding, counted in the divisor
    when ``count_include_pad`` (the part of a ``ceil_mode`` window past the
    padding never is). ``divisor_override`` is refused.
    """

    _d = 1
    _what = "avg_pool1d"


class AvgPool2d(_AvgPool):
    """Mean over sliding windows of the last two axes, as ``torch.nn.AvgPool2d``.

    Input ``(N, C, H, W)`` or ``(C, H, W)``; settings as in :class:`AvgPool1d`.
    """

    _d = 2
    _what = "avg_pool2d"


class _AdaptiveAvgPool(_Pool):
    _kernel = staticmethod(adaptive_avg_pool_kernel)
    _backward_kernel = staticmethod(adaptive_avg_pool_backward_kernel)

    def __init__(self, output_size: int | tuple[int | None, ...] | list[int | None]) -> None:
        check_output_size(output_size, self._d)
        super().__init__()
        self.output_size = tuple(output_size) if isinstance(output_size, list) else output_size

    def _check(self, x: Array) -> Checked:
        return check_adaptive_pool(x, self._what, self._d, self.output_size)

    def _settings(self) -> dict[str, object]:
        return {"output_size": self.output_size}


class AdaptiveAvgPool1d(_AdaptiveAvgPool):
    """Average over ``output_size`` bins of the last axis, as ``torch.nn.AdaptiveAvgPool1d``.

    Bin ``i`` of ``L`` positions covers ``floor(i*L/out)`` to ``ceil((i+1)*L/out)``.
    """

    _d = 1
    _what = "adaptive_avg_pool1d"


class AdaptiveAvgPool2d(_AdaptiveAvgPool):
    """Average over ``output_size`` bins of the last two axes, as ``torch.nn.AdaptiveAvgPool2d``.

    ``output_size`` is an int or a pair; ``None`` keeps that axis's size.
    """

    _d = 2
    _what = "adaptive_avg_pool2d"

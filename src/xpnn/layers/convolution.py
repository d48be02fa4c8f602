"""``Conv1d`` and ``Conv2d``: stateful layers over :mod:`xpnn.functional.convolution`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

from .._checks import Checked
from .._compat import (
    Array,
    Device,
    DType,
    library_name,
    resolve_device,
    resolve_dtype,
    resolve_namespace,
)
from ..functional.convolution import (
    check_conv,
    check_conv_backward,
    conv_backward_kernel,
    conv_forward_kernel,
    conv_kernel,
    conv_padding,
    conv_tuple,
)
from ..init import Initializer, Seed, host_generator
from ._module import Backward, Placed, backward_again, device_repr
from .linear import _initializer, _size

__all__ = ["Conv1d", "Conv2d"]


class _ConvNd(Placed):
    """The layer both convolutions share; ``_nd`` is the number of spatial axes."""

    _nd: ClassVar[int] = 0

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: str | int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        *,
        xp: object | None = None,
        device: Device | str | None = None,
        dtype: DType | None = None,
        seed: Seed = None,
        weight_init: str | Initializer = "default",
        bias_init: str | Initializer = "default",
    ) -> None:
        nd = self._nd
        name = type(self).__name__
        in_channels = _size("in_channels", in_channels)
        out_channels = _size("out_channels", out_channels)
        groups = _size("groups", groups)
        kernel = conv_tuple("kernel_size", kernel_size, nd)
        stride_t = conv_tuple("stride", stride, nd)
        dilation_t = conv_tuple("dilation", dilation, nd)
        pad = conv_padding(padding, nd, stride_t)
        if in_channels % groups:
            raise ValueError(f"in_channels ({in_channels}) must be divisible by groups ({groups})")
        if out_channels % groups:
            raise ValueError(
                f"out_channels ({out_channels}) must be divisible by groups ({groups})"
            )
        if padding_mode != "zeros":
            raise ValueError(
                f"{name} supports padding_mode='zeros' only, got {padding_mode!r}; pad the "
                "input yourself for 'reflect', 'replicate' or 'circular'"
            )
        namespace = resolve_namespace(xp)
        where = resolve_device(namespace, device)
        dtype = resolve_dtype(namespace, dtype, where)
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel
        self.stride = stride_t
        self.padding = pad
        self.dilation = dilation_t
        self.groups = groups
        self.padding_mode = padding_mode
        draw_weight = _initializer("weight_init", weight_init)
        draw_bias = _initializer("bias_init", bias_init)
        rng = host_generator(seed)
        # PyTorch's default for both: uniform in ±1/sqrt(fan_in).
        fan_in = in_channels // groups * math.prod(kernel)
        make = dict(xp=namespace, device=where, dtype=dtype, rng=rng, fan_in=fan_in)
        self.params["weight"] = draw_weight((out_channels, in_channels // groups, *kernel), **make)
        self.grads["weight"] = None
        if bias:
            self.params["bias"] = draw_bias((out_channels,), **make)
            self.grads["bias"] = None

    @property
    def weight(self) -> Array:
        """The kernels, ``(out_channels, in_channels // groups, *kernel_size)``."""
        return self.params["weight"]

    @weight.setter
    def weight(self, value: Array) -> None:
        self.set_parameter("weight", value)

    @property
    def bias(self) -> Array | None:
        """The bias, shape (out_channels,); None without bias."""
        return self.params.get("bias")

    @bias.setter
    def bias(self, value: Array) -> None:
        if "bias" not in self.params:
            raise AttributeError(f"this {type(self).__name__} was built with bias=False")
        self.set_parameter("bias", value)

    def _check(self, x: Array, weight: Array, bias: Array | None) -> Checked:
        return self._checks.check(
            check_conv,
            x,
            weight,
            bias,
            nd=self._nd,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
        )

    def forward(self, x: Array, *, input_grad: bool = True) -> tuple[Array, Backward]:
        """Apply the layer and return ``(y, backward)``.

        Parameters
        ----------
        x : array of shape (N, in_channels, *spatial) or (in_channels, *spatial)
            Input, in the layer's namespace and on its device.
        input_grad : bool, default True
            Whether ``backward`` returns ``dx``.

        Returns
        -------
        y : array of shape (N, out_channels, *out) or (out_channels, *out)
            The output.
        backward : callable
            ``backward(dy, *, retain_graph=False) -> dx``: adds the weight
            and bias gradients into ``grads`` and returns the input gradient
            (``None`` with ``input_grad=False``). It keeps the input's
            patches, ``prod(kernel_size)`` times the size of ``x``, so as not
            to build them again. Called once unless the earlier calls passed
            ``retain_graph=True``.
        """
        weight, bias = self.params["weight"], self.params.get("bias")
        forward = self._check(x, weight, bias)
        y, columns = conv_forward_kernel(forward, x, weight, bias)
        has_bias = bias is not None
        bias_dtype = None if bias is None else bias.dtype
        name = type(self).__name__
        used = False

        def backward(dy: Array, *, retain_graph: bool = False) -> Array | None:
            nonlocal used
            if used:
                raise backward_again(name)
            checked = self._checks.check(
                check_conv_backward, dy, context=(x, weight, bias), forward=forward
            )
            dx, dweight, dbias = conv_backward_kernel(
                checked,
                dy,
                x,
                weight,
                has_bias=has_bias,
                bias_dtype=bias_dtype,
                input_grad=input_grad,
                columns=columns,
            )
            self._accumulate("weight", dweight)
            if dbias is not None:
                self._accumulate("bias", dbias)
            used = not retain_graph
            return dx

        return y, backward

    def __call__(self, x: Array) -> Array:
        """Apply the layer and return ``y`` only, keeping nothing alive."""
        weight, bias = self.params["weight"], self.params.get("bias")
        return conv_kernel(self._check(x, weight, bias), x, weight, bias)

    def _settings(self) -> dict[str, object]:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": self.padding if isinstance(self.padding, str) else list(self.padding),
            "dilation": list(self.dilation),
            "groups": self.groups,
            "bias": "bias" in self.params,
            "padding_mode": self.padding_mode,
        }

    def __repr__(self) -> str:
        shown = {k: tuple(v) if isinstance(v, list) else v for k, v in self._settings().items()}
        settings = ", ".join(f"{k}={v!r}" for k, v in shown.items())
        where = f"xp={library_name(self.xp)}, device={device_repr(self.device)}"
        return f"{type(self).__name__}({settings}, {where}, dtype={self.dtype})"


class Conv1d(_ConvNd):
    """A 1-d convolution over inputs ``(N, C, L)`` or ``(C, L)``, as ``torch.nn.Conv1d``.

    The forward pass and its hand-derived gradients are written once on the
    array API standard (:mod:`xpnn.functional.convolution`).

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and of the output, each divisible by
        ``groups``.
    kernel_size : int or tuple of int
        Size of the kernel along each spatial axis.
    stride, dilation : int or tuple of int, default 1
        Step between output positions; spacing of the kernel taps.
    padding : int, tuple of int, 'valid' or 'same', default 0
        Zeros added on both sides of each spatial axis. ``'same'`` keeps the
        sizes (stride 1 only; an odd total puts the extra zero on the right
        or bottom, as PyTorch).
    groups : int, default 1
        Channel groups; ``groups = in_channels`` is a depthwise convolution.
    bias : bool, default True
        Whether to add a learnable bias.
    padding_mode : {'zeros'}
        PyTorch's other modes are refused.
    xp, device, dtype, seed, weight_init, bias_init
        As for :class:`~xpnn.Linear`. The default draws weight then bias
        uniform in ``±1/sqrt(fan_in)``, ``fan_in = in_channels / groups *
        prod(kernel_size)`` (PyTorch's); the same seed gives bit-identical
        parameters on every backend.

    Notes
    -----
    ``weight`` has shape ``(out_channels, in_channels // groups, *kernel_size)``,
    PyTorch's layout: a state dict, ``from_torch`` and ``to_torch`` copy it as
    it is. ``bias`` has shape ``(out_channels,)`` (``None`` without bias).
    ``grads["weight"]`` and ``grads["bias"]`` accumulate their gradients.
    The math and its derivation: :doc:`/convolution`.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn import Conv1d
    >>> layer = Conv1d(2, 3, 3, padding="same", seed=0)
    >>> y, backward = layer.forward(np.ones((4, 2, 5)))
    >>> y.shape
    (4, 3, 5)
    >>> backward(np.ones((4, 3, 5))).shape, layer.grads["weight"].shape
    ((4, 2, 5), (3, 2, 3))
    """

    _nd = 1


class Conv2d(_ConvNd):
    """A 2-d convolution over ``(N, C, H, W)`` or ``(C, H, W)``, as ``torch.nn.Conv2d``.

    The forward pass and its hand-derived gradients are written once on the
    array API standard (:mod:`xpnn.functional.convolution`).

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and of the output, each divisible by
        ``groups``.
    kernel_size : int or tuple of int
        Size of the kernel along each spatial axis.
    stride, dilation : int or tuple of int, default 1
        Step between output positions; spacing of the kernel taps.
    padding : int, tuple of int, 'valid' or 'same', default 0
        Zeros added on both sides of each spatial axis. ``'same'`` keeps the
        sizes (stride 1 only; an odd total puts the extra zero on the right
        or bottom, as PyTorch).
    groups : int, default 1
        Channel groups; ``groups = in_channels`` is a depthwise convolution.
    bias : bool, default True
        Whether to add a learnable bias.
    padding_mode : {'zeros'}
        PyTorch's other modes are refused.
    xp, device, dtype, seed, weight_init, bias_init
        As for :class:`~xpnn.Linear`. The default draws weight then bias
        uniform in ``±1/sqrt(fan_in)``, ``fan_in = in_channels / groups *
        prod(kernel_size)`` (PyTorch's); the same seed gives bit-identical
        parameters on every backend.

    Notes
    -----
    ``weight`` has shape ``(out_channels, in_channels // groups, *kernel_size)``,
    PyTorch's layout: a state dict, ``from_torch`` and ``to_torch`` copy it as
    it is. ``bias`` has shape ``(out_channels,)`` (``None`` without bias).
    ``grads["weight"]`` and ``grads["bias"]`` accumulate their gradients.
    The math and its derivation: :doc:`/convolution`.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn import Conv2d
    >>> layer = Conv2d(2, 4, (3, 2), stride=2, padding=1, seed=0)
    >>> y, backward = layer.forward(np.ones((1, 2, 5, 6)))
    >>> y.shape
    (1, 4, 3, 4)
    >>> backward(np.ones(y.shape)).shape, layer.grads["weight"].shape
    ((1, 2, 5, 6), (4, 2, 3, 2))
    """

    _nd = 2

"""``LayerNorm`` and ``RMSNorm``: layers over :func:`xpnn.functional.layer_norm` and its kin."""

from __future__ import annotations

import numbers

from .._compat import Array, Device, DType, resolve_device, resolve_dtype, resolve_namespace
from ..functional.layer_norm import (
    check_layer_norm,
    check_layer_norm_backward,
    layer_norm_backward_kernel,
    layer_norm_kernel,
    normalized_shape_of,
)
from ..init import Seed
from ._module import Backward, Module, backward_again

__all__ = ["LayerNorm", "RMSNorm"]


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value


def _eps(value: object, *, optional: bool) -> float | None:
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0:
        allowed = "a float >= 0 or None" if optional else "a float >= 0"
        raise ValueError(f"eps must be {allowed}, got {value!r}")
    return float(value)


class _Norm(Module):
    """What ``LayerNorm`` and ``RMSNorm`` share: the parameters, the pass, the settings."""

    _centred = True
    _what = "layer normalisation"

    normalized_shape: tuple[int, ...]
    eps: float | None
    elementwise_affine: bool

    def _make(
        self,
        with_bias: bool,
        xp: object | None,
        device: Device | str | None,
        dtype: DType | None,
    ) -> None:
        namespace = resolve_namespace(xp)
        where = resolve_device(namespace, device)
        dtype = resolve_dtype(namespace, dtype, where)
        make = {"dtype": dtype, "device": where}
        if self.elementwise_affine:
            self.params["weight"] = namespace.ones(self.normalized_shape, **make)
            self.grads["weight"] = None
            if with_bias:
                self.params["bias"] = namespace.zeros(self.normalized_shape, **make)
                self.grads["bias"] = None

    @property
    def weight(self) -> Array | None:
        """The scale, of shape normalized_shape, ones at first; None without affine."""
        return self.params.get("weight")

    @weight.setter
    def weight(self, value: Array) -> None:
        if "weight" not in self.params:
            raise AttributeError(
                f"this {type(self).__name__} was built with elementwise_affine=False"
            )
        self.set_parameter("weight", value)

    def _check(self, x: Array, weight: Array | None, bias: Array | None) -> object:
        return self._checks.check(
            check_layer_norm,
            x,
            weight,
            bias,
            normalized_shape=self.normalized_shape,
            what=self._what,
        )

    def forward(self, x: Array, *, input_grad: bool = True) -> tuple[Array, Backward]:
        """Normalise ``x`` over its trailing ``normalized_shape`` and return ``(y, backward)``.

        ``backward(dy, *, retain_graph=False)`` adds the parameter gradients
        into ``grads`` and returns ``dx`` (``None`` with ``input_grad=False``);
        it may be called once unless ``retain_graph=True`` is passed.
        """
        weight, bias = self.params.get("weight"), self.params.get("bias")
        forward = self._check(x, weight, bias)
        y, saved = layer_norm_kernel(
            forward,  # type: ignore[arg-type]
            x,
            weight,
            bias,
            eps=self.eps,
            centred=self._centred,
        )
        has_bias = bias is not None
        bias_dtype = None if bias is None else bias.dtype
        what = type(self).__name__
        used = False

        def backward(dy: Array, *, retain_graph: bool = False) -> Array | None:
            nonlocal used
            if used:
                raise backward_again(what)
            checked = self._checks.check(
                check_layer_norm_backward, dy, context=(x,), forward=forward
            )
            dx, dweight, dbias = layer_norm_backward_kernel(
                checked,
                dy,
                saved,
                weight,
                x_dtype=x.dtype,
                has_bias=has_bias,
                bias_dtype=bias_dtype,
                input_grad=input_grad,
            )
            if dweight is not None:
                self._accumulate("weight", dweight)
            if dbias is not None:
                self._accumulate("bias", dbias)
            used = not retain_graph
            return dx

        return y, backward

    def __call__(self, x: Array) -> Array:
        """Apply the layer and return ``y`` only, keeping nothing alive."""
        weight, bias = self.params.get("weight"), self.params.get("bias")
        forward = self._check(x, weight, bias)
        y, _ = layer_norm_kernel(
            forward,  # type: ignore[arg-type]
            x,
            weight,
            bias,
            eps=self.eps,
            centred=self._centred,
        )
        return y

    def keeps_shape(self) -> bool:
        """Normalisation maps each value to one: the shape stays."""
        return True


class LayerNorm(_Norm):
    """Layer normalisation over the trailing dimensions, as ``torch.nn.LayerNorm``.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias``, with ``mean`` and
    the biased ``var`` over the last ``len(normalized_shape)`` dimensions of
    each input, in training and eval mode alike (no running statistics).

    Parameters
    ----------
    normalized_shape : int or tuple of int
        The trailing dimensions of the input normalised together.
    eps : float, default 1e-5
        Added to the variance.
    elementwise_affine : bool, default True
        Learn ``weight`` (ones at first) and, with ``bias``, ``bias`` (zeros),
        both of shape ``normalized_shape``.
    bias : bool, default True
        Learn ``bias`` (with ``elementwise_affine``).
    seed : int or numpy.random.Generator, optional
        Accepted as by every layer; unused, the initial values are fixed.
    xp, device, dtype
        Where the parameters are made, as for :class:`~xpnn.Linear`.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn import LayerNorm
    >>> norm = LayerNorm(2)
    >>> y, backward = norm.forward(np.array([[1.0, 3.0]]))
    >>> np.round(y, 4), backward(np.ones((1, 2))), norm.grads["bias"]
    (array([[-1.,  1.]]), array([[0., 0.]]), array([1., 1.]))
    """

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        *,
        seed: Seed = None,
        xp: object | None = None,
        device: Device | str | None = None,
        dtype: DType | None = None,
    ) -> None:
        shape = normalized_shape_of(normalized_shape)
        eps_value = _eps(eps, optional=False)
        affine = _flag("elementwise_affine", elementwise_affine)
        with_bias = _flag("bias", bias)
        super().__init__()
        self.normalized_shape = shape
        self.eps = eps_value
        self.elementwise_affine = affine
        self._with_bias = with_bias
        self._make(with_bias, xp, device, dtype)

    @property
    def bias(self) -> Array | None:
        """The shift, of shape normalized_shape, zeros at first; None without it."""
        return self.params.get("bias")

    @bias.setter
    def bias(self, value: Array) -> None:
        if "bias" not in self.params:
            raise AttributeError("this LayerNorm was built without a bias")
        self.set_parameter("bias", value)

    def _settings(self) -> dict[str, object]:
        return {
            "normalized_shape": list(self.normalized_shape),
            "eps": self.eps,
            "elementwise_affine": self.elementwise_affine,
            "bias": self._with_bias,
        }


class RMSNorm(_Norm):
    """Root-mean-square normalisation over the trailing dimensions, as ``torch.nn.RMSNorm``.

    ``y = x / sqrt(mean(x**2) + eps) * weight``, the mean over the last
    ``len(normalized_shape)`` dimensions of each input.

    Parameters
    ----------
    normalized_shape : int or tuple of int
        The trailing dimensions of the input normalised together.
    eps : float, optional
        Added to the mean square; by default the machine epsilon of the
        compute dtype, ``finfo(dtype).eps``, as in PyTorch.
    elementwise_affine : bool, default True
        Learn ``weight`` (ones at first), of shape ``normalized_shape``.
    seed, xp, device, dtype
        As for :class:`LayerNorm`.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn import RMSNorm
    >>> np.round(RMSNorm(2)(np.array([[3.0, 4.0]])) ** 2, 4)
    array([[0.72, 1.28]])
    """

    _centred = False
    _what = "RMS normalisation"

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...],
        eps: float | None = None,
        elementwise_affine: bool = True,
        *,
        seed: Seed = None,
        xp: object | None = None,
        device: Device | str | None = None,
        dtype: DType | None = None,
    ) -> None:
        shape = normalized_shape_of(normalized_shape)
        eps_value = _eps(eps, optional=True)
        affine = _flag("elementwise_affine", elementwise_affine)
        super().__init__()
        self.normalized_shape = shape
        self.eps = eps_value
        self.elementwise_affine = affine
        self._make(False, xp, device, dtype)

    def _settings(self) -> dict[str, object]:
        return {
            "normalized_shape": list(self.normalized_shape),
            "eps": self.eps,
            "elementwise_affine": self.elementwise_affine,
        }

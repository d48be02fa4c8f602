"""``Linear``: the stateful layer over :func:`xpnn.functional.linear`."""

from __future__ import annotations

import operator

from .._compat import (
    Array,
    Device,
    DType,
    library_name,
    resolve_device,
    resolve_dtype,
    resolve_namespace,
)
from ..functional.linear import (
    check_linear,
    check_linear_backward,
    linear_backward_kernel,
    linear_kernel,
)
from ..init import INITIALIZERS, Initializer, Seed, host_generator
from ._module import Backward, Placed, backward_again, device_repr

__all__ = ["Linear"]


def _size(name: str, value: object) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool {value}")
    try:
        size = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}") from None
    if size < 1:
        raise ValueError(f"{name} must be at least 1, got {size}")
    return int(size)


def _initializer(name: str, value: str | Initializer) -> Initializer:
    if callable(value):
        return value
    if value not in INITIALIZERS:
        raise ValueError(
            f"{name} must be one of {', '.join(INITIALIZERS)} or a callable, got {value!r}"
        )
    return INITIALIZERS[value]


class Linear(Placed):
    """A fully connected layer: ``y = x @ weight + bias``.

    Parameters
    ----------
    in_features : int
        Size of the last dimension of the input, at least 1.
    out_features : int
        Size of the last dimension of the output, at least 1.
    bias : bool, default True
        Whether to add a learnable bias.
    xp : module, optional
        The array library of the parameters: ``numpy``, ``torch``, ``cupy``,
        ``jax.numpy``, ``dask.array``, ``array_api_strict``, or an
        ``array_api_compat`` namespace. NumPy when omitted.
    device : device or str, optional
        Where the parameters live. The namespace's default device when
        omitted (from its inspection API).
    dtype : dtype, optional
        A real or complex floating dtype the device supports. The device's
        default real floating dtype when omitted (from the inspection API).
    seed : int or numpy.random.Generator, optional
        Seed of the host generator that draws the initial values. The same
        seed gives bit-identical parameters on every backend and device for
        a given dtype.
    weight_init, bias_init : str or callable, default "default"
        How to draw the weight and the bias: ``"default"`` (PyTorch's,
        uniform in ``±1/sqrt(in_features)``), ``"xavier_uniform"``,
        ``"xavier_normal"``, ``"kaiming_uniform"``, ``"kaiming_normal"``,
        ``"zeros"``, or a function with the signature of those in
        :mod:`xpnn.init`. The weight is drawn first, then the bias.

    Attributes
    ----------
    weight : array of shape (in_features, out_features)
        Initialised uniform in ``±1/sqrt(in_features)``, PyTorch's default.
    bias : array of shape (out_features,) or None
        Initialised like ``weight``. Both may be set to an array of the same
        library and shape (another floating dtype is fine); anything else
        raises, as :meth:`~xpnn.Module.set_parameter` does.
    grads : dict of str to array or None
        Accumulated gradients of ``"weight"`` and ``"bias"``; ``None`` until
        a backward pass, and again after :meth:`zero_grad`.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn import Linear
    >>> layer = Linear(3, 2, seed=0)
    >>> y, backward = layer.forward(np.ones((4, 3)))
    >>> y.shape
    (4, 2)
    >>> dx = backward(np.ones((4, 2)))
    >>> dx.shape, layer.grads["weight"].shape
    ((4, 3), (3, 2))
    """

    # (in_features, out_features) here, (out_features, in_features) in torch:
    # state dicts hold torch's layout (Module.state_dict).
    _torch_transposed = frozenset({"weight"})

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        xp: object | None = None,
        device: Device | str | None = None,
        dtype: DType | None = None,
        seed: Seed = None,
        weight_init: str | Initializer = "default",
        bias_init: str | Initializer = "default",
    ) -> None:
        in_features = _size("in_features", in_features)
        out_features = _size("out_features", out_features)
        namespace = resolve_namespace(xp)
        where = resolve_device(namespace, device)
        dtype = resolve_dtype(namespace, dtype, where)
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        draw_weight = _initializer("weight_init", weight_init)
        draw_bias = _initializer("bias_init", bias_init)
        rng = host_generator(seed)
        make = dict(xp=namespace, device=where, dtype=dtype, rng=rng, fan_in=in_features)
        self.params["weight"] = draw_weight((in_features, out_features), **make)
        self.grads["weight"] = None
        if bias:
            self.params["bias"] = draw_bias((out_features,), **make)
            self.grads["bias"] = None

    @property
    def weight(self) -> Array:
        """The weight, (in_features, out_features), uniform in ±1/sqrt(in_features) at first."""
        return self.params["weight"]

    @weight.setter
    def weight(self, value: Array) -> None:
        # Checked as Module.set_parameter checks: same library, floating, same shape.
        self.set_parameter("weight", value)

    @property
    def bias(self) -> Array | None:
        """The bias, shape (out_features,), initialised like the weight; None without bias."""
        return self.params.get("bias")

    @bias.setter
    def bias(self, value: Array) -> None:
        if "bias" not in self.params:
            raise AttributeError("this Linear was built with bias=False")
        self.set_parameter("bias", value)

    def forward(self, x: Array, *, input_grad: bool = True) -> tuple[Array, Backward]:
        """Apply the layer and return ``(y, backward)``.

        Parameters
        ----------
        x : array of shape (..., in_features)
            Input, in the layer's namespace and on its device. Leading
            dimensions of unknown size (a Dask array after boolean indexing)
            are fine for ``y``; ``backward`` needs them known and raises
            ``ValueError`` otherwise.
        input_grad : bool, default True
            Whether ``backward`` returns ``dx``. A training step's first
            layer passes ``False``: its input is data, and ``dy @ weight.T``
            would be computed for nobody.

        Returns
        -------
        y : array of shape (..., out_features)
            The output.
        backward : callable
            ``backward(dy, *, retain_graph=False) -> dx``. It adds the weight
            and bias gradients into ``grads`` and returns the input
            gradient, of shape ``x.shape`` (``None`` with
            ``input_grad=False``). Each closure keeps its own forward's
            input, so several forwards may be back-propagated in any order.
            It may be called once: a second call raises ``RuntimeError``
            rather than add the gradients twice, unless the earlier calls
            passed ``retain_graph=True``.
        """
        weight, bias = self.params["weight"], self.params.get("bias")
        # Checked once per kind of x, weight and bias (xpnn._checks).
        forward = self._checks.check(check_linear, x, weight, bias)
        y = linear_kernel(forward, x, weight, bias)
        has_bias = bias is not None
        bias_dtype = None if bias is None else bias.dtype

        used = False

        def backward(dy: Array, *, retain_graph: bool = False) -> Array | None:
            nonlocal used
            if used:
                raise backward_again("Linear")
            # Once per kind of dy and of this forward pass's inputs.
            checked = self._checks.check(
                check_linear_backward, dy, context=(x, weight, bias), forward=forward
            )
            dx, dweight, dbias = linear_backward_kernel(
                checked,
                dy,
                x,
                weight,
                has_bias=has_bias,
                bias_dtype=bias_dtype,
                input_grad=input_grad,
            )
            # What self._accumulate does, without two calls per step.
            grads = self.grads
            current = grads["weight"]
            grads["weight"] = dweight if current is None else current + dweight
            if dbias is not None:
                current = grads["bias"]
                grads["bias"] = dbias if current is None else current + dbias
            used = not retain_graph
            return dx

        return y, backward

    def __call__(self, x: Array) -> Array:
        """Apply the layer and return ``y`` only, keeping nothing alive."""
        weight, bias = self.params["weight"], self.params.get("bias")
        return linear_kernel(self._checks.check(check_linear, x, weight, bias), x, weight, bias)

    def _settings(self) -> dict[str, object]:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": "bias" in self.params,
        }

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self._settings().items())
        where = f"xp={library_name(self.xp)}, device={device_repr(self.device)}"
        return f"Linear({settings}, {where}, dtype={self.dtype})"

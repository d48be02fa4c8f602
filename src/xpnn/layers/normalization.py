"""``BatchNorm1d`` and ``BatchNorm2d``: layers over :func:`xpnn.functional.batch_norm`.

The running statistics are *buffers* (:attr:`Module.buffers`): state that is
no parameter. Every training step replaces them with new arrays, computed on
the device without reading anything back to the host, so JAX's immutable and
Dask's lazy arrays work as NumPy's and PyTorch's do.
"""

from __future__ import annotations

import numbers
import operator

from .._compat import (
    Array,
    Device,
    DType,
    resolve_device,
    resolve_dtype,
    resolve_namespace,
)
from ..functional.normalization import (
    batch_norm_backward_kernel,
    batch_norm_kernel,
    check_batch_norm,
    check_batch_norm_backward,
)
from ._module import Backward, Module, backward_again

__all__ = ["BatchNorm1d", "BatchNorm2d"]


class _BatchNorm(Module):
    """What ``BatchNorm1d`` and ``BatchNorm2d`` share; they differ in the input dimensions."""

    _dims: tuple[int, ...] = ()
    _dims_text = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        xp: object | None = None,
        device: Device | str | None = None,
        dtype: DType | None = None,
    ) -> None:
        if isinstance(num_features, bool):
            raise TypeError(f"num_features must be an int, got bool {num_features}")
        try:
            size = operator.index(num_features)
        except TypeError:
            raise TypeError(
                f"num_features must be an int, got {type(num_features).__name__} {num_features!r}"
            ) from None
        if size < 1:
            raise ValueError(f"num_features must be at least 1, got {size}")
        eps_value: object = eps
        if isinstance(eps_value, bool) or not isinstance(eps_value, numbers.Real) or eps < 0:
            raise ValueError(f"eps must be a float >= 0, got {eps!r}")
        momentum_value: object = momentum
        if momentum_value is not None and (
            isinstance(momentum_value, bool) or not isinstance(momentum_value, numbers.Real)
        ):
            raise TypeError(
                f"momentum must be a float or None (the cumulative average), got {momentum!r}"
            )
        for name, flag in (("affine", affine), ("track_running_stats", track_running_stats)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be a bool, got {type(flag).__name__} {flag!r}")
        namespace = resolve_namespace(xp)
        where = resolve_device(namespace, device)
        dtype = resolve_dtype(namespace, dtype, where)
        super().__init__()
        self.num_features = int(size)
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine = affine
        self.track_running_stats = track_running_stats
        make = {"dtype": dtype, "device": where}
        if affine:
            self.params["weight"] = namespace.ones((self.num_features,), **make)
            self.params["bias"] = namespace.zeros((self.num_features,), **make)
            self.grads["weight"] = None
            self.grads["bias"] = None
        if track_running_stats:
            self.buffers["running_mean"] = namespace.zeros((self.num_features,), **make)
            self.buffers["running_var"] = namespace.ones((self.num_features,), **make)
            integral = namespace.__array_namespace_info__().default_dtypes(device=where)
            self.buffers["num_batches_tracked"] = namespace.asarray(
                0, dtype=integral["integral"], device=where
            )

    # -- the arrays, by PyTorch's names -----------------------------------

    @property
    def weight(self) -> Array | None:
        """The scale, shape (num_features,), ones at first; None without ``affine``."""
        return self.params.get("weight")

    @weight.setter
    def weight(self, value: Array) -> None:
        if "weight" not in self.params:
            raise AttributeError(f"this {type(self).__name__} was built with affine=False")
        self.set_parameter("weight", value)

    @property
    def bias(self) -> Array | None:
        """The shift, shape (num_features,), zeros at first; None without ``affine``."""
        return self.params.get("bias")

    @bias.setter
    def bias(self, value: Array) -> None:
        if "bias" not in self.params:
            raise AttributeError(f"this {type(self).__name__} was built with affine=False")
        self.set_parameter("bias", value)

    @property
    def running_mean(self) -> Array | None:
        """The running mean, a buffer of shape (num_features,); None without tracking."""
        return self.buffers.get("running_mean")

    @property
    def running_var(self) -> Array | None:
        """The running (unbiased) variance, a buffer; None without tracking."""
        return self.buffers.get("running_var")

    @property
    def num_batches_tracked(self) -> Array | None:
        """The training batches seen, a 0-d integer buffer; None without tracking."""
        return self.buffers.get("num_batches_tracked")

    # -- the pass ----------------------------------------------------------

    def _check_dims(self, x: Array) -> None:
        if x.ndim not in self._dims:
            raise ValueError(f"expected {self._dims_text} input (got {x.ndim}D input)")

    def forward(self, x: Array, *, input_grad: bool = True) -> tuple[Array, Backward]:
        """Normalise ``x`` and return ``(y, backward)``, as ``torch.nn.BatchNorm``.

        In training mode the batch's statistics normalise ``x`` and, when
        tracked, the running statistics are replaced by updated ones (and
        ``num_batches_tracked`` by its successor); in eval mode the running
        statistics normalise it (the batch's when not tracked).
        ``backward(dy, *, retain_graph=False)`` adds the weight and bias
        gradients into ``grads`` and returns ``dx`` (``None`` with
        ``input_grad=False``); it may be called once unless
        ``retain_graph=True`` is passed.
        """
        weight, bias = self.params.get("weight"), self.params.get("bias")
        tracked = self.track_running_stats
        use_batch = self.training or not tracked
        running_mean = running_var = None
        if tracked:
            running_mean = self.buffers["running_mean"]
            running_var = self.buffers["running_var"]
        forward = self._checks.check(
            check_batch_norm, x, running_mean, running_var, weight, bias, training=use_batch
        )
        self._check_dims(x)
        momentum: float | Array = 0.0
        update = self.training and tracked
        if update:
            # A 0-d array (NumPy's operators would give a scalar).
            counted = forward.xp.asarray(self.buffers["num_batches_tracked"] + 1)
            if self.momentum is None:
                xp = forward.xp
                momentum = 1.0 / xp.astype(counted, running_var.dtype)  # type: ignore[union-attr]
            else:
                momentum = self.momentum
        y, new_mean, new_var, saved = batch_norm_kernel(
            forward,
            x,
            running_mean,
            running_var,
            weight,
            bias,
            training=use_batch,
            momentum=momentum,
            eps=self.eps,
        )
        if update:
            assert new_mean is not None
            assert new_var is not None
            # New arrays, never written into: JAX's are immutable, Dask's lazy.
            self.buffers["running_mean"] = new_mean
            self.buffers["running_var"] = new_var
            self.buffers["num_batches_tracked"] = counted
        has_bias = bias is not None
        bias_dtype = None if bias is None else bias.dtype
        what = type(self).__name__
        used = False

        def backward(dy: Array, *, retain_graph: bool = False) -> Array | None:
            nonlocal used
            if used:
                raise backward_again(what)
            checked = self._checks.check(
                check_batch_norm_backward, dy, context=(x, weight), forward=forward
            )
            dx, dweight, dbias = batch_norm_backward_kernel(
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

    def keeps_shape(self) -> bool:
        """Batch normalisation maps each value to one: the shape stays."""
        return True

    def _settings(self) -> dict[str, object]:
        return {
            "num_features": self.num_features,
            "eps": self.eps,
            "momentum": self.momentum,
            "affine": self.affine,
            "track_running_stats": self.track_running_stats,
        }


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over ``(N, C)`` or ``(N, C, L)`` inputs, as ``torch.nn.BatchNorm1d``.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` per channel ``C``
    (axis 1). In training mode ``mean`` and ``var`` (biased) are the batch's,
    over every axis but 1, and the running statistics are updated,
    ``running = (1 - momentum) * running + momentum * batch``, with the
    *unbiased* batch variance, ``var * n / (n - 1)``; ``momentum=None`` makes
    it the cumulative average, ``momentum = 1 / num_batches_tracked``. In eval
    mode the running statistics normalise (the batch's if
    ``track_running_stats=False``). A training batch with one value per
    channel raises ``ValueError``, as in PyTorch.

    Parameters
    ----------
    num_features : int
        ``C``, the number of channels.
    eps : float, default 1e-5
        Added to the variance.
    momentum : float or None, default 0.1
        The weight of a batch in the running statistics; None for the
        cumulative moving average.
    affine : bool, default True
        Learn ``weight`` (ones at first) and ``bias`` (zeros).
    track_running_stats : bool, default True
        Keep the buffers ``running_mean`` (zeros), ``running_var`` (ones) and
        ``num_batches_tracked`` (a 0-d integer array, int64 where the device
        has it, 0).
    xp, device, dtype
        Where the arrays are made, as for :class:`~xpnn.Linear`.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn import BatchNorm1d
    >>> bn = BatchNorm1d(2)
    >>> y = bn(np.array([[1.0, 2.0], [3.0, 6.0]]))
    >>> np.round(y, 3)
    array([[-1., -1.],
           [ 1.,  1.]])
    >>> bn.running_mean, bn.running_var, bn.num_batches_tracked
    (array([0.2, 0.4]), array([1.1, 1.7]), array(1))
    """

    _dims = (2, 3)
    _dims_text = "2D or 3D"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over ``(N, C, H, W)`` inputs, as ``torch.nn.BatchNorm2d``.

    Each channel (axis 1) is normalised over ``N``, ``H`` and ``W``; the
    parameters, buffers and modes are those of :class:`BatchNorm1d`.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn import BatchNorm2d
    >>> bn = BatchNorm2d(3).eval()
    >>> bn(np.ones((2, 3, 2, 2))).shape
    (2, 3, 2, 2)
    """

    _dims = (4,)
    _dims_text = "4D"

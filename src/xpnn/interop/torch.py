"""Exchange with PyTorch: models from and to ``torch.nn``, and training inside PyTorch.

- :func:`from_torch` copies an ``nn.Linear`` or an ``nn.Sequential`` of
  linear layers, activations and dropout into the equal xpnn model, on any
  backend;
- :func:`to_torch` copies an xpnn model, on any backend, into the equal
  ``nn.Linear`` / ``nn.Sequential``;
- :class:`TorchModule` makes an xpnn model an ``nn.Module`` whose
  gradients are xpnn's hand-written backward (through
  :class:`XpnnFunction`, a ``torch.autograd.Function``), so that
  ``loss.backward()`` and ``torch.optim`` train it in PyTorch's own loops;
- :func:`compiled_step` compiles an xpnn training step (forward, loss,
  backward, an xpnn optimizer's update) with ``torch.compile``, and
  :func:`explain_step` counts its graph breaks.

Layouts differ in one place: ``nn.Linear`` stores its weight as
``(out_features, in_features)`` and computes ``x @ weight.T + bias``, xpnn
stores ``(in_features, out_features)`` and computes ``x @ weight + bias``.
The conversions transpose; nothing is conjugated, complex weights included.

This module imports PyTorch, so xpnn imports it only when it is asked for.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, Self

import torch
from torch import nn
from torch.autograd.function import FunctionCtx

from .._compat import (
    Array,
    Device,
    DType,
    array_namespace,
    dtype_name,
    library_of,
    resolve_dtype,
    resolve_namespace,
)
from .._transfer import transfer
from ..layers import (
    GELU,
    Dropout,
    LeakyReLU,
    Linear,
    LogSoftmax,
    Module,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from ..optim._base import Optimizer
from .step import Loss, Params, State, TrainStep

__all__ = [
    "TorchModule",
    "TrainStep",
    "XpnnFunction",
    "compiled_step",
    "explain_step",
    "from_torch",
    "to_torch",
]

#: The torch dtypes xpnn parameters may have: the standard's floating ones.
_STANDARD_DTYPES = (torch.float32, torch.float64, torch.complex64, torch.complex128)

_SUPPORTED_TYPES = (
    nn.Linear,
    nn.Sequential,
    nn.ReLU,
    nn.LeakyReLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.GELU,
    nn.Softmax,
    nn.LogSoftmax,
    nn.Dropout,
)
_SUPPORTED = (
    "nn.Linear, nn.Sequential, nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, "
    "nn.GELU(approximate='tanh'), nn.Softmax, nn.LogSoftmax and nn.Dropout"
)


def _where(path: str) -> str:
    return f" at {path!r}" if path else ""


def _qualname(obj: object) -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


# -- torch.nn -> xpnn ---------------------------------------------------------


def _check_torch(module: nn.Module, path: str, dtype: DType | str | None) -> None:
    """Raise if ``module`` (or a module inside it) has no xpnn equal.

    Exact types only: a subclass may override ``forward``, and copying its
    parameters into the base layer would silently compute something else.
    """
    kind = type(module)
    if kind is nn.Sequential:
        for name, child in module.named_children():
            _check_torch(child, f"{path}.{name}" if path else name, dtype)
        return
    if kind is nn.Linear:
        for local, param in module.named_parameters(recurse=False):
            if param.dtype not in _STANDARD_DTYPES and dtype is None:
                name = f"{path}.{local}" if path else local
                raise TypeError(
                    f"parameter {name!r} is {param.dtype}, which xpnn does not support (it "
                    "supports float32, float64, complex64 and complex128); pass dtype= (for "
                    "example dtype='float32') or convert the module first with module.float()"
                )
        return
    if kind is nn.GELU:
        assert isinstance(module, nn.GELU)
        if module.approximate != "tanh":
            raise ValueError(
                f"nn.GELU(approximate={module.approximate!r}){_where(path)} has no xpnn equal: "
                "xpnn's GELU is the tanh approximation only (the exact form needs erf, which "
                "the array API standard does not define); use nn.GELU(approximate='tanh')"
            )
        return
    if kind in (nn.Softmax, nn.LogSoftmax):
        assert isinstance(module, nn.Softmax | nn.LogSoftmax)
        if module.dim is None:
            raise ValueError(
                f"{kind.__name__}(dim=None){_where(path)} picks its axis from the rank of each "
                f"input, which xpnn does not do; give it an explicit dim, for example "
                f"nn.{kind.__name__}(dim=-1)"
            )
        return
    if kind in (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.Dropout):
        return
    subclass = (
        " (subclasses are refused: their forward may differ)"
        if isinstance(module, _SUPPORTED_TYPES)
        else ""
    )
    raise TypeError(
        f"from_torch cannot convert {_qualname(module)}{_where(path)}{subclass}; it converts "
        f"{_SUPPORTED}"
    )


def _given(value: Array) -> Callable[..., Array]:
    """Return an initialiser that hands ``Linear`` an array made beforehand."""

    def init(shape: tuple[int, ...], **_: object) -> Array:
        return value

    return init


def _linear_from_torch(
    module: nn.Linear, xp: object | None, device: Device | str | None, dtype: DType | str | None
) -> Linear:
    # Copied first, in xpnn's layout and contiguous; Module.to then moves
    # the copies, and returns them as they are when nothing has to move.
    weight = module.weight.detach().t().clone(memory_format=torch.contiguous_format)
    bias = module.bias.detach().clone() if module.bias is not None else None
    if dtype is not None and weight.dtype not in _STANDARD_DTYPES:
        # float16 and bfloat16 fit float32 exactly: no rounding on the way
        # to the dtype asked for.
        weight = weight.to(torch.float32)
        bias = bias.to(torch.float32) if bias is not None else None
    layer = Linear(
        module.in_features,
        module.out_features,
        bias=bias is not None,
        xp=torch,
        device=weight.device,
        dtype=weight.dtype,
        weight_init=_given(weight),
        bias_init=_given(bias),
    )
    return layer.to(xp, device, dtype)


def _from_torch(
    module: nn.Module, xp: object | None, device: Device | str | None, dtype: DType | str | None
) -> Module:
    layer: Module
    if isinstance(module, nn.Sequential):
        layer = Sequential(*(_from_torch(child, xp, device, dtype) for child in module))
    elif isinstance(module, nn.Linear):
        layer = _linear_from_torch(module, xp, device, dtype)
    elif isinstance(module, nn.LeakyReLU):
        layer = LeakyReLU(module.negative_slope)
    elif isinstance(module, nn.GELU):
        layer = GELU(module.approximate)
    elif isinstance(module, nn.Softmax | nn.LogSoftmax):
        assert module.dim is not None  # _check_torch refused dim=None
        layer = Softmax(module.dim) if isinstance(module, nn.Softmax) else LogSoftmax(module.dim)
    elif isinstance(module, nn.Dropout):
        layer = Dropout(module.p)
    else:
        simple: dict[type[nn.Module], type[Module]] = {
            nn.ReLU: ReLU,
            nn.Tanh: Tanh,
            nn.Sigmoid: Sigmoid,
        }
        layer = simple[type(module)]()
    layer.training = module.training
    return layer


def from_torch(
    module: nn.Module,
    *,
    xp: object | None = None,
    device: Device | str | None = None,
    dtype: DType | str | None = None,
) -> Module:
    """Copy a PyTorch model into the equal xpnn model.

    Parameters
    ----------
    module : torch.nn.Module
        An ``nn.Linear``, or an ``nn.Sequential`` (nested ones included) of
        ``nn.Linear``, ``nn.ReLU``, ``nn.LeakyReLU``, ``nn.Tanh``,
        ``nn.Sigmoid``, ``nn.GELU(approximate="tanh")``, ``nn.Softmax(dim)``,
        ``nn.LogSoftmax(dim)`` and ``nn.Dropout``. Subclasses are refused,
        since their ``forward`` may differ.
    xp : module, optional
        The array library of the copies (``numpy``, ``jax.numpy``,
        ``array_api_strict``, ...). PyTorch when omitted.
    device : device or str, optional
        Where the copies live. When omitted: each torch parameter's own
        device if the library stays PyTorch, else the target library's
        default device.
    dtype : dtype or str, optional
        A floating dtype of the target library or a standard name such as
        ``"float64"``. When omitted each parameter keeps its dtype by name
        (``torch.float32`` becomes ``numpy.float32``); ``float16`` and
        ``bfloat16`` parameters then need one.

    Returns
    -------
    xpnn.Module
        A :class:`~xpnn.Linear` with ``weight`` of shape
        ``(in_features, out_features)`` (the transpose of torch's), or a
        :class:`~xpnn.Sequential` with the same children in the same order,
        so parameter names agree (``"0.weight"``). Each layer keeps its
        module's training mode. The parameters share no memory with
        ``module``. ``Dropout`` draws its masks from xpnn's own generator,
        so masks differ from torch's.

    Raises
    ------
    TypeError
        If ``module`` or a module inside it has no xpnn equal (the message
        names it and lists those that have one), or if a parameter's dtype
        is not a standard floating one and ``dtype`` is not given. Nothing
        is copied before these checks pass.
    ValueError
        For ``nn.GELU(approximate="none")`` (xpnn has the tanh form only) and
        ``nn.Softmax(dim=None)``; for a ``device`` that lacks the dtype.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from xpnn.interop.torch import from_torch
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    >>> model = from_torch(net, xp=np, dtype="float64")
    >>> model[0].weight.shape, type(model[0].weight).__name__
    ((3, 4), 'ndarray')
    >>> x = torch.randn(5, 3, dtype=torch.float64)
    >>> bool(np.allclose(model(x.numpy()), net.double()(x).detach().numpy()))
    True
    """
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"from_torch takes a torch.nn.Module, got {_qualname(module)}; for an xpnn model "
            "there is nothing to convert"
        )
    _check_torch(module, "", dtype)
    if xp is not None:
        resolve_namespace(xp)  # a wrong xp fails before anything is copied
    with torch.no_grad():
        return _from_torch(module, xp, device, dtype)


# -- xpnn -> torch.nn ---------------------------------------------------------

_TORCH_ACTIVATIONS: dict[type[Module], Callable[[Any], nn.Module]] = {
    ReLU: lambda layer: nn.ReLU(),
    LeakyReLU: lambda layer: nn.LeakyReLU(layer.negative_slope),
    Tanh: lambda layer: nn.Tanh(),
    Sigmoid: lambda layer: nn.Sigmoid(),
    GELU: lambda layer: nn.GELU(approximate="tanh"),
    Softmax: lambda layer: nn.Softmax(dim=layer.axis),
    LogSoftmax: lambda layer: nn.LogSoftmax(dim=layer.axis),
    Dropout: lambda layer: nn.Dropout(layer.p),
}


def _check_xpnn(model: Module, path: str) -> None:
    kind = type(model)
    if kind is Sequential:
        for name, child in model.named_children():
            _check_xpnn(child, f"{path}.{name}" if path else name)
        return
    if kind is Linear or kind in _TORCH_ACTIVATIONS:
        return
    raise TypeError(
        f"to_torch cannot convert {_qualname(model)}{_where(path)}; it converts xpnn's "
        f"Linear, Sequential, {', '.join(cls.__name__ for cls in _TORCH_ACTIVATIONS)} "
        "(exact types: a subclass may compute something else)"
    )


def _torch_place(
    name: str,
    param: Array,
    device: torch.device | None,
    dtype: torch.dtype | str | None,
) -> tuple[torch.device, torch.dtype]:
    """Return the torch device and dtype of parameter ``name``, by ``Module.to``'s rules."""
    source = array_namespace(**{f"parameter {name!r}": param})
    target = resolve_namespace(torch)
    if device is not None:
        where = device
    elif library_of(param) == "torch":
        where = param.device
    else:
        where = target.__array_namespace_info__().default_device()
    wanted = dtype_name(source, param.dtype) if dtype is None else dtype
    return where, resolve_dtype(target, wanted, where)


def _linear_to_torch(
    layer: Linear, path: str, device: torch.device | None, dtype: torch.dtype | str | None
) -> nn.Linear:
    prefix = f"{path}." if path else ""
    places = {
        local: _torch_place(prefix + local, value, device, dtype)
        for local, value in layer.params.items()
    }
    where, kind = places["weight"]
    if any(place != (where, kind) for place in places.values()):
        raise ValueError(
            f"the weight and bias of the Linear{_where(path)} would land on "
            f"{', '.join(f'{d} as {t}' for d, t in places.values())}, and nn.Linear needs them "
            "together; pass device= and dtype= to put them in one place"
        )
    # Made on the meta device, then given memory: no random draw to
    # overwrite, and torch's global generator is left as the caller had it.
    meta = nn.Linear(
        layer.in_features,
        layer.out_features,
        bias="bias" in layer.params,
        device="meta",
        dtype=kind,
    )
    twin = meta.to_empty(device=where)
    target = resolve_namespace(torch)
    for local, value in layer.params.items():
        moved = transfer(value, xp=target, device=where, dtype=kind)
        twin_param = twin.get_parameter(local)
        # copy_ always copies, even when transfer had nothing to move.
        twin_param.copy_(moved.T if local == "weight" else moved)
    return twin


def _to_torch(
    model: Module, path: str, device: torch.device | None, dtype: torch.dtype | str | None
) -> nn.Module:
    twin: nn.Module
    if isinstance(model, Sequential):
        twin = nn.Sequential(
            *(
                _to_torch(child, f"{path}.{name}" if path else name, device, dtype)
                for name, child in model.named_children()
            )
        )
    elif isinstance(model, Linear):
        twin = _linear_to_torch(model, path, device, dtype)
    else:
        twin = _TORCH_ACTIVATIONS[type(model)](model)
    twin.training = model.training
    return twin


def to_torch(
    model: Module,
    *,
    device: torch.device | str | int | None = None,
    dtype: torch.dtype | str | None = None,
) -> nn.Module:
    """Copy an xpnn model, on any backend, into the equal PyTorch model.

    Parameters
    ----------
    model : xpnn.Module
        A :class:`~xpnn.Linear`, an activation, :class:`~xpnn.Dropout`, or a
        :class:`~xpnn.Sequential` of those (nested ones included), with
        parameters of any library on any device.
    device : torch.device or str or int, optional
        Where the torch parameters live. When omitted: the device of each
        parameter that is a torch tensor, else torch's default device
        (usually the CPU, for CuPy parameters on a GPU too).
    dtype : torch.dtype or str, optional
        A floating torch dtype or a standard name such as ``"float32"``.
        When omitted each parameter keeps its dtype by name.

    Returns
    -------
    torch.nn.Module
        ``nn.Linear`` (weight of shape ``(out_features, in_features)``, the
        transpose of xpnn's), ``nn.Sequential``, or the activation; each
        module keeps its layer's training mode. Parameters share no memory
        with ``model``. Drawing them does not touch torch's global random
        generator.

    Raises
    ------
    TypeError
        If ``model`` or a layer inside it has no torch equal (the message
        names it and lists those that have one), or for a ``dtype`` that is
        not floating. Nothing is built before the layer types are checked.
    ValueError
        If a ``Linear``'s weight and bias would end up on different devices
        or with different dtypes, which ``nn.Linear`` cannot hold.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn import Linear, ReLU, Sequential
    >>> from xpnn.interop.torch import to_torch
    >>> model = Sequential(Linear(3, 4, seed=0), ReLU(), Linear(4, 2, seed=1))
    >>> net = to_torch(model, dtype="float32")
    >>> net[0].weight.shape, net[0].weight.dtype
    (torch.Size([4, 3]), torch.float32)
    """
    if not isinstance(model, Module):
        raise TypeError(
            f"to_torch takes an xpnn.Module, got {_qualname(model)}; build the model with "
            "xpnn's layers, or use from_torch for the other direction"
        )
    _check_xpnn(model, "")
    where = None if device is None else torch.device(device)
    with torch.no_grad():
        return _to_torch(model, "", where, dtype)


# -- training inside PyTorch --------------------------------------------------


def _model_parameters(model: Module) -> list[Array]:
    return [owner.params[local] for _, owner, local in model.parameter_slots()]


class XpnnFunction(torch.autograd.Function):
    """``torch.autograd.Function`` whose forward and backward are an xpnn model's.

    ``XpnnFunction.apply(model, x, *params)`` runs ``model.forward(x)`` and
    keeps its ``backward`` closure for PyTorch's backward pass, which calls
    it with the output's gradient and returns the input's gradient and each
    parameter's. ``params`` must be the model's own parameter tensors, in the
    order of ``model.named_parameters()``: passing them is what lets autograd
    know that the output depends on them. :class:`TorchModule` does this for
    you; use this class directly only to build other wrappers.

    Each backward pass starts from empty xpnn gradients and leaves them empty
    (``model.grads`` holds ``None`` afterwards): torch accumulates into each
    parameter's ``.grad`` itself. Gradients of gradients (``create_graph=True``)
    raise ``RuntimeError``: xpnn's backward is not itself differentiable.
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx, model: Module, x: torch.Tensor, *params: torch.Tensor
    ) -> torch.Tensor:
        """Return ``model.forward(x)[0]``, keeping its backward closure in ``ctx``.

        Parameters
        ----------
        ctx : FunctionCtx
            Autograd's context.
        model : xpnn.Module
            A model whose parameters are torch tensors.
        x : torch.Tensor of shape (..., in_features)
            The input, on the parameters' device.
        *params : torch.Tensor
            ``model.parameters()``, the very tensors, in order.

        Returns
        -------
        torch.Tensor
            The model's output, of shape ``(..., out_features)`` for a
            model that ends with a ``Linear``.
        """
        expected = _model_parameters(model)
        if len(params) != len(expected) or any(
            p is not q for p, q in zip(params, expected, strict=False)
        ):
            raise ValueError(
                f"XpnnFunction.apply(model, x, *params) needs params to be the model's own "
                f"{len(expected)} parameter tensors in the order of model.named_parameters(), "
                f"got {len(params)} tensors that are not all of them; pass "
                "*model.parameters(), or use TorchModule(model)"
            )
        y, backward = model.forward(x)
        ctx.model = model  # type: ignore[attr-defined]
        ctx.closure = backward  # type: ignore[attr-defined]
        return y  # type: ignore[no-any-return]

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """Return ``(None, dx, *parameter gradients)``, ``None`` where none is needed.

        Parameters
        ----------
        ctx : FunctionCtx
            Autograd's context, holding the model and the closure.
        dy : torch.Tensor
            Gradient of the loss with respect to the output, of its shape.

        Returns
        -------
        tuple
            ``None`` for the model, the gradient for ``x`` (its shape), and
            one per parameter (its shape, xpnn's layout); ``None`` for
            inputs that do not require a gradient.
        """
        if torch.is_grad_enabled():
            # Autograd would record nothing of xpnn's backward, and gradients
            # of gradients would silently come out as constants.
            raise RuntimeError(
                "gradients of gradients (create_graph=True) are not available through an "
                "xpnn model: its backward is hand-written, not differentiable; compute the "
                "gradient without create_graph=True"
            )
        model: Module = ctx.model
        needs = ctx.needs_input_grad
        # xpnn accumulates into model.grads; start from nothing so that what
        # comes back is this call's gradient alone, for torch to accumulate.
        model.zero_grad()
        try:
            dx = ctx.closure(dy)
            grads = [grad for _, grad in model.named_gradients()]
        finally:
            model.zero_grad()
        param_grads = [grad if need else None for grad, need in zip(grads, needs[2:], strict=True)]
        return (None, dx if needs[1] else None, *param_grads)


class TorchModule(nn.Module):
    """An xpnn model as a ``torch.nn.Module``, trained by PyTorch through xpnn's backward.

    The model's parameters become the module's ``nn.Parameter`` objects, under
    their xpnn names (``"0.weight"``) and in xpnn's layout (a Linear's weight
    is ``(in_features, out_features)``). They are the very tensors the xpnn
    model holds: a ``torch.optim`` step, which updates them in place,
    updates the model. Calling the module runs :class:`XpnnFunction`, so
    ``loss.backward()`` gets its gradients from the model's hand-written
    backward, not from autograd's record of its operations.

    Parameters
    ----------
    model : xpnn.Module
        A model whose parameters are all torch tensors: move it first with
        ``model.to(torch, device=...)``. Its parameters are replaced by
        ``nn.Parameter`` objects that share their memory.

    Attributes
    ----------
    model : xpnn.Module
        The wrapped model.

    Raises
    ------
    TypeError
        If ``model`` is not an xpnn module, or if a parameter is not a torch
        tensor or not floating. Nothing is changed when this is raised.

    Notes
    -----
    ``train()`` and ``eval()`` reach the xpnn model too (so ``Dropout``
    follows them); the module starts in the model's mode. Under
    ``torch.no_grad()``, or when neither the input nor any parameter
    requires a gradient, the model runs alone and keeps nothing for a
    backward pass.

    While wrapped, the model's parameters are leaves that require gradients,
    which torch does not let anyone update in place outside
    ``torch.no_grad()``: train with ``torch.optim``, or call an xpnn
    optimizer's ``step`` inside ``torch.no_grad()``. If the model's
    parameters are replaced (``model.to(...)``, ``set_parameter``), the
    module refuses to run: wrap the model again.

    Examples
    --------
    >>> import torch
    >>> from xpnn import Linear, ReLU, Sequential
    >>> from xpnn.interop.torch import TorchModule
    >>> model = Sequential(Linear(3, 8, seed=0), ReLU(), Linear(8, 1, seed=1)).to(torch)
    >>> net = TorchModule(model)
    >>> [name for name, _ in net.named_parameters()]
    ['0.weight', '0.bias', '2.weight', '2.bias']
    >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
    >>> x, target = torch.ones(4, 3, dtype=torch.float64), torch.zeros(4, 1, dtype=torch.float64)
    >>> loss = torch.nn.functional.mse_loss(net(x), target)
    >>> loss.backward()
    >>> opt.step()
    >>> model[0].weight is net.get_parameter("0.weight")
    True
    """

    model: Module

    def __init__(self, model: Module) -> None:
        if not isinstance(model, Module):
            raise TypeError(
                f"TorchModule wraps an xpnn.Module, got {_qualname(model)}; for a torch model "
                "there is nothing to wrap"
            )
        slots = list(model.parameter_slots())
        for name, owner, local in slots:
            value = owner.params[local]
            if not isinstance(value, torch.Tensor):
                raise TypeError(
                    f"TorchModule needs the model's parameters to be torch tensors, got "
                    f"{_qualname(value)} for {name!r}; move the model first with "
                    "model.to(torch, device=...)"
                )
            if not (value.is_floating_point() or value.is_complex()):
                raise TypeError(
                    f"parameter {name!r} is {value.dtype}, which cannot require a gradient; "
                    "give the model floating parameters, for example model.to(dtype='float32')"
                )
        super().__init__()
        self.model = model
        params: list[nn.Parameter] = []
        # One Parameter per tensor: a tensor that several layers share (tied
        # weights) stays one parameter, and autograd sums its gradients.
        made: dict[int, nn.Parameter] = {}
        for name, owner, local in slots:
            value = owner.params[local]
            if isinstance(value, nn.Parameter):
                param = value
            elif id(value) in made:
                param = made[id(value)]
            else:
                param = made[id(value)] = nn.Parameter(value.detach())
            owner.params[local] = param
            self._holder(name).register_parameter(name.rsplit(".", 1)[-1], param)
            params.append(param)
        self._params = params
        super().train(model.training)

    def _holder(self, name: str) -> nn.Module:
        """Return the submodule under which parameter ``name`` is registered, made if new."""
        holder: nn.Module = self
        for part in name.split(".")[:-1]:
            if part not in holder._modules:
                holder.add_module(part, nn.Module())
            holder = holder.get_submodule(part)
        return holder

    def _check_parameters(self) -> list[Array]:
        current = _model_parameters(self.model)
        if len(current) != len(self._params) or any(
            p is not q for p, q in zip(current, self._params, strict=False)
        ):
            raise RuntimeError(
                "the xpnn model's parameters are no longer the tensors this TorchModule "
                "registered (the model was moved with .to(), or a parameter or layer was "
                "replaced); wrap the model again with TorchModule(model), and give the "
                "optimizer the new module's parameters"
            )
        return current

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the model to ``x``, recording xpnn's backward for autograd.

        Parameters
        ----------
        x : torch.Tensor of shape (..., in_features)
            On the parameters' device; a dtype the model accepts.

        Returns
        -------
        torch.Tensor
            The model's output, ``(..., out_features)`` for a model that ends
            with a ``Linear``.
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(
                f"TorchModule takes a torch.Tensor, got {_qualname(x)}; convert it with "
                "torch.as_tensor(x)"
            )
        params = self._check_parameters()
        if self.model.training != self.training:
            # training set directly as an attribute, bypassing train().
            self.model.train(self.training)
        if not torch.is_grad_enabled() or not (
            x.requires_grad or any(p.requires_grad for p in params)
        ):
            return self.model(x)  # type: ignore[no-any-return]
        y: torch.Tensor = XpnnFunction.apply(self.model, x, *params)  # type: ignore[no-untyped-call]
        return y

    def train(self, mode: bool = True) -> Self:
        """Set training mode here and in the xpnn model; return self."""
        super().train(mode)
        self.model.train(mode)
        return self

    def __repr__(self) -> str:
        inner = repr(self.model).replace("\n", "\n  ")
        return f"TorchModule(\n  {inner}\n)"


# -- training steps under torch.compile ----------------------------------------


_LRU_CACHE_WARNING = "Dynamo detected a call to a `functools.lru_cache`-wrapped function"


def _check_torch_parameters(model: Module, who: str) -> None:
    if not isinstance(model, Module):
        raise TypeError(f"{who} takes an xpnn.Module, got {_qualname(model)}")
    for name, value in model.named_parameters():
        if not isinstance(value, torch.Tensor):
            raise TypeError(
                f"{who} needs the model's parameters to be torch tensors, got "
                f"{_qualname(value)} for {name!r}; move the model first with "
                "model.to(torch, device=...)"
            )


def _without_autograd(body: Callable[[Array, Array], Array]) -> Callable[[Array, Array], Array]:
    # xpnn computes its own gradients: autograd would only record a graph
    # nobody uses, and refuse in-place updates of parameters that require
    # gradients (those of a TorchModule).
    @functools.wraps(body)
    def run(x: Array, y: Array) -> Array:
        with torch.no_grad(), warnings.catch_warnings():
            # Dynamo warns when it traces through an lru_cache; the optimizers
            # reach one in array_api_compat's is_writeable_array, whose cache
            # is keyed by the array's class: tracing through it is exact.
            warnings.filterwarnings("ignore", message=_LRU_CACHE_WARNING, category=UserWarning)
            return body(x, y)

    return run


def compiled_step(model: Module, loss_fn: Loss, optimizer: Optimizer, **options: Any) -> TrainStep:
    """Return a training step of ``model`` compiled by ``torch.compile``.

    The step's body, ``model.forward``, ``loss_fn``, the backward pass and
    ``optimizer.step()`` on the model and optimizer holding the arguments,
    is what ``torch.compile`` compiles; binding the arguments stays outside,
    in Python. xpnn's layers, losses and optimizers run unchanged.

    Parameters
    ----------
    model : Module
        A model whose parameters are torch tensors (``model.to(torch)``), on
        any device, each used once.
    loss_fn : callable
        ``loss_fn(prediction, target) -> (value, grad)``, such as
        :class:`xpnn.MSELoss`.
    optimizer : xpnn.optim.Optimizer
        An xpnn optimizer of ``model``.
    **options
        Passed to ``torch.compile`` (``backend=``, ``mode=``, ``dynamic=``,
        ...). The default backend, inductor, needs a C++ compiler on CPU.

    Returns
    -------
    TrainStep
        ``step(params, state, x, y) -> (params, state, loss)``; start from
        ``params, state = step.init()``, put the result back with
        ``step.write_back(params, state)``. The parameters and buffers are
        updated in place, as ``torch.optim`` does: the dictionaries returned
        hold the tensors passed in (and the model's own, after ``init``).

    Raises
    ------
    TypeError
        If a parameter is not a torch tensor, or ``optimizer`` is not an
        xpnn optimizer of ``model``.
    ValueError
        If the model uses one layer twice.

    Notes
    -----
    Everything runs under ``torch.no_grad()``: xpnn's backward is
    hand-written. ``torch.compile`` compiles twice (the first update
    creates the optimizer's buffers), again for a new batch shape (then
    with dynamic shapes), and whenever a hyper-parameter such as
    ``optimizer.lr`` changes. ``CrossEntropyLoss`` checks that every
    label is a class by reading one number back, the same host
    synchronisation as in eager mode: the step does it before the compiled
    body when the model ends in a :class:`~xpnn.Linear` (activations and
    Dropout may follow it), so the body is one graph. Graph breaks, which
    :func:`explain_step` counts, remain in two cases: that check inside the
    body, for a model whose output width xpnn cannot tell, and
    :class:`~xpnn.Dropout` in training mode, which draws its masks on the
    host. Both run eagerly between compiled graphs, and the results are
    those of eager steps.

    Examples
    --------
    >>> import torch
    >>> import xpnn
    >>> from xpnn.interop.torch import compiled_step
    >>> model = xpnn.Sequential(xpnn.Linear(4, 8, seed=0), xpnn.Tanh(), xpnn.Linear(8, 2, seed=1))
    >>> model.to(torch, dtype="float32")  # doctest: +ELLIPSIS
    Sequential(...)
    >>> step = compiled_step(model, xpnn.MSELoss(), xpnn.optim.SGD(model, lr=0.1), backend="eager")
    >>> params, state = step.init()
    >>> x, y = torch.ones(16, 4), torch.zeros(16, 2)
    >>> for _ in range(3):
    ...     params, state, loss = step(params, state, x, y)
    >>> step.write_back(params, state)
    >>> loss.shape
    torch.Size([])
    """
    _check_torch_parameters(model, "compiled_step")

    def compile_body(body: Callable[[Array, Array], Array]) -> Callable[[Array, Array], Array]:
        return _without_autograd(torch.compile(body, **options))

    return TrainStep(model, loss_fn, optimizer, compile_body=compile_body)


def explain_step(step: TrainStep, x: torch.Tensor, y: torch.Tensor) -> Any:
    """Return ``torch._dynamo.explain`` of one step's body: its graphs and graph breaks.

    The body runs once, on copies of ``step.init()``'s parameters and
    state, so the model and the optimizer are left as they were.

    Parameters
    ----------
    step : TrainStep
        A step of a model with torch parameters, from :func:`compiled_step`
        or :class:`~xpnn.interop.step.TrainStep` itself.
    x, y : torch.Tensor
        A batch of inputs and targets.

    Returns
    -------
    torch._dynamo.backends.debugging.ExplainOutput
        With ``graph_count``, ``graph_break_count`` and ``break_reasons``
        (each with the user stack where the break happened).
    """
    _check_torch_parameters(step.model, "explain_step")
    params, state = step.init()
    copies: Params = {name: value.detach().clone() for name, value in params.items()}
    copied: State = {
        name: {
            key: value.detach().clone() if isinstance(value, torch.Tensor) else value
            for key, value in entry.items()
        }
        for name, entry in state.items()
    }
    explain = torch._dynamo.explain(step.eager_body)
    _, _, report = step.run_with(_without_autograd(explain), copies, copied, x, y)
    return report

"""Training inside PyTorch through an xpnn model's hand-written backward.

- :class:`XpnnFunction` is a ``torch.autograd.Function`` whose forward and
  backward are an xpnn model's;
- :class:`TorchModule` makes an xpnn model an ``nn.Module`` whose
  gradients come from :class:`XpnnFunction`, so that ``loss.backward()``
  and ``torch.optim`` train it in PyTorch's own loops.
"""

from __future__ import annotations

from typing import Any, Self

import torch
from torch import nn
from torch.autograd.function import FunctionCtx

from ..._compat import Array, describe_type
from ...layers import Module, call_backward

__all__ = ["TorchModule", "XpnnFunction"]


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

    A second backward pass through the graph needs ``retain_graph=True`` on
    the first, as for any torch operation: torch itself refuses it otherwise
    ("Trying to backward through the graph a second time").

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
        # Saved, though the closure holds x already: torch frees what a node
        # saved once a backward pass without retain_graph=True has gone
        # through it, and refuses a second pass then, with its own message.
        # The closure itself is kept usable for every pass torch allows.
        ctx.save_for_backward(x)
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
        # Raises "Trying to backward through the graph a second time" after
        # a pass without retain_graph=True, as any torch operation does.
        ctx.saved_tensors  # noqa: B018
        model: Module = ctx.model
        needs = ctx.needs_input_grad
        # xpnn accumulates into model.grads; start from nothing so that what
        # comes back is this call's gradient alone, for torch to accumulate.
        model.zero_grad()
        try:
            # torch decides how often this node runs (retain_graph is its
            # own); the closure must not refuse the calls torch allows.
            dx = call_backward(ctx.closure, dy, retain_graph=True)
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
                f"TorchModule wraps an xpnn.Module, got {describe_type(model)}; for a torch model "
                "there is nothing to wrap"
            )
        slots = list(model.parameter_slots())
        for name, owner, local in slots:
            value = owner.params[local]
            if not isinstance(value, torch.Tensor):
                raise TypeError(
                    f"TorchModule needs the model's parameters to be torch tensors, got "
                    f"{describe_type(value)} for {name!r}; move the model first with "
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
                f"TorchModule takes a torch.Tensor, got {describe_type(x)}; convert it with "
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

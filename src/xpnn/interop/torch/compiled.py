"""Training steps of xpnn models compiled by ``torch.compile``.

:func:`compiled_step` compiles an xpnn training step (forward, loss,
backward, an xpnn optimizer's update) with ``torch.compile``, and
:func:`explain_step` counts its graph breaks.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import torch

from ..._compat import Array, describe_type
from ...layers import Module
from ...optim import Optimizer
from ..step import Loss, Params, State, TrainStep

__all__ = ["compiled_step", "explain_step"]


_LRU_CACHE_WARNING = "Dynamo detected a call to a `functools.lru_cache`-wrapped function"


def _check_torch_parameters(model: Module, who: str) -> None:
    if not isinstance(model, Module):
        raise TypeError(f"{who} takes an xpnn.Module, got {describe_type(model)}")
    for name, value in model.named_parameters():
        if not isinstance(value, torch.Tensor):
            raise TypeError(
                f"{who} needs the model's parameters to be torch tensors, got "
                f"{describe_type(value)} for {name!r}; move the model first with "
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
        any device, each used once. Batch norms train: their running
        statistics are buffers, which the step takes and returns in
        ``params``.
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
        ``step.write_back(params, state)``. ``params`` holds the parameters,
        then the model's buffers. The parameters and the optimizer's buffers
        are updated in place, as ``torch.optim`` does: the dictionaries
        returned hold the tensors passed in (and the model's own, after
        ``init``). A batch norm's running statistics come back as new
        tensors, and the model keeps its own until ``write_back``.

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

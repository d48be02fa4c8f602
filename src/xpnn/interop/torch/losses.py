"""Loss modules between ``torch.nn`` and :mod:`xpnn.losses`.

Each torch loss with an xpnn equal of the same name converts both ways,
with every option: the options have torch's names in xpnn too, and the
class weights (``weight``, ``pos_weight``) are copied into the target
library.

The one difference to keep in mind is **the class axis** of
:class:`~xpnn.CrossEntropyLoss` and :class:`~xpnn.NLLLoss`. torch puts the
classes on axis 1 of inputs with two or more dimensions, xpnn on the last
axis unless told: ``from_torch(nn.CrossEntropyLoss())`` gives
``CrossEntropyLoss(axis=1)``, which computes what torch computes on torch's
layout, and ``to_torch`` takes only ``axis=1``, since torch has no other.
For 1-D and 2-D inputs the two layouts are the same.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ... import losses
from ..._compat import (
    Device,
    DType,
    array_namespace,
    describe_type,
    dtype_name,
    resolve_device,
    resolve_dtype,
    resolve_namespace,
)
from ..._compat import device as device_of
from ..._transfer import transfer

__all__ = ["is_torch_loss", "loss_from_torch", "loss_to_torch"]

#: The xpnn loss classes by name; each has a torch twin of that name.
_XPNN = {name: getattr(losses, name) for name in losses.__all__ if name.endswith("Loss")}
_XPNN.pop("LabelLoss", None)
_BY_TORCH: dict[type[nn.Module], type[losses.Loss]] = {
    getattr(nn, name): cls for name, cls in _XPNN.items() if hasattr(nn, name)
}
_BY_XPNN = {cls: torch_type for torch_type, cls in _BY_TORCH.items()}
#: Options of an xpnn loss that torch's twin does not have.
_XPNN_ONLY = ("axis",)


def is_torch_loss(module: object) -> bool:
    """Tell whether ``module`` is one of torch's loss modules (xpnn may lack its twin)."""
    return type(module) in _BY_TORCH or type(module).__module__ == "torch.nn.modules.loss"


def loss_from_torch(
    module: nn.Module,
    *,
    xp: object | None = None,
    device: Device | str | None = None,
    dtype: DType | str | None = None,
) -> losses.Loss:
    """Return the xpnn loss equal to a torch loss module.

    Parameters
    ----------
    module : torch.nn.Module
        ``nn.CrossEntropyLoss``, ``nn.NLLLoss``, ``nn.MSELoss``,
        ``nn.BCEWithLogitsLoss``, ... (exact types).
    xp, device, dtype : optional
        Where the class weights go, as for :func:`~xpnn.interop.torch.from_torch`.

    Returns
    -------
    xpnn.losses.Loss
        With torch's options; ``axis=1`` for the two label losses.
    """
    kind = _BY_TORCH.get(type(module))
    if kind is None:
        raise TypeError(
            f"from_torch cannot convert the loss {describe_type(module)}; it converts "
            f"{', '.join(f'nn.{cls.__name__}' for cls in _BY_XPNN)} (exact types)"
        )
    target = resolve_namespace(torch if xp is None else xp)
    settings: dict[str, Any] = {}
    for name in kind._defaults():
        if name in _XPNN_ONLY:
            continue
        value = getattr(module, name)
        if isinstance(value, torch.Tensor):
            value = _copy(value.detach(), target, device, dtype)
        settings[name] = value
    if issubclass(kind, losses.LabelLoss):
        settings["axis"] = 1
    return kind(**settings)


def loss_to_torch(
    loss: losses.Loss,
    *,
    device: torch.device | str | int | None = None,
    dtype: torch.dtype | str | None = None,
) -> nn.Module:
    """Return the torch loss module equal to an xpnn loss.

    Raises
    ------
    TypeError
        For a loss with no torch twin.
    ValueError
        For a label loss whose class axis is not 1, torch's.
    """
    torch_type = _BY_XPNN.get(type(loss))
    if torch_type is None:
        raise TypeError(
            f"to_torch cannot convert the loss {describe_type(loss)}; it converts "
            f"{', '.join(cls.__name__ for cls in _BY_XPNN)} (exact types)"
        )
    settings = loss.settings()
    axis = settings.pop("axis", None)
    if axis is not None and axis != 1:
        raise ValueError(
            f"{type(loss).__name__}(axis={axis}) puts the classes on axis {axis}, but torch's "
            f"nn.{torch_type.__name__} puts them on axis 1 (the same axis only for 1-D and "
            f"2-D inputs); build the loss with axis=1 and give it inputs in torch's layout "
            f"to convert it"
        )
    target = resolve_namespace(torch)
    where = None if device is None else torch.device(device)
    for name, value in settings.items():
        if value is not None and hasattr(value, "shape"):
            settings[name] = _copy(value, target, where, dtype)
    return torch_type(**settings)


def _copy(value: Any, target: Any, device: Any, dtype: Any) -> Any:
    """Copy a class-weight array into ``target``, keeping its dtype's name unless told."""
    source = array_namespace(weight=value)
    # Where nothing says otherwise, an array that stays in its library stays
    # on its device, as parameters do.
    where = (
        device_of(value) if device is None and source is target else resolve_device(target, device)
    )
    wanted = dtype_name(source, value.dtype) if dtype is None else dtype
    copied = transfer(value, xp=target, device=where, dtype=resolve_dtype(target, wanted, where))
    # transfer returns the array itself when nothing moves: copy, so that
    # the two losses share no memory.
    return target.asarray(copied, copy=True, device=where)

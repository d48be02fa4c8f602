"""Build a module back from the description :meth:`Module.config` gives."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._compat import Device, DType
from ._module import Module
from .activations import (
    ELU,
    GELU,
    Hardtanh,
    Identity,
    LeakyReLU,
    LogSoftmax,
    Mish,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from .attention import MultiheadAttention
from .convolution import Conv1d, Conv2d
from .dropout import Dropout
from .embedding import Embedding
from .layer_norm import LayerNorm, RMSNorm
from .linear import Linear
from .normalization import BatchNorm1d, BatchNorm2d
from .pooling import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AvgPool1d,
    AvgPool2d,
    MaxPool1d,
    MaxPool2d,
)
from .recurrent import GRU, LSTM, RNN
from .reshape import Flatten, Unflatten
from .sequential import Sequential
from .transformer import TransformerEncoder, TransformerEncoderLayer

__all__ = ["LAYERS", "from_config"]

#: The layer classes a configuration may name, by class name.
LAYERS: dict[str, type[Module]] = {
    cls.__name__: cls
    for cls in (
        Linear,
        Conv1d,
        Conv2d,
        Sequential,
        ReLU,
        LeakyReLU,
        Tanh,
        Sigmoid,
        GELU,
        Softmax,
        LogSoftmax,
        SiLU,
        Softplus,
        ELU,
        Hardtanh,
        Mish,
        Identity,
        Dropout,
        MaxPool1d,
        MaxPool2d,
        AvgPool1d,
        AvgPool2d,
        AdaptiveAvgPool1d,
        AdaptiveAvgPool2d,
        Flatten,
        Unflatten,
        BatchNorm1d,
        BatchNorm2d,
        RNN,
        GRU,
        LSTM,
        LayerNorm,
        RMSNorm,
        Embedding,
        MultiheadAttention,
        TransformerEncoderLayer,
        TransformerEncoder,
    )
}


def from_config(
    config: Mapping[str, Any],
    *,
    xp: object | None = None,
    device: Device | str | None = None,
    dtype: DType | str | None = None,
) -> Module:
    """Build the module that ``config`` describes, with fresh parameters.

    Parameters
    ----------
    config : dict
        As :meth:`xpnn.Module.config` returns it.
    xp, device, dtype
        Where the parameters of layers that have some are made, as for
        :class:`xpnn.Linear`. Parameters start at zero: the caller sets them.

    Returns
    -------
    Module

    Raises
    ------
    ValueError
        Naming the path of the first entry that does not describe a layer.
    """
    return _build(config, "config", {"xp": xp, "device": device, "dtype": dtype})


def _build(config: object, where: str, placement: dict[str, Any]) -> Module:
    if not isinstance(config, Mapping):
        raise ValueError(f"{where} must be a dict, got {type(config).__name__}")
    if set(config) != {"type", "settings", "children"}:
        raise ValueError(
            f"{where} must have exactly the keys 'type', 'settings' and 'children', got "
            f"{sorted(map(str, config))}"
        )
    kind, settings, children = config["type"], config["settings"], config["children"]
    if not isinstance(kind, str) or kind not in LAYERS:
        raise ValueError(
            f"{where}['type'] must name an xpnn layer ({', '.join(LAYERS)}), got {kind!r}"
        )
    if not isinstance(settings, Mapping) or not all(isinstance(k, str) for k in settings):
        raise ValueError(f"{where}['settings'] must be a dict with str keys, got {settings!r}")
    if not isinstance(children, list):
        raise ValueError(f"{where}['children'] must be a list, got {type(children).__name__}")
    if kind == "Sequential":
        if settings:
            raise ValueError(f"{where}['settings'] must be empty for Sequential, got {settings!r}")
        return Sequential(
            *(
                _build(child, f"{where}['children'][{i}]", placement)
                for i, child in enumerate(children)
            )
        )
    composite = getattr(LAYERS[kind], "_from_config", None)
    if composite is not None:  # layers with children: attention, transformer
        built = [
            _build(child, f"{where}['children'][{i}]", placement)
            for i, child in enumerate(children)
        ]
        try:
            return composite(dict(settings), built, placement)  # type: ignore[no-any-return]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where} does not describe a {kind}: {exc}") from None
    if children:
        raise ValueError(f"{where}['children'] must be empty for {kind}, got {len(children)}")
    extra: dict[str, Any] = {}
    if kind in ("Linear", "Conv1d", "Conv2d"):
        extra = {**placement, "weight_init": "zeros", "bias_init": "zeros"}
    elif kind in ("RNN", "GRU", "LSTM"):
        extra = dict(placement)
    try:
        return LAYERS[kind](**settings, **extra)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}['settings'] do not fit {kind}: {exc}") from None

"""Conversion of models between ``torch.nn`` and xpnn.

- :func:`from_torch` copies an ``nn.Linear`` or an ``nn.Sequential`` of
  linear layers, activations and dropout into the equal xpnn model, on any
  backend;
- :func:`to_torch` copies an xpnn model, on any backend, into the equal
  ``nn.Linear`` / ``nn.Sequential``.

Layouts differ in one place: ``nn.Linear`` stores its weight as
``(out_features, in_features)`` and computes ``x @ weight.T + bias``, xpnn
stores ``(in_features, out_features)`` and computes ``x @ weight + bias``.
The conversions transpose; nothing is conjugated, complex weights included.

Each parameter-free layer is one row of ``_PAIRS``: its torch and xpnn
types, how to build each from the other, and what it checks of the torch
module. Each layer with parameters or buffers is one row of ``_STATEFUL``:
the constructor settings each side reads from the other; its state moves
through state dicts, which xpnn keeps in torch's names and layouts, so no
parameter is copied by hand. The supported-types checks, the lookups in
both directions and the messages that list what converts are all read from
the two tables; ``nn.Sequential`` (with children) is handled apart. A row
added there also belongs in the docstrings below and in
``docs/interop-torch.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..._compat import (
    Array,
    Device,
    DType,
    array_namespace,
    describe_type,
    dtype_name,
    library_of,
    resolve_dtype,
    resolve_namespace,
)
from ..._transfer import transfer
from ...layers import (
    ELU,
    GELU,
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AvgPool1d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv1d,
    Conv2d,
    Dropout,
    Flatten,
    Hardtanh,
    Identity,
    LayerNorm,
    LeakyReLU,
    Linear,
    LogSoftmax,
    MaxPool1d,
    MaxPool2d,
    Mish,
    Module,
    ReLU,
    RMSNorm,
    Sequential,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
    Unflatten,
)
from ...layers.attention import MultiheadAttention
from ...layers.embedding import Embedding
from ...layers.recurrent import GRU, LSTM, RNN
from ...layers.transformer import TransformerEncoder, TransformerEncoderLayer
from ...losses import Loss
from .losses import is_torch_loss, loss_from_torch, loss_to_torch

__all__ = ["from_torch", "to_torch"]

#: The torch dtypes xpnn parameters may have: the standard's floating ones.
_STANDARD_DTYPES = (torch.float32, torch.float64, torch.complex64, torch.complex128)


def _where(path: str) -> str:
    return f" at {path!r}" if path else ""


# -- the parameter-free layers ------------------------------------------------


@dataclass(frozen=True)
class _Pair:
    """A parameter-free torch layer and its xpnn equal.

    Both types are matched exactly. ``to_xpnn`` and ``to_torch`` build one
    from the other (training mode is copied by the caller); ``check``, given
    the torch module and where it sits, raises if that module has no xpnn
    equal. ``shown`` is how messages name the torch type, when not
    ``nn.<name>``.
    """

    torch_type: type[nn.Module]
    xpnn_type: type[Module]
    to_xpnn: Callable[[Any], Module]
    to_torch: Callable[[Any], nn.Module]
    check: Callable[[Any, str], None] | None = None
    shown: str | None = None

    @property
    def torch_name(self) -> str:
        return self.shown or f"nn.{self.torch_type.__name__}"


def _check_dim(module: nn.Softmax | nn.LogSoftmax, path: str) -> None:
    if module.dim is None:
        name = type(module).__name__
        raise ValueError(
            f"{name}(dim=None){_where(path)} picks its axis from the rank of each "
            f"input, which xpnn does not do; give it an explicit dim, for example "
            f"nn.{name}(dim=-1)"
        )


_PAIRS = (
    _Pair(nn.ReLU, ReLU, lambda m: ReLU(), lambda layer: nn.ReLU()),
    _Pair(
        nn.LeakyReLU,
        LeakyReLU,
        lambda m: LeakyReLU(m.negative_slope),
        lambda layer: nn.LeakyReLU(layer.negative_slope),
    ),
    _Pair(nn.Tanh, Tanh, lambda m: Tanh(), lambda layer: nn.Tanh()),
    _Pair(nn.Sigmoid, Sigmoid, lambda m: Sigmoid(), lambda layer: nn.Sigmoid()),
    _Pair(
        nn.GELU,
        GELU,
        lambda m: GELU(m.approximate),
        lambda layer: nn.GELU(approximate=layer.approximate),
    ),
    _Pair(
        nn.Softmax,
        Softmax,
        lambda m: Softmax(m.dim),
        lambda layer: nn.Softmax(dim=layer.axis),
        check=_check_dim,
    ),
    _Pair(
        nn.LogSoftmax,
        LogSoftmax,
        lambda m: LogSoftmax(m.dim),
        lambda layer: nn.LogSoftmax(dim=layer.axis),
        check=_check_dim,
    ),
    _Pair(nn.SiLU, SiLU, lambda m: SiLU(), lambda layer: nn.SiLU()),
    _Pair(
        nn.Softplus,
        Softplus,
        lambda m: Softplus(m.beta, m.threshold),
        lambda layer: nn.Softplus(beta=layer.beta, threshold=layer.threshold),
    ),
    _Pair(nn.ELU, ELU, lambda m: ELU(m.alpha), lambda layer: nn.ELU(alpha=layer.alpha)),
    _Pair(
        nn.Hardtanh,
        Hardtanh,
        lambda m: Hardtanh(m.min_val, m.max_val),
        lambda layer: nn.Hardtanh(layer.min_val, layer.max_val),
    ),
    _Pair(nn.Mish, Mish, lambda m: Mish(), lambda layer: nn.Mish()),
    _Pair(nn.Identity, Identity, lambda m: Identity(), lambda layer: nn.Identity()),
    _Pair(nn.Dropout, Dropout, lambda m: Dropout(m.p), lambda layer: nn.Dropout(layer.p)),
    _Pair(
        nn.MaxPool1d,
        MaxPool1d,
        lambda m: MaxPool1d(
            m.kernel_size, m.stride, m.padding, m.dilation, m.return_indices, m.ceil_mode
        ),
        lambda layer: nn.MaxPool1d(
            layer.kernel_size,
            layer.stride,
            layer.padding,
            layer.dilation,
            ceil_mode=layer.ceil_mode,
        ),
    ),
    _Pair(
        nn.MaxPool2d,
        MaxPool2d,
        lambda m: MaxPool2d(
            m.kernel_size, m.stride, m.padding, m.dilation, m.return_indices, m.ceil_mode
        ),
        lambda layer: nn.MaxPool2d(
            layer.kernel_size,
            layer.stride,
            layer.padding,
            layer.dilation,
            ceil_mode=layer.ceil_mode,
        ),
    ),
    _Pair(
        nn.AvgPool1d,
        AvgPool1d,
        lambda m: AvgPool1d(
            m.kernel_size,
            m.stride,
            m.padding,
            m.ceil_mode,
            m.count_include_pad,
            getattr(m, "divisor_override", None),
        ),
        lambda layer: nn.AvgPool1d(
            layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode, layer.count_include_pad
        ),
    ),
    _Pair(
        nn.AvgPool2d,
        AvgPool2d,
        lambda m: AvgPool2d(
            m.kernel_size,
            m.stride,
            m.padding,
            m.ceil_mode,
            m.count_include_pad,
            getattr(m, "divisor_override", None),
        ),
        lambda layer: nn.AvgPool2d(
            layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode, layer.count_include_pad
        ),
    ),
    _Pair(
        nn.AdaptiveAvgPool1d,
        AdaptiveAvgPool1d,
        lambda m: AdaptiveAvgPool1d(m.output_size),
        lambda layer: nn.AdaptiveAvgPool1d(layer.output_size),
    ),
    _Pair(
        nn.AdaptiveAvgPool2d,
        AdaptiveAvgPool2d,
        lambda m: AdaptiveAvgPool2d(m.output_size),
        lambda layer: nn.AdaptiveAvgPool2d(layer.output_size),
    ),
    _Pair(
        nn.Flatten,
        Flatten,
        lambda m: Flatten(m.start_dim, m.end_dim),
        lambda layer: nn.Flatten(layer.start_dim, layer.end_dim),
    ),
    _Pair(
        nn.Unflatten,
        Unflatten,
        lambda m: Unflatten(m.dim, tuple(m.unflattened_size)),
        lambda layer: nn.Unflatten(layer.dim, layer.unflattened_size),
    ),
)
_BY_TORCH = {pair.torch_type: pair for pair in _PAIRS}
_BY_XPNN = {pair.xpnn_type: pair for pair in _PAIRS}

# -- the layers with state ----------------------------------------------------


@dataclass(frozen=True)
class _Stateful:
    """A torch layer with parameters or buffers, and its xpnn equal.

    Both types are matched exactly. ``settings(module)`` gives the xpnn
    constructor's keywords, ``torch_settings(layer)`` the torch
    constructor's; each constructor also gets where its arrays go. The
    state itself moves through state dicts, which xpnn keeps in torch's
    names and layouts, so no row copies a parameter by hand. ``check`` is as
    in :class:`_Pair`; ``build_torch(layer, device=, dtype=)`` replaces
    ``torch_type(**torch_settings(layer), device=, dtype=)`` for a torch
    module whose constructor takes no ``device``/``dtype``.
    """

    torch_type: type[nn.Module]
    xpnn_type: type[Module]
    settings: Callable[[Any], dict[str, Any]]
    torch_settings: Callable[[Any], dict[str, Any]]
    check: Callable[[Any, str], None] | None = None
    build_torch: Callable[..., nn.Module] | None = None
    build_xpnn: Callable[..., Module] | None = None

    @property
    def torch_name(self) -> str:
        return f"nn.{self.torch_type.__name__}"


def _check_padding_mode(module: nn.Conv1d | nn.Conv2d, path: str) -> None:
    if module.padding_mode != "zeros":
        raise ValueError(
            f"{type(module).__name__}(padding_mode={module.padding_mode!r}){_where(path)} has "
            "no xpnn equal: xpnn's convolutions pad with zeros only"
        )


def _conv_settings(module: nn.Conv1d | nn.Conv2d) -> dict[str, Any]:
    return {
        "in_channels": module.in_channels,
        "out_channels": module.out_channels,
        "kernel_size": module.kernel_size,
        "stride": module.stride,
        "padding": module.padding,
        "dilation": module.dilation,
        "groups": module.groups,
        "bias": module.bias is not None,
    }


def _conv_torch_settings(layer: Conv1d | Conv2d) -> dict[str, Any]:
    return {
        "in_channels": layer.in_channels,
        "out_channels": layer.out_channels,
        "kernel_size": layer.kernel_size,
        "stride": layer.stride,
        "padding": layer.padding,
        "dilation": layer.dilation,
        "groups": layer.groups,
        "bias": "bias" in layer.params,
    }


def _batch_norm_settings(layer: Any) -> dict[str, Any]:
    # The same five attributes, under the same names, on both sides.
    return {
        "num_features": layer.num_features,
        "eps": layer.eps,
        "momentum": layer.momentum,
        "affine": layer.affine,
        "track_running_stats": layer.track_running_stats,
    }


def _check_attention(module: nn.MultiheadAttention, path: str) -> None:
    if module.bias_k is not None or module.add_zero_attn or not module._qkv_same_embed_dim:
        raise ValueError(
            f"nn.MultiheadAttention{_where(path)} with add_bias_kv, add_zero_attn or kdim/vdim "
            "other than embed_dim has no xpnn equal"
        )


def _attention_settings(layer: Any) -> dict[str, Any]:
    # The same attributes on both sides.
    return {
        "embed_dim": layer.embed_dim,
        "num_heads": layer.num_heads,
        "dropout": layer.dropout,
        "bias": layer.in_proj_bias is not None,
        "batch_first": layer.batch_first,
    }


def _check_encoder_layer(module: nn.TransformerEncoderLayer, path: str) -> None:
    _check_attention(module.self_attn, f"{path}.self_attn" if path else "self_attn")
    activation = module.activation
    gelu = activation is nn.functional.gelu or (
        type(activation) is nn.GELU and activation.approximate == "none"
    )
    relu = activation is nn.functional.relu or type(activation) is nn.ReLU
    drops = {module.dropout.p, module.dropout1.p, module.dropout2.p, module.self_attn.dropout}
    if not (relu or gelu) or len(drops) != 1:
        raise ValueError(
            f"nn.TransformerEncoderLayer{_where(path)} has no xpnn equal: xpnn's takes the "
            "activation 'relu' or 'gelu' (exact) and one dropout probability"
        )


def _encoder_layer_settings(module: nn.TransformerEncoderLayer) -> dict[str, Any]:
    activation = module.activation
    gelu = activation is nn.functional.gelu or type(activation) is nn.GELU
    return {
        "d_model": module.self_attn.embed_dim,
        "nhead": module.self_attn.num_heads,
        "dim_feedforward": module.linear1.out_features,
        "dropout": module.dropout.p,
        "activation": "gelu" if gelu else "relu",
        "layer_norm_eps": module.norm1.eps,
        "batch_first": module.self_attn.batch_first,
        "norm_first": module.norm_first,
        "bias": module.linear1.bias is not None,
    }


def _norm_settings(norm: Any) -> dict[str, Any]:
    return {
        "normalized_shape": tuple(norm.normalized_shape),
        "eps": norm.eps,
        "elementwise_affine": norm.elementwise_affine,
        "bias": norm.bias is not None,
    }


def _rms_norm_settings(norm: Any) -> dict[str, Any]:
    # The same three attributes, under the same names, on both sides.
    return {
        "normalized_shape": tuple(norm.normalized_shape),
        "eps": norm.eps,
        "elementwise_affine": norm.elementwise_affine,
    }


def _embedding_settings(table: Any) -> dict[str, Any]:
    return {
        "num_embeddings": table.num_embeddings,
        "embedding_dim": table.embedding_dim,
        "padding_idx": table.padding_idx,
    }


def _check_embedding(module: nn.Embedding, path: str) -> None:
    if module.max_norm is not None or module.scale_grad_by_freq or module.sparse:
        raise ValueError(
            f"nn.Embedding(max_norm={module.max_norm}, scale_grad_by_freq="
            f"{module.scale_grad_by_freq}, sparse={module.sparse}){_where(path)} has no xpnn "
            "equal: xpnn's Embedding has no max_norm, scale_grad_by_freq or sparse gradient"
        )


def _check_encoder(module: nn.TransformerEncoder, path: str) -> None:
    for index, layer in enumerate(module.layers):
        where = f"{path}.layers.{index}" if path else f"layers.{index}"
        if type(layer) is not nn.TransformerEncoderLayer:
            raise TypeError(f"from_torch cannot convert {describe_type(layer)}{_where(where)}")
        _check_encoder_layer(layer, where)
    if module.norm is not None and type(module.norm) is not nn.LayerNorm:
        raise TypeError(
            f"from_torch converts an nn.TransformerEncoder whose norm is an nn.LayerNorm or "
            f"None, got {describe_type(module.norm)}{_where(path)}"
        )


def _encoder_settings(module: nn.TransformerEncoder) -> dict[str, Any]:
    norm = module.norm
    return {
        "layer": _encoder_layer_settings(module.layers[0]),
        "num_layers": len(module.layers),
        "norm": None if norm is None else _norm_settings(norm),
    }


def _build_encoder(
    layer: dict[str, Any], num_layers: int, norm: dict[str, Any] | None, **place: Any
) -> TransformerEncoder:
    return TransformerEncoder(
        TransformerEncoderLayer(**layer, **place),
        num_layers,
        norm=None if norm is None else LayerNorm(**norm, **place),
    )


def _build_torch_encoder(layer: TransformerEncoder, **place: Any) -> nn.TransformerEncoder:
    first: dict[str, Any] = layer.layers[0].config()["settings"]
    norm = layer.norm
    # The regular path: torch's nested-tensor fast path zeroes padded outputs.
    return nn.TransformerEncoder(
        nn.TransformerEncoderLayer(**first, **place),
        layer.num_layers,
        norm=None if norm is None else nn.LayerNorm(**_norm_settings(norm), **place),
        enable_nested_tensor=False,
    )


def _recurrent_settings(layer: Any) -> dict[str, Any]:
    # The same attributes, under the same names, on both sides.
    settings = {
        "input_size": layer.input_size,
        "hidden_size": layer.hidden_size,
        "num_layers": layer.num_layers,
        "bias": bool(layer.bias),
        "batch_first": layer.batch_first,
        "dropout": float(layer.dropout),
        "bidirectional": layer.bidirectional,
    }
    if isinstance(layer, nn.RNN | RNN):
        settings["nonlinearity"] = layer.nonlinearity
    return settings


def _check_lstm(module: nn.LSTM, path: str) -> None:
    if module.proj_size:
        raise ValueError(
            f"nn.LSTM(proj_size={module.proj_size}){_where(path)} has no xpnn equal: xpnn's "
            "LSTM has no projection"
        )


_STATEFUL = (
    _Stateful(
        nn.Linear,
        Linear,
        lambda m: {
            "in_features": m.in_features,
            "out_features": m.out_features,
            "bias": m.bias is not None,
        },
        lambda layer: {
            "in_features": layer.in_features,
            "out_features": layer.out_features,
            "bias": "bias" in layer.params,
        },
    ),
    _Stateful(nn.Conv1d, Conv1d, _conv_settings, _conv_torch_settings, _check_padding_mode),
    _Stateful(nn.Conv2d, Conv2d, _conv_settings, _conv_torch_settings, _check_padding_mode),
    _Stateful(nn.BatchNorm1d, BatchNorm1d, _batch_norm_settings, _batch_norm_settings),
    _Stateful(nn.BatchNorm2d, BatchNorm2d, _batch_norm_settings, _batch_norm_settings),
    _Stateful(nn.LayerNorm, LayerNorm, _norm_settings, _norm_settings),
    _Stateful(nn.RMSNorm, RMSNorm, _rms_norm_settings, _rms_norm_settings),
    _Stateful(nn.Embedding, Embedding, _embedding_settings, _embedding_settings, _check_embedding),
    _Stateful(
        nn.MultiheadAttention,
        MultiheadAttention,
        _attention_settings,
        _attention_settings,
        _check_attention,
    ),
    _Stateful(
        nn.TransformerEncoderLayer,
        TransformerEncoderLayer,
        _encoder_layer_settings,
        lambda layer: layer.config()["settings"],
        _check_encoder_layer,
    ),
    _Stateful(
        nn.TransformerEncoder,
        TransformerEncoder,
        _encoder_settings,
        lambda layer: {},
        _check_encoder,
        build_torch=_build_torch_encoder,
        build_xpnn=_build_encoder,
    ),
    _Stateful(nn.RNN, RNN, _recurrent_settings, _recurrent_settings),
    _Stateful(nn.GRU, GRU, _recurrent_settings, _recurrent_settings),
    _Stateful(nn.LSTM, LSTM, _recurrent_settings, _recurrent_settings, _check_lstm),
)
_STATEFUL_BY_TORCH = {row.torch_type: row for row in _STATEFUL}
_STATEFUL_BY_XPNN = {row.xpnn_type: row for row in _STATEFUL}

_SUPPORTED_TYPES: tuple[type[nn.Module], ...] = (nn.Sequential, *_STATEFUL_BY_TORCH, *_BY_TORCH)
_SUPPORTED_NAMES = [
    _STATEFUL[0].torch_name,
    "nn.Sequential",
    *(row.torch_name for row in _STATEFUL[1:]),
    *(pair.torch_name for pair in _PAIRS),
]
_SUPPORTED = f"{', '.join(_SUPPORTED_NAMES[:-1])} and {_SUPPORTED_NAMES[-1]}"


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
    row = _STATEFUL_BY_TORCH.get(kind)
    if row is not None:
        if row.check is not None:
            row.check(module, path)
        for local, param in module.named_parameters():
            if param.dtype not in _STANDARD_DTYPES and dtype is None:
                name = f"{path}.{local}" if path else local
                raise TypeError(
                    f"parameter {name!r} is {param.dtype}, which xpnn does not support (it "
                    "supports float32, float64, complex64 and complex128); pass dtype= (for "
                    "example dtype='float32') or convert the module first with module.float()"
                )
        return
    pair = _BY_TORCH.get(kind)
    if pair is not None:
        if pair.check is not None:
            pair.check(module, path)
        return
    subclass = (
        " (subclasses are refused: their forward may differ)"
        if isinstance(module, _SUPPORTED_TYPES)
        else ""
    )
    raise TypeError(
        f"from_torch cannot convert {describe_type(module)}{_where(path)}{subclass}; it converts "
        f"{_SUPPORTED}"
    )


def _dtype_name(name: str, value: Array) -> str:
    return dtype_name(array_namespace(**{name: value}), value.dtype)


def _is_floating(value: torch.Tensor) -> bool:
    return value.dtype.is_floating_point or value.dtype.is_complex


def _stateful_from_torch(
    row: _Stateful,
    module: nn.Module,
    xp: object | None,
    device: Device | str | None,
    dtype: DType | str | None,
) -> Module:
    # Built in torch where the module's arrays are and loaded from its state
    # dict (copies, buffers included), then moved as Module.to moves: the
    # copies are returned as they are when nothing has to move.
    state = {name: value.detach() for name, value in module.state_dict().items()}
    if dtype is not None:
        # float16 and bfloat16 fit float32 exactly: no rounding on the way
        # to the dtype asked for.
        state = {
            name: value.to(torch.float32)
            if _is_floating(value) and value.dtype not in _STANDARD_DTYPES
            else value
            for name, value in state.items()
        }
    floats = [value for value in state.values() if _is_floating(value)]
    place = {"device": floats[0].device, "dtype": floats[0].dtype} if floats else {}
    # Every stateful layer takes xp=, device=, dtype= (or its row builds it).
    build: Callable[..., Module] = row.build_xpnn or row.xpnn_type
    layer = build(**row.settings(module), xp=torch, **place)
    layer.load_state_dict(state)
    return layer.to(xp, device, dtype)


def _from_torch(
    module: nn.Module, xp: object | None, device: Device | str | None, dtype: DType | str | None
) -> Module:
    layer: Module
    row = _STATEFUL_BY_TORCH.get(type(module))
    if isinstance(module, nn.Sequential):
        layer = Sequential(*(_from_torch(child, xp, device, dtype) for child in module))
    elif row is not None:
        layer = _stateful_from_torch(row, module, xp, device, dtype)
        layer.train(module.training)  # a composite layer's children follow it
    else:  # _check_torch let only the exact types of _PAIRS through
        layer = _BY_TORCH[type(module)].to_xpnn(module)
    layer.training = module.training
    return layer


def from_torch(
    module: nn.Module,
    *,
    xp: object | None = None,
    device: Device | str | None = None,
    dtype: DType | str | None = None,
) -> Any:
    """Copy a PyTorch model into the equal xpnn model.

    Parameters
    ----------
    module : torch.nn.Module
        An ``nn.Linear``, or an ``nn.Sequential`` (nested ones included) of
        ``nn.Linear``, ``nn.ReLU``, ``nn.LeakyReLU``, ``nn.Tanh``,
        ``nn.Sigmoid``, ``nn.GELU`` (exact or ``approximate="tanh"``), ``nn.Softmax(dim)``,
        ``nn.LogSoftmax(dim)``, ``nn.SiLU``, ``nn.Softplus``, ``nn.ELU``,
        ``nn.Hardtanh``, ``nn.Mish``, ``nn.Identity``, ``nn.Dropout``,
        ``nn.Conv1d``/``nn.Conv2d``, the max, average and adaptive average
        pools (1d, 2d), ``nn.Flatten``, ``nn.Unflatten``,
        ``nn.BatchNorm1d``/``nn.BatchNorm2d``, ``nn.LayerNorm``,
        ``nn.RMSNorm``, ``nn.RNN``, ``nn.GRU``, ``nn.LSTM`` (without
        ``proj_size``), ``nn.Embedding`` (without ``max_norm``,
        ``scale_grad_by_freq`` or ``sparse``), ``nn.MultiheadAttention``,
        ``nn.TransformerEncoderLayer`` and ``nn.TransformerEncoder``.
        Subclasses are refused,
        since their ``forward`` may differ. Or a loss module with an xpnn
        twin of the same name (``nn.CrossEntropyLoss``, ``nn.NLLLoss``,
        ``nn.MSELoss``, ...), converted with its options and class weights
        (:mod:`xpnn.interop.torch.losses`): the two label losses become
        ``axis=1``, **torch's class axis**, where xpnn's default is the last.
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
        For ``nn.Softmax(dim=None)``; for a ``device`` that lacks the dtype.

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
            f"from_torch takes a torch.nn.Module, got {describe_type(module)}; for an xpnn model "
            "there is nothing to convert"
        )
    if is_torch_loss(module):
        with torch.no_grad():
            return loss_from_torch(module, xp=xp, device=device, dtype=dtype)
    _check_torch(module, "", dtype)
    if xp is not None:
        resolve_namespace(xp)  # a wrong xp fails before anything is copied
    with torch.no_grad():
        return _from_torch(module, xp, device, dtype)


# -- xpnn -> torch.nn ---------------------------------------------------------


def _check_xpnn(model: Module, path: str) -> None:
    kind = type(model)
    if kind is Sequential:
        for name, child in model.named_children():
            _check_xpnn(child, f"{path}.{name}" if path else name)
        return
    if kind in _STATEFUL_BY_XPNN or kind in _BY_XPNN:
        return
    raise TypeError(
        f"to_torch cannot convert {describe_type(model)}{_where(path)}; it converts xpnn's "
        f"{', '.join(row.xpnn_type.__name__ for row in _STATEFUL)}, Sequential, "
        f"{', '.join(cls.__name__ for cls in _BY_XPNN)} "
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


def _stateful_to_torch(
    row: _Stateful,
    layer: Module,
    path: str,
    device: torch.device | None,
    dtype: torch.dtype | str | None,
) -> nn.Module:
    prefix = f"{path}." if path else ""
    state = layer.state_dict()
    # Integer buffers (a batch norm's step count) keep their dtype; the
    # floating arrays take ``dtype`` and must land in one place, since a
    # torch module holds its parameters together.
    floating = {
        name: _torch_place(prefix + name, value, device, dtype)
        for name, value in state.items()
        if array_namespace(**{name: value}).isdtype(
            value.dtype, ("real floating", "complex floating")
        )
    }
    distinct = list(dict.fromkeys(floating.values()))
    if len(distinct) > 1:
        raise ValueError(
            f"the parameters of the {type(layer).__name__}{_where(path)} would land on "
            f"{', '.join(f'{d} as {t}' for d, t in distinct)}, and a torch module needs them "
            "together; pass device= and dtype= to put them in one place"
        )
    where, kind = distinct[0] if distinct else (device, None)
    # Made on the meta device, then given memory: no random draw to
    # overwrite, and torch's global generator is left as the caller had it.
    if row.build_torch is not None:
        meta = row.build_torch(layer, device="meta", dtype=kind)
    else:
        meta = row.torch_type(**row.torch_settings(layer), device="meta", dtype=kind)
    twin = meta.to_empty(device=where if where is not None else "cpu")
    target = resolve_namespace(torch)
    # load_state_dict copies, even where transfer had nothing to move.
    twin.load_state_dict(
        {
            name: transfer(
                value,
                xp=target,
                device=where,
                dtype=kind if name in floating else getattr(torch, _dtype_name(name, value)),
            )
            for name, value in state.items()
        }
    )
    return twin


def _to_torch(
    model: Module, path: str, device: torch.device | None, dtype: torch.dtype | str | None
) -> nn.Module:
    twin: nn.Module
    row = _STATEFUL_BY_XPNN.get(type(model))
    if isinstance(model, Sequential):
        twin = nn.Sequential(
            *(
                _to_torch(child, f"{path}.{name}" if path else name, device, dtype)
                for name, child in model.named_children()
            )
        )
    elif row is not None:
        twin = _stateful_to_torch(row, model, path, device, dtype)
        twin.train(model.training)  # a composite layer's children follow it
    else:  # _check_xpnn let only the exact types of _PAIRS through
        twin = _BY_XPNN[type(model)].to_torch(model)
    twin.training = model.training
    return twin


def to_torch(
    model: Module | Loss,
    *,
    device: torch.device | str | int | None = None,
    dtype: torch.dtype | str | None = None,
) -> nn.Module:
    """Copy an xpnn model, on any backend, into the equal PyTorch model.

    Parameters
    ----------
    model : xpnn.Module or xpnn.losses.Loss
        A :class:`~xpnn.Linear`, an activation, :class:`~xpnn.Dropout`, or a
        :class:`~xpnn.Sequential` of those (nested ones included), with
        parameters of any library on any device. Or a loss with a torch
        twin; a label loss must have ``axis=1``, torch's class axis.
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
    if isinstance(model, Loss):
        with torch.no_grad():
            return loss_to_torch(model, device=device, dtype=dtype)
    if not isinstance(model, Module):
        raise TypeError(
            f"to_torch takes an xpnn.Module or loss, got {describe_type(model)}; build the model "
            "with xpnn's layers, or use from_torch for the other direction"
        )
    _check_xpnn(model, "")
    where = None if device is None else torch.device(device)
    with torch.no_grad():
        return _to_torch(model, "", where, dtype)

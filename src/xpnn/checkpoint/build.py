"""Building the model of a checkpoint back: :func:`load`."""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from typing import Any

from .._checks import key_difference
from .._compat import Device, DType
from ..layers import Module, from_config
from .format import Contents, PathLike, check_optimizer_record, name_list, open_checkpoint

__all__ = ["build_model", "declared_shapes", "load", "load_task", "mismatch"]


def load(
    path: PathLike,
    *,
    xp: object | None = None,
    device: Device | str | None = None,
    dtype: DType | str | None = None,
    verify: bool = True,
) -> Module:
    """Build the model saved at ``path``, on the library, device and dtype asked.

    The whole file is checked before anything is built: the safetensors
    header against the file's size, the xpnn format marker and version, the
    recorded structure, and every tensor's name, dtype and shape against the
    model that structure describes. A checkpoint saved from any library or
    device loads onto any other.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save`.
    xp : module, optional
        The library of the parameters (``numpy``, ``torch``, ``jax.numpy``,
        ``array_api_strict``, ...). NumPy when omitted.
    device : device or str, optional
        Where the parameters go; the library's default device when omitted.
    dtype : dtype or str, optional
        A floating dtype for every parameter (``"float32"``, ``torch.float64``,
        ...). When omitted each parameter keeps the dtype it was saved with.
    verify : bool, default True
        Check each parameter's data against the digest the file records,
        as it is read. Files without digests (written before xpnn recorded
        them) load unchecked either way. False skips the hashing.

    Returns
    -------
    Module
        A new model with the saved structure and parameters, in training
        mode, with no gradients. Optimizer state in the file is left for
        :func:`load_optimizer`.

    Raises
    ------
    CheckpointError
        If the file is not a valid xpnn checkpoint (truncated, corrupt,
        another tool's safetensors file, a newer format version, tensors that
        do not match the recorded structure). It is a ``ValueError``.
    OSError
        If the file cannot be opened (``FileNotFoundError``, ...).
    TypeError, ValueError
        For an ``xp``, ``device`` or ``dtype`` that cannot hold the
        parameters, as :meth:`Module.to` raises them.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import array_api_strict as xps
    >>> import xpnn
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.safetensors"
    >>> xpnn.save(xpnn.Linear(3, 2, seed=0), path)
    >>> layer = xpnn.load(path, xp=xps, dtype="float32")
    >>> layer.weight.dtype
    array_api_strict.float32
    """
    with open_checkpoint(path, verify=verify) as contents:
        model = build_model(contents)
        check_optimizer_record(contents)
        for name in contents.parameters:
            model.set_parameter(name, contents.array(name))
        for name in contents.model_buffers:
            model.set_buffer(name, contents.array(name))
    return model.to(xp, device, dtype)


def load_task(path: PathLike) -> dict[str, Any] | None:
    """Return the task record saved with the checkpoint at ``path`` (``save(task=...)``).

    The file's header and metadata are checked as :func:`load` checks them;
    no tensor is read.

    Returns
    -------
    dict or None
        The record, or None when the file holds none.

    Raises
    ------
    CheckpointError
        If the file is not a valid xpnn checkpoint.
    OSError
        If the file cannot be opened.
    """
    with open_checkpoint(path, verify=False) as contents:
        return contents.task


def mismatch(needed: Mapping[str, tuple[int, ...]], stored: Mapping[str, tuple[int, ...]]) -> str:
    """Say how the parameter shapes ``stored`` differ from those ``needed``."""
    unexpected, missing = key_difference(stored, needed)
    parts = []
    if missing:
        parts.append(f"it lacks parameters {name_list(missing)}")
    if unexpected:
        parts.append(f"it holds unexpected tensors {name_list(unexpected)}")
    for name, shape in needed.items():
        if name in stored and stored[name] != shape:
            parts.append(f"tensor {name!r} has shape {stored[name]} where {shape} is needed")
    return "; ".join(parts)


def _as_size(value: object) -> int:
    try:
        return max(operator.index(value), 0)  # type: ignore[arg-type]
    except TypeError:
        return 0


#: The children's names of the layers whose children are named, in config order.
_CHILD_NAMES: dict[str, tuple[str, ...]] = {
    "TransformerEncoderLayer": (
        "self_attn",
        "linear1",
        "dropout",
        "linear2",
        "norm1",
        "norm2",
        "dropout1",
        "dropout2",
        "activation",
    ),
    "TransformerEncoder": ("layers", "norm"),
}


#: Gates per recurrent layer: the rows of its weights are gates x hidden_size.
_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
_MOST_LAYERS = 100_000


def _recurrent_shapes(
    kind: str, settings: Mapping[str, Any], prefix: str
) -> dict[str, tuple[int, ...]]:
    hidden = _as_size(settings.get("hidden_size"))
    rows = _GATES[kind] * hidden
    directions = 2 if settings.get("bidirectional", False) else 1
    with_bias = settings.get("bias", True)
    shapes: dict[str, tuple[int, ...]] = {}
    # A forged count stops here, at more tensors than any real file holds:
    # the sizes then exceed the stored ones, and nothing is built.
    for layer in range(min(_as_size(settings.get("num_layers", 1)), _MOST_LAYERS)):
        width = _as_size(settings.get("input_size")) if layer == 0 else directions * hidden
        for suffix in ("", "_reverse")[:directions]:
            shapes[f"{prefix}weight_ih_l{layer}{suffix}"] = (rows, width)
            shapes[f"{prefix}weight_hh_l{layer}{suffix}"] = (rows, hidden)
            if with_bias:
                shapes[f"{prefix}bias_ih_l{layer}{suffix}"] = (rows,)
                shapes[f"{prefix}bias_hh_l{layer}{suffix}"] = (rows,)
    return shapes


def declared_shapes(
    config: object, prefix: str = "", *, buffers: bool = False
) -> dict[str, tuple[int, ...]]:
    """Return the parameter shapes ``config`` declares, without building anything.

    :class:`~xpnn.Linear`, the convolutions, the batch, layer and RMS norms
    and :class:`~xpnn.Embedding` hold parameters among xpnn's layers
    (``buffers=True``: the batch norms' buffers instead). Knowing
    their shapes up front keeps a forged structure (a Linear of 10**9 by
    10**9) from allocating before it is compared with the file's tensors.
    Malformed entries count for nothing here: ``from_config`` rejects them
    before allocating.

    Examples
    --------
    >>> import xpnn
    >>> from xpnn.checkpoint.build import declared_shapes
    >>> declared_shapes(xpnn.Sequential(xpnn.Linear(3, 4), xpnn.ReLU()).config())
    {'0.weight': (3, 4), '0.bias': (4,)}
    """
    if not isinstance(config, Mapping):
        return {}
    kind, settings, children = config.get("type"), config.get("settings"), config.get("children")
    if kind == "Linear" and isinstance(settings, Mapping):
        fan_in = _as_size(settings.get("in_features"))
        fan_out = _as_size(settings.get("out_features"))
        shapes: dict[str, tuple[int, ...]] = {f"{prefix}weight": (fan_in, fan_out)}
        if settings.get("bias", True):
            shapes[f"{prefix}bias"] = (fan_out,)
        return {} if buffers else shapes
    if kind in ("BatchNorm1d", "BatchNorm2d") and isinstance(settings, Mapping):
        channels = (_as_size(settings.get("num_features")),)
        if buffers:
            if not settings.get("track_running_stats", True):
                return {}
            names = ("running_mean", "running_var")
            return {**{prefix + n: channels for n in names}, f"{prefix}num_batches_tracked": ()}
        if not settings.get("affine", True):
            return {}
        return {f"{prefix}weight": channels, f"{prefix}bias": channels}
    if kind in ("Conv1d", "Conv2d") and isinstance(settings, Mapping):
        kernel = settings.get("kernel_size")
        sizes = kernel if isinstance(kernel, list) else [kernel] * (1 if kind == "Conv1d" else 2)
        groups = max(_as_size(settings.get("groups", 1)), 1)
        out_channels = _as_size(settings.get("out_channels"))
        per_group = _as_size(settings.get("in_channels")) // groups
        conv = {f"{prefix}weight": (out_channels, per_group, *map(_as_size, sizes))}
        if settings.get("bias", True):
            conv[f"{prefix}bias"] = (out_channels,)
        return {} if buffers else conv
    if kind in ("LayerNorm", "RMSNorm") and isinstance(settings, Mapping):
        normalized = settings.get("normalized_shape")
        sizes = normalized if isinstance(normalized, list) else [normalized]
        shape = tuple(map(_as_size, sizes))
        norm: dict[str, tuple[int, ...]] = {}
        if settings.get("elementwise_affine", True):
            norm[f"{prefix}weight"] = shape
            if kind == "LayerNorm" and settings.get("bias", True):
                norm[f"{prefix}bias"] = shape
        return {} if buffers else norm
    if kind == "Embedding" and isinstance(settings, Mapping):
        table = (_as_size(settings.get("num_embeddings")), _as_size(settings.get("embedding_dim")))
        return {} if buffers else {f"{prefix}weight": table}
    if kind in _GATES and isinstance(settings, Mapping):
        return {} if buffers else _recurrent_shapes(kind, settings, prefix)
    if kind == "MultiheadAttention" and isinstance(settings, Mapping):
        embed = _as_size(settings.get("embed_dim"))
        attention: dict[str, tuple[int, ...]] = {f"{prefix}in_proj_weight": (3 * embed, embed)}
        if settings.get("bias", True):
            attention[f"{prefix}in_proj_bias"] = (3 * embed,)
        attention = {} if buffers else attention
        if isinstance(children, list) and children:
            attention.update(declared_shapes(children[0], f"{prefix}out_proj.", buffers=buffers))
        return attention
    shapes = {}
    child_names = _CHILD_NAMES.get(kind) if isinstance(kind, str) else None
    if child_names is not None and isinstance(children, list):
        for name, child in zip(child_names, children, strict=False):
            shapes.update(declared_shapes(child, f"{prefix}{name}.", buffers=buffers))
    if kind == "Sequential" and isinstance(children, list):
        for index, child in enumerate(children):
            shapes.update(declared_shapes(child, f"{prefix}{index}.", buffers=buffers))
    return shapes


def build_model(contents: Contents) -> Module:
    """Build the model a checked checkpoint describes, with placeholder parameters.

    Raises
    ------
    CheckpointError
        If the recorded structure describes no xpnn model, or a model whose
        parameters are not the stored tensors (checked on the declared
        shapes first, so that nothing larger than the file is allocated).
    """
    stored = {name: contents.shapes[name] for name in contents.parameters}
    stored_buffers = {name: contents.shapes[name] for name in contents.model_buffers}
    try:
        declared = declared_shapes(contents.config)
        declared_buffers = declared_shapes(contents.config, buffers=True)
    except RecursionError:
        raise contents.fail(
            "has metadata 'config' nested too deeply to be an xpnn model; the file is corrupt"
        ) from None
    if sum(math.prod(shape) for shape in declared_buffers.values()) > sum(
        math.prod(shape) for shape in stored_buffers.values()
    ):
        raise contents.fail(
            f"does not hold the buffers of the model its metadata 'config' describes: "
            f"{mismatch(declared_buffers, stored_buffers).replace('parameters', 'buffers')}"
        )
    if sum(math.prod(shape) for shape in declared.values()) > sum(
        math.prod(shape) for shape in stored.values()
    ):
        raise contents.fail(
            f"does not hold the parameters of the model its metadata 'config' describes: "
            f"{mismatch(declared, stored)}"
        )
    try:
        model = from_config(contents.config)
    except (TypeError, ValueError, RecursionError) as exc:
        raise contents.fail(
            f"has metadata 'config' that does not describe an xpnn model: {exc}"
        ) from None
    needed = {name: tuple(int(s) for s in param.shape) for name, param in model.named_parameters()}
    if needed != stored:
        raise contents.fail(
            f"does not hold the parameters of the model its metadata 'config' describes: "
            f"{mismatch(needed, stored)}"
        )
    needed = {name: tuple(int(s) for s in buffer.shape) for name, buffer in model.named_buffers()}
    if needed != stored_buffers:
        raise contents.fail(
            f"does not hold the buffers of the model its metadata 'config' describes: "
            f"{mismatch(needed, stored_buffers).replace('parameters', 'buffers')}"
        )
    return model

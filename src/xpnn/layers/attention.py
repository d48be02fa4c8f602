"""``MultiheadAttention``: projections, scaled dot-product attention, output projection.

The layer chains closures: the input projections (``functional.linear``'s
kernels on slices of the packed ``in_proj_weight``), the attention core
(``functional.attention``) and the output projection (the ``out_proj``
child, an xpnn :class:`~xpnn.Linear`). Its backward runs them in reverse.
"""

from __future__ import annotations

import numbers
import operator
from typing import Any

from .._checks import Checked, check_known_shape, check_real_floating, check_same_device, shape_str
from .._compat import (
    Array,
    Device,
    DType,
    Namespace,
    array_namespace,
    resolve_device,
    resolve_dtype,
    resolve_namespace,
)
from .._compat import device as device_of
from .._random import Seed, bernoulli_mask, host_generator
from ..functional.attention import (
    attention_mask,
    average_heads,
    average_heads_backward,
    check_attention,
    merge_heads,
    merge_heads_backward,
    scaled_dot_product_attention,
    scaled_dot_product_attention_backward,
    split_heads,
    split_heads_backward,
)
from ..functional.linear import (
    check_linear,
    check_linear_backward,
    linear_backward_kernel,
    linear_kernel,
)
from ..init import xavier_uniform, zeros
from ._module import Module, Placed, backward_again, call_backward
from .linear import Linear

__all__ = ["MultiheadAttention", "check_flag", "check_probability"]


def check_flag(name: str, value: object) -> bool:
    """Return ``value`` if it is a bool, else raise ``TypeError``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def check_probability(name: str, value: object) -> float:
    """Return ``value`` as a float in [0, 1], else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float in [0, 1], got {type(value).__name__} {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return float(value)


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool {value}")
    try:
        size = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}") from None
    if size < 1:
        raise ValueError(f"{name} must be at least 1, got {size}")
    return int(size)


def _check_mask(
    xp: Namespace, name: str, mask: Array | None, shapes: list[tuple[int, ...]], like: Array
) -> None:
    if mask is None:
        return
    if array_namespace(**{name: mask}) is not xp:
        raise TypeError(f"{name} must be an array of the query's library")
    if not (xp.isdtype(mask.dtype, "bool") or xp.isdtype(mask.dtype, "real floating")):
        raise TypeError(
            f"{name} must be boolean (True hides a position) or real floating (added to the "
            f"scores), got {mask.dtype}; convert it, for example with xp.astype({name}, xp.bool)"
        )
    check_same_device(query=like, **{name: mask})
    if tuple(mask.shape) not in shapes:
        raise ValueError(
            f"{name} must have shape {' or '.join(shape_str(s) for s in shapes)}, got "
            f"{shape_str(tuple(mask.shape))}"
        )


def _check_mha(
    query: Array,
    key: Array,
    value: Array,
    key_padding_mask: Array | None,
    attn_mask: Array | None,
    weight: Array,
    *,
    embed_dim: int,
    num_heads: int,
    batch_first: bool,
) -> Checked:
    xp = array_namespace(query=query, key=key, value=value, in_proj_weight=weight)
    check_real_floating(xp, "MultiheadAttention", query=query, key=key, value=value)
    check_same_device(query=query, key=key, value=value, in_proj_weight=weight)
    layout = "(N, L, E)" if batch_first else "(L, N, E)"
    for name, x in (("query", query), ("key", key), ("value", value)):
        if x.ndim != 3:
            raise ValueError(
                f"{name} must be a batch of shape {layout} (batch_first={batch_first}), or "
                f"one sequence of shape (L, E) like the query, got shape "
                f"{shape_str(tuple(x.shape))}"
            )
        check_known_shape(name, x, "MultiheadAttention")
        if x.shape[2] != embed_dim:
            raise ValueError(
                f"{name} has shape {shape_str(tuple(x.shape))}: expected last dimension "
                f"{embed_dim} (embed_dim), got {x.shape[2]}"
            )
    batch_axis = 0 if batch_first else 1
    n = query.shape[batch_axis]
    length, source = query.shape[1 - batch_axis], key.shape[1 - batch_axis]
    if key.shape != value.shape or key.shape[batch_axis] != n:
        raise ValueError(
            f"key and value must share one shape with the query's batch size {n}, got "
            f"query {shape_str(tuple(query.shape))}, key {shape_str(tuple(key.shape))} and "
            f"value {shape_str(tuple(value.shape))}"
        )
    _check_mask(xp, "key_padding_mask", key_padding_mask, [(n, source)], query)
    _check_mask(
        xp, "attn_mask", attn_mask, [(length, source), (n * num_heads, length, source)], query
    )
    return Checked(xp=xp, dtype=None, constants=(n, length, source))


def _check_mha_backward(
    d_out: Array, d_weights: Array | None, out: Array, weights: Array | None, *, forward: Checked
) -> Checked:
    xp = array_namespace(d_attn_output=d_out, attn_output=out)
    check_real_floating(xp, "MultiheadAttention", d_attn_output=d_out)
    check_same_device(attn_output=out, d_attn_output=d_out)
    if tuple(d_out.shape) != tuple(out.shape):
        raise ValueError(
            f"d_attn_output must have the output's shape {shape_str(tuple(out.shape))}, got "
            f"{shape_str(tuple(d_out.shape))}"
        )
    if d_weights is not None:
        if weights is None:
            raise ValueError(
                "d_attn_weights was given, but the forward pass returned no weights "
                "(need_weights=False); pass None"
            )
        if tuple(d_weights.shape) != tuple(weights.shape):
            raise ValueError(
                f"d_attn_weights must have the weights' shape "
                f"{shape_str(tuple(weights.shape))}, got {shape_str(tuple(d_weights.shape))}"
            )
    return Checked(xp=xp)


class MultiheadAttention(Placed):
    """Multi-head attention, as ``torch.nn.MultiheadAttention``.

    ``out_proj(concat_h(softmax(q_h k_h.T / sqrt(D) + mask) v_h))`` with
    ``q, k, v`` the query, key and value projected by ``in_proj_weight``
    (rows ``[0, E)``, ``[E, 2E)`` and ``[2E, 3E)``) and ``D = E / heads``.

    Parameters
    ----------
    embed_dim : int
        E, the model's feature size; a multiple of ``num_heads``.
    num_heads : int
        Number of heads.
    dropout : float, default 0.0
        Probability of zeroing an attention weight, in training mode only.
    bias : bool, default True
        Whether the projections have biases.
    add_bias_kv, add_zero_attn, kdim, vdim
        PyTorch's; only their defaults are supported (keys and values of
        ``embed_dim`` features, no extra key).
    batch_first : bool, default False
        Inputs and outputs are (N, L, E) if True, (L, N, E) if False.
    seed : int or numpy.random.Generator, optional
        Seeds the initial parameters, then the dropout masks.
    xp, device, dtype
        Where the parameters live, as for :class:`~xpnn.Linear`.

    Attributes
    ----------
    in_proj_weight : array of shape (3E, E)
        The packed query, key and value projections, PyTorch's layout;
        Xavier-uniform at first.
    in_proj_bias : array of shape (3E,) or None
        Zeros at first.
    out_proj : Linear
        The output projection (``out_proj.weight`` in state dicts, in
        PyTorch's layout); its bias starts at zero.

    Notes
    -----
    A query whose every key is masked gets zero attention weights (its
    output is ``out_proj``'s bias), and no gradient through the attention,
    as PyTorch's ``scaled_dot_product_attention`` gives; PyTorch's layer
    with ``need_weights=True`` gives NaN there instead.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn import MultiheadAttention
    >>> attention = MultiheadAttention(4, 2, batch_first=True, seed=0)
    >>> x = np.ones((2, 3, 4))
    >>> (y, weights), backward = attention.forward(x, x, x)
    >>> y.shape, weights.shape
    ((2, 3, 4), (2, 3, 3))
    >>> dx, dkey, dvalue = backward(np.ones((2, 3, 4)))
    >>> dx.shape, dkey is None
    ((2, 3, 4), True)
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        *,
        seed: Seed = None,
        xp: object | None = None,
        device: Device | str | None = None,
        dtype: DType | None = None,
    ) -> None:
        embed_dim = _positive("embed_dim", embed_dim)
        num_heads = _positive("num_heads", num_heads)
        if embed_dim % num_heads:
            raise ValueError(
                f"embed_dim must be divisible by num_heads, got embed_dim {embed_dim} and "
                f"num_heads {num_heads}"
            )
        if (
            add_bias_kv
            or add_zero_attn
            or kdim not in (None, embed_dim)
            or vdim
            not in (
                None,
                embed_dim,
            )
        ):
            raise ValueError(
                "add_bias_kv, add_zero_attn, and kdim/vdim other than embed_dim are not "
                "supported; leave them at their defaults"
            )
        p = check_probability("dropout", dropout)
        with_bias = check_flag("bias", bias)
        first = check_flag("batch_first", batch_first)
        namespace = resolve_namespace(xp)
        where = resolve_device(namespace, device)
        dtype = resolve_dtype(namespace, dtype, where)
        super().__init__()
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = p
        self.batch_first = first
        rng = host_generator(seed)
        make = dict(xp=namespace, device=where, dtype=dtype, rng=rng, fan_in=embed_dim)
        self.params["in_proj_weight"] = xavier_uniform((3 * embed_dim, embed_dim), **make)
        self.grads["in_proj_weight"] = None
        if with_bias:
            self.params["in_proj_bias"] = zeros((3 * embed_dim,), **make)
            self.grads["in_proj_bias"] = None
        self.out_proj = Linear(
            embed_dim,
            embed_dim,
            bias=with_bias,
            xp=namespace,
            device=where,
            dtype=dtype,
            seed=rng,
            bias_init="zeros",
        )
        self._rng = rng  # the dropout masks follow the parameters in the stream

    # -- structure ---------------------------------------------------------

    def children(self) -> list[Module]:
        """Return ``[out_proj]``."""
        return [self.out_proj]

    def named_children(self) -> list[tuple[str, Module]]:
        """Return ``[("out_proj", out_proj)]``, PyTorch's name."""
        return [("out_proj", self.out_proj)]

    @property
    def draws_on_host(self) -> bool:
        """True in training mode with dropout on the weights (host-drawn masks)."""
        return self.training and self.dropout > 0.0

    @property
    def in_proj_weight(self) -> Array:
        """The packed input projections, (3E, E)."""
        return self.params["in_proj_weight"]

    @property
    def in_proj_bias(self) -> Array | None:
        """The packed input biases, (3E,), or None without bias."""
        return self.params.get("in_proj_bias")

    _placed_by = "in_proj_weight"

    # -- the projections -----------------------------------------------------

    def _project(self, x: Array, rows: slice, *, input_grad: bool) -> tuple[Array, Any]:
        """``x @ in_proj_weight[rows].T + in_proj_bias[rows]`` and its backward closure.

        The closure returns ``(dx, dweight rows (r, E), dbias rows or None)``.
        """
        xp = self.xp
        w = self.params["in_proj_weight"][rows, :]
        b = self.params.get("in_proj_bias")
        b = None if b is None else b[rows]
        w_t = xp.matrix_transpose(w)  # functional.linear's (in, out) layout
        shape = tuple(x.shape)
        # One row per position: a 2-d product, faster than a batched one.
        x2 = xp.reshape(x, (-1, shape[-1]))
        checked = self._checks.check(check_linear, x2, w_t, b)
        y = xp.reshape(linear_kernel(checked, x2, w_t, b), (*shape[:-1], w.shape[0]))

        def backward(dy: Array) -> tuple[Array | None, Array, Array | None]:
            dy = xp.reshape(dy, (-1, w.shape[0]))
            back = self._checks.check(
                check_linear_backward, dy, context=(x2, w_t, b), forward=checked
            )
            dx, dw_t, db = linear_backward_kernel(
                back,
                dy,
                x2,
                w_t,
                has_bias=b is not None,
                bias_dtype=None if b is None else b.dtype,
                input_grad=input_grad,
            )
            dx = None if dx is None else xp.reshape(dx, shape)
            return dx, xp.matrix_transpose(dw_t), db

        return y, backward

    # -- forward -------------------------------------------------------------

    def forward(  # type: ignore[override]
        self,
        query: Array,
        key: Array,
        value: Array,
        *,
        key_padding_mask: Array | None = None,
        need_weights: bool = True,
        attn_mask: Array | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
        input_grad: bool = True,
    ) -> tuple[tuple[Array, Array | None], Any]:
        """Attend and return ``((attn_output, attn_weights), backward)``.

        Parameters
        ----------
        query : array of shape (L, N, E), or (N, L, E) with batch_first
            Queries; or one sequence, (L, E), as PyTorch takes it (``key``
            and ``value`` (S, E), ``key_padding_mask`` (S,), ``attn_mask``
            (L, S) or (num_heads, L, S); the results lose the batch axis).
        key, value : arrays of shape (S, N, E), or (N, S, E) with batch_first
            Keys and values. When ``key`` and ``value`` are ``query`` itself
            (self-attention) the three projections are one product.
        key_padding_mask : array of shape (N, S), optional
            Boolean, True at keys to ignore (padding), or floating, added to
            the scores.
        need_weights : bool, default True
            Return the attention weights (else ``None``).
        attn_mask : array of shape (L, S) or (N*num_heads, L, S), optional
            Boolean, True where a query may not attend to a key, or
            floating, added to the scores.
        average_attn_weights : bool, default True
            Average the returned weights over heads: (N, L, S); else
            (N, num_heads, L, S).
        is_causal : bool, default False
            Without ``attn_mask``: hide each query's later keys. With one,
            a hint that it is the causal mask (as PyTorch takes it);
            ``attn_mask`` is used.
        input_grad : bool, default True
            Whether ``backward`` returns the inputs' gradients.

        Returns
        -------
        (attn_output, attn_weights)
            ``attn_output`` shaped like ``query``; ``attn_weights`` after
            dropout, as PyTorch returns them, or ``None``.
        backward : callable
            ``backward(d_attn_output, d_attn_weights=None, *,
            retain_graph=False) -> (dquery, dkey, dvalue)``, accumulating
            the parameter gradients. For self-attention (``key`` and
            ``value`` are ``query``) ``dquery`` is the whole gradient of
            that one array and ``dkey``, ``dvalue`` are ``None``; all three
            are ``None`` with ``input_grad=False``.
        """
        if getattr(query, "ndim", None) == 2:  # one sequence, as PyTorch takes it
            return self._unbatched(
                query,
                key,
                value,
                key_padding_mask=key_padding_mask,
                need_weights=need_weights,
                attn_mask=attn_mask,
                average_attn_weights=average_attn_weights,
                is_causal=is_causal,
                input_grad=input_grad,
            )
        weight = self.params["in_proj_weight"]
        forward = self._checks.check(
            _check_mha,
            query,
            key,
            value,
            key_padding_mask,
            attn_mask,
            weight,
            embed_dim=self.embed_dim,
            num_heads=self.num_heads,
            batch_first=self.batch_first,
        )
        n, length, source = forward.constants
        heads, e, first = self.num_heads, self.embed_dim, self.batch_first
        xp = forward.xp
        packed = query is key and key is value
        if packed:
            qkv, project_back = self._project(query, slice(0, 3 * e), input_grad=input_grad)
            q, k, v = qkv[..., :e], qkv[..., e : 2 * e], qkv[..., 2 * e :]
            backs = [project_back]
        else:
            q, q_back = self._project(query, slice(0, e), input_grad=input_grad)
            k, k_back = self._project(key, slice(e, 2 * e), input_grad=input_grad)
            v, v_back = self._project(value, slice(2 * e, 3 * e), input_grad=input_grad)
            backs = [q_back, k_back, v_back]
        q4 = split_heads(q, heads, batch_first=first)
        k4 = split_heads(k, heads, batch_first=first)
        v4 = split_heads(v, heads, batch_first=first)
        mask = attention_mask(
            key_padding_mask,
            attn_mask,
            batch=n,
            num_heads=heads,
            target_length=length,
            source_length=source,
            is_causal=is_causal,
            dtype=q.dtype,
            like=q,
        )
        core = self._checks.check(check_attention, q4, k4, v4, mask)
        drop = None
        if self.training and self.dropout > 0.0:
            drop = bernoulli_mask(
                self._rng,
                (n, heads, length, source),
                p=self.dropout,
                xp=xp,
                device=device_of(q),
                dtype=q.dtype,
            )
        o4, w4 = scaled_dot_product_attention(
            q4, k4, v4, mask=mask, dropout_mask=drop, checked=core
        )
        merged = merge_heads(o4, batch_first=first)
        shape = tuple(merged.shape)
        out, out_back = self.out_proj.forward(xp.reshape(merged, (-1, e)))
        out = xp.reshape(out, shape)
        weights = None
        if need_weights:
            shown = w4 if drop is None else w4 * drop
            weights = average_heads(shown) if average_attn_weights else shown

        used = False

        def backward(
            d_attn_output: Array, d_attn_weights: Array | None = None, *, retain_graph: bool = False
        ) -> tuple[Array | None, Array | None, Array | None]:
            nonlocal used
            if used:
                raise backward_again("MultiheadAttention")
            self._checks.check(
                _check_mha_backward,
                d_attn_output,
                d_attn_weights,
                context=(out, weights),
                forward=forward,
            )
            d_rows = xp.reshape(d_attn_output, (-1, e))
            d_merged = xp.reshape(call_backward(out_back, d_rows, retain_graph=retain_graph), shape)
            d_o4 = merge_heads_backward(d_merged, heads, batch_first=first)
            d_w4 = None
            if d_attn_weights is not None:
                d_w4 = (
                    average_heads_backward(d_attn_weights, heads)
                    if average_attn_weights
                    else d_attn_weights
                )
            dq4, dk4, dv4 = scaled_dot_product_attention_backward(
                d_o4, q4, k4, v4, w4, d_weights=d_w4, dropout_mask=drop, checked=core
            )
            dq = split_heads_backward(dq4, batch_first=first)
            dk = split_heads_backward(dk4, batch_first=first)
            dv = split_heads_backward(dv4, batch_first=first)
            if packed:
                d_in, dw, db = backs[0](xp.concat([dq, dk, dv], axis=-1))
                grads: tuple[Array | None, ...] = (d_in, None, None)
            else:
                parts = [back(d) for back, d in zip(backs, (dq, dk, dv), strict=True)]
                grads = tuple(part[0] for part in parts)
                dw = xp.concat([part[1] for part in parts], axis=0)
                db = None if parts[0][2] is None else xp.concat([part[2] for part in parts])
            self._accumulate("in_proj_weight", dw)
            if db is not None:
                self._accumulate("in_proj_bias", db)
            used = not retain_graph
            if not input_grad:
                return None, None, None
            return grads[0], grads[1], grads[2]

        return (out, weights), backward

    def _unbatched(
        self,
        query: Array,
        key: Array,
        value: Array,
        *,
        key_padding_mask: Array | None,
        attn_mask: Array | None,
        **options: Any,
    ) -> tuple[tuple[Array, Array | None], Any]:
        """Attend over one sequence, (L, E): a batch of one, without its batch axis."""
        xp = array_namespace(query=query)
        for name, x in (("key", key), ("value", value)):
            if getattr(x, "ndim", None) != 2:
                raise ValueError(
                    f"query is one sequence, (L, E), so {name} must be one too, (S, E); got "
                    f"shape {shape_str(tuple(getattr(x, 'shape', ())))}"
                )
        axis = 0 if self.batch_first else 1

        def batch(x: Array) -> Array:
            return xp.expand_dims(x, axis=axis)

        q = batch(query)
        k = q if key is query else batch(key)
        v = q if value is query else k if value is key else batch(value)
        if key_padding_mask is not None and key_padding_mask.ndim == 1:
            key_padding_mask = xp.expand_dims(key_padding_mask, axis=0)
        (out, weights), back = self.forward(
            q, k, v, key_padding_mask=key_padding_mask, attn_mask=attn_mask, **options
        )
        out = xp.squeeze(out, axis=axis)
        weights = None if weights is None else xp.squeeze(weights, axis=0)

        def backward(
            d_attn_output: Array, d_attn_weights: Array | None = None, *, retain_graph: bool = False
        ) -> tuple[Array | None, Array | None, Array | None]:
            if tuple(d_attn_output.shape) != tuple(out.shape):
                raise ValueError(
                    f"d_attn_output must have the output's shape {shape_str(tuple(out.shape))}, "
                    f"got {shape_str(tuple(d_attn_output.shape))}"
                )
            d_w = None if d_attn_weights is None else xp.expand_dims(d_attn_weights, axis=0)
            grads = back(batch(d_attn_output), d_w, retain_graph=retain_graph)
            dq, dk, dv = (None if g is None else xp.squeeze(g, axis=axis) for g in grads)
            return dq, dk, dv

        return (out, weights), backward

    def __call__(  # type: ignore[override]
        self,
        query: Array,
        key: Array,
        value: Array,
        *,
        key_padding_mask: Array | None = None,
        need_weights: bool = True,
        attn_mask: Array | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Array, Array | None]:
        """Return ``(attn_output, attn_weights)``, as PyTorch's layer does."""
        result, _ = self.forward(
            query,
            key,
            value,
            key_padding_mask=key_padding_mask,
            need_weights=need_weights,
            attn_mask=attn_mask,
            average_attn_weights=average_attn_weights,
            is_causal=is_causal,
            input_grad=False,
        )
        return result

    # -- configuration -------------------------------------------------------

    def _settings(self) -> dict[str, object]:
        return {
            "embed_dim": self.embed_dim,
            "num_heads": self.num_heads,
            "dropout": self.dropout,
            "bias": "in_proj_bias" in self.params,
            "batch_first": self.batch_first,
        }

    @classmethod
    def _from_config(
        cls, settings: dict[str, Any], children: list[Module], placement: dict[str, Any]
    ) -> MultiheadAttention:
        layer = cls(**settings, **placement)
        if [child.config() for child in children] != [layer.out_proj.config()]:
            raise ValueError(
                f"the children must be the out_proj of these settings, "
                f"[{layer.out_proj.config()}], got {[child.config() for child in children]}"
            )
        return layer

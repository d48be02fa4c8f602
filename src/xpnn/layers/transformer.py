"""``TransformerEncoderLayer`` and ``TransformerEncoder``, as in ``torch.nn``.

Both chain their children's closures: self-attention
(:class:`~xpnn.MultiheadAttention`), :class:`~xpnn.Linear`, the activation,
:class:`~xpnn.Dropout` and :class:`~xpnn.LayerNorm`. A residual sum
``x + f(x)`` sends its output gradient both ways: ``dx = dy + f.backward(dy)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._checks import shape_str
from .._compat import Array, Device, DType
from .._compat import device as device_of
from .._random import Seed, host_generator
from ._module import Backward, Module, _copy_of, backward_again, call_backward
from .activations import GELU, ReLU
from .attention import MultiheadAttention, check_flag, check_probability
from .dropout import Dropout
from .layer_norm import LayerNorm
from .linear import Linear
from .sequential import Sequential

__all__ = ["TransformerEncoder", "TransformerEncoderLayer"]

_ACTIVATIONS: dict[str, Callable[[], Module]] = {"relu": ReLU, "gelu": GELU}


class TransformerEncoderLayer(Module):
    """Self-attention and a feed-forward block, each with a residual and a layer norm.

    As ``torch.nn.TransformerEncoderLayer``: with ``norm_first=False``,
    ``x = norm1(x + sa(x)); y = norm2(x + ff(x))``; with ``norm_first=True``,
    ``x = x + sa(norm1(x)); y = x + ff(norm2(x))``, where
    ``sa(x) = dropout1(self_attn(x, x, x)[0])`` and
    ``ff(x) = dropout2(linear2(dropout(activation(linear1(x)))))``.

    Parameters
    ----------
    d_model : int
        Feature size E.
    nhead : int
        Number of attention heads (a divisor of ``d_model``).
    dim_feedforward : int, default 2048
        Hidden size of the feed-forward block.
    dropout : float, default 0.1
        Dropout probability of every dropout, attention weights included.
    activation : {"relu", "gelu"}, default "relu"
        The feed-forward activation (GELU exact, as ``F.gelu``).
    layer_norm_eps : float, default 1e-5
        The layer norms' ``eps``.
    batch_first : bool, default False
        Inputs (N, L, E) if True, (L, N, E) if False.
    norm_first : bool, default False
        Normalise before each block (pre-norm) instead of after the residual.
    bias : bool, default True
        Biases in the linear maps and layer norms.
    seed, xp, device, dtype
        As for :class:`~xpnn.Linear`; ``seed`` draws the parameters, then
        the dropout masks.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn import TransformerEncoderLayer
    >>> layer = TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, seed=0)
    >>> y, backward = layer.forward(np.ones((2, 3, 8)))
    >>> backward(np.ones((2, 3, 8))).shape
    (2, 3, 8)
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        *,
        seed: Seed = None,
        xp: object | None = None,
        device: Device | str | None = None,
        dtype: DType | None = None,
    ) -> None:
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be 'relu' or 'gelu', got {activation!r}"
                if isinstance(activation, str)
                else f"activation must be the string 'relu' or 'gelu', got "
                f"{type(activation).__name__} {activation!r}"
            )
        p = check_probability("dropout", dropout)
        first = check_flag("batch_first", batch_first)
        pre = check_flag("norm_first", norm_first)
        with_bias = check_flag("bias", bias)
        super().__init__()
        rng = host_generator(seed)
        place: dict[str, Any] = {"xp": xp, "device": device, "dtype": dtype}
        self.self_attn = MultiheadAttention(
            d_model, nhead, dropout=p, bias=with_bias, batch_first=first, seed=rng, **place
        )
        self.linear1 = Linear(d_model, dim_feedforward, bias=with_bias, seed=rng, **place)
        self.dropout = Dropout(p, seed=rng)
        self.linear2 = Linear(dim_feedforward, d_model, bias=with_bias, seed=rng, **place)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=with_bias, seed=rng, **place)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=with_bias, seed=rng, **place)
        self.dropout1 = Dropout(p, seed=rng)
        self.dropout2 = Dropout(p, seed=rng)
        self.activation = _ACTIVATIONS[activation]()
        self.d_model = self.self_attn.embed_dim
        self.nhead = self.self_attn.num_heads
        self.dim_feedforward = self.linear1.out_features
        self._dropout_p = p
        self._activation_name = activation
        self.layer_norm_eps = self.norm1.eps
        self.batch_first = first
        self.norm_first = pre
        self._bias = with_bias

    def named_children(self) -> list[tuple[str, Module]]:
        """Return the children under PyTorch's names (its parameter order)."""
        return [
            ("self_attn", self.self_attn),
            ("linear1", self.linear1),
            ("dropout", self.dropout),
            ("linear2", self.linear2),
            ("norm1", self.norm1),
            ("norm2", self.norm2),
            ("dropout1", self.dropout1),
            ("dropout2", self.dropout2),
            ("activation", self.activation),
        ]

    def children(self) -> list[Module]:
        """Return the children, in the order of :meth:`named_children`."""
        return [child for _, child in self.named_children()]

    def keeps_shape(self) -> bool:
        """Tell that the output has the input's shape."""
        return True

    # -- blocks --------------------------------------------------------------

    def _attention_block(
        self,
        x: Array,
        src_mask: Array | None,
        src_key_padding_mask: Array | None,
        is_causal: bool,
    ) -> tuple[Array, Callable[[Array, bool], Array]]:
        (a, _), attn_back = self.self_attn.forward(
            x,
            x,
            x,
            key_padding_mask=src_key_padding_mask,
            need_weights=False,
            attn_mask=src_mask,
            is_causal=is_causal,
        )
        y, drop_back = self.dropout1.forward(a)

        def backward(dy: Array, retain: bool) -> Array:
            da = call_backward(drop_back, dy, retain_graph=retain)
            dx, _, _ = attn_back(da, None, retain_graph=retain)
            return dx

        return y, backward

    def _feed_forward_block(self, x: Array) -> tuple[Array, Callable[[Array, bool], Array]]:
        xp = self.self_attn.xp
        shape = tuple(x.shape)
        # One row per position: 2-d products run faster than batched ones
        # (NumPy loops over a 3-d matmul's batch), and Linear's 2-d backward
        # sums its bias gradient as a product.
        h = xp.reshape(x, (-1, shape[-1]))
        backs = []
        for layer in (self.linear1, self.activation, self.dropout, self.linear2, self.dropout2):
            h, back = layer.forward(h)
            backs.append(back)

        def backward(dy: Array, retain: bool) -> Array:
            dh = xp.reshape(dy, (-1, shape[-1]))
            for back in reversed(backs):
                dh = call_backward(back, dh, retain_graph=retain)
            return xp.reshape(dh, shape)

        return xp.reshape(h, shape), backward

    def _norm(self, norm: LayerNorm, x: Array) -> tuple[Array, Callable[[Array, bool], Array]]:
        y, back = norm.forward(x)
        return y, lambda dy, retain: call_backward(back, dy, retain_graph=retain)

    # -- forward -------------------------------------------------------------

    def forward(
        self,
        src: Array,
        *,
        src_mask: Array | None = None,
        src_key_padding_mask: Array | None = None,
        is_causal: bool = False,
        input_grad: bool = True,
    ) -> tuple[Array, Backward]:
        """Return ``(y, backward)``; ``backward(dy, *, retain_graph=False) -> dsrc``.

        Parameters
        ----------
        src : array of shape (L, N, E), or (N, L, E) with batch_first
            The sequences.
        src_mask : array of shape (L, L) or (N*nhead, L, L), optional
            The attention mask (see :meth:`MultiheadAttention.forward`).
        src_key_padding_mask : array of shape (N, L), optional
            True (or ``-inf``) at padded positions, which no query attends
            to. Their own outputs are computed like any other's.
        is_causal : bool, default False
            Hide later positions (see :meth:`MultiheadAttention.forward`).
        input_grad : bool, default True
            Whether ``backward`` returns ``dsrc`` (``None`` if not).
        """
        x = src
        if self.norm_first:
            h, norm_back = self._norm(self.norm1, x)
            a, attn_back = self._attention_block(h, src_mask, src_key_padding_mask, is_causal)
            x = x + a
            h, norm2_back = self._norm(self.norm2, x)
            f, ff_back = self._feed_forward_block(h)
            x = x + f

            def run_back(dy: Array, retain: bool) -> Array:
                # x2 = x1 + ff(norm2(x1)): the residual passes dy on unchanged.
                dy = dy + norm2_back(ff_back(dy, retain), retain)
                return dy + norm_back(attn_back(dy, retain), retain)

        else:
            a, attn_back = self._attention_block(x, src_mask, src_key_padding_mask, is_causal)
            x, norm_back = self._norm(self.norm1, x + a)
            f, ff_back = self._feed_forward_block(x)
            x, norm2_back = self._norm(self.norm2, x + f)

            def run_back(dy: Array, retain: bool) -> Array:
                dy = norm2_back(dy, retain)
                dy = dy + ff_back(dy, retain)
                dy = norm_back(dy, retain)
                return dy + attn_back(dy, retain)

        used = False

        def backward(dy: Array, *, retain_graph: bool = False) -> Array | None:
            nonlocal used
            if used:
                raise backward_again("TransformerEncoderLayer")
            if tuple(dy.shape) != tuple(x.shape):
                raise ValueError(
                    f"dy must have the output's shape {shape_str(tuple(x.shape))}, got "
                    f"{shape_str(tuple(dy.shape))}"
                )
            dsrc = run_back(dy, retain_graph)
            used = not retain_graph
            return dsrc if input_grad else None

        return x, backward

    def __call__(
        self,
        src: Array,
        *,
        src_mask: Array | None = None,
        src_key_padding_mask: Array | None = None,
        is_causal: bool = False,
    ) -> Array:
        """Return the output only."""
        y, _ = self.forward(
            src,
            src_mask=src_mask,
            src_key_padding_mask=src_key_padding_mask,
            is_causal=is_causal,
            input_grad=False,
        )
        return y

    # -- configuration -------------------------------------------------------

    def _settings(self) -> dict[str, object]:
        return {
            "d_model": self.d_model,
            "nhead": self.nhead,
            "dim_feedforward": self.dim_feedforward,
            "dropout": self._dropout_p,
            "activation": self._activation_name,
            "layer_norm_eps": self.layer_norm_eps,
            "batch_first": self.batch_first,
            "norm_first": self.norm_first,
            "bias": self._bias,
        }

    def copy(self, *, seed: Seed = None) -> TransformerEncoderLayer:
        """Return a layer with copies of these parameters and its own dropout stream.

        What ``copy.deepcopy`` gives in PyTorch, except that the copy's
        dropout masks are drawn from ``seed`` (a copied generator would
        repeat this layer's masks).
        """
        weight = self.self_attn.in_proj_weight
        clone = TransformerEncoderLayer(
            **self._settings(),  # type: ignore[arg-type]
            seed=seed,
            xp=self.self_attn.xp,
            device=device_of(weight),
            dtype=weight.dtype,
        )
        for name, value in self.named_parameters():
            clone.set_parameter(name, _copy_of(value, transposed=False))
        if not self.training:
            clone.eval()
        return clone

    @classmethod
    def _from_config(
        cls, settings: dict[str, Any], children: list[Module], placement: dict[str, Any]
    ) -> TransformerEncoderLayer:
        layer = cls(**settings, **placement)
        expected = [child.config() for child in layer.children()]
        if [child.config() for child in children] != expected:
            raise ValueError(
                "the children must be those of these settings (self_attn, linear1, dropout, "
                "linear2, norm1, norm2, dropout1, dropout2, activation)"
            )
        return layer


class TransformerEncoder(Module):
    """A stack of ``num_layers`` copies of an encoder layer, and an optional final norm.

    As ``torch.nn.TransformerEncoder``: the copies start with the given
    layer's parameters (PyTorch deep-copies it) and are trained apart.

    Parameters
    ----------
    encoder_layer : TransformerEncoderLayer
        The layer to copy (not used itself).
    num_layers : int
        How many copies.
    norm : LayerNorm, optional
        Applied to the last layer's output.
    enable_nested_tensor, mask_check : bool
        PyTorch's; accepted and ignored. xpnn has no nested tensors: with a
        ``src_key_padding_mask`` the padded positions' outputs are computed
        as PyTorch's regular path computes them (its eval-mode fast path
        with nested tensors returns zeros there instead).
    seed : int or numpy.random.Generator, optional
        Seeds the copies' dropout masks.

    Attributes
    ----------
    layers : Sequential
        The copies (``layers.0``, ``layers.1``, ... in state dicts).
    norm : LayerNorm or None
    """

    def __init__(
        self,
        encoder_layer: TransformerEncoderLayer,
        num_layers: int,
        norm: Module | None = None,
        enable_nested_tensor: bool = True,
        mask_check: bool = True,
        *,
        seed: Seed = None,
    ) -> None:
        if not isinstance(encoder_layer, TransformerEncoderLayer):
            raise TypeError(
                f"encoder_layer must be an xpnn TransformerEncoderLayer, got "
                f"{type(encoder_layer).__name__}"
            )
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"num_layers must be an int of at least 1, got {num_layers!r}")
        if norm is not None and not isinstance(norm, Module):
            raise TypeError(f"norm must be an xpnn module or None, got {type(norm).__name__}")
        super().__init__()
        rng = host_generator(seed)
        self.layers = Sequential(*(encoder_layer.copy(seed=rng) for _ in range(num_layers)))
        self.num_layers = num_layers
        self.norm = norm

    def named_children(self) -> list[tuple[str, Module]]:
        """Return ``layers`` and, if any, ``norm``."""
        named: list[tuple[str, Module]] = [("layers", self.layers)]
        if self.norm is not None:
            named.append(("norm", self.norm))
        return named

    def children(self) -> list[Module]:
        """Return ``[layers]`` or ``[layers, norm]``."""
        return [child for _, child in self.named_children()]

    def keeps_shape(self) -> bool:
        """Tell that the output has the input's shape."""
        return True

    def forward(
        self,
        src: Array,
        *,
        mask: Array | None = None,
        src_key_padding_mask: Array | None = None,
        is_causal: bool | None = None,
        input_grad: bool = True,
    ) -> tuple[Array, Backward]:
        """Run the layers, then the norm: ``(y, backward)``, ``backward(dy) -> dsrc``.

        ``mask``, ``src_key_padding_mask`` and ``is_causal`` go to every
        layer as ``src_mask``, ``src_key_padding_mask`` and ``is_causal``.
        """
        causal = bool(is_causal)
        backs: list[Backward] = []
        x = src
        for index, layer in enumerate(self.layers.layers):
            assert isinstance(layer, TransformerEncoderLayer)
            x, back = layer.forward(
                x,
                src_mask=mask,
                src_key_padding_mask=src_key_padding_mask,
                is_causal=causal,
                input_grad=input_grad or index > 0,
            )
            backs.append(back)
        if self.norm is not None:
            x, back = self.norm.forward(x)
            backs.append(back)
        used = False

        def backward(dy: Array, *, retain_graph: bool = False) -> Array | None:
            nonlocal used
            if used:
                raise backward_again("TransformerEncoder")
            for back in reversed(backs):
                dy = call_backward(back, dy, retain_graph=retain_graph)
            used = not retain_graph
            return dy if input_grad else None

        return x, backward

    def __call__(
        self,
        src: Array,
        *,
        mask: Array | None = None,
        src_key_padding_mask: Array | None = None,
        is_causal: bool | None = None,
    ) -> Array:
        """Return the output only."""
        y, _ = self.forward(
            src,
            mask=mask,
            src_key_padding_mask=src_key_padding_mask,
            is_causal=is_causal,
            input_grad=False,
        )
        return y

    def _settings(self) -> dict[str, object]:
        return {"num_layers": self.num_layers}

    @classmethod
    def _from_config(
        cls, settings: dict[str, Any], children: list[Module], placement: dict[str, Any]
    ) -> TransformerEncoder:
        num_layers = settings.get("num_layers")
        if set(settings) != {"num_layers"} or not 1 <= len(children) <= 2:
            raise ValueError("expected the setting num_layers and the children layers[, norm]")
        layers = children[0]
        if (
            not isinstance(layers, Sequential)
            or len(layers) != num_layers
            or not all(isinstance(layer, TransformerEncoderLayer) for layer in layers.layers)
        ):
            raise ValueError(
                f"the first child must be a Sequential of {num_layers} TransformerEncoderLayer"
            )
        encoder = cls.__new__(cls)
        Module.__init__(encoder)
        encoder.layers = layers
        encoder.num_layers = len(layers)
        encoder.norm = children[1] if len(children) == 2 else None
        return encoder

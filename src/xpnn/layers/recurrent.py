"""``RNN``, ``GRU`` and ``LSTM``: recurrent layers over :mod:`xpnn.functional.recurrent`.

Their parameters carry PyTorch's names, layouts and gate orders
(``weight_ih_l0``, ``weight_hh_l0_reverse``, ...), so state dicts, checkpoints
and :func:`xpnn.interop.torch.from_torch` exchange them exactly.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

from .._compat import (
    Array,
    Device,
    DType,
    resolve_device,
    resolve_dtype,
    resolve_namespace,
)
from .._compat import device as device_of
from .._random import Seed, bernoulli_mask, host_generator
from ..functional.recurrent import (
    GATES,
    RecurrentSaved,
    check_lengths_values,
    check_recurrent,
    check_recurrent_backward,
    recurrent_backward_kernel,
    recurrent_kernel,
)
from ..init import uniform
from ._module import Placed, backward_again

__all__ = ["GRU", "LSTM", "RNN"]


def _size(name: str, value: object, least: int = 1) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool {value}")
    try:
        size = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}") from None
    if size < least:
        raise ValueError(f"{name} must be at least {least}, got {size}")
    return int(size)


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value


class _Recurrent(Placed):
    """What ``RNN``, ``GRU`` and ``LSTM`` share: parameters, checks, the pass."""

    mode: str
    #: The cell that the shared constructor builds (``RNN`` has its own, for ``nonlinearity``).
    _cell = ""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        seed: Seed = None,
        xp: object | None = None,
        device: Device | str | None = None,
        dtype: DType | None = None,
    ) -> None:
        self._build(
            self._cell,
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            seed,
            xp,
            device,
            dtype,
        )

    def _build(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        bias: bool,
        batch_first: bool,
        dropout: float,
        bidirectional: bool,
        seed: Seed,
        xp: object | None,
        device: Device | str | None,
        dtype: DType | None,
    ) -> None:
        input_size = _size("input_size", input_size)
        hidden_size = _size("hidden_size", hidden_size)
        num_layers = _size("num_layers", num_layers)
        for name, flag in (
            ("bias", bias),
            ("batch_first", batch_first),
            ("bidirectional", bidirectional),
        ):
            _flag(name, flag)
        value: object = dropout
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(
                f"dropout should be a number in range [0, 1] representing the probability of "
                f"an element being zeroed, got {type(dropout).__name__} {dropout!r}"
            )
        if not 0.0 <= float(dropout) <= 1.0:
            raise ValueError(
                f"dropout should be a number in range [0, 1] representing the probability of "
                f"an element being zeroed, got {dropout}"
            )
        namespace = resolve_namespace(xp)
        where = resolve_device(namespace, device)
        dtype = resolve_dtype(namespace, dtype, where)
        super().__init__()
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self._rng = host_generator(seed)
        directions = 2 if bidirectional else 1
        rows = GATES[mode] * hidden_size
        bound = 1.0 / math.sqrt(hidden_size)
        make = dict(xp=namespace, device=where, dtype=dtype, rng=self._rng, bound=bound)
        # PyTorch's order: layer by layer, the forward direction first, and
        # weight_ih, weight_hh, bias_ih, bias_hh within one; every parameter
        # uniform in ±1/sqrt(hidden_size), drawn in that order.
        for layer in range(num_layers):
            width = input_size if layer == 0 else directions * hidden_size
            for suffix in ("", "_reverse")[:directions]:
                shapes: list[tuple[str, tuple[int, ...]]] = [
                    (f"weight_ih_l{layer}{suffix}", (rows, width)),
                    (f"weight_hh_l{layer}{suffix}", (rows, hidden_size)),
                ]
                if bias:
                    shapes += [
                        (f"bias_ih_l{layer}{suffix}", (rows,)),
                        (f"bias_hh_l{layer}{suffix}", (rows,)),
                    ]
                for name, shape in shapes:
                    self.params[name] = uniform(shape, **make)
                    self.grads[name] = None

    # -- where the parameters live ---------------------------------------------

    _placed_by = "weight_ih_l0"

    @property
    def draws_on_host(self) -> bool:
        """True in training mode with dropout between two or more layers (host-drawn masks)."""
        return self.training and self.dropout > 0.0 and self.num_layers > 1

    def _weights(self) -> list[tuple[Array, Array, Array | None, Array | None]]:
        directions = 2 if self.bidirectional else 1
        p = self.params
        out = []
        for layer in range(self.num_layers):
            for suffix in ("", "_reverse")[:directions]:
                tail = f"l{layer}{suffix}"
                out.append(
                    (
                        p[f"weight_ih_{tail}"],
                        p[f"weight_hh_{tail}"],
                        p.get(f"bias_ih_{tail}"),
                        p.get(f"bias_hh_{tail}"),
                    )
                )
        return out

    # -- the pass ---------------------------------------------------------------

    def _states(self, hx: Any) -> tuple[Array | None, Array | None]:
        if self.mode != "LSTM":
            if isinstance(hx, tuple | list):
                raise TypeError(
                    f"hx of {type(self).__name__} must be one array of shape (num_layers * "
                    f"num_directions, batch, hidden_size) or None, got a {type(hx).__name__}"
                )
            return hx, None
        if hx is None:
            return None, None
        if not isinstance(hx, tuple | list) or len(hx) != 2:
            raise TypeError(
                "hx of LSTM must be a tuple (h_0, c_0) of arrays of shape (num_layers * "
                f"num_directions, batch, hidden_size), or None, got {type(hx).__name__}"
            )
        h0, c0 = hx
        if h0 is None or c0 is None:
            raise TypeError("hx of LSTM must hold both h_0 and c_0 (or be None for zeros)")
        return h0, c0

    def _run(
        self, x: Array, hx: Any, lengths: Array | None, keep: bool
    ) -> tuple[Any, Array, Array, Array | None, RecurrentSaved | None, Any]:
        h0, c0 = self._states(hx)
        weights = self._weights()
        flat = [w for ws in weights for w in ws]
        forward = self._checks.check(
            check_recurrent,
            x,
            h0,
            c0,
            lengths,
            *flat,
            mode=self.mode,
            hidden=self.hidden_size,
            layers=self.num_layers,
            directions=2 if self.bidirectional else 1,
            batch_first=self.batch_first,
        )
        constants = forward.constants
        if lengths is not None:
            # Values, not kinds: checked at every call (eager arrays only).
            check_lengths_values(lengths, constants.time)
        drops: list[Array | None] = []
        if self.training and self.dropout > 0.0 and self.num_layers > 1:
            shape = (constants.time, constants.batch, constants.directions * self.hidden_size)
            drops = [
                bernoulli_mask(
                    self._rng,
                    shape,
                    p=self.dropout,
                    xp=forward.xp,
                    device=device_of(x),
                    dtype=forward.dtype,
                )
                for _ in range(self.num_layers - 1)
            ]
        output, h_n, c_n, saved = recurrent_kernel(
            forward, x, weights, h0, c0, lengths, drops, keep=keep
        )
        return forward, output, h_n, c_n, saved, (h0, c0)

    def forward(
        self,
        x: Array,
        hx: Any = None,
        *,
        lengths: Array | None = None,
        input_grad: bool = True,
    ) -> tuple[Any, Any]:
        """Run the layer and return ``((output, h_n), backward)`` (LSTM: ``(h_n, c_n)``).

        Parameters
        ----------
        x : array of shape (time, batch, input_size)
            The sequences, ``(batch, time, input_size)`` with ``batch_first``.
        hx : array of shape (num_layers * num_directions, batch, hidden_size), optional
            The initial hidden state (LSTM: a tuple ``(h_0, c_0)`` of such
            arrays); zeros when None.
        lengths : integer array of shape (batch,), optional
            The number of valid steps of each sequence, in ``[1, time]``,
            in ``x``'s namespace and on its device, as
            ``torch.nn.utils.rnn.pack_padded_sequence`` takes them
            (``enforce_sorted=False``: any order).
        input_grad : bool, default True
            Whether ``backward`` returns ``dx``.

        Returns
        -------
        (output, h_n) : tuple
            ``output`` of shape (time, batch, num_directions * hidden_size)
            (batch first with ``batch_first``), zero past each sequence's
            length; ``h_n`` of shape (num_layers * num_directions, batch,
            hidden_size), each sequence's state at its own last valid step.
            The LSTM gives ``(output, (h_n, c_n))``.
        backward : callable
            ``backward(d_output, d_h_n=None, *, retain_graph=False) -> (dx, dhx)``
            (LSTM: ``backward(d_output, (d_h_n, d_c_n))``, and ``dhx`` is
            ``(dh_0, dc_0)``); any gradient may be None for zero. It adds the
            parameter gradients into ``grads``. ``dx`` is None with
            ``input_grad=False``, ``dhx`` None when ``hx`` was None. It may
            be called once unless ``retain_graph=True`` is passed.
        """
        forward, output, h_n, c_n, saved, (h0, _) = self._run(x, hx, lengths, keep=True)
        assert saved is not None
        lstm = self.mode == "LSTM"
        names = list(self.params)
        what = type(self).__name__
        used = False

        def backward(
            d_output: Array | None, d_state: Any = None, *, retain_graph: bool = False
        ) -> tuple[Array | None, Any]:
            nonlocal used
            if used:
                raise backward_again(what)
            d_h_n = d_c_n = None
            if lstm:
                if d_state is not None:
                    if not isinstance(d_state, tuple | list) or len(d_state) != 2:
                        raise TypeError(
                            "the LSTM's backward takes (d_output, (d_h_n, d_c_n)); got "
                            f"{type(d_state).__name__} for the second"
                        )
                    d_h_n, d_c_n = d_state
            else:
                d_h_n = d_state
            checked = self._checks.check(
                check_recurrent_backward,
                d_output,
                d_h_n,
                d_c_n,
                context=(output, h_n),
                forward=forward,
            )
            dx, dh0, dc0, grads = recurrent_backward_kernel(
                checked, saved, d_output, d_h_n, d_c_n, input_grad=input_grad
            )
            for name, grad in zip(names, (g for g in grads if g is not None), strict=True):
                self._accumulate(name, grad)
            used = not retain_graph
            dhx: Any = None
            if h0 is not None:
                dhx = (dh0, dc0) if lstm else dh0
            return dx, dhx

        state: Any = (h_n, c_n) if lstm else h_n
        return (output, state), backward

    def __call__(
        self, x: Array, hx: Any = None, *, lengths: Array | None = None
    ) -> tuple[Array, Any]:
        """Run the layer and return ``(output, h_n)`` as PyTorch does, keeping nothing alive."""
        _, output, h_n, c_n, _, _ = self._run(x, hx, lengths, keep=False)
        return output, ((h_n, c_n) if self.mode == "LSTM" else h_n)

    def _settings(self) -> dict[str, object]:
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bias": self.bias,
            "batch_first": self.batch_first,
            "dropout": self.dropout,
            "bidirectional": self.bidirectional,
        }


_COMMON_PARAMETERS = """
    input_size : int
        The features of each step of the input.
    hidden_size : int
        The features of the hidden state.
    num_layers : int, default 1
        Recurrent layers stacked: layer ``k > 0`` reads the outputs of layer
        ``k - 1``.
    bias : bool, default True
        Whether to learn ``bias_ih_l{k}`` and ``bias_hh_l{k}``.
    batch_first : bool, default False
        Inputs and outputs are ``(batch, time, features)`` instead of
        ``(time, batch, features)``; the states stay batch second.
    dropout : float, default 0.0
        Dropout on the outputs of each layer but the last, in training mode.
        The masks are drawn on the host from the layer's generator, as
        :class:`~xpnn.Dropout` draws them.
    bidirectional : bool, default False
        Run a second layer over each sequence reversed (within its length)
        and concatenate both outputs.
    seed : int or numpy.random.Generator, optional
        Seed of the host generator that draws the initial values (uniform in
        ``±1/sqrt(hidden_size)``, as PyTorch) and the dropout masks.
    xp, device, dtype
        Where the parameters are made, as for :class:`~xpnn.Linear`.
"""


class RNN(_Recurrent):
    """An Elman RNN, ``h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``, as ``torch.nn.RNN``.

    Parameters
    ----------
    ----------{common}
    nonlinearity : {"tanh", "relu"}, default "tanh"
        The activation (fourth positional argument, as in PyTorch).

    Attributes
    ----------
    weight_ih_l{k}{_reverse}, weight_hh_l{k}{_reverse} : arrays in ``params``
        ``(hidden_size, input_size)`` for ``k = 0`` (else
        ``num_directions * hidden_size`` inputs) and ``(hidden_size,
        hidden_size)``, PyTorch's layout.
    bias_ih_l{k}{_reverse}, bias_hh_l{k}{_reverse} : arrays of shape (hidden_size,)

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn import RNN
    >>> rnn = RNN(3, 4, seed=0)
    >>> output, h_n = rnn(np.ones((5, 2, 3)))
    >>> output.shape, h_n.shape
    ((5, 2, 4), (1, 2, 4))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        seed: Seed = None,
        xp: object | None = None,
        device: Device | str | None = None,
        dtype: DType | None = None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'."
            )
        self.nonlinearity = nonlinearity
        self._build(
            "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            seed,
            xp,
            device,
            dtype,
        )

    def _settings(self) -> dict[str, object]:
        settings = super()._settings()
        return {**settings, "nonlinearity": self.nonlinearity}


class GRU(_Recurrent):
    """A gated recurrent unit layer, as ``torch.nn.GRU``.

    For each step, with the gates in PyTorch's order ``r, z, n``::

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
        z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h' = (1 - z) * n + z * h

    Parameters
    ----------
    ----------{common}

    Attributes
    ----------
    weight_ih_l{k}{_reverse}, weight_hh_l{k}{_reverse} : arrays in ``params``
        ``(3 * hidden_size, input_size)`` for ``k = 0`` (else
        ``num_directions * hidden_size`` inputs) and ``(3 * hidden_size,
        hidden_size)``: the blocks ``W_r, W_z, W_n``, PyTorch's layout.
    bias_ih_l{k}{_reverse}, bias_hh_l{k}{_reverse} : arrays of shape (3 * hidden_size,)

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn import GRU
    >>> gru = GRU(3, 4, seed=0)
    >>> x = np.ones((5, 2, 3))
    >>> (output, h_n), backward = gru.forward(x, lengths=np.array([5, 2]))
    >>> output.shape, h_n.shape, bool((output[2:, 1] == 0).all())
    ((5, 2, 4), (1, 2, 4), True)
    >>> dx, dhx = backward(np.ones_like(output))
    >>> dx.shape, dhx is None, gru.grads["weight_hh_l0"].shape
    ((5, 2, 3), True, (12, 4))
    """

    _cell = "GRU"


class LSTM(_Recurrent):
    """A long short-term memory layer, as ``torch.nn.LSTM`` (without ``proj_size``).

    For each step, with the gates in PyTorch's order ``i, f, g, o``::

        i, f, o = sigmoid(W_i. x + b_i. + W_h. h + b_h.)   (three blocks)
        g = tanh(W_ig x + b_ig + W_hg h + b_hg)
        c' = f * c + i * g
        h' = o * tanh(c')

    Parameters
    ----------
    ----------{common}

    Attributes
    ----------
    weight_ih_l{k}{_reverse}, weight_hh_l{k}{_reverse} : arrays in ``params``
        ``(4 * hidden_size, input_size)`` for ``k = 0`` (else
        ``num_directions * hidden_size`` inputs) and ``(4 * hidden_size,
        hidden_size)``: the blocks ``W_i, W_f, W_g, W_o``, PyTorch's layout.
    bias_ih_l{k}{_reverse}, bias_hh_l{k}{_reverse} : arrays of shape (4 * hidden_size,)

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn import LSTM
    >>> lstm = LSTM(3, 4, num_layers=2, seed=0)
    >>> output, (h_n, c_n) = lstm(np.ones((5, 2, 3)))
    >>> output.shape, h_n.shape, c_n.shape
    ((5, 2, 4), (2, 2, 4), (2, 2, 4))
    """

    _cell = "LSTM"


for _cls in (RNN, GRU, LSTM):
    _cls.__doc__ = (_cls.__doc__ or "").replace("{common}", _COMMON_PARAMETERS.rstrip("\n") + "\n")

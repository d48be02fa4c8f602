"""Recurrent layers (Elman RNN, GRU, LSTM): forward through time and its hand-derived backward.

The layout is PyTorch's: for each layer ``k`` and direction (``""`` or
``"_reverse"``), ``weight_ih`` of shape ``(gates * hidden, input)``,
``weight_hh`` of shape ``(gates * hidden, hidden)``, ``bias_ih`` and
``bias_hh`` of shape ``(gates * hidden,)``, the gates in PyTorch's order:
``r, z, n`` for the GRU (``b_hn`` inside the reset product), ``i, f, g, o``
for the LSTM, one block for the Elman RNN. Sequences run time-major,
``(time, batch, features)``, unless ``batch_first``.

The input projection of every time step is one matrix product before the
time loop (as cuDNN does); the loop is a Python loop of standard operations,
a handful per step, so JAX traces it unrolled and Dask builds one graph of
it. The backward pass keeps what the forward computed at each step and
precomputes, for all steps at once, the derivative factors that depend on
the forward values alone; its own loop is then a product with the
recurrent weight and a few elementwise operations per step, and the weight
gradients are one matrix product each over all steps (``docs/recurrent.md``
derives them).

Variable lengths (``lengths``, one per sequence) follow PyTorch's packed
sequences: a step past a sequence's end carries its state unchanged, so
the final state is the one at its own last valid step; the output there is
zero and gets no gradient; and the reverse direction starts at each
sequence's own last valid step. The mask is computed on the device,
``arange(T) < lengths``, and the reverse direction reverses each sequence
within its own length by one gather (``take``) on the device: nothing is
sorted on the host and nothing is read back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from .._checks import (
    Checked,
    check_known_shape,
    check_real_floating,
    check_same_device,
    is_unknown,
    shape_str,
)
from .._compat import Array, Namespace, array_namespace, device, is_lazy
from ._dtypes import as_dtype, gradient_as

__all__ = [
    "GATES",
    "MODES",
    "RecurrentConstants",
    "RecurrentSaved",
    "check_lengths_values",
    "check_recurrent",
    "check_recurrent_backward",
    "recurrent_backward_kernel",
    "recurrent_kernel",
]

#: The cells, by the names PyTorch's ``_VF`` gives them.
MODES = ("RNN_TANH", "RNN_RELU", "GRU", "LSTM")
#: Gate blocks per cell: the first dimension of a weight is ``gates * hidden``.
GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}

#: One direction of one layer: ``(weight_ih, weight_hh, bias_ih, bias_hh)``.
Weights = tuple[Array, Array, Array | None, Array | None]


class RecurrentConstants(NamedTuple):
    """What the checks derive from the kinds of a recurrent pass's inputs."""

    mode: str
    hidden: int
    layers: int
    directions: int
    time: int
    batch: int
    features: int
    batch_first: bool
    #: ``arange(time)`` in the lengths' dtype, on the device (None without lengths).
    steps: Array
    #: ``arange(batch)`` in the lengths' dtype, on the device (reverse gathers).
    batch_index: Array
    #: The sigmoid-as-tanh scale of the gate columns (0.5 where a sigmoid).
    scale: Array
    #: A zero of the compute dtype that broadcasts (the ReLU).
    zero: Array


def _describe(name: str, value: object) -> str:
    shape = getattr(value, "shape", None)
    if shape is None:
        return f"{name} must be an array, got {type(value).__name__}"
    return ""


def check_recurrent(
    x: Array,
    h0: Array | None,
    c0: Array | None,
    lengths: Array | None,
    *weights: Array | None,
    mode: str,
    hidden: int,
    layers: int,
    directions: int,
    batch_first: bool,
) -> Checked:
    """Check the inputs of :func:`recurrent_kernel`; return the namespace, dtype and constants.

    ``weights`` are the parameters flattened in PyTorch's order: for each
    layer, for each direction, ``weight_ih, weight_hh, bias_ih, bias_hh``
    (the biases ``None`` without bias).

    Raises
    ------
    TypeError
        For arrays that are no arrays, of different libraries, non-real or
        non-floating dtypes, or integer-less ``lengths``.
    ValueError
        For arrays on different devices, or shapes that do not fit: ``x`` not
        3-D or with the wrong number of features, ``h0``/``c0`` not
        ``(layers * directions, batch, hidden)``, ``lengths`` not ``(batch,)``.
    """
    for name, value in (("x", x), ("hx", h0), ("cx", c0), ("lengths", lengths)):
        if value is not None and (message := _describe(name, value)):
            raise TypeError(message)
    named: dict[str, Array | None] = {"x": x, "hx": h0, "cx": c0, "lengths": lengths}
    for index, weight in enumerate(weights):
        named[f"parameter {index}"] = weight
    xp = array_namespace(**named, optional=tuple(named))
    floats = {k: v for k, v in named.items() if v is not None and k != "lengths"}
    check_real_floating(xp, f"the {mode} layer", **floats)
    check_same_device(**named)
    if x.ndim != 3:
        raise ValueError(
            f"x must have shape (time, batch, features) (or (batch, time, features) with "
            f"batch_first=True), got a {x.ndim}-D array of shape {shape_str(tuple(x.shape))}; "
            f"add a batch axis to a single sequence with xp.expand_dims(x, axis=1)"
        )
    shape = tuple(x.shape)
    time, batch, features = (shape[1], shape[0], shape[2]) if batch_first else shape
    if is_unknown(time) or is_unknown(features) or (lengths is not None and is_unknown(batch)):
        # The loop needs the number of steps; the batch may stay unknown (a
        # traced export with a dynamic batch) unless lengths index into it.
        check_known_shape("x", x, f"the {mode} layer's time loop")
    w_ih = weights[0]
    assert w_ih is not None
    expected_features = int(w_ih.shape[1])
    if features != expected_features:
        raise ValueError(
            f"input.size(-1) must be equal to input_size. Expected {expected_features}, got "
            f"{features} (x has shape {shape_str(shape)}); pass sequences of "
            f"{expected_features} features, or build the layer with input_size={features}"
        )
    if time < 1 or (not is_unknown(batch) and batch < 1):
        raise ValueError(
            f"x must hold at least one time step and one sequence, got shape {shape_str(shape)}"
        )
    state_shape = (layers * directions, batch, hidden)
    for name, state in (("hx", h0), ("cx", c0)):
        if state is not None and tuple(state.shape) != state_shape:
            raise ValueError(
                f"Expected hidden size {shape_str(state_shape)} (num_layers * num_directions, "
                f"batch, hidden_size), got {shape_str(tuple(state.shape))} for {name}"
            )
    where = device(x)
    steps = batch_index = None
    if lengths is not None:
        if not xp.isdtype(lengths.dtype, "integral"):
            raise TypeError(
                f"lengths must have an integer dtype, got {lengths.dtype}; pass the length of "
                f"each sequence as integers, for example xp.astype(lengths, xp.int64)"
            )
        if tuple(lengths.shape) != (batch,):
            raise ValueError(
                f"lengths must have shape ({batch},), one length per sequence of the batch, "
                f"got shape {shape_str(tuple(lengths.shape))}"
            )
        steps = xp.arange(time, dtype=lengths.dtype, device=where)
        batch_index = xp.arange(batch, dtype=lengths.dtype, device=where)
    dtype = xp.result_type(*(v.dtype for v in floats.values()))
    scale = None
    if mode in ("GRU", "LSTM"):
        # sigmoid(a) = 0.5 * tanh(a / 2) + 0.5: the gate columns that feed a
        # sigmoid are halved once, so each step needs one tanh for them.
        sigmoids = 2 if mode == "GRU" else 3
        halves = xp.full((sigmoids * hidden,), 0.5, dtype=dtype, device=where)
        ones = xp.ones((hidden,), dtype=dtype, device=where)
        scale = xp.concat([halves, ones])
    constants = RecurrentConstants(
        mode=mode,
        hidden=hidden,
        layers=layers,
        directions=directions,
        time=time,
        batch=batch,
        features=features,
        batch_first=batch_first,
        steps=steps,
        batch_index=batch_index,
        scale=scale,
        zero=xp.zeros((1,), dtype=dtype, device=where),
    )
    return Checked(xp=xp, dtype=dtype, constants=constants)


def check_lengths_values(lengths: Array, time: int) -> None:
    """Raise ``ValueError`` unless ``1 <= length <= time`` for every sequence.

    Eager arrays only: reading a lazy array's values (JAX under ``jit``,
    Dask) would compute or break the graph, so those go unchecked (a length
    out of range then masks by the rule ``step < length``).
    """
    if is_lazy(lengths):
        return
    xp = array_namespace(lengths=lengths)
    if bool(xp.any((lengths < 1) | (lengths > time))):
        low, high = int(xp.min(lengths)), int(xp.max(lengths))
        raise ValueError(
            f"lengths must lie in [1, {time}] (1 to the number of time steps of x), got "
            f"values from {low} to {high}; drop empty sequences from the batch, or pad x "
            f"to the longest sequence"
        )


def check_recurrent_backward(
    d_output: Array | None,
    d_h_n: Array | None,
    d_c_n: Array | None,
    output: Array,
    h_n: Array,
    *,
    forward: Checked,
) -> Checked:
    """Check the gradients given to a recurrent backward pass against its forward's outputs.

    Raises
    ------
    TypeError
        For a gradient that is no real floating array of the forward's library.
    ValueError
        For a gradient on another device or of another shape than its output.
    """
    named = {"d_output": d_output, "d_h_n": d_h_n, "d_c_n": d_c_n}
    for name, value in named.items():
        if value is not None and (message := _describe(name, value)):
            raise TypeError(message)
    given = {k: v for k, v in named.items() if v is not None}
    xp = forward.xp
    if given:
        xp = array_namespace(**given, output=output)
        check_real_floating(xp, "the recurrent backward pass", **given)
        check_same_device(output=output, **given)
    for name, value, like in (
        ("d_output", d_output, output),
        ("d_h_n", d_h_n, h_n),
        ("d_c_n", d_c_n, h_n),
    ):
        if value is not None and tuple(value.shape) != tuple(like.shape):
            what = "output" if name == "d_output" else name[2:]
            raise ValueError(
                f"{name} must have the shape of {what}, {shape_str(tuple(like.shape))}, got "
                f"{shape_str(tuple(value.shape))}"
            )
    return Checked(xp=xp, dtype=forward.dtype, constants=forward.constants)


# -- the cells: one direction of one layer ------------------------------------


class _Mask(NamedTuple):
    """Where the steps are valid, ``(T, B, 1)``: as booleans and in the compute dtype."""

    valid: Array
    weight: Array


def _project(xp: Namespace, x: Array, w: Array, bias: Array | None) -> Array:
    """Return ``x @ w.T + bias`` for every step at once: (T, B, F) to (T, B, G*H)."""
    time, _, features = x.shape
    y = xp.reshape(x, (-1, features)) @ w.T
    if bias is not None:
        y = y + bias
    return xp.reshape(y, (time, -1, w.shape[0]))


def _transposed(xp: Namespace, w: Array) -> Array:
    """Return ``w.T`` laid out contiguously: NumPy multiplies by a strided transpose 3x slower."""
    return xp.reshape(w.T, (w.shape[1], w.shape[0]), copy=True)


def _outputs(xp: Namespace, states: list[Array], mask: _Mask | None) -> tuple[Array, Array]:
    """Return the outputs (T, B, H), zero past each length, and every state (T + 1, B, H)."""
    every = xp.stack(states, axis=0)
    out = every[1:, ...]
    return (out if mask is None else out * mask.weight), every


def _gru_forward(
    xp: Namespace,
    c: RecurrentConstants,
    x: Array,
    weights: Weights,
    h0: Array,
    mask: _Mask | None,
    keep: bool,
) -> tuple[Array, Array, Any]:
    w_ih, w_hh, b_ih, b_hh = weights
    hidden = c.hidden
    two = 2 * hidden
    # r and z: b_hr and b_hz join the input projection, and their columns are
    # halved so that one tanh gives both sigmoids, sigmoid(a) = (1 + tanh(a/2)) / 2.
    # n: b_hn stays inside the reset product. Separate products keep each
    # step's operands contiguous.
    b_rz = b_n = b_hn = None
    if b_ih is not None:
        b_rz, b_n = b_ih[:two], b_ih[two:]
    if b_hh is not None:
        b_rz = b_hh[:two] if b_rz is None else b_rz + b_hh[:two]
        b_hn = b_hh[two:]
    gx_rz = _project(xp, x, w_ih[:two, ...] * 0.5, None if b_rz is None else b_rz * 0.5)
    gx_n = _project(xp, x, w_ih[two:, ...], b_n)
    w_rz = _transposed(xp, w_hh[:two, ...] * 0.5)
    w_n = _transposed(xp, w_hh[two:, ...])
    h = h0
    states, gates, news, hidden_n, diffs = [h0], [], [], [], []
    for t in range(c.time):
        rz = xp.tanh(gx_rz[t, ...] + h @ w_rz) * 0.5 + 0.5
        ghn = h @ w_n
        if b_hn is not None:
            ghn = ghn + b_hn
        n = xp.tanh(gx_n[t, ...] + rz[:, :hidden] * ghn)
        diff = h - n
        new = n + rz[:, hidden:] * diff
        h = new if mask is None else xp.where(mask.valid[t, ...], new, h)
        states.append(h)
        if keep:
            gates.append(rz)
            news.append(n)
            hidden_n.append(ghn)
            diffs.append(diff)
    output, every = _outputs(xp, states, mask)
    saved = (every, gates, news, hidden_n, diffs) if keep else None
    return output, h, saved


def _gru_backward(
    xp: Namespace,
    c: RecurrentConstants,
    x: Array,
    weights: Weights,
    saved: Any,
    mask: _Mask | None,
    d_out: Array | None,
    dh: Array,
    input_grad: bool,
) -> tuple[Array | None, Array, list[Array | None]]:
    w_hh = weights[1]
    every, gates, news, hidden_n, diffs = saved
    hidden = c.hidden
    if mask is not None and d_out is not None:
        d_out = d_out * mask.weight
    # Every factor is computed step by step, from the small arrays the
    # forward kept: arrays of every step at once would cost NumPy fresh
    # pages for each (docs/recurrent.md gives the derivation).
    grads = _Accumulator(xp, x, every, weights, input_grad)
    for t in range(c.time - 1, -1, -1):
        if d_out is not None:
            dh = dh + d_out[t, ...]
        rz, n = gates[t], news[t]
        # A padded step passes dh through unchanged and takes no gradient.
        live = dh if mask is None else dh * mask.weight[t, ...]
        through = live * rz[:, hidden:]
        d_an = (live - through) * (1 - n * n)
        d_ghn = d_an * rz[:, :hidden]
        d_rz = xp.concat([d_an * hidden_n[t], live * diffs[t]], axis=1) * (rz * (1 - rz))
        dgh = xp.concat([d_rz, d_ghn], axis=1)
        dgx = xp.concat([d_rz, d_an], axis=1)
        grads.add(t, dgx, dgh)
        back = through + dgh @ w_hh
        dh = back if mask is None else back + (dh - live)
    return grads.result(dh)


class _Accumulator:
    """The gradients of one direction, added up step by step from each step's gate gradients.

    No array of every step is built: on NumPy, one would cost fresh pages at
    every call, more than the small products per step.
    """

    def __init__(
        self, xp: Namespace, x: Array, every: Array, weights: Weights, input_grad: bool
    ) -> None:
        self.xp, self.x, self.every, self.weights = xp, x, every, weights
        self.input_grad = input_grad
        self.sums: list[Array | None] | None = None
        self.dx: list[Array] = []

    def add(self, t: int, dgx: Array, dgh: Array) -> None:
        """Add step ``t``'s share, from its gate gradients (``dgh`` may be ``dgx``)."""
        xp = self.xp
        w_ih, _, b_ih, b_hh = self.weights
        shares = [dgx.T @ self.x[t, ...], dgh.T @ self.every[t, ...]]
        # Each bias its own array, even where the two gradients are equal.
        shares.append(None if b_ih is None else xp.sum(dgx, axis=0))
        shares.append(None if b_hh is None else xp.sum(dgh, axis=0))
        if self.sums is None:
            self.sums = shares
        else:
            self.sums = [
                None if total is None else total + share
                for total, share in zip(self.sums, shares, strict=True)
            ]
        if self.input_grad:
            self.dx.append(dgx @ w_ih)

    def result(self, dh0: Array) -> tuple[Array | None, Array, list[Array | None]]:
        """Return ``(dx, dh0, [d_weight_ih, d_weight_hh, d_bias_ih, d_bias_hh])``."""
        dx = None
        if self.input_grad:
            self.dx.reverse()
            dx = self.xp.stack(self.dx, axis=0)
        assert self.sums is not None
        return dx, dh0, self.sums


def _rnn_forward(
    xp: Namespace,
    c: RecurrentConstants,
    x: Array,
    weights: Weights,
    h0: Array,
    mask: _Mask | None,
    keep: bool,
) -> tuple[Array, Array, Any]:
    w_ih, w_hh, b_ih, b_hh = weights
    bias = b_ih if b_hh is None else (b_hh if b_ih is None else b_ih + b_hh)
    gx = _project(xp, x, w_ih, bias)
    w_t = _transposed(xp, w_hh)
    relu = c.mode == "RNN_RELU"
    h = h0
    states = [h0]
    for t in range(c.time):
        a = gx[t, ...] + h @ w_t
        new = xp.maximum(a, c.zero) if relu else xp.tanh(a)
        h = new if mask is None else xp.where(mask.valid[t, ...], new, h)
        states.append(h)
    output, every = _outputs(xp, states, mask)
    return output, h, (every if keep else None)


def _rnn_backward(
    xp: Namespace,
    c: RecurrentConstants,
    x: Array,
    weights: Weights,
    saved: Any,
    mask: _Mask | None,
    d_out: Array | None,
    dh: Array,
    input_grad: bool,
) -> tuple[Array | None, Array, list[Array | None]]:
    w_hh = weights[1]
    every = saved
    after = every[1:, ...]
    relu = c.mode == "RNN_RELU"
    factor = xp.astype(after > 0, after.dtype) if relu else 1 - after * after
    through = None
    if mask is not None:
        factor = factor * mask.weight
        through = 1 - mask.weight
        if d_out is not None:
            d_out = d_out * mask.weight
    grads = _Accumulator(xp, x, every, weights, input_grad)
    for t in range(c.time - 1, -1, -1):
        if d_out is not None:
            dh = dh + d_out[t, ...]
        da = dh * factor[t, ...]
        grads.add(t, da, da)
        back = da @ w_hh
        dh = back if through is None else back + dh * through[t, ...]
    return grads.result(dh)


def _lstm_internal(xp: Namespace, a: Array, hidden: int) -> Array:
    """Reorder PyTorch's gate blocks ``i, f, g, o`` to ``i, f, o, g`` along the first axis."""
    return xp.concat([a[: 2 * hidden, ...], a[3 * hidden :, ...], a[2 * hidden : 3 * hidden, ...]])


def _lstm_forward(
    xp: Namespace,
    c: RecurrentConstants,
    x: Array,
    weights: Weights,
    state: tuple[Array, Array],
    mask: _Mask | None,
    keep: bool,
) -> tuple[Array, tuple[Array, Array], Any]:
    w_ih, w_hh, b_ih, b_hh = weights
    hidden = c.hidden
    three = 3 * hidden
    scale = c.scale
    bias = b_ih if b_hh is None else (b_hh if b_ih is None else b_ih + b_hh)
    # The sigmoid gates (i, f, o) first and halved, the tanh gate g last:
    # one tanh per step serves all four.
    w_x = _lstm_internal(xp, w_ih, hidden) * scale[:, None]
    b_x = None if bias is None else _lstm_internal(xp, bias, hidden) * scale
    gx = _project(xp, x, w_x, b_x)
    w_t = _transposed(xp, _lstm_internal(xp, w_hh, hidden) * scale[:, None])
    h, cell = state
    states, cells, sigmoids, candidates, tanh_cells = [h], [cell], [], [], []
    for t in range(c.time):
        s = xp.tanh(gx[t, ...] + h @ w_t)
        sig = s[:, :three] * 0.5 + 0.5
        g = s[:, three:]
        new_cell = sig[:, hidden : 2 * hidden] * cell + sig[:, :hidden] * g
        tc = xp.tanh(new_cell)
        new = sig[:, 2 * hidden :] * tc
        if mask is None:
            h, cell = new, new_cell
        else:
            h = xp.where(mask.valid[t, ...], new, h)
            cell = xp.where(mask.valid[t, ...], new_cell, cell)
        states.append(h)
        cells.append(cell)
        if keep:
            sigmoids.append(sig)
            candidates.append(g)
            tanh_cells.append(tc)
    output, every = _outputs(xp, states, mask)
    saved = (every, cells, sigmoids, candidates, tanh_cells) if keep else None
    return output, (h, cell), saved


def _lstm_backward(
    xp: Namespace,
    c: RecurrentConstants,
    x: Array,
    weights: Weights,
    saved: Any,
    mask: _Mask | None,
    d_out: Array | None,
    dstate: tuple[Array, Array],
    input_grad: bool,
) -> tuple[Array | None, tuple[Array, Array], list[Array | None]]:
    w_hh = weights[1]
    hidden, time = c.hidden, c.time
    every, cells, sigmoids, candidates, tanh_cells = saved
    sig = xp.stack(sigmoids, axis=0)
    i, f, o = sig[..., :hidden], sig[..., hidden : 2 * hidden], sig[..., 2 * hidden :]
    g = xp.stack(candidates, axis=0)
    tc = xp.stack(tanh_cells, axis=0)
    previous_cell = xp.stack(cells[:-1], axis=0)
    # dc_total = dc + dh * q; the pre-activations, in PyTorch's order i, f, g, o:
    # (dc_total * k_i, dc_total * k_f, dc_total * k_g, dh * k_o).
    q = o * (1 - tc * tc)
    k_i = g * i * (1 - i)
    k_f = previous_cell * f * (1 - f)
    k_g = i * (1 - g * g)
    k_o = tc * o * (1 - o)
    keep_cell = f
    through = None
    if mask is not None:
        q, k_i, k_f, k_g, k_o = (k * mask.weight for k in (q, k_i, k_f, k_g, k_o))
        keep_cell = 1 - mask.weight * (1 - f)
        through = 1 - mask.weight
        if d_out is not None:
            d_out = d_out * mask.weight
    factors = xp.stack([k_i, k_f, k_g, k_o], axis=2)
    four = 4 * hidden
    dh, dc = dstate
    grads = _Accumulator(xp, x, every, weights, input_grad)
    for t in range(time - 1, -1, -1):
        if d_out is not None:
            dh = dh + d_out[t, ...]
        dct = dc + dh * q[t, ...]
        da = xp.reshape(xp.stack([dct, dct, dct, dh], axis=1) * factors[t, ...], (-1, four))
        grads.add(t, da, da)
        dc = dct * keep_cell[t, ...]
        back = da @ w_hh
        dh = back if through is None else back + dh * through[t, ...]
    dx, _, gradients = grads.result(dh)
    return dx, (dh, dc), gradients


#: The forward and backward of each cell, by mode.
_CELLS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "RNN_TANH": (_rnn_forward, _rnn_backward),
    "RNN_RELU": (_rnn_forward, _rnn_backward),
    "GRU": (_gru_forward, _gru_backward),
    "LSTM": (_lstm_forward, _lstm_backward),
}


# -- the stack: layers, directions, lengths -------------------------------------


class RecurrentSaved(NamedTuple):
    """What :func:`recurrent_kernel` keeps for :func:`recurrent_backward_kernel`."""

    #: The input of each layer (time-major, in the compute dtype).
    inputs: list[Array]
    #: The cells' saved values, by layer then direction.
    cells: list[list[Any]]
    #: The weights in the compute dtype, by layer then direction.
    weights: list[list[Weights]]
    #: The dtypes of x, h0, c0 and of each weight, for the gradients.
    dtypes: tuple[Any, ...]
    mask: _Mask | None
    #: Flat indices that reverse each sequence within its length (None: flip).
    reverse: Array | None
    #: The dropout mask applied to each layer's output but the last (None where none).
    dropout: list[Array | None]


def _zero_state(xp: Namespace, c: RecurrentConstants, like: Array) -> Array:
    """Return zeros (batch, hidden) in the dtype and on the device of ``like``, (T, B, F)."""
    if not is_unknown(c.batch):
        return xp.zeros((c.batch, c.hidden), dtype=like.dtype, device=device(like))
    # A batch of unknown size (a traced export): zeros broadcast from the input's rows.
    column = xp.zeros_like(like[0, :, :1])
    return column + xp.zeros((1, c.hidden), dtype=like.dtype, device=device(like))


def _reverse(xp: Namespace, a: Array, index: Array | None) -> Array:
    """Reverse each sequence of ``a`` (T, B, F) in time, within its length if ``index``."""
    if index is None:
        return xp.flip(a, axis=0)
    time, _, features = a.shape
    flat = xp.take(xp.reshape(a, (-1, features)), index, axis=0)
    return xp.reshape(flat, (time, -1, features))


def recurrent_kernel(
    checked: Checked,
    x: Array,
    weights: Sequence[Weights],
    h0: Array | None,
    c0: Array | None,
    lengths: Array | None,
    dropout: Sequence[Array | None] = (),
    *,
    keep: bool = True,
) -> tuple[Array, Array, Array | None, RecurrentSaved | None]:
    """Run a multi-layer, optionally bidirectional recurrent layer over ``x``.

    Parameters
    ----------
    checked : Checked
        What :func:`check_recurrent` returned for these inputs.
    x : array of shape (time, batch, features), or (batch, time, features)
        The sequences; ``batch_first`` (in ``checked``) says which.
    weights : sequence of ``(weight_ih, weight_hh, bias_ih, bias_hh)``
        One per layer and direction, layer by layer, the forward direction
        first, in PyTorch's layouts and gate orders.
    h0, c0 : array of shape (layers * directions, batch, hidden), optional
        The initial hidden state (and the LSTM's initial cell state); zeros
        when None.
    lengths : integer array of shape (batch,), optional
        The number of valid steps of each sequence, in ``[1, time]``.
    dropout : sequence of arrays or None
        The dropout mask (0 or ``1/(1-p)``) to multiply each layer's output
        by before the next layer, ``(time, batch, directions * hidden)``
        time-major, one per layer but the last; empty for none.
    keep : bool, default True
        Keep what the backward pass needs (False: a forward pass alone).

    Returns
    -------
    output : array
        ``(time, batch, directions * hidden)`` (batch first if asked): the
        last layer's hidden states, zero past each sequence's length.
    h_n : array of shape (layers * directions, batch, hidden)
        The final hidden states, each at its sequence's last valid step.
    c_n : array or None
        The LSTM's final cell states, shaped like ``h_n``; None otherwise.
    saved : RecurrentSaved or None
        For :func:`recurrent_backward_kernel` (None unless ``keep``).
    """
    xp, dtype = checked.xp, checked.dtype
    c: RecurrentConstants = checked.constants
    dtypes = (
        x.dtype,
        None if h0 is None else h0.dtype,
        None if c0 is None else c0.dtype,
        *(None if w is None else w.dtype for ws in weights for w in ws),
    )
    if c.batch_first:
        x = xp.permute_dims(x, (1, 0, 2))
    x = as_dtype(xp, x, dtype)
    cast: list[Weights] = [
        (
            as_dtype(xp, w_ih, dtype),
            as_dtype(xp, w_hh, dtype),
            None if b_ih is None else as_dtype(xp, b_ih, dtype),
            None if b_hh is None else as_dtype(xp, b_hh, dtype),
        )
        for w_ih, w_hh, b_ih, b_hh in weights
    ]
    mask = reverse = None
    if lengths is not None:
        valid = (c.steps[:, None] < lengths[None, :])[..., None]
        mask = _Mask(valid, xp.astype(valid, dtype))
        if c.directions == 2:
            steps = c.steps[:, None]
            within = xp.where(steps < lengths[None, :], lengths[None, :] - 1 - steps, steps)
            reverse = xp.reshape(within * c.batch + c.batch_index[None, :], (c.time * c.batch,))
    lstm = c.mode == "LSTM"
    forward_cell: Callable[..., Any] = _CELLS[c.mode][0]
    inputs, cells, finals, final_cells, by_layer = [], [], [], [], []
    layer_input = x
    output = x
    for layer in range(c.layers):
        inputs.append(layer_input)
        outs, saved_cells, layer_weights = [], [], []
        for direction in range(c.directions):
            index = layer * c.directions + direction
            ws = cast[index]
            layer_weights.append(ws)
            h = _zero_state(xp, c, x) if h0 is None else as_dtype(xp, h0[index, ...], dtype)
            start: Any = h
            if lstm:
                cell = _zero_state(xp, c, x) if c0 is None else as_dtype(xp, c0[index, ...], dtype)
                start = (h, cell)
            seq = layer_input if direction == 0 else _reverse(xp, layer_input, reverse)
            out, last, saved = forward_cell(xp, c, seq, ws, start, mask, keep)
            if direction == 1:
                out = _reverse(xp, out, reverse)
            outs.append(out)
            saved_cells.append(saved)
            if lstm:
                finals.append(last[0])
                final_cells.append(last[1])
            else:
                finals.append(last)
        cells.append(saved_cells)
        by_layer.append(layer_weights)
        output = outs[0] if c.directions == 1 else xp.concat(outs, axis=-1)
        if layer < c.layers - 1:
            drop = dropout[layer] if layer < len(dropout) else None
            layer_input = output if drop is None else output * drop
    h_n = xp.stack(finals, axis=0)
    c_n = xp.stack(final_cells, axis=0) if lstm else None
    if c.batch_first:
        output = xp.permute_dims(output, (1, 0, 2))
    saved_all = None
    if keep:
        drops = [dropout[k] if k < len(dropout) else None for k in range(c.layers - 1)]
        saved_all = RecurrentSaved(inputs, cells, by_layer, dtypes, mask, reverse, drops)
    return output, h_n, c_n, saved_all


def recurrent_backward_kernel(
    checked: Checked,
    saved: RecurrentSaved,
    d_output: Array | None,
    d_h_n: Array | None,
    d_c_n: Array | None,
    *,
    input_grad: bool = True,
) -> tuple[Array | None, Array, Array | None, list[Array | None]]:
    """Back-propagate through :func:`recurrent_kernel`.

    Parameters
    ----------
    checked : Checked
        What :func:`check_recurrent_backward` returned (the forward's constants).
    saved : RecurrentSaved
        What the forward pass kept.
    d_output, d_h_n, d_c_n : array or None
        The gradients of ``output``, ``h_n`` and ``c_n`` (None: zero).
    input_grad : bool, default True
        Whether to compute the gradient of ``x``.

    Returns
    -------
    dx : array or None
        Shaped like ``x``, in its dtype; None without ``input_grad``.
    dh0 : array of shape (layers * directions, batch, hidden)
        The gradient of the initial hidden state (in the compute dtype, or
        ``h0``'s where one was given).
    dc0 : array or None
        The LSTM's gradient of the initial cell state.
    grads : list of arrays or None
        The gradients of the weights, flattened in the order of ``weights``
        (None for an absent bias), each in its weight's dtype.
    """
    xp, dtype = checked.xp, checked.dtype
    c: RecurrentConstants = checked.constants
    where = device(saved.inputs[0])
    lstm = c.mode == "LSTM"
    backward_cell: Callable[..., Any] = _CELLS[c.mode][1]
    if d_output is not None:
        if c.batch_first:
            d_output = xp.permute_dims(d_output, (1, 0, 2))
        d_output = as_dtype(xp, d_output, dtype)
    count = c.layers * c.directions
    dh0: list[Array] = [xp.zeros((0,), device=where)] * count
    dc0: list[Array] = list(dh0)
    grads: list[list[Array | None]] = [[] for _ in range(count)]
    d_layer = d_output
    dx = None
    for layer in range(c.layers - 1, -1, -1):
        layer_input = saved.inputs[layer]
        need_dx = layer > 0 or input_grad
        d_in = None
        for direction in range(c.directions):
            index = layer * c.directions + direction
            d_out = None
            if d_layer is not None:
                d_out = d_layer[..., direction * c.hidden : (direction + 1) * c.hidden]
                if direction == 1:
                    d_out = _reverse(xp, d_out, saved.reverse)
            dh = (
                _zero_state(xp, c, layer_input)
                if d_h_n is None
                else as_dtype(xp, d_h_n[index, ...], dtype)
            )
            start: Any = dh
            if lstm:
                dc = (
                    _zero_state(xp, c, layer_input)
                    if d_c_n is None
                    else as_dtype(xp, d_c_n[index, ...], dtype)
                )
                start = (dh, dc)
            seq = layer_input if direction == 0 else _reverse(xp, layer_input, saved.reverse)
            d_seq, d_start, g = backward_cell(
                xp,
                c,
                seq,
                saved.weights[layer][direction],
                saved.cells[layer][direction],
                saved.mask,
                d_out,
                start,
                need_dx,
            )
            if lstm:
                dh0[index], dc0[index] = d_start
            else:
                dh0[index] = d_start
            grads[index] = g
            if d_seq is not None:
                if direction == 1:
                    d_seq = _reverse(xp, d_seq, saved.reverse)
                d_in = d_seq if d_in is None else d_in + d_seq
        if layer > 0:
            drop = saved.dropout[layer - 1]
            d_layer = d_in if drop is None or d_in is None else d_in * drop
        else:
            dx = d_in
    x_dtype, h_dtype, c_dtype = saved.dtypes[:3]
    if dx is not None:
        if c.batch_first:
            dx = xp.permute_dims(dx, (1, 0, 2))
        dx = gradient_as(xp, dx, x_dtype)
    d_h0 = xp.stack(dh0, axis=0)
    if h_dtype is not None:
        d_h0 = gradient_as(xp, d_h0, h_dtype)
    d_c0 = None
    if lstm:
        d_c0 = xp.stack(dc0, axis=0)
        if c_dtype is not None:
            d_c0 = gradient_as(xp, d_c0, c_dtype)
    flat: list[Array | None] = []
    weight_dtypes = saved.dtypes[3:]
    for g in grads:
        for grad in g:
            w_dtype = weight_dtypes[len(flat)]
            flat.append(None if grad is None else gradient_as(xp, grad, w_dtype))
    return dx, d_h0, d_c0, flat

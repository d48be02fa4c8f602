"""The models of ``xpnn train``, built on the chosen backend, device and dtype.

A model is a function ``(choice, features, classes, hidden, seed) -> Module``
whose input is ``features`` wide and whose output is ``classes`` logits.
The sequence classifiers of the spoken digits (:class:`SequenceClassifier`)
take two inputs, padded sequences and their lengths.

Before a model allocates anything, :func:`check_memory` compares what
training it would take (:func:`training_bytes`) with the memory the machine
has free (:func:`available_memory`), so that ``--hidden 100000000`` is one
line and exit status 2, not an allocation error from deep inside NumPy.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .._compat import Array, array_namespace
from .._compat import device as device_of
from ..init import DRAW_CHUNK
from ..layers import Linear, Module, ReLU, Sequential
from .backends import Choice, SelectionError

__all__ = [
    "ACTIVATION_ROWS",
    "FALLBACK_MEMORY",
    "OPTIMIZER_BUFFERS",
    "ConvClassifier",
    "RecurrentClassifier",
    "SequenceClassifier",
    "TransformerClassifier",
    "available_memory",
    "check_memory",
    "cnn",
    "format_bytes",
    "mlp",
    "sequence_model",
    "sinusoids",
    "training_bytes",
]

#: The memory assumed free where the machine does not say (not Linux, no
#: ``os.sysconf``): 8 GiB, what a laptop that trains this demo has.
FALLBACK_MEMORY = 8 * 2**30

#: Rows in one forward pass at most, by default: ``xpnn.evaluate`` scores the
#: test split 256 rows at a time, more than the default batch of 32.
ACTIVATION_ROWS = 256

#: Buffers per parameter of the hungriest optimizer of ``xpnn train``: Adam
#: and AdamW keep two moments; SGD with momentum one.
OPTIMIZER_BUFFERS = 2


def training_bytes(
    widths: tuple[int, ...],
    itemsize: int,
    *,
    rows: int = ACTIVATION_ROWS,
    optimizer_buffers: int = OPTIMIZER_BUFFERS,
) -> int:
    """Estimate the bytes that training an MLP of these layer widths takes.

    Parameters
    ----------
    widths : tuple of int
        The widths from the input to the output, such as ``(64, 32, 10)``
        for Linear(64, 32), an activation, and Linear(32, 10).
    itemsize : int
        Bytes per value of the run's dtype (4 for float32).
    rows : int, default 256
        The most rows of one forward pass.
    optimizer_buffers : int, default 2
        Arrays the optimizer keeps per parameter.

    Returns
    -------
    int
        The parameters, their gradients and the optimizer's buffers (for
        Adam, four times the parameters); the activations of ``rows`` rows
        and their gradients; and the float64 draws the initializer holds
        at once (:data:`xpnn.init.DRAW_CHUNK` of them at most).

    Examples
    --------
    >>> training_bytes((64, 32, 10), 4, rows=1, optimizer_buffers=0)
    36472
    """
    weights = [a * b for a, b in itertools.pairwise(widths)]
    parameters = sum(weights) + sum(widths[1:])
    state = parameters * (2 + optimizer_buffers)
    # Each hidden layer keeps its output and the activation's, each of them
    # with a gradient; the input and the logits once each.
    activations = rows * (widths[0] + widths[-1] + 4 * sum(widths[1:-1]))
    host_draw = 8 * min(max(weights, default=0), DRAW_CHUNK)
    return (state + activations) * itemsize + host_draw


def available_memory() -> int | None:
    """Return the bytes of memory free for a new allocation, or None if unknown.

    Linux's ``MemAvailable`` (free memory plus what the kernel can reclaim,
    such as the page cache) where there is one, otherwise the free physical
    pages of ``os.sysconf``.

    Returns
    -------
    int or None
        The bytes, or None when neither source answers.
    """
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        # No sysconf on Windows; no such names on some systems.
        return None


def format_bytes(count: float) -> str:
    """Return ``count`` bytes in binary units, as ``47.7 GiB``.

    Examples
    --------
    >>> format_bytes(51_200_000_000), format_bytes(512)
    ('47.7 GiB', '512 B')
    """
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def check_memory(
    widths: tuple[int, ...],
    dtype_name: str,
    *,
    available: int | None = None,
    rows: int = ACTIVATION_ROWS,
    optimizer_buffers: int = OPTIMIZER_BUFFERS,
) -> int:
    """Refuse a model whose training would not fit in the free memory.

    Parameters
    ----------
    widths : tuple of int
        The widths of the MLP, from the input to the output.
    dtype_name : str
        The run's dtype, such as ``"float32"``.
    available : int, optional
        The bytes free; by default :func:`available_memory`, or
        :data:`FALLBACK_MEMORY` where the machine does not say.
    rows, optimizer_buffers : int
        As in :func:`training_bytes`.

    Returns
    -------
    int
        The estimate, in bytes, when it fits.

    Raises
    ------
    SelectionError
        When the estimate is above ``available``; the message gives both
        and asks for a smaller model.

    Notes
    -----
    The free memory is the host's: the initial values are drawn on the host
    whatever the device. A GPU's own memory is left to its library.
    """
    needed = training_bytes(
        widths, np.dtype(dtype_name).itemsize, rows=rows, optimizer_buffers=optimizer_buffers
    )
    if available is None:
        available = available_memory()
    source = "available"
    if available is None:
        available, source = FALLBACK_MEMORY, "assumed free (the machine does not say)"
    if needed > available:
        parameters = sum(a * b + b for a, b in itertools.pairwise(widths))
        raise SelectionError(
            f"a model of widths {' -> '.join(map(str, widths))} has {parameters:,} "
            f"{dtype_name} parameters; training it needs about {format_bytes(needed)}, more "
            f"than the {format_bytes(available)} of memory {source}; choose a smaller --hidden"
        )
    return needed


def mlp(choice: Choice, features: int, classes: int, hidden: int, seed: int) -> Sequential:
    """Return Linear-ReLU-Linear with ``hidden`` units, on ``choice``'s backend.

    Parameters
    ----------
    choice : Choice
        The namespace, device and dtype of the parameters.
    features, classes : int
        The widths of the input and of the output (the logits).
    hidden : int
        The width of the hidden layer.
    seed : int
        Seed of the first layer's initialization; the second takes
        ``seed + 1``.

    Returns
    -------
    Sequential
        The model, in training mode.

    Raises
    ------
    SelectionError
        If training the model would not fit in memory
        (:func:`check_memory`), before anything is allocated.

    Examples
    --------
    >>> from xpnn.cli.backends import choose
    >>> model = mlp(choose("numpy"), 64, 10, hidden=8, seed=0)
    >>> [(name, p.shape) for name, p in model.named_parameters()][:2]
    [('0.weight', (64, 8)), ('0.bias', (8,))]
    """
    check_memory((features, hidden, classes), choice.dtype_name)
    where = {"xp": choice.xp, "device": choice.device, "dtype": choice.dtype}
    return Sequential(
        Linear(features, hidden, seed=seed, **where),
        ReLU(),
        Linear(hidden, classes, seed=seed + 1, **where),
    )


#: Channels of the two convolution blocks of :func:`cnn`.
CNN_CHANNELS = (16, 32)


def cnn(
    choice: Choice,
    image_shape: tuple[int, ...],
    classes: int,
    *,
    seed: int,
    batch_norm: bool = False,
) -> Sequential:
    """Return a LeNet-style network for images given as flattened rows.

    ``Unflatten`` to ``image_shape``, then two blocks of a 5x5 convolution
    (padding 2, :data:`CNN_CHANNELS` channels), [batch norm], ReLU and 2x2
    max pooling, then ``Flatten`` and one ``Linear`` to the logits.

    Parameters
    ----------
    choice : Choice
        The namespace, device and dtype of the parameters.
    image_shape : tuple of int
        ``(channels, height, width)`` of one image.
    classes : int
        The number of logits.
    seed : int
        Seed of the first layer's initialization; each later layer with
        parameters takes the next seed.
    batch_norm : bool, default False
        Put a ``BatchNorm2d`` after each convolution (which then has no bias).

    Returns
    -------
    Sequential
        The model, in training mode.
    """
    # Imported here: the convolution layers are needed by this model only.
    from ..layers import BatchNorm2d, Conv2d, Flatten, MaxPool2d, Unflatten

    where = {"xp": choice.xp, "device": choice.device, "dtype": choice.dtype}
    channels, height, width = image_shape
    seeds = itertools.count(seed)
    layers: list[Module] = [Unflatten(1, tuple(image_shape))]
    before = channels
    for after in CNN_CHANNELS:
        layers.append(
            Conv2d(before, after, 5, padding=2, bias=not batch_norm, seed=next(seeds), **where)
        )
        if batch_norm:
            layers.append(BatchNorm2d(after, **where))
        layers += [ReLU(), MaxPool2d(2)]
        before = after
        height, width = height // 2, width // 2
    layers += [
        Flatten(),
        Linear(before * height * width, classes, seed=next(seeds), **where),
    ]
    return Sequential(*layers)


def _valid_steps(lengths: Array, steps: int, dtype: Any) -> Array:
    """Return ``(batch, steps)`` of ``dtype``: 1 at each sequence's valid steps, 0 past its end."""
    xp = array_namespace(lengths=lengths)
    positions = xp.arange(steps, device=device_of(lengths))
    return xp.astype(positions[None, :] < lengths[:, None], dtype)


class SequenceClassifier(Module):
    """A classifier of padded sequences: ``forward(x, lengths) -> logits``.

    The input is ``x`` of shape ``(batch, steps, features)``, each sequence
    followed by padding up to ``steps``, and ``lengths`` ``(batch,)``, the
    valid steps of each; the output is ``(batch, classes)`` logits. What
    comes past a sequence's length never changes its logits, so a batch may
    be padded to its own longest sequence (``xpnn.fit``'s
    ``lengths_input``).

    The layers are held in :attr:`body`, a :class:`~xpnn.Sequential` in
    the order :meth:`forward` uses them, and the parameters are named as
    the body names them (``"0.weight_ih_l0"``): a checkpoint of the body,
    which holds xpnn layers only, is a checkpoint of the classifier, and
    ``xpnn train --resume`` puts its parameters back by name. The glue
    between the layers (which state is kept, the masked mean) is the
    subclass's :meth:`forward`, which a checkpoint does not hold.

    Parameters
    ----------
    body : Sequential
        The layers.
    """

    def __init__(self, body: Sequential) -> None:
        super().__init__()
        self.body = body

    def children(self) -> list[Module]:
        """Return the body's layers, in order."""
        return self.body.children()

    def named_children(self) -> list[tuple[str, Module]]:
        """Return the body's layers with its names (``"0"``, ``"1"``, ...)."""
        return self.body.named_children()

    def forward(  # type: ignore[override]
        self, x: Array, lengths: Array, *, input_grad: bool = True
    ) -> tuple[Array, Callable[[Array], Array | None]]:
        """Return the logits and ``backward(dlogits) -> dx`` (None if ``input_grad`` is False)."""
        raise NotImplementedError

    def __call__(self, x: Array, lengths: Array) -> Array:  # type: ignore[override]
        """Return the logits alone."""
        logits, _ = self.forward(x, lengths, input_grad=False)
        return logits

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.body!r})"


class ConvClassifier(SequenceClassifier):
    """1-D convolutions over time, a mean over the valid steps, then ``Linear``.

    The body is ``Conv1d, ReLU, Conv1d, ReLU, ..., Linear``: each block a
    ``'same'`` convolution over time and a ReLU whose output is zeroed past
    each sequence's length, so that the next block sees the zeros a
    sequence of its own length would have; then the mean of the last
    block's channels over the valid steps, and the logits.
    """

    def forward(  # type: ignore[override]
        self, x: Array, lengths: Array, *, input_grad: bool = True
    ) -> tuple[Array, Callable[[Array], Array | None]]:
        """Return the logits ``(batch, classes)`` and their backward closure."""
        xp = array_namespace(x=x, lengths=lengths)
        layers = self.body.layers
        # (batch, steps) of ones at the valid steps, then the mean's weights.
        valid = _valid_steps(lengths, x.shape[1], x.dtype)[:, None, :]
        weights = valid / xp.sum(valid, axis=2, keepdims=True)
        h = xp.permute_dims(x, (0, 2, 1))  # (batch, features, steps): Conv1d's layout
        backwards = []
        for index, layer in enumerate(layers[:-1]):
            h, back = layer.forward(h, input_grad=input_grad or index > 0)
            backwards.append(back)
            if index % 2:  # after each ReLU: nothing past a sequence's end
                h = h * valid
        pooled = xp.sum(h * weights, axis=2)
        logits, head_backward = layers[-1].forward(pooled)

        def backward(dlogits: Array) -> Array | None:
            dpooled = head_backward(dlogits)
            assert dpooled is not None  # the head's input gradient was asked for
            dh = dpooled[:, :, None] * weights
            for index in reversed(range(len(backwards))):
                if index % 2:  # the zeroed steps pass no gradient back
                    dh = dh * valid
                dh = backwards[index](dh)
            return None if dh is None else xp.permute_dims(dh, (0, 2, 1))

        return logits, backward


class RecurrentClassifier(SequenceClassifier):
    """A recurrent layer's state at each sequence's last valid step, then ``Linear``.

    The body is ``GRU, Linear`` (or ``LSTM, Linear``), the recurrent layer
    batch first; given the lengths, it stops each sequence at its own end
    (as ``torch.nn.utils.rnn.pack_padded_sequence`` does), and its last
    layer's final state (both directions', concatenated, for a
    bidirectional one) gives the logits.
    """

    def forward(  # type: ignore[override]
        self, x: Array, lengths: Array, *, input_grad: bool = True
    ) -> tuple[Array, Callable[[Array], Array | None]]:
        """Return the logits ``(batch, classes)`` and their backward closure."""
        xp = array_namespace(x=x, lengths=lengths)
        recurrent, head = self.body.layers
        run: Any = recurrent.forward  # a GRU's or LSTM's, which takes lengths
        (_, state), recurrent_backward = run(x, lengths=lengths, input_grad=input_grad)
        lstm = isinstance(state, tuple)
        h_n = state[0] if lstm else state
        # h_n is (layers * directions, batch, hidden): the last layer's rows.
        directions = 2 if getattr(recurrent, "bidirectional", False) else 1
        last = h_n[h_n.shape[0] - directions :, ...]
        features = xp.concat([last[i] for i in range(directions)], axis=1)
        logits, head_backward = head.forward(features)

        def backward(dlogits: Array) -> Array | None:
            dfeatures = head_backward(dlogits)
            assert dfeatures is not None  # the head's input gradient was asked for
            width = last.shape[2]
            dlast = xp.stack([dfeatures[:, i * width : (i + 1) * width] for i in range(directions)])
            earlier = xp.zeros(
                (h_n.shape[0] - directions, *h_n.shape[1:]), dtype=h_n.dtype, device=device_of(h_n)
            )
            d_h_n = xp.concat([earlier, dlast], axis=0)
            dx, _ = recurrent_backward(None, (d_h_n, None) if lstm else d_h_n)
            return dx

        return logits, backward


def recurrent_classifier(
    kind: str, choice: Choice, features: int, classes: int, hidden: int, *, seed: int
) -> RecurrentClassifier:
    """Return the ``gru`` or ``lstm`` model (``kind`` ``"GRU"`` or ``"LSTM"``): one layer."""
    from ..layers import recurrent

    where = {"xp": choice.xp, "device": choice.device, "dtype": choice.dtype}
    layer = getattr(recurrent, kind)(features, hidden, batch_first=True, seed=seed, **where)
    return RecurrentClassifier(Sequential(layer, Linear(hidden, classes, seed=seed + 1, **where)))


#: The convolution blocks of the ``conv`` model, and their kernel size.
CONV_BLOCKS, CONV_KERNEL = 2, 5


def conv_classifier(
    choice: Choice, features: int, classes: int, hidden: int, *, seed: int
) -> ConvClassifier:
    """Return the ``conv`` model: :data:`CONV_BLOCKS` convolutions of ``hidden`` channels."""
    from ..layers import Conv1d

    where = {"xp": choice.xp, "device": choice.device, "dtype": choice.dtype}
    seeds = itertools.count(seed)
    layers: list[Module] = []
    before = features
    for after in (hidden,) * CONV_BLOCKS:
        layers += [
            Conv1d(before, after, CONV_KERNEL, padding="same", seed=next(seeds), **where),
            ReLU(),
        ]
        before = after
    layers.append(Linear(before, classes, seed=next(seeds), **where))
    return ConvClassifier(Sequential(*layers))


def sinusoids(steps: int, width: int) -> np.ndarray:
    """Return the sinusoidal position encodings of "Attention is all you need", ``(steps, width)``.

    Column ``2i`` is ``sin(t / 10000^(2i / width))`` and column ``2i + 1``
    the cosine of the same, at step ``t``. Fixed numbers, no parameters.

    Examples
    --------
    >>> sinusoids(2, 4).round(3)
    array([[0.   , 1.   , 0.   , 1.   ],
           [0.841, 0.54 , 0.01 , 1.   ]])
    """
    angles = np.arange(steps)[:, None] / 10000.0 ** (np.arange(0, width, 2) / width)
    table = np.zeros((steps, width))
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles[:, : width // 2])
    return table


class TransformerClassifier(SequenceClassifier):
    """A projection, position encodings, a transformer encoder, a masked mean, then ``Linear``.

    The body is ``Linear, TransformerEncoder, Linear``: each step's
    features are projected to the model's width and added to the
    sinusoidal encoding of its position (:func:`sinusoids`, no
    parameters); the encoder attends over the valid steps only (its
    ``src_key_padding_mask``); the mean of its output over the valid steps
    gives the logits.
    """

    def forward(  # type: ignore[override]
        self, x: Array, lengths: Array, *, input_grad: bool = True
    ) -> tuple[Array, Callable[[Array], Array | None]]:
        """Return the logits ``(batch, classes)`` and their backward closure."""
        from ..functional import masked_mean, masked_mean_backward, padding_mask

        xp = array_namespace(x=x, lengths=lengths)
        project, encoder, head = self.body.layers
        steps = x.shape[1]
        h, project_backward = project.forward(x, input_grad=input_grad)
        positions = xp.asarray(sinusoids(steps, h.shape[2]), dtype=h.dtype, device=device_of(h))
        mask = padding_mask(lengths, steps)
        encode: Any = encoder.forward  # a TransformerEncoder's, which takes the mask
        h, encoder_backward = encode(h + positions, src_key_padding_mask=mask)
        pooled = masked_mean(h, mask)
        logits, head_backward = head.forward(pooled)

        def backward(dlogits: Array) -> Array | None:
            dpooled = head_backward(dlogits)
            dh = encoder_backward(masked_mean_backward(dpooled, h, mask))
            return project_backward(dh)

        return logits, backward


#: Heads and layers of the ``transformer`` model; its feed-forward width is
#: twice ``--hidden``, its dropout :data:`TRANSFORMER_DROPOUT`.
TRANSFORMER_HEADS, TRANSFORMER_LAYERS, TRANSFORMER_DROPOUT = 4, 2, 0.1


def transformer_classifier(
    choice: Choice, features: int, classes: int, hidden: int, *, seed: int
) -> TransformerClassifier:
    """Return the ``transformer`` model, of width ``hidden`` (a multiple of 4 heads)."""
    from ..layers.transformer import TransformerEncoder, TransformerEncoderLayer

    if hidden % TRANSFORMER_HEADS:
        raise SelectionError(
            f"--model transformer splits --hidden among {TRANSFORMER_HEADS} heads; got "
            f"{hidden}, choose a multiple of {TRANSFORMER_HEADS}"
        )
    where = {"xp": choice.xp, "device": choice.device, "dtype": choice.dtype}
    layer = TransformerEncoderLayer(
        hidden,
        TRANSFORMER_HEADS,
        2 * hidden,
        dropout=TRANSFORMER_DROPOUT,
        batch_first=True,
        seed=seed + 1,
        **where,
    )
    return TransformerClassifier(
        Sequential(
            Linear(features, hidden, seed=seed, **where),
            TransformerEncoder(layer, TRANSFORMER_LAYERS, seed=seed + 2),
            Linear(hidden, classes, seed=seed + 3, **where),
        )
    )


#: The models of the spoken digits, by ``--model`` name.
SEQUENCE_MODELS: dict[str, Callable[..., SequenceClassifier]] = {
    "gru": functools.partial(recurrent_classifier, "GRU"),
    "lstm": functools.partial(recurrent_classifier, "LSTM"),
    "conv": conv_classifier,
    "transformer": transformer_classifier,
}


def sequence_model(
    name: str, choice: Choice, features: int, classes: int, hidden: int, *, seed: int
) -> SequenceClassifier:
    """Return the sequence classifier called ``name`` (a key of :data:`SEQUENCE_MODELS`).

    Parameters
    ----------
    name : str
        ``"gru"``, ``"lstm"``, ``"conv"`` or ``"transformer"``.
    choice : Choice
        The namespace, device and dtype of the parameters.
    features, classes : int
        The width of one step of the input, and the number of logits.
    hidden : int
        The width inside: a recurrent layer's state, a convolution's
        channels, a transformer's model dimension.
    seed : int
        Seed of the first layer's initialization; each later layer with
        parameters takes the next seed.
    """
    return SEQUENCE_MODELS[name](choice, features, classes, hidden, seed=seed)

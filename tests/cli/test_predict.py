"""xpnn predict: a trained run's class and probability for texts and images."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

import xpnn
from selection import ON_HOST
from xpnn.cli import main, predict, sentiment
from xpnn.cli.backends import choose
from xpnn.cli.models import mlp

pytestmark = ON_HOST  # the command line: one session is enough

DIGITS = {
    "task": "digits",
    "model": "mlp",
    "input": "image",
    "image_shape": [1, 8, 8],
    "classes": [str(digit) for digit in range(10)],
}


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    pytest.importorskip("tokenizers", reason="needs HF tokenizers (pip install 'xpnn[text]')")
    folder = tmp_path_factory.mktemp("text")
    encoder = sentiment.train_encoder(
        ["good day", "bad day", "a car"], vocabulary=10, bigram_buckets=3
    )
    model = sentiment.bag_classifier(choose("numpy"), encoder.size, 3, 4, seed=0)
    record = {"task": "sentiment", "model": "bag", **sentiment.preprocessing(encoder)}
    xpnn.save(model.body, folder / "model.safetensors", task=record)
    return folder, model, encoder


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("image")
    model = mlp(choose("numpy"), 64, 10, hidden=5, seed=0)
    xpnn.save(model, folder / "model.safetensors", task=DIGITS)
    return folder, model


def _softmax(logits):
    exps = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exps / exps.sum(axis=1, keepdims=True)


def test_texts_get_their_class_and_probability_as_json(text_run, capsys):
    folder, model, encoder = text_run
    texts = ["good day", "Bad car!"]
    assert main(["predict", str(folder), *texts, "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    ids, lengths = encoder.encode(texts)
    expected = _softmax(np.asarray(model(ids, lengths), dtype=np.float64))
    assert [line["input"] for line in lines] == texts
    for line, row in zip(lines, expected, strict=True):
        assert line["class"] == sentiment.CLASSES[int(np.argmax(row))]
        np.testing.assert_allclose(line["probability"], row.max(), rtol=1e-5)
        np.testing.assert_allclose(sum(line["probabilities"].values()), 1.0, rtol=1e-6)


def test_dash_reads_texts_from_standard_input(text_run, capsys, monkeypatch):
    folder, _, _ = text_run
    monkeypatch.setattr("sys.stdin", io.StringIO("good day\nbad day\n"))
    assert main(["predict", str(folder / "model.safetensors"), "-", "a car"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[2] for line in lines] == ["good day", "bad day", "a car"]
    assert all(line.split("\t")[0] in sentiment.CLASSES for line in lines)


def test_an_image_is_made_grey_small_and_bright_inked(image_run, tmp_path, capsys):
    image = pytest.importorskip("PIL.Image")
    folder, model = image_run
    # A dark stroke on white paper, 32x32, in colour.
    pixels = np.full((32, 32, 3), 255, dtype=np.uint8)
    pixels[4:28, 12:20] = 0
    image.fromarray(pixels).save(tmp_path / "one.png")
    row = predict.read_image(tmp_path / "one.png", (1, 8, 8))
    assert row.shape == (64,)
    assert row.reshape(8, 8)[4, 3:5].min() > 0.5  # the stroke, bright
    assert row.reshape(8, 8)[4, 0] == 0  # the paper, dark
    assert main(["predict", str(folder), str(tmp_path / "one.png"), "--json"]) == 0
    line = json.loads(capsys.readouterr().out)
    expected = _softmax(np.asarray(model(row[None, :].astype(np.float32)), dtype=np.float64))
    assert line["class"] == str(int(np.argmax(expected)))
    np.testing.assert_allclose(line["probability"], expected.max(), rtol=1e-5)


@pytest.mark.parametrize(
    ("which", "inputs", "says"),
    [
        ("missing", ["hello"], "does not exist"),
        ("text", ["good", "  "], "input 2 is an empty text"),
        ("image", ["not-a-file.png"], "cannot be read as an image"),
        ("image", ["-"], "takes image files"),
        ("bare", ["hello"], "records no task"),
        ("text", ["picture"], "is an image file, but this run reads texts"),
    ],
)
def test_bad_input_is_one_line_and_status_2(
    which, inputs, says, text_run, image_run, tmp_path, capsys
):
    runs = {"text": text_run[0], "image": image_run[0], "missing": tmp_path / "nothing"}
    if inputs == ["picture"]:
        (tmp_path / "picture.png").write_bytes(b"")
        inputs = [str(tmp_path / "picture.png")]
    if which == "bare":
        xpnn.save(image_run[1], tmp_path / "bare.safetensors")
        runs["bare"] = tmp_path / "bare.safetensors"
    assert main(["predict", str(runs[which]), *inputs]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("xpnn predict: error: ")
    assert says in err


def test_a_transformer_run_predicts_in_eval_mode(tmp_path, capsys):
    pytest.importorskip("tokenizers", reason="needs HF tokenizers (pip install 'xpnn[text]')")
    encoder = sentiment.train_encoder(["good day", "bad day"], vocabulary=10, bigram_buckets=0)
    model = sentiment.text_transformer(choose("numpy"), encoder.size, 3, 4, seed=0)
    record = {"task": "sentiment", "model": "transformer", **sentiment.preprocessing(encoder)}
    xpnn.save(model.body, tmp_path / "model.safetensors", task=record)
    assert main(["predict", str(tmp_path), "good day", "--json"]) == 0
    line = json.loads(capsys.readouterr().out)
    model.eval()  # no dropout, as xpnn predict runs
    expected = _softmax(np.asarray(model(*encoder.encode(["good day"])), dtype=np.float64))
    np.testing.assert_allclose(line["probability"], expected.max(), rtol=1e-5)

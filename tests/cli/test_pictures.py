"""The pictures of a classification run: confusion.png and mistakes.png."""

from __future__ import annotations

import numpy as np
import pytest

from xpnn.cli.plot import MISTAKES_SHOWN, Predictions, plot_confusion, plot_mistakes

pytestmark = pytest.mark.backend("numpy")  # host pictures: one session is enough


def _predictions(labels, predicted, image_shape=(1, 2, 2)):
    labels = np.asarray(labels)
    probabilities = np.full((labels.size, 3), 0.1)
    probabilities[np.arange(labels.size), predicted] = 0.8
    images = np.random.default_rng(0).uniform(size=(labels.size, 4))
    return Predictions(labels, probabilities, images, image_shape)


def test_pictures_are_pngs(tmp_path):
    pytest.importorskip("matplotlib")
    predictions = _predictions([0, 1, 2, 1], [0, 2, 2, 1])
    assert plot_confusion(predictions, tmp_path / "confusion.png")
    assert plot_mistakes(predictions, tmp_path / "mistakes.png")
    for name in ("confusion.png", "mistakes.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")


def test_no_mistakes_or_no_images_draw_nothing(tmp_path):
    assert not plot_mistakes(_predictions([0, 1], [0, 1]), tmp_path / "a.png")
    assert not plot_mistakes(_predictions([0, 1], [1, 0], image_shape=None), tmp_path / "b.png")
    assert not list(tmp_path.iterdir())


def test_the_worst_mistakes_come_first(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    labels = np.zeros(MISTAKES_SHOWN + 5, dtype=np.int64)
    predicted = np.ones_like(labels)
    predictions = _predictions(labels, predicted)
    # The wrong class's probability rises with the index: the last rows are worst.
    predictions.probabilities[:, 1] = np.linspace(0.4, 0.9, labels.size)
    titles = []
    import matplotlib.axes

    original = matplotlib.axes.Axes.set_title
    monkeypatch.setattr(
        matplotlib.axes.Axes,
        "set_title",
        lambda self, text, **kw: titles.append(text) or original(self, text, **kw),
    )
    assert plot_mistakes(predictions, tmp_path / "mistakes.png")
    assert len(titles) == MISTAKES_SHOWN
    assert titles[0] == "true 0\nsaid 1 (90%)"


def test_the_confusion_matrix_names_the_classes(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    kept = []
    monkeypatch.setattr(plt, "close", lambda figure=None: kept.append(figure))
    named = _predictions([0, 1, 2], [0, 2, 2])
    named.class_names = ("negative", "neutral", "positive")
    for predictions, expected in (
        (_predictions([0, 1, 2], [0, 2, 2]), ["0", "1", "2"]),
        (named, ["negative", "neutral", "positive"]),
    ):
        assert plot_confusion(predictions, tmp_path / "confusion.png")
        axes = kept[-1].axes[0]
        assert [label.get_text() for label in axes.get_xticklabels()] == expected
        assert [label.get_text() for label in axes.get_yticklabels()] == expected

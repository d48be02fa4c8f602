"""The pictures of ``xpnn train``, when matplotlib is installed.

``curves.png`` (the learning curves) for every task; for classification,
``confusion.png`` (the confusion matrix of the test split) and
``mistakes.png`` (the test images the model got most confidently wrong;
for sequences, heat maps of their features over time).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_write
from ..training import History

__all__ = ["Predictions", "plot_confusion", "plot_curves", "plot_mistakes", "plot_words"]

#: The most mistakes ``mistakes.png`` shows.
MISTAKES_SHOWN = 24


class Predictions:
    """The test split's labels and what the model made of them, on the host.

    Parameters
    ----------
    labels : numpy.ndarray of shape (n,)
        True class indices.
    probabilities : numpy.ndarray of shape (n, classes)
        The model's softmax probabilities.
    images : numpy.ndarray of shape (n, features)
        The inputs, for the pictures of mistakes.
    image_shape : tuple of int or None
        ``(channels, height, width)`` of one input; None for inputs that are
        no images (then ``mistakes.png`` is not drawn, unless they are
        sequences).
    lengths : numpy.ndarray of shape (n,), optional
        For sequences, ``images`` of shape ``(n, steps, features)``: each
        one's valid steps; ``mistakes.png`` draws its features over them.
    class_names : tuple of str, optional
        What each class index stands for (``"negative"``, ...); the
        pictures show the indices when None.
    """

    def __init__(
        self,
        labels: np.ndarray,
        probabilities: np.ndarray,
        images: np.ndarray,
        image_shape: tuple[int, ...] | None,
        lengths: np.ndarray | None = None,
        class_names: tuple[str, ...] | None = None,
    ) -> None:
        self.labels = labels
        self.probabilities = probabilities
        self.predicted = np.argmax(probabilities, axis=1)
        self.images = images
        self.image_shape = image_shape
        self.lengths = lengths
        self.class_names = class_names

    @property
    def classes(self) -> int:
        """The number of classes."""
        return int(self.probabilities.shape[1])


def _pyplot(path: Path) -> Any:
    """Return matplotlib.pyplot for files, or None after saying that the picture is skipped."""
    try:
        import matplotlib

        # No display needed: the figure goes to a file only.
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"{path.name} skipped: matplotlib is not installed (pip install 'xpnn[demo]')")
        return None
    return plt


def _save(plt: Any, figure: Any, path: Path) -> None:
    try:
        atomic_write(path, lambda file: figure.savefig(file, format="png", dpi=100))
    finally:
        plt.close(figure)


def plot_curves(history: History, path: Path) -> bool:
    """Draw the training and test loss and accuracy by epoch into a PNG file.

    Parameters
    ----------
    history : History
        What :func:`xpnn.fit` returned, with validation data given.
    path : pathlib.Path
        The image to write, atomically (:func:`xpnn.files.atomic_write`):
        a complete image or the previous file, never part of one.

    Returns
    -------
    bool
        True once written; False, after saying so on standard output, when
        matplotlib is not installed: the curves are optional, the run's
        metrics and model are not.
    """
    plt = _pyplot(path)
    if plt is None:
        return False
    epochs = range(1, len(history.loss) + 1)
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(epochs, history.loss, label="train")
    left.plot(epochs, history.val_loss, label="test")
    left.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    left.legend()
    right.plot(epochs, history.accuracy, label="train")
    right.plot(epochs, history.val_accuracy, label="test")
    right.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    right.legend()
    figure.tight_layout()
    _save(plt, figure, path)
    return True


def plot_confusion(predictions: Predictions, path: Path) -> bool:
    """Draw the test split's confusion matrix: counts, true class by row, predicted by column.

    Each cell shows its count; the colour is the share of its row, so that
    classes of different sizes read alike. Returns False when matplotlib is
    missing, as :func:`plot_curves`.
    """
    plt = _pyplot(path)
    if plt is None:
        return False
    classes = predictions.classes
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (predictions.labels, predictions.predicted), 1)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.5 * classes + 1.5)
    figure, axes = plt.subplots(figsize=(size + 1, size))
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for row in range(classes):
        for column in range(classes):
            if counts[row, column]:
                dark = shares[row, column] > 0.5
                axes.text(
                    column,
                    row,
                    str(counts[row, column]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if dark else "black",
                )
    names = predictions.class_names or [str(index) for index in range(classes)]
    axes.set(
        xticks=range(classes),
        yticks=range(classes),
        xticklabels=names,
        yticklabels=names,
        xlabel="predicted class",
        ylabel="true class",
        title=f"test split: {int(np.trace(counts))}/{int(counts.sum())} right",
    )
    figure.colorbar(image, ax=axes, label="share of the true class")
    figure.tight_layout()
    _save(plt, figure, path)
    return True


def plot_mistakes(predictions: Predictions, path: Path) -> bool:
    """Draw the test images classified worst: wrong, with the most confidence in the wrong class.

    Up to :data:`MISTAKES_SHOWN` images in a grid, each titled with its true
    label, the predicted one and the probability the model gave the
    prediction; for sequences (``predictions.lengths`` given), up to
    :data:`SEQUENCES_SHOWN` heat maps of their features over their valid
    steps, titled alike. Returns False, drawing nothing, when the inputs are
    neither images nor sequences, when nothing is wrong, or when matplotlib
    is missing.
    """
    shape = predictions.image_shape
    wrong = np.flatnonzero(predictions.predicted != predictions.labels)
    if (shape is None and predictions.lengths is None) or wrong.size == 0:
        return False
    plt = _pyplot(path)
    if plt is None:
        return False
    confidence = predictions.probabilities[wrong, predictions.predicted[wrong]]
    shown = wrong[np.argsort(-confidence, kind="stable")][:MISTAKES_SHOWN]
    if shape is None:
        _sequence_mistakes(plt, predictions, shown, wrong.size, path)
        return True
    columns = min(8, shown.size)
    rows = -(-shown.size // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(1.6 * columns, 2.3 * rows), squeeze=False)
    for axes in grid.flat:
        axes.axis("off")
    for axes, index in zip(grid.flat, shown, strict=False):
        image = predictions.images[index].reshape(shape)
        # One channel is drawn in grey; more are drawn as colour.
        picture = image[0] if shape[0] == 1 else np.moveaxis(image, 0, -1)
        axes.imshow(picture, cmap="gray_r" if shape[0] == 1 else None)
        predicted = predictions.predicted[index]
        probability = predictions.probabilities[index, predicted]
        axes.set_title(
            f"true {predictions.labels[index]}\nsaid {predicted} ({probability:.0%})",
            fontsize=9,
        )
    figure.suptitle(f"the {shown.size} test images classified worst, of {wrong.size} wrong")
    figure.tight_layout()
    _save(plt, figure, path)
    return True


#: The most misclassified sequences ``mistakes.png`` shows.
SEQUENCES_SHOWN = 8


def _sequence_mistakes(
    plt: Any, predictions: Predictions, worst: np.ndarray, wrong: int, path: Path
) -> None:
    """Draw the features of the worst sequences over time, one heat map each.

    Each map has the steps across and the features (MFCCs, for speech) up,
    its valid steps only, on one colour scale for all, so that maps compare.
    """
    from matplotlib.ticker import MaxNLocator as integer_ticks

    assert predictions.lengths is not None
    shown = worst[:SEQUENCES_SHOWN]
    columns = min(4, shown.size)
    rows = -(-shown.size // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.6 * rows), squeeze=False)
    for axes in grid.flat:
        axes.axis("off")
    steps = [predictions.images[i, : predictions.lengths[i]] for i in shown]
    # Standardised features: a symmetric scale that clips the rare extremes.
    limit = float(np.percentile(np.abs(np.concatenate(steps)), 99)) or 1.0
    image = None
    for axes, index, frames in zip(grid.flat, shown, steps, strict=False):
        axes.axis("on")
        image = axes.imshow(
            frames.T,
            origin="lower",
            aspect="auto",
            cmap="coolwarm",
            vmin=-limit,
            vmax=limit,
            interpolation="nearest",
        )
        predicted = predictions.predicted[index]
        probability = predictions.probabilities[index, predicted]
        axes.set_title(
            f"true {predictions.labels[index]}, said {predicted} ({probability:.0%})", fontsize=9
        )
        axes.set_xlabel("frame", fontsize=8)
        axes.set_ylabel("coefficient", fontsize=8)
        axes.tick_params(labelsize=7)
        axes.xaxis.set_major_locator(integer_ticks(integer=True))
    figure.suptitle(f"the {shown.size} test sequences classified worst, of {wrong} wrong")
    figure.tight_layout()
    if image is not None:
        figure.colorbar(image, ax=grid.ravel().tolist(), shrink=0.8, label="standardised value")
    _save(plt, figure, path)


#: Tokens per class that ``words.png`` shows.
WORDS_SHOWN = 12


def plot_words(scores: np.ndarray, tokens: list[str], class_names: list[str], path: Path) -> bool:
    """Draw, for each class, the tokens that push a text hardest toward it.

    Parameters
    ----------
    scores : numpy.ndarray of shape (tokens, classes)
        How much each token adds to each class's logit (for a bag model,
        its embedding row times the final linear map: exact).
    tokens : list of str
        The text of each row of ``scores``.
    class_names : list of str
        The name of each class.
    path : pathlib.Path
        The image to write. A token's push toward a class is its score
        there less its mean score over the classes, since what is added to
        every logit changes no probability.

    Returns
    -------
    bool
        False when matplotlib is missing, as :func:`plot_curves`.
    """
    plt = _pyplot(path)
    if plt is None:
        return False
    push = scores - scores.mean(axis=1, keepdims=True)
    classes = len(class_names)
    figure, panels = plt.subplots(1, classes, figsize=(3.2 * classes, 4.2), squeeze=False)
    for column, (axes, name) in enumerate(zip(panels[0], class_names, strict=True)):
        top = np.argsort(-push[:, column], kind="stable")[:WORDS_SHOWN][::-1]
        axes.barh(range(top.size), push[top, column], color=f"C{column}")
        axes.set_yticks(range(top.size), [tokens[i] for i in top])
        axes.set(title=f"toward {name}", xlabel="logit of the word alone, less the mean")
    figure.tight_layout()
    _save(plt, figure, path)
    return True

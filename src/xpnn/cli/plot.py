"""The learning curves of ``xpnn train``: ``curves.png``, when matplotlib is installed."""

from __future__ import annotations

from pathlib import Path

from ..files import atomic_write
from ..training import History

__all__ = ["plot_curves"]


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
    try:
        import matplotlib

        # No display needed: the figure goes to a file only.
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"{path.name} skipped: matplotlib is not installed (pip install 'xpnn[demo]')")
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
    try:
        atomic_write(path, lambda file: figure.savefig(file, format="png", dpi=100))
    finally:
        plt.close(figure)
    return True

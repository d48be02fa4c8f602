"""The data sets of ``xpnn train``: host arrays, split into training and test rows.

A data set is a function ``(seed) -> Dataset``; ``xpnn train`` moves its
arrays to the chosen backend and device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backends import SelectionError

__all__ = ["Dataset", "digits"]

#: The share of the rows that trains; the rest is the test split.
TRAIN_SHARE = 0.8


@dataclass(frozen=True)
class Dataset:
    """A classification data set on the host, split into training and test rows.

    Attributes
    ----------
    name : str
        What one sample is called in messages (``"digits"``).
    x_train, y_train : numpy.ndarray
        Training features, ``(n_train, n_features)``, and integer labels,
        ``(n_train,)``.
    x_test, y_test : numpy.ndarray
        The test split, likewise.
    classes : int
        The number of classes; labels lie in ``[0, classes)``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int

    @property
    def features(self) -> int:
        """The width of a sample, the model's input."""
        return int(self.x_train.shape[1])


def digits(seed: int) -> Dataset:
    """Return scikit-learn's 8x8 handwritten digits, shuffled by ``seed`` and split 80/20.

    Parameters
    ----------
    seed : int
        Seed of the shuffle before the split.

    Returns
    -------
    Dataset
        1797 samples of 64 pixels scaled to ``[0, 1]``, 10 classes: 1438
        training rows and 359 test rows, float64 and int64.

    Raises
    ------
    SelectionError
        If scikit-learn is not installed (it comes with ``xpnn[demo]``).

    Examples
    --------
    >>> data = digits(0)
    >>> data.x_train.shape, data.x_test.shape, data.features, data.classes
    ((1438, 64), (359, 64), 64, 10)
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SelectionError(
            "xpnn train needs scikit-learn for its dataset; install it with "
            "pip install 'xpnn[demo]'"
        ) from None
    features, labels = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(features.shape[0])
    features, labels = features[order] / 16.0, labels[order]
    cut = round(TRAIN_SHARE * features.shape[0])
    return Dataset(
        name="digits",
        x_train=features[:cut],
        y_train=labels[:cut],
        x_test=features[cut:],
        y_test=labels[cut:],
        classes=10,
    )

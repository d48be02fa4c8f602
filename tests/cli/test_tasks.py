"""xpnn train --task and --model: the data set and the model a run trains."""

from __future__ import annotations

import json

import numpy as np
import pytest

import xpnn
from xpnn.cli import data, parser, resume, train
from xpnn.cli.backends import SelectionError, choose

pytestmark = pytest.mark.backend("numpy")  # command-line plumbing: one session is enough


def _args(*argv: str):
    return parser.build_parser().parse_args(["train", *argv])


def test_defaults_stay_the_digits_mlp(numpy_run):
    args = _args()
    assert (args.task, train.model_name(args)) == ("digits", "mlp")
    output, _ = numpy_run
    metrics = json.loads((output / "metrics.json").read_text())
    assert (metrics["task"], metrics["model"]) == ("digits", "mlp")


def test_mnist_defaults_to_the_cnn_with_batch_norm():
    assert train.model_name(_args("--task", "mnist")) == "cnn-bn"
    assert train.model_name(_args("--task", "mnist", "--model", "cnn")) == "cnn"


def test_mnist_has_its_own_defaults_unless_given():
    args = _args("--task", "mnist")
    train.apply_task_defaults(args)
    assert (args.epochs, args.batch_size, args.schedule) == (8, 64, "onecycle")
    given = _args("--task", "mnist", "--epochs", "20", "--batch-size", "32", "--schedule", "none")
    train.apply_task_defaults(given)
    assert (given.epochs, given.batch_size, given.schedule) == (20, 32, "none")
    digits = _args()
    train.apply_task_defaults(digits)
    assert (digits.epochs, digits.batch_size, digits.schedule) == (20, 32, "none")


@pytest.mark.parametrize("name", ["cnn", "cnn-bn"])
def test_the_cnns_on_digits_images(name):
    digits = data.digits(0)
    args = _args("--model", name)
    model = train.build_model(args, choose("numpy"), digits)
    kinds = [type(layer).__name__ for layer in model.children()]
    assert kinds.count("Conv2d") == 2
    assert kinds.count("MaxPool2d") == 2
    assert kinds.count("BatchNorm2d") == (2 if name == "cnn-bn" else 0)
    logits = model(digits.x_train[:3].astype(np.float32))
    assert logits.shape == (3, 10)
    # The same seed draws the same weights.
    again = train.build_model(args, choose("numpy"), digits)
    for mine, theirs in zip(model.parameters(), again.parameters(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_a_cnn_needs_images():
    flat = data.Dataset("rows", np.zeros((2, 4)), np.zeros(2), np.zeros((2, 4)), np.zeros(2), 2)
    with pytest.raises(SelectionError, match="--model cnn needs images"):
        train.build_model(_args("--model", "cnn"), choose("numpy"), flat)


def test_runs_recorded_before_tasks_resume_as_digits_mlp(numpy_run):
    output, _ = numpy_run
    previous = json.loads((output / "metrics.json").read_text())
    del previous["task"], previous["model"]
    args = _args("--resume", str(output), "--epochs", str(previous["epochs"] + 1))
    resume.resume_settings(args, previous)
    assert (args.task, args.model) == ("digits", "mlp")
    mnist = _args("--resume", str(output), "--task", "mnist")
    with pytest.raises(SelectionError, match="--task"):
        resume.resume_settings(mnist, previous)


def test_one_cnn_step_trains(tmp_path):
    digits = data.digits(0)
    model = train.build_model(_args("--model", "cnn-bn"), choose("numpy"), digits)
    x = digits.x_train[:64].astype(np.float32)
    y = digits.y_train[:64]
    history = xpnn.fit(
        model, xpnn.CrossEntropyLoss(), xpnn.optim.Adam(model, lr=3e-3), x, y, epochs=3
    )
    assert history.loss[-1] < history.loss[0]

"""``xpnn predict``: the class a trained run gives each input, with its probability.

A run of ``xpnn train`` (its folder, or its ``model.safetensors``) is
loaded on any backend and device. Its checkpoint records the task and the
preparation of its input (``xpnn.save(task=...)``, read back with
:func:`xpnn.checkpoint.load_task`): for the sentiment task the tokenizer,
for the image tasks the image size; a run folder written before the
checkpoint held that record is read from its ``metrics.json``.

Inputs by task:

- ``sentiment``: texts, each one argument, or ``-`` for the lines of
  standard input, one text a line.
- ``digits`` and ``mnist``: image files (PNG, or any format Pillow reads),
  turned grey, resized to the task's size (8x8 or 28x28) and scaled to
  ``[0, 1]`` with the ink bright, as the training images are: a picture
  whose mean is above one half (dark ink on light paper) is inverted.

Every bad input (an unknown run, an input of the wrong kind, an unreadable
image, an empty text) is one line on standard error and exit status 2,
before anything is predicted.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import CheckpointError, load, load_task
from ..layers import Module
from ..testing import to_numpy
from .backends import Choice, SelectionError, choose, to_device

__all__ = [
    "IMAGE_TASKS",
    "Loaded",
    "add_arguments",
    "load_run",
    "read_image",
    "run",
]

#: The image tasks and the ``(channels, height, width)`` of their inputs,
#: for runs whose checkpoint records no task.
IMAGE_TASKS: dict[str, tuple[int, int, int]] = {"digits": (1, 8, 8), "mnist": (1, 28, 28)}

#: The file names that a run on texts refuses as input: images meant for another run.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp"})

#: What ``--help`` says about the inputs.
INPUT_HELP = (
    "inputs: texts for --task sentiment runs ('-' reads one text per line of standard "
    "input); image files (PNG) for digits and mnist runs, turned grey and resized to 8x8 "
    "or 28x28"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``xpnn predict`` to ``parser``."""
    parser.add_argument(
        "source",
        type=Path,
        metavar="RUN",
        help="the --output folder of xpnn train, or its model.safetensors",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help=INPUT_HELP)
    parser.add_argument("--backend", default="numpy", help="array library, a backend of xpnn info")
    parser.add_argument(
        "--device",
        help="device name from the backend matrix (default: the backend's first device present)",
    )
    parser.add_argument("--dtype", default="float32", help="float32 or float64")
    parser.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per input (input, class, probability, probabilities) instead of "
        "a line of text",
    )


@dataclass
class Loaded:
    """A run ready to predict: its model, its task record and the backend it is on."""

    model: Module
    task: dict[str, Any]
    choice: Choice

    @property
    def classes(self) -> list[str]:
        """The name of each class."""
        return [str(name) for name in self.task["classes"]]


def _checkpoint_and_metrics(path: Path) -> tuple[Path, dict[str, Any] | None]:
    """Return the checkpoint of ``path`` (a run folder or a file) and the run's metrics, if any."""
    if path.is_dir():
        checkpoint = path / "model.safetensors"
        if not checkpoint.is_file():
            raise SelectionError(
                f"{path} holds no model.safetensors; give the --output folder of an xpnn "
                "train run, or a checkpoint file"
            )
    elif path.is_file():
        checkpoint = path
    else:
        raise SelectionError(
            f"{path} does not exist; give the --output folder of an xpnn train run, or its "
            "model.safetensors"
        )
    metrics = None
    try:
        found = json.loads((checkpoint.parent / "metrics.json").read_text())
        metrics = found if isinstance(found, dict) else None
    except (OSError, ValueError):
        pass
    return checkpoint, metrics


def _task_of(checkpoint: Path, metrics: dict[str, Any] | None) -> dict[str, Any]:
    try:
        task = load_task(checkpoint)
    except (CheckpointError, OSError) as exc:
        raise SelectionError(str(exc).splitlines()[0]) from None
    if task is not None:
        return task
    # A run written before checkpoints recorded their task: its metrics say
    # which task, and the image tasks need nothing more.
    name = (metrics or {}).get("task", "digits" if metrics else None)
    if name in IMAGE_TASKS:
        return {
            "task": name,
            "model": metrics.get("model", "mlp") if metrics else "mlp",
            "input": "image",
            "image_shape": list(IMAGE_TASKS[name]),
            "classes": [str(digit) for digit in range(10)],
        }
    raise SelectionError(
        f"{checkpoint} records no task (saved by xpnn.save without task=, or by an older "
        "xpnn train); xpnn predict takes the runs of xpnn train"
    )


def load_run(
    path: Path, backend: str = "numpy", device: str | None = None, dtype: str = "float32"
) -> Loaded:
    """Load the run at ``path`` on ``backend``, ready for :func:`predict_texts` or images.

    Raises
    ------
    SelectionError
        For a path that holds no run, a checkpoint that cannot be read or
        records no task, or a backend, device or dtype that cannot be had.
    """
    checkpoint, metrics = _checkpoint_and_metrics(path)
    task = _task_of(checkpoint, metrics)
    choice = choose(backend, device, dtype)
    try:
        body = load(checkpoint, xp=choice.xp, device=choice.device, dtype=choice.dtype)
    except (CheckpointError, OSError) as exc:
        raise SelectionError(str(exc).splitlines()[0]) from None
    model = body
    if task.get("input") == "text":
        from .sentiment import TEXT_CLASSIFIERS

        kind = TEXT_CLASSIFIERS.get(str(task.get("model")))
        if kind is None:
            raise SelectionError(
                f"{checkpoint} records a text model {task.get('model')!r} that xpnn predict "
                f"does not know; it knows {', '.join(TEXT_CLASSIFIERS)}"
            )
        model = kind(body)  # type: ignore[arg-type]
    model.eval()
    return Loaded(model=model, task=task, choice=choice)


def read_texts(inputs: list[str], stdin: Any = None) -> list[str]:
    """Return the texts of ``inputs``, ``-`` standing for the lines of ``stdin``.

    Raises
    ------
    SelectionError
        For an empty (or blank) text, naming it.
    """
    texts: list[str] = []
    for item in inputs:
        if item == "-":
            texts += (stdin or sys.stdin).read().splitlines()
        else:
            texts.append(item)
    for number, text in enumerate(texts, start=1):
        if not text.strip():
            raise SelectionError(f"input {number} is an empty text; give each text some words")
        if Path(text).suffix.lower() in IMAGE_SUFFIXES and Path(text).is_file():
            raise SelectionError(
                f"{text} is an image file, but this run reads texts; give it an image run "
                "(--task digits or mnist)"
            )
    if not texts:
        raise SelectionError("standard input held no text; give one text per line")
    return texts


def read_image(path: Path, image_shape: tuple[int, ...]) -> np.ndarray:
    """Return the image file ``path`` as the task's data is: grey, resized, ink bright.

    Returns
    -------
    numpy.ndarray of shape (channels * height * width,)
        float64, flattened as the training rows are.

    Raises
    ------
    SelectionError
        If the file cannot be read as an image.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise SelectionError(
            "xpnn predict reads images with Pillow, which comes with matplotlib; install it "
            "with pip install 'xpnn[demo]'"
        ) from None
    _, height, width = image_shape
    try:
        with Image.open(path) as image:
            grey = image.convert("L").resize((width, height), Image.Resampling.BILINEAR)
            pixels = np.asarray(grey, dtype=np.float64) / 255.0
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise SelectionError(f"{path} cannot be read as an image ({exc})") from None
    if pixels.mean() > 0.5:
        pixels = 1.0 - pixels  # dark ink on light paper: the training digits are bright ink
    return pixels.reshape(-1)


def probabilities(
    loaded: Loaded, inputs: list[str], stdin: Any = None
) -> tuple[list[str], np.ndarray]:
    """Return the inputs as shown (texts or file names) and their probabilities ``(n, classes)``."""
    kind = loaded.task.get("input")
    choice = loaded.choice
    if kind == "text":
        from .sentiment import encoder_from_record

        texts = read_texts(inputs, stdin)
        ids, lengths = encoder_from_record(loaded.task).encode(texts)
        logits = loaded.model(  # type: ignore[call-arg]
            to_device(choice, ids, integral=True), to_device(choice, lengths, integral=True)
        )
        shown = texts
    elif kind == "image":
        if "-" in inputs:
            raise SelectionError(
                f"a --task {loaded.task['task']} run takes image files, not standard input"
            )
        shape = tuple(int(size) for size in loaded.task["image_shape"])
        rows = np.stack([read_image(Path(item), shape) for item in inputs])
        logits = loaded.model(to_device(choice, rows))
        shown = list(inputs)
    else:
        raise SelectionError(
            f"the run's task {loaded.task.get('task')!r} takes inputs xpnn predict cannot read"
        )
    host = to_numpy(logits).astype(np.float64)
    exps = np.exp(host - host.max(axis=1, keepdims=True))
    return shown, exps / exps.sum(axis=1, keepdims=True)


def run(args: argparse.Namespace) -> int:
    """Run ``xpnn predict``: print each input's class and probability; return 0."""
    loaded = load_run(args.source, args.backend, args.device, args.dtype)
    shown, probs = probabilities(loaded, list(args.inputs))
    names = loaded.classes
    for item, row in zip(shown, probs, strict=True):
        best = int(np.argmax(row))
        if args.json:
            record = {
                "input": item,
                "class": names[best],
                "probability": float(row[best]),
                "probabilities": {name: float(p) for name, p in zip(names, row, strict=True)},
            }
            print(json.dumps(record))
        else:
            print(f"{names[best]}\t{row[best]:.3f}\t{item}")
    return 0

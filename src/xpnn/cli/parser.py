"""The argument parser of the ``xpnn`` command, and the table of its commands.

Each command is a :class:`Command`: its name and help, a function that adds
its arguments to its subparser, and the function of its own module that
runs it. A new command is one module with a ``run(args) -> int`` function
and one entry of :data:`COMMANDS`.

Bad arguments end the program here, as argparse does, but with one line on
standard error (usage left out) and exit status 2. ``xpnn`` typed alone is
bad input too: :func:`xpnn.cli.main` prints the usage and the list of
commands to standard error and returns 2, argparse's status for a missing
subcommand (git prints its usage for the same and exits 1; 2 keeps every
mistake of the command line on one status). ``xpnn --version`` prints
``xpnn <version>`` on standard output.

Every option's help states its default: :class:`HelpFormatter` appends
``(default: ...)`` to the help of an option that has a default and does not
state it already, and leaves out the ``None`` and ``False`` of options
without one, where the help says what happens instead.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from .._version import __version__
from . import check, export, info, predict, train
from .cluster import DASK_THREADS, DASK_WORKERS
from .run_files import output_directory

__all__ = [
    "COMMANDS",
    "MAX_SEED",
    "Command",
    "HelpFormatter",
    "Parser",
    "build_parser",
    "positive_float",
    "positive_int",
    "seed",
]

#: The largest ``--seed``: NumPy takes any integer of at least 0, but 32
#: bits are what every library that may take a seed accepts.
MAX_SEED = 2**32 - 1


class HelpFormatter(argparse.HelpFormatter):
    """Help that states each option's default, without ``(default: None)`` noise."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        # What ArgumentDefaultsHelpFormatter does, less the defaults that are
        # no value (None, False): their help says what happens instead.
        text = action.help or ""
        default = action.default
        # By identity: a default of 0 is a value to state, unlike False.
        no_value = default is None or default is False or default is argparse.SUPPRESS
        if action.option_strings and not no_value and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on standard error, exit status 2."""

    def error(self, message: str) -> NoReturn:
        """Print ``xpnn ...: error: message`` alone and exit with status 2."""
        # argparse prints the usage first; the tests and users want one line.
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive_int(text: str) -> int:
    """Parse an integer of at least 1, for ``type=`` of an argument.

    Parameters
    ----------
    text : str
        The argument as given on the command line.

    Returns
    -------
    int
        Its value.

    Raises
    ------
    argparse.ArgumentTypeError
        If ``text`` is not an integer, or is below 1.

    Examples
    --------
    >>> positive_int("32")
    32
    >>> positive_int("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected a positive integer, got 0
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    """Parse a number above 0, for ``type=`` of an argument.

    Parameters
    ----------
    text : str
        The argument as given on the command line.

    Returns
    -------
    float
        Its value.

    Raises
    ------
    argparse.ArgumentTypeError
        If ``text`` is not a number, or is not above 0 and finite (NaN and
        infinity included).

    Examples
    --------
    >>> positive_float("3e-3")
    0.003
    >>> positive_float("-1")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected a positive finite number, got -1.0
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    # NaN fails both comparisons; infinity trains to NaN at the first step.
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {value}")
    return value


def seed(text: str) -> int:
    """Parse a seed, an integer from 0 to :data:`MAX_SEED`, for ``type=`` of an argument.

    Parameters
    ----------
    text : str
        The argument as given on the command line.

    Returns
    -------
    int
        Its value.

    Raises
    ------
    argparse.ArgumentTypeError
        If ``text`` is not an integer, or is out of the range.

    Examples
    --------
    >>> seed("7")
    7
    >>> seed("-1")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected an integer from 0 to 4294967295, got -1
    """
    expected = f"expected an integer from 0 to {MAX_SEED}"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{expected}, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{expected}, got {value}")
    return value


@dataclass(frozen=True)
class Command:
    """One subcommand of ``xpnn``.

    Attributes
    ----------
    name : str
        What is typed after ``xpnn``.
    help : str
        Its line in ``xpnn --help``.
    run : callable
        ``run(args) -> exit status``, given the parsed arguments; it raises
        :class:`~xpnn.cli.backends.SelectionError` for bad input, which
        :func:`xpnn.cli.main` turns into one line and exit status 2.
    arguments : callable, optional
        ``arguments(parser)`` adds the command's arguments to its subparser.
    description : str, optional
        The text of ``xpnn NAME --help``.
    epilog : str, optional
        What ``xpnn NAME --help`` prints after the options: the files the
        command writes, for one.
    """

    name: str
    help: str
    run: Callable[[argparse.Namespace], int]
    arguments: Callable[[argparse.ArgumentParser], None] | None = None
    description: str | None = None
    epilog: str | None = None


class GivenOption(argparse.Action):
    """Store an option's value and note, in ``namespace.given``, that it was given.

    ``xpnn train --resume`` takes the run's settings for the options left
    out; one given with its default value is still given.
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        """Store ``values`` under the option's name and add the name to ``given``."""
        setattr(namespace, self.dest, values)
        namespace.given = frozenset(getattr(namespace, "given", frozenset())) | {self.dest}


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        action=GivenOption,
        default="numpy",
        help="array library, a backend of xpnn info",
    )
    parser.add_argument(
        "--device",
        action=GivenOption,
        help="device name from the backend matrix (default: the backend's first device present)",
    )
    parser.add_argument("--dtype", action=GivenOption, default="float32", help="float32 or float64")
    parser.add_argument(
        "--epochs",
        action=GivenOption,
        type=positive_int,
        default=20,
        help="passes over the training rows; 8 for --task mnist, 30 for --task "
        "spoken-digits, 6 for --task sentiment",
    )
    parser.add_argument(
        "--batch-size",
        action=GivenOption,
        type=positive_int,
        default=32,
        help="rows per optimizer step; 64 for --task mnist, 128 for --task sentiment",
    )
    parser.add_argument(
        "--lr", action=GivenOption, type=positive_float, default=3e-3, help="learning rate"
    )
    parser.add_argument(
        "--optimizer",
        action=GivenOption,
        choices=train.OPTIMIZERS,
        default="adam",
        help="sgd (momentum 0.9), adam or adamw",
    )
    parser.add_argument(
        "--schedule",
        action=GivenOption,
        choices=train.SCHEDULES,
        default="none",
        help="learning-rate schedule: none (--lr throughout), cosine (from --lr down to 0 "
        "along a cosine, stepped each epoch) or onecycle (1cycle peaking at --lr, stepped "
        "each batch); onecycle for --task mnist, cosine for --task spoken-digits and "
        "--task sentiment",
    )
    parser.add_argument(
        "--task",
        action=GivenOption,
        choices=train.TASKS,
        default="digits",
        help="digits (scikit-learn's 8x8 digits), mnist (5,000 real 28x28 MNIST digits, "
        "from xpnn[images]) or spoken-digits (3,000 recordings of spoken digits as MFCC "
        "sequences, from xpnn[speech]) or sentiment (37,243 real tweets, negative, neutral "
        "or positive, from xpnn[text])",
    )
    parser.add_argument(
        "--model",
        action=GivenOption,
        choices=train.MODELS,
        help="mlp (Linear-ReLU-Linear), cnn (two conv-ReLU-max-pool blocks, then Linear) or "
        "cnn-bn (cnn with batch norm); for spoken-digits: gru or lstm (the final state, then "
        "Linear), conv (two 1-D convolutions, a mean over the frames, then Linear) or "
        "transformer (projection, position encodings, two encoder layers, a mean, then "
        "Linear); for sentiment: bag (fastText-style: token vectors, their mean, then "
        "Linear) or transformer (token vectors and learned positions, two encoder layers, "
        "a mean, then Linear); default: mlp for digits, cnn-bn for mnist, gru for "
        "spoken-digits, bag for sentiment",
    )
    parser.add_argument(
        "--hidden",
        action=GivenOption,
        type=positive_int,
        default=64,
        help="units of the hidden layer (of the state, the channels or the model width of "
        "the spoken-digits models; the width of the token vectors for sentiment, 16 there)",
    )
    parser.add_argument(
        "--seed",
        action=GivenOption,
        type=seed,
        default=0,
        help=f"seed of the split, the initial weights and the batch order, 0 to {MAX_SEED}",
    )
    parser.add_argument(
        "--output",
        action=GivenOption,
        type=output_directory,
        default=Path("xpnn-run"),
        help="directory of the results",
    )
    parser.add_argument(
        "--resume",
        type=output_directory,
        metavar="DIR",
        help="continue the run saved in DIR (interrupted, or with a larger --epochs), with "
        "its settings",
    )
    parser.add_argument("--force", action="store_true", help="overwrite a run already in --output")
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (default: one when tqdm is installed and stderr is a terminal)",
    )
    # --resume takes the run's settings for the options left out.
    parser.set_defaults(given=frozenset())
    cluster = parser.add_argument_group(
        "Dask cluster", "with --backend dask, training runs on a dask.distributed cluster"
    )
    cluster.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="join a running cluster, such as tcp://host:8786 (default: start a local one)",
    )
    cluster.add_argument(
        "--workers",
        type=positive_int,
        help=f"worker processes of the local cluster (default: {DASK_WORKERS})",
    )
    cluster.add_argument(
        "--threads",
        type=positive_int,
        help=f"threads per local worker (default: {DASK_THREADS})",
    )


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="a .safetensors file written by xpnn")
    parser.add_argument("output", type=Path, help="the .onnx file to write")
    parser.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        help="dtype of the graph's input and parameters (default: the saved one)",
    )
    parser.add_argument(
        "--batch",
        type=positive_int,
        help="fix the number of rows (default: any number, a symbolic 'batch' axis)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace the output file if it exists (default: refuse; the checkpoint itself "
        "is never replaced)",
    )


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        help="only these backends, comma-separated (default: every installed one)",
    )


#: The commands of ``xpnn``, in the order of ``xpnn --help``.
COMMANDS: tuple[Command, ...] = (
    Command(
        "train",
        help="train an MLP on scikit-learn's handwritten digits",
        description="Train a classifier: Linear-ReLU-Linear on the 8x8 digits that scikit-learn "
        "ships (--task digits), a LeNet-style CNN on 5,000 real 28x28 MNIST digits "
        "(--task mnist), a GRU on 3,000 spoken digits (--task spoken-digits), or a "
        "fastText-style bag of tokens on 37,243 tweets (--task sentiment).",
        epilog="Writes into the --output directory: metrics.json (test and per-epoch "
        "scores, and the settings of the run), model.safetensors (the model, the "
        "optimizer's state and the schedule's, and the task with the preparation of its "
        "input, for xpnn predict, xpnn export and xpnn.load) and curves.png (the learning "
        "curves; needs matplotlib), with confusion.png, mistakes.png (images and "
        "recordings) and words.png (the words that push hardest toward each class, for the "
        "bag model of texts).",
        arguments=_train_arguments,
        run=train.run,
    ),
    Command(
        "export",
        help="turn a checkpoint of xpnn train (or xpnn.save) into an ONNX file",
        description="Load the model of a checkpoint on NumPy, switch it to eval mode, trace "
        "it through ndonnx and write an ONNX graph; needs pip install 'xpnn[onnx]'.",
        arguments=_export_arguments,
        run=export.run,
    ),
    Command(
        "predict",
        help="the class a trained run gives texts or images, with its probability",
        description="Load a run of xpnn train (its --output folder or its model.safetensors) "
        "on any backend and print, per input, the predicted class, its probability and the "
        "input. sentiment runs take texts ('-' reads one per line of standard input); digits "
        "and mnist runs take image files (PNG), turned grey and resized to the task's size, "
        "dark ink on light paper inverted.",
        arguments=predict.add_arguments,
        run=predict.run,
    ),
    Command(
        "info",
        help="installed backends, their devices and default dtypes",
        run=info.run,
    ),
    Command(
        "check",
        help="gradient checks and cross-backend agreement on every backend and device",
        arguments=_check_arguments,
        run=check.run,
    ),
)


def build_parser(commands: Sequence[Command] = COMMANDS) -> argparse.ArgumentParser:
    """Return the parser of ``xpnn`` with a subcommand for each of ``commands``.

    Parameters
    ----------
    commands : sequence of Command, default COMMANDS
        The subcommands, in the order of ``xpnn --help``.

    Returns
    -------
    argparse.ArgumentParser
        A :class:`Parser`. The namespace it returns has ``command``, the
        name typed, and ``run``, that command's function.

    Examples
    --------
    >>> args = build_parser().parse_args(["train", "--epochs", "2"])
    >>> args.command, args.epochs, args.run is train.run
    ('train', 2, True)
    """
    parser = Parser(
        prog="xpnn",
        description="Neural-network layers written once on the Python array API standard.",
        epilog="Run xpnn COMMAND --help for the options of a command.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"xpnn {__version__}",
        help="print the version and exit",
    )
    subparsers = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", required=True, parser_class=Parser
    )
    for command in commands:
        sub = subparsers.add_parser(
            command.name,
            help=command.help,
            description=command.description,
            epilog=command.epilog,
            formatter_class=HelpFormatter,
        )
        if command.arguments is not None:
            command.arguments(sub)
        sub.set_defaults(run=command.run)
    return parser

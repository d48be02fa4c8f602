"""xpnn.cli.main and xpnn.cli.parser: the commands, and bad arguments in one line."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys

import pytest

from selection import ON_HOST
from xpnn import cli
from xpnn.cli import parser

pytestmark = ON_HOST  # the command line names its backend itself


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--backend", "nope"], "unknown backend 'nope'; choose one of numpy,"),
        (
            ["train", "--backend", "torch", "--device", "tpu"],
            "has no device 'tpu'; it has cpu, cuda",
        ),
        (
            [
                "train",
                "--backend",
                "array_api_strict",
                "--device",
                "no_float64",
                "--dtype",
                "float64",
            ],
            "has no dtype 'float64'; it has float32",
        ),
        (["train", "--epochs", "0"], "expected a positive integer, got 0"),
        (["train", "--lr", "-1"], "expected a positive finite number, got -1.0"),
        (["train", "--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
        (["train", "--workers", "2"], "--workers needs --backend dask, got --backend numpy"),
        (["check", "--backend", "nope"], "unknown backend 'nope'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(xpnn_command, args, message):
    result = xpnn_command(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_every_command_is_in_the_parser():
    names = [command.name for command in parser.COMMANDS]
    assert names == ["train", "export", "predict", "info", "check"]
    built = parser.build_parser()
    for command in parser.COMMANDS:
        argv = {
            "export": ["export", "a.safetensors", "b.onnx"],
            "predict": ["predict", "run", "a text"],
        }.get(command.name, [command.name])
        args = built.parse_args(argv)
        assert (args.command, args.run) == (command.name, command.run)


def test_a_new_command_needs_one_entry(capsys):
    def hello(args: argparse.Namespace) -> int:
        print(f"hello {args.name}")
        return 3

    command = parser.Command(
        "hello",
        help="say hello",
        arguments=lambda sub: sub.add_argument("name"),
        run=hello,
    )
    args = parser.build_parser([*parser.COMMANDS, command]).parse_args(["hello", "you"])
    assert args.run(args) == 3
    assert capsys.readouterr().out == "hello you\n"


@pytest.mark.parametrize(
    ("parse", "text", "expected"),
    [
        (parser.positive_int, "7", 7),
        (parser.positive_int, "x", "expected a positive integer, got 'x'"),
        (parser.positive_int, "-3", "expected a positive integer, got -3"),
        (parser.positive_float, "0.5", 0.5),
        (parser.positive_float, "0", "expected a positive finite number, got 0.0"),
        (parser.positive_float, "nan", "expected a positive finite number, got nan"),
        (parser.positive_float, "one", "expected a positive number, got 'one'"),
    ],
)
def test_value_types(parse, text, expected):
    if isinstance(expected, str):
        with pytest.raises(argparse.ArgumentTypeError, match=expected):
            parse(text)
    else:
        assert parse(text) == expected


def test_python_dash_m_xpnn_cli_is_the_command():
    result = subprocess.run(
        [sys.executable, "-m", "xpnn.cli", "frobnicate"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "invalid choice: 'frobnicate'" in result.stderr


def test_main_returns_the_status(capsys):
    assert cli.main(["info"]) == 0
    assert capsys.readouterr().out.startswith("xpnn ")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "expected an integer from 0 to 4294967295, got -1"),
        ("4294967296", "expected an integer from 0 to 4294967295, got 4294967296"),
        ("1.5", "expected an integer from 0 to 4294967295, got '1.5'"),
    ],
)
def test_a_seed_out_of_range_gives_the_range(xpnn_command, value, message, tmp_path):
    output = tmp_path / "run"
    result = xpnn_command("train", "--seed", value, "--output", str(output))
    assert result.returncode == 2
    assert result.stderr == f"xpnn train: error: argument --seed: {message}\n"
    assert not output.exists()


def test_the_range_of_a_seed_ends_where_it_says():
    assert parser.seed("0") == 0
    assert parser.seed(str(parser.MAX_SEED)) == parser.MAX_SEED


def test_xpnn_alone_prints_the_commands_to_stderr_and_exits_2(xpnn_command):
    result = xpnn_command()
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("usage: xpnn ")
    for command in parser.COMMANDS:
        assert f"    {command.name} " in result.stderr
        assert command.help.split()[0] in result.stderr
    assert "Traceback" not in result.stderr


def test_version(xpnn_command):
    from xpnn._version import __version__

    result = xpnn_command("--version")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"xpnn {__version__}\n", "")


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    built = parser.build_parser()
    (commands,) = [a for a in built._actions if isinstance(a, argparse._SubParsersAction)]
    return {"xpnn": built, **commands.choices}


@pytest.mark.parametrize("name", ["xpnn", *(command.name for command in parser.COMMANDS)])
def test_every_option_has_help_that_states_its_default(name):
    sub = _subparsers()[name]
    for action in sub._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        # The text --help prints, placeholders filled in.
        text = sub._get_formatter()._expand_help(action)
        assert text.strip(), f"{name} {action.option_strings or action.dest} has no help"
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            assert f"(default: {action.default})" in text, (name, action.option_strings, text)
    assert "(default: None)" not in sub.format_help()
    assert "(default: False)" not in sub.format_help()


def test_train_help_lists_the_files_it_writes(xpnn_command):
    result = xpnn_command("train", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for name in ("metrics.json", "model.safetensors", "curves.png"):
        assert name in text
    assert "--seed SEED seed of the split" in text
    assert "(default: 0)" in text


def test_ctrl_c_outside_a_training_run_ends_without_a_traceback(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    commands = [
        dataclasses.replace(c, run=interrupted) if c.name == "info" else c for c in parser.COMMANDS
    ]
    monkeypatch.setattr(cli, "build_parser", lambda: parser.build_parser(commands))
    assert cli.main(["info"]) == 130
    assert capsys.readouterr().err == "xpnn info: interrupted\n"

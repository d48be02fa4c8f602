"""The ``xpnn`` command: ``train``, ``export``, ``info`` and ``check``.

Bad arguments get one line on standard error that says what is available,
and exit status 2; no traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from ._backends import Choice, SelectionError, choose, describe_backends

__all__ = ["main"]

OPTIMIZERS = ("sgd", "adam", "adamw")
# The local cluster of ``--backend dask``: few, single-threaded processes, so
# that it shares a laptop politely.
DASK_WORKERS = 2
DASK_THREADS = 1


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="xpnn",
        description="Neural-network layers written once on the Python array API standard.",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = commands.add_parser(
        "train",
        help="train an MLP on scikit-learn's handwritten digits",
        description="Train Linear-ReLU-Linear on the 8x8 digits that scikit-learn ships.",
    )
    train.add_argument("--backend", default="numpy", help="array library (default numpy)")
    train.add_argument(
        "--device", help="device name from the backend matrix (default: first present)"
    )
    train.add_argument("--dtype", default="float32", help="float32 (default) or float64")
    train.add_argument("--epochs", type=_positive_int, default=20)
    train.add_argument("--batch-size", type=_positive_int, default=32)
    train.add_argument("--lr", type=_positive_float, default=3e-3)
    train.add_argument("--optimizer", choices=OPTIMIZERS, default="adam")
    train.add_argument("--hidden", type=_positive_int, default=64)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--output", type=Path, default=Path("xpnn-run"), help="directory for results"
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    cluster = train.add_argument_group(
        "Dask cluster", "with --backend dask, training runs on a dask.distributed cluster"
    )
    cluster.add_argument(
        "--scheduler", metavar="ADDRESS", help="join a running cluster (tcp://host:8786)"
    )
    cluster.add_argument(
        "--workers",
        type=_positive_int,
        help=f"worker processes of the local cluster (default {DASK_WORKERS})",
    )
    cluster.add_argument(
        "--threads",
        type=_positive_int,
        help=f"threads per local worker (default {DASK_THREADS})",
    )

    export = commands.add_parser(
        "export",
        help="turn a checkpoint of xpnn train (or xpnn.save) into an ONNX file",
        description="Load the model of a checkpoint on NumPy, switch it to eval mode, trace "
        "it through ndonnx and write an ONNX graph; needs pip install 'xpnn[onnx]'.",
    )
    export.add_argument("checkpoint", type=Path, help="a .safetensors file written by xpnn")
    export.add_argument("output", type=Path, help="the .onnx file to write")
    export.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        help="dtype of the graph's input and parameters (default: the saved one)",
    )
    export.add_argument(
        "--batch",
        type=_positive_int,
        help="fix the number of rows (default: any number, a symbolic 'batch' axis)",
    )

    commands.add_parser("info", help="installed backends, their devices and default dtypes")

    check = commands.add_parser(
        "check", help="gradient checks and cross-backend agreement on every backend and device"
    )
    check.add_argument("--backend", help="only these backends, comma-separated")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    handlers = {"train": _train, "export": _export, "info": _info, "check": _check}
    try:
        return handlers[args.command](args)
    except SelectionError as exc:
        print(f"xpnn {args.command}: error: {exc}", file=sys.stderr)
        return 2


# -- train ---------------------------------------------------------------------


def _digits(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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
    cut = round(0.8 * features.shape[0])
    return features[:cut], labels[:cut], features[cut:], labels[cut:]


def _model(choice: Choice, hidden: int, seed: int) -> Any:
    from .layers import Linear, Sequential
    from .layers.activations import ReLU

    where = {"xp": choice.xp, "device": choice.device, "dtype": choice.dtype}
    return Sequential(
        Linear(64, hidden, seed=seed, **where),
        ReLU(),
        Linear(hidden, 10, seed=seed + 1, **where),
    )


def _optimizer(name: str, model: Any, lr: float) -> Any:
    from .optim import SGD, Adam, AdamW

    if name == "sgd":
        return SGD(model, lr=lr, momentum=0.9)
    return (Adam if name == "adam" else AdamW)(model, lr=lr)


def _to_device(choice: Choice, host: np.ndarray, integral: bool = False) -> Any:
    info = choice.xp.__array_namespace_info__()
    dtype = info.default_dtypes(device=choice.device)["indexing"] if integral else choice.dtype
    return choice.xp.asarray(host, dtype=dtype, device=choice.device)


def _train(args: argparse.Namespace) -> int:
    choice = choose(args.backend, args.device, args.dtype)
    given = [f"--{name}" for name in ("scheduler", "workers", "threads") if getattr(args, name)]
    if choice.backend != "dask":
        if given:
            raise SelectionError(
                f"{' and '.join(given)} need --backend dask, got --backend {choice.backend}"
            )
        return _run_training(args, choice, None)
    if args.scheduler and len(given) > 1:
        raise SelectionError(
            "--workers and --threads size a local cluster; with --scheduler the cluster "
            "already runs, so leave them out"
        )
    if importlib.util.find_spec("distributed") is None:
        raise SelectionError(
            "xpnn train --backend dask runs on a dask.distributed cluster, and distributed "
            "is not installed; install it with pip install 'xpnn[dask]'"
        )
    from . import _dask

    workers = args.workers or DASK_WORKERS
    threads = args.threads or DASK_THREADS
    with contextlib.ExitStack() as stack:
        try:
            client = stack.enter_context(
                _dask.cluster(args.scheduler, workers=workers, threads=threads)
            )
        except (OSError, ValueError) as exc:
            raise SelectionError(
                f"cannot reach the Dask scheduler at {args.scheduler}: {exc}; check the "
                "address and that the scheduler is running"
            ) from None
        found = client.scheduler_info().get("workers", {})
        cluster = {
            "scheduler": client.scheduler.address,
            "workers": len(found),
            "threads": sum(worker.get("nthreads", 0) for worker in found.values()),
        }
        kind = "a Dask cluster" if args.scheduler else "a local Dask cluster"
        print(
            f"on {kind} at {cluster['scheduler']}: {cluster['workers']} workers, "
            f"{cluster['threads']} threads"
        )
        return _run_training(args, choice, cluster)


def _run_training(args: argparse.Namespace, choice: Choice, cluster: dict[str, Any] | None) -> int:
    from .losses import CrossEntropyLoss
    from .training import evaluate, fit

    x_train, y_train, x_test, y_test = _digits(args.seed)
    train = _to_device(choice, x_train), _to_device(choice, y_train, integral=True)
    test = _to_device(choice, x_test), _to_device(choice, y_test, integral=True)
    if cluster is not None:
        from . import _dask

        # The data lives on the workers from here on, sent once.
        train, test = _dask.persist(*train), _dask.persist(*test)
    model = _model(choice, args.hidden, args.seed)
    loss = CrossEntropyLoss()
    optimizer = _optimizer(args.optimizer, model, args.lr)
    print(
        f"training {args.hidden}-unit MLP on {x_train.shape[0]} digits with {choice.backend} "
        f"({choice.device_name}, {choice.dtype_name}), {args.optimizer} lr={args.lr:g}, "
        f"{args.epochs} epochs of batch {args.batch_size}"
    )
    start = time.perf_counter()
    history = fit(
        model,
        loss,
        optimizer,
        *train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        validation_data=test,
        progress=False if args.no_progress else None,
    )
    seconds = time.perf_counter() - start
    test_loss, test_accuracy = evaluate(model, loss, *test)
    assert test_accuracy is not None
    correct = round(test_accuracy * x_test.shape[0])
    print(
        f"test accuracy {test_accuracy:.4f} ({correct}/{x_test.shape[0]}), "
        f"test loss {test_loss:.4f}, {seconds:.1f} s"
    )
    _write_outputs(
        args, choice, model, optimizer, history, test_accuracy, test_loss, seconds, cluster
    )
    return 0


def _write_outputs(
    args: argparse.Namespace,
    choice: Choice,
    model: Any,
    optimizer: Any,
    history: Any,
    test_accuracy: float,
    test_loss: float,
    seconds: float,
    cluster: dict[str, Any] | None,
) -> None:
    from . import __version__
    from .checkpoint import save

    output: Path = args.output
    output.mkdir(parents=True, exist_ok=True)
    metrics = {
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "train_loss": history.loss,
        "train_accuracy": history.accuracy,
        "val_loss": history.val_loss,
        "val_accuracy": history.val_accuracy,
        "backend": choice.backend,
        "device": choice.device_name,
        "dtype": choice.dtype_name,
        "seconds": seconds,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "optimizer": args.optimizer,
        "hidden": args.hidden,
        "seed": args.seed,
        "xpnn_version": __version__,
    }
    if cluster is not None:
        metrics["cluster"] = cluster
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    # The model, its structure and the optimizer's state: xpnn.load(path)
    # rebuilds it on any backend, and load_optimizer resumes training.
    save(model, output / "model.safetensors", optimizer=optimizer)
    written = ["metrics.json", "model.safetensors"]
    if _plot(history, output / "curves.png"):
        written.append("curves.png")
    print(f"wrote {', '.join(written)} to {output}")


def _plot(history: Any, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("curves.png skipped: matplotlib is not installed (pip install 'xpnn[demo]')")
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
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


# -- export --------------------------------------------------------------------

# Rows of the check that runs the written graph against the model: an odd
# count, so a graph that only works for even or fixed batches shows.
_CHECK_ROWS = 7


def _export(args: argparse.Namespace) -> int:
    from .checkpoint import CheckpointError, load

    try:
        from .export import ExportError, _build, _require, _write_model
        from .layers import edge_features

        _require()
    except ImportError as exc:
        raise SelectionError(str(exc)) from None
    try:
        # What export_checkpoint does, with the model kept for the check below.
        model = load(args.checkpoint)
        model.eval()
        input_shape = None
        if args.batch is not None:
            features = edge_features(model)
            if features is None:
                raise ExportError(
                    "--batch needs a model that starts with a Linear, to know the input's "
                    "width; export other models with xpnn.export.to_onnx(input_shape=...)"
                )
            input_shape = (args.batch, features)
        proto = _build(
            model,
            input_shape=input_shape,
            example=None,
            dtype=args.dtype,
            dynamic_batch=args.batch is None,
            input_name="input",
            output_name="output",
        )
        # Checked in memory before anything is written: a graph that fails
        # the check replaces nothing.
        checked = _check_with_onnxruntime(model, proto)
        _write_model(proto, args.output)
    except (CheckpointError, ExportError, OSError) as exc:
        raise SelectionError(f"cannot export {args.checkpoint}: {exc}") from None
    graph = proto.graph
    print(
        f"wrote {args.output}: {_describe(graph.input[0])} -> {_describe(graph.output[0])}, "
        f"{len(graph.initializer)} initializers, {args.output.stat().st_size} bytes"
    )
    print(checked)
    return 0


def _describe(value: Any) -> str:
    import onnx

    tensor = value.type.tensor_type
    axes = [d.dim_param or str(d.dim_value) for d in tensor.shape.dim]
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
    return f"{value.name} ({', '.join(axes)}) {dtype}"


def _check_with_onnxruntime(model: Any, proto: Any) -> str:
    """Run the graph and the model on the same random rows; describe the difference."""
    try:
        import onnxruntime
    except ImportError:
        return "not checked: onnxruntime is not installed (pip install 'xpnn[onnx]')"
    session = onnxruntime.InferenceSession(
        proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    feed = session.get_inputs()[0]
    shape = tuple(size if isinstance(size, int) else _CHECK_ROWS for size in feed.shape)
    dtype = "float64" if feed.type == "tensor(double)" else "float32"
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    got = session.run(None, {feed.name: x})[0]
    expected = np.asarray(model.to(np, dtype=dtype)(x))
    difference = float(np.max(np.abs(got - expected), initial=0.0))
    tolerance = (1e-9 if dtype == "float64" else 1e-4) * max(
        1.0, float(np.max(np.abs(expected), initial=0.0))
    )
    if got.shape != expected.shape or not difference <= tolerance:
        raise SelectionError(
            f"the written graph disagrees with the model on {shape[0]} random rows: output "
            f"{got.shape} against {expected.shape}, largest difference {difference:.3g} "
            f"(tolerance {tolerance:.3g}); please report it"
        )
    return (
        f"checked with onnxruntime on {shape[0]} random rows: largest difference {difference:.1e}"
    )


# -- info ----------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _info(args: argparse.Namespace) -> int:
    from . import __version__

    rows = [
        [r["backend"], r["version"], r["device"], r["status"], r["detail"]]
        for r in describe_backends()
    ]
    print(f"xpnn {__version__}, Python {sys.version.split()[0]}")
    print(_table(["backend", "version", "device", "status", "default dtypes / reason"], rows))
    return 0


# -- check ---------------------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    from ._selfcheck import run_checks

    only = [b.strip() for b in args.backend.split(",")] if args.backend else None
    results = run_checks(only)
    rows = [
        [r.backend, r.device, r.dtype, r.check, "pass" if r.passed else "FAIL", f"{r.error:.2e}"]
        for r in results
    ]
    print(_table(["backend", "device", "dtype", "check", "result", "max error"], rows))
    failed = [r for r in results if not r.passed]
    for r in failed:
        print(f"FAIL {r.backend}-{r.device} {r.dtype} {r.check}: {r.message}", file=sys.stderr)
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())

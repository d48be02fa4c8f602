"""Training on a dask.distributed cluster against NumPy, on data that fits in memory.

One MLP, ``Linear(64, 64) - ReLU - Linear(64, 10)``, Adam (lr 0.01),
``CrossEntropyLoss``, float32, trained by :func:`xpnn.training.fit` on the
same data three ways, each in a fresh process of its own so that its peak
memory is its own:

``numpy``
    The data drawn on the host, chunk by chunk, into NumPy arrays; ``fit``
    with ``block_rows`` the chunk's rows and the same ``interleave``, so that
    its batches are the Dask runs' batches.
``dask-1``, ``dask-2``
    A ``LocalCluster`` of one or two single-threaded worker processes
    (:func:`xpnn._dask.cluster`); the data drawn lazily on the workers and
    persisted there before training, as a user whose data fits would do.

The data is the one ``out_of_core.py`` trains on: float32 features drawn
from a generator seeded by each chunk's first row, labels the argmax of a
fixed linear map of them (``CLASSES`` classes). The generator and the
cluster helpers that ``out_of_core.py`` uses live here, once.

Reported for each variant: the seconds of each epoch (``fit``'s history; a
Dask run's first epoch includes its warm-up), rows and MiB of features per
second in the last epoch, the loss and accuracy of each epoch, and memory:
the rise of the peak resident set over the resident set measured once the
libraries are imported and before the data exists, for the process that
calls ``fit`` and, on Dask, for each worker (measured in the worker once it
has imported NumPy, xpnn and array-api-compat). Then the ratios: the
throughput of two workers over one, NumPy's epoch time over Dask's, Dask's
total memory rise over NumPy's, and each rise in multiples of the data's
bytes; and the largest relative difference between NumPy's and Dask's
losses, which see the same batches.

Run from ``benchmarks/``: ``python -m xpnn_bench.distributed [--size
standard|smoke] [--json FILE]``. ``run.py`` runs it after its own
measurements.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .memory import _status

CLASSES = 10
HIDDEN = 64
RULE_SEED = 12345
#: What a ``--variant`` names: ``numpy``, or Dask with that many workers.
VARIANTS = {"numpy": 0, "dask-1": 1, "dask-2": 2}
MIB = 2**20


# -- the data ------------------------------------------------------------------


def _rule(features: int) -> np.ndarray:
    """Return the fixed linear map whose argmax is the label."""
    return np.random.default_rng(RULE_SEED).standard_normal((features, CLASSES)).astype(np.float32)


def features_rows(start: int, stop: int, features: int) -> np.ndarray:
    """Return rows ``start:stop`` of the features, drawn from a seed of their first row.

    Parameters
    ----------
    start, stop : int
        The rows, which must be a whole chunk: the seed is the chunk's.
    features : int
        Columns.

    Returns
    -------
    numpy.ndarray of shape (stop - start, features), float32
    """
    rng = np.random.default_rng([RULE_SEED, start])
    return rng.standard_normal((stop - start, features), dtype=np.float32)


def _features_block(shape_like: np.ndarray, block_info: dict[Any, Any] | None = None) -> np.ndarray:
    assert block_info is not None
    (start, stop), (_, features) = block_info[None]["array-location"]
    return features_rows(start, stop, features)


def _labels_block(x: np.ndarray) -> np.ndarray:
    labels: np.ndarray = np.argmax(x @ _rule(x.shape[1]), axis=1).astype(np.int64)
    return labels


def dataset(rows: int, features: int, chunk_rows: int) -> tuple[Any, Any]:
    """Features and labels as lazy Dask arrays, generated chunk by chunk on the workers.

    Parameters
    ----------
    rows, features : int
        Shape of the features.
    chunk_rows : int
        Rows per chunk.

    Returns
    -------
    x : dask.array.Array of shape (rows, features), float32
    y : dask.array.Array of shape (rows,), int64
    """
    import dask.array as da

    template = da.empty((rows, features), chunks=(chunk_rows, features), dtype=np.float32)
    x = da.map_blocks(_features_block, template, dtype=np.float32)
    y = da.map_blocks(_labels_block, x, drop_axis=1, dtype=np.int64)
    return x, y


def host_dataset(rows: int, features: int, chunk_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw the features and labels of :func:`dataset` on the host, into NumPy arrays.

    Each chunk is drawn and labelled on its own, as on a worker, and
    written into arrays allocated once: the peak is the data, not the data
    and a concatenated copy.
    """
    x = np.empty((rows, features), dtype=np.float32)
    y = np.empty(rows, dtype=np.int64)
    for start in range(0, rows, chunk_rows):
        stop = min(start + chunk_rows, rows)
        x[start:stop] = features_rows(start, stop, features)
        y[start:stop] = _labels_block(x[start:stop])
    return x, y


# -- the cluster's helpers (also used by out_of_core.py) -----------------------


def ship_by_value() -> None:
    """Send this module's functions to the workers by value, not by name.

    Workers of a cluster started elsewhere cannot import ``xpnn_bench``;
    with this they need only NumPy, Dask and xpnn. (Under ``python -m`` the
    module is ``__main__``, which cloudpickle ships by value anyway.)
    """
    import cloudpickle

    # This module, and the one whose _status the workers call.
    for name in (__name__, _status.__module__):
        if name != "__main__":
            cloudpickle.register_pickle_by_value(sys.modules[name])


def _worker_report(dask_worker: Any) -> dict[str, Any]:
    import os

    try:
        # The worker's own peak resident set; getrusage's would carry the
        # peak of the process that started it (see memory_baseline).
        peak = _status()["VmHWM"]
    except OSError:
        peak = _maxrss()
    return {
        "pid": os.getpid(),
        "peak_rss": peak,
        "memory_limit": dask_worker.memory_manager.memory_limit,
    }


class _Sampler(threading.Thread):
    """Poll the workers' memory reports (the scheduler's view of them)."""

    def __init__(self, client: Any, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.client, self.every = client, every
        self.peak: dict[str, int] = {}
        self.spilled: dict[str, int] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            for address, worker in self.client.scheduler_info(n_workers=-1)["workers"].items():
                metrics = worker.get("metrics", {})
                memory = int(metrics.get("memory", 0))
                self.peak[address] = max(self.peak.get(address, 0), memory)
                spilled = metrics.get("spilled_bytes", {}).get("disk", 0)
                self.spilled[address] = max(self.spilled.get(address, 0), int(spilled))
            self._stop_event.wait(self.every)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _task_counter() -> Any:
    from distributed.diagnostics.plugin import SchedulerPlugin

    class TaskCounter(SchedulerPlugin):
        """Count the tasks the scheduler saw finish."""

        name = "xpnn-task-counter"

        def __init__(self) -> None:
            self.ran = 0

        def transition(self, key: Any, start: str, finish: str, *args: Any, **kw: Any) -> None:
            if start == "processing" and finish == "memory":
                self.ran += 1

    return TaskCounter()


def _tasks_ran(client: Any) -> int:
    return int(
        client.run_on_scheduler(
            lambda dask_scheduler: dask_scheduler.plugins["xpnn-task-counter"].ran
        )
    )


# -- memory of a process -------------------------------------------------------


def _maxrss() -> int:
    import resource

    value = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return value if sys.platform == "darwin" else value * 1024


def memory_baseline() -> dict[str, Any]:
    """Start measuring this process's peak memory from now; return the resident set.

    On Linux the peak resident set (``VmHWM``) is reset by writing ``5`` to
    ``/proc/self/clear_refs``, and the peak is read back from it. Not from
    ``getrusage``: its ``ru_maxrss`` also keeps the peak of the process that
    started this one (a child made by fork and exec carries its parent's
    peak across the exec), so a worker started by a large client, or this
    process started by ``run.py``, would report its parent's size. Elsewhere
    the rise of ``ru_maxrss`` is all there is, a lower bound.
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return {"rss_bytes": _status()["VmRSS"], "method": "VmHWM"}
    except OSError:
        return {"rss_bytes": _maxrss(), "method": "ru_maxrss"}


def memory_peak(baseline: dict[str, Any]) -> dict[str, Any]:
    """Return the baseline, the peak since it and their difference, in bytes."""
    peak = _status()["VmHWM"] if baseline["method"] == "VmHWM" else _maxrss()
    return {
        "baseline_bytes": baseline["rss_bytes"],
        "peak_bytes": peak,
        "increment_bytes": max(peak - baseline["rss_bytes"], 0),
        "method": baseline["method"],
    }


def _worker_baseline() -> dict[str, Any]:
    # The libraries a training task uses, imported first: importing them is
    # the price of any worker, not of the data or the training.
    import array_api_compat.dask.array
    import array_api_compat.numpy  # noqa: F401

    import xpnn  # noqa: F401

    return {"pid": os.getpid(), **memory_baseline()}


def _worker_peak(baseline: dict[str, dict[str, Any]], dask_worker: Any) -> dict[str, Any]:
    own = baseline[dask_worker.address]
    return {"pid": os.getpid(), "restarted": os.getpid() != own["pid"], **memory_peak(own)}


# -- one variant, in this process ----------------------------------------------


@dataclass(frozen=True)
class Size:
    """What one ``--size`` trains on."""

    data_mib: float  # features only
    chunk_mib: float
    batch: int
    epochs: int
    features: int = 64
    interleave: int = 2
    lr: float = 1e-2
    memory_limit: str = "4GiB"  # per worker: far above what the data needs
    timeout_s: float = 600.0  # per variant

    @property
    def row_bytes(self) -> int:
        """Bytes of one row of features (float32)."""
        return 4 * self.features

    @property
    def rows(self) -> int:
        """Rows of the data."""
        return int(self.data_mib * MIB) // self.row_bytes

    @property
    def chunk_rows(self) -> int:
        """Rows per chunk, which is also ``fit``'s shuffling block."""
        return max(1, int(self.chunk_mib * MIB) // self.row_bytes)

    @property
    def data_bytes(self) -> int:
        """Bytes of the features and the int64 labels."""
        return self.rows * (self.row_bytes + 8)


SIZES = {
    "smoke": Size(data_mib=8, chunk_mib=2, batch=4096, epochs=2, timeout_s=120.0),
    "standard": Size(data_mib=256, chunk_mib=64, batch=65536, epochs=2),
}


def _model(xp: Any, size: Size) -> tuple[Any, Any]:
    import xpnn
    from xpnn.optim import Adam

    where = {"xp": xp, "device": "cpu", "dtype": xp.float32}
    model = xpnn.Sequential(
        xpnn.Linear(size.features, HIDDEN, seed=0, **where),
        xpnn.ReLU(),
        xpnn.Linear(HIDDEN, CLASSES, seed=1, **where),
    )
    return model, Adam(model, lr=size.lr)


def _fit(xp: Any, size: Size, x: Any, y: Any) -> Any:
    import xpnn
    from xpnn.training import fit

    model, optimizer = _model(xp, size)
    return fit(
        model,
        xpnn.CrossEntropyLoss(),
        optimizer,
        x,
        y,
        epochs=size.epochs,
        batch_size=size.batch,
        block_rows=size.chunk_rows,
        interleave=size.interleave,
        progress=False,
    )


def _training(history: Any, size: Size) -> dict[str, Any]:
    last = history.seconds[-1]
    return {
        "epoch_seconds": history.seconds,
        "rows_per_second": size.rows / last,
        "mib_per_second": size.rows * size.row_bytes / MIB / last,
        "loss": history.loss,
        "accuracy": history.accuracy,
        "steps_per_epoch": -(-size.rows // size.batch),
    }


def run_numpy(size: Size) -> dict[str, Any]:
    """Train on NumPy arrays drawn on the host; return the measurements."""
    import array_api_compat.numpy as npx

    import xpnn  # noqa: F401

    baseline = memory_baseline()
    began = time.perf_counter()
    x, y = host_dataset(size.rows, size.features, size.chunk_rows)
    prepare_s = time.perf_counter() - began
    history = _fit(npx, size, x, y)
    process = memory_peak(baseline)
    return {
        "variant": "numpy",
        "workers": 0,
        "prepare_seconds": prepare_s,
        **_training(history, size),
        "memory": {
            "process": process,
            "workers": {},
            "total_increment_bytes": process["increment_bytes"],
        },
    }


def run_dask(size: Size, workers: int) -> dict[str, Any]:
    """Train on a LocalCluster of ``workers`` processes; return the measurements."""
    import array_api_compat.dask.array as dxp
    import dask
    import distributed

    import xpnn  # noqa: F401
    from xpnn import _dask

    baseline = memory_baseline()
    began = time.perf_counter()
    with _dask.cluster(None, workers=workers, threads=1, memory_limit=size.memory_limit) as client:
        startup_s = time.perf_counter() - began
        started = client.run(_worker_baseline)
        x, y = dataset(size.rows, size.features, size.chunk_rows)
        began = time.perf_counter()
        x, y = _dask.persist(x, y)
        distributed.wait([x, y])
        prepare_s = time.perf_counter() - began
        chunks = {address: len(keys) for address, keys in client.has_what().items()}
        client.register_plugin(_task_counter())
        tasks = _tasks_ran(client)
        history = _fit(dxp, size, x, y)
        tasks = _tasks_ran(client) - tasks
        peaks = client.run(_worker_peak, started)
        process = memory_peak(baseline)
        versions = {"dask": dask.__version__, "distributed": distributed.__version__}
    for address, peak in peaks.items():
        peak["keys_held"] = chunks.get(address, 0)
    training = _training(history, size)
    steps = training["steps_per_epoch"] * size.epochs
    return {
        "variant": f"dask-{workers}",
        "workers": workers,
        "startup_seconds": startup_s,
        "prepare_seconds": prepare_s,
        **training,
        "tasks_per_step": tasks / steps,
        "memory": {
            "process": process,
            "workers": peaks,
            "total_increment_bytes": process["increment_bytes"]
            + sum(peak["increment_bytes"] for peak in peaks.values()),
        },
        "versions": versions,
    }


# -- all variants, each in its own process -------------------------------------


def _child_environment() -> dict[str, str]:
    import xpnn

    env = dict(os.environ)
    # The child imports this package and the same xpnn as this process,
    # installed or not.
    here, source = Path(__file__).resolve().parents[1], Path(xpnn.__file__).resolve().parents[1]
    paths = [str(here), str(source)]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [*paths, env.get("PYTHONPATH")]))
    return env


def _run_child(variant: str, size_name: str) -> dict[str, Any]:
    size = SIZES[size_name]
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / f"{variant}.json"
        command = [sys.executable, "-m", "xpnn_bench.distributed"]
        command += ["--size", size_name, "--variant", variant, "--json", str(out)]
        load = os.getloadavg()[0]
        # A session of its own, so that a timeout ends the cluster's workers too.
        child = subprocess.Popen(command, env=_child_environment(), start_new_session=True)
        try:
            status = child.wait(timeout=size.timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, 9)
            child.wait()
            raise RuntimeError(f"{variant} ran past {size.timeout_s:.0f} s") from None
        if status != 0:
            raise RuntimeError(f"{variant} failed with exit status {status}")
        result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    result["load_before"] = load
    result["load_after"] = os.getloadavg()[0]
    return result


def _relative_difference(a: list[float], b: list[float]) -> float:
    return max(abs(p - q) / abs(q) for p, q in zip(a, b, strict=True))


def compare(variants: dict[str, dict[str, Any]], size: Size) -> dict[str, Any]:
    """Return the ratios between the variants' measurements.

    Ratios of times and throughputs are of the last epoch (the first of a
    Dask run includes its warm-up).
    """
    base = variants["numpy"]
    numpy_memory = base["memory"]["total_increment_bytes"]
    found: dict[str, Any] = {
        "loss_max_relative_difference": {},
        "numpy_over_dask_epoch_seconds": {},
        "dask_over_numpy_memory_increment": {},
        "memory_increment_over_data": {},
    }
    for name, result in variants.items():
        found["memory_increment_over_data"][name] = (
            result["memory"]["total_increment_bytes"] / size.data_bytes
        )
        if name == "numpy":
            continue
        found["loss_max_relative_difference"][name] = _relative_difference(
            result["loss"], base["loss"]
        )
        found["numpy_over_dask_epoch_seconds"][name] = (
            base["epoch_seconds"][-1] / result["epoch_seconds"][-1]
        )
        found["dask_over_numpy_memory_increment"][name] = (
            result["memory"]["total_increment_bytes"] / numpy_memory if numpy_memory else None
        )
    if {"dask-1", "dask-2"} <= set(variants):
        found["throughput_2_over_1_workers"] = (
            variants["dask-2"]["rows_per_second"] / variants["dask-1"]["rows_per_second"]
        )
    return found


def run(size_name: str) -> dict[str, Any]:
    """Run every variant, each in a fresh process, and compare them."""
    from .harness import machine

    size = SIZES[size_name]
    variants = {}
    for variant in VARIANTS:
        variants[variant] = _run_child(variant, size_name)
        print(_line(variants[variant]), flush=True)
    return {
        "size": size_name,
        "config": {
            **asdict(size),
            "rows": size.rows,
            "chunk_rows": size.chunk_rows,
            "features_bytes": size.rows * size.row_bytes,
            "data_bytes": size.data_bytes,
            "hidden": HIDDEN,
            "classes": CLASSES,
            "dtype": "float32",
            "optimizer": "Adam",
        },
        "variants": variants,
        "ratios": compare(variants, size),
        "machine": machine([]),
    }


# -- printing ------------------------------------------------------------------


def _line(result: dict[str, Any]) -> str:
    epochs = ", ".join(f"{s:.2f}" for s in result["epoch_seconds"])
    return (
        f"{result['variant']}: epochs {epochs} s; {result['rows_per_second'] / 1e6:.2f} M rows/s, "
        f"{result['mib_per_second']:.0f} MiB/s; memory +"
        f"{result['memory']['total_increment_bytes'] / MIB:.0f} MiB; load "
        f"{result['load_before']:.2f} -> {result['load_after']:.2f}"
    )


def table(results: dict[str, Any]) -> str:
    """Return the results as readable text."""
    config = results["config"]
    lines = [
        f"{config['rows']} rows x {config['features']} float32 features "
        f"({config['features_bytes'] / MIB:.0f} MiB, {config['data_bytes'] / MIB:.0f} MiB with "
        f"the labels) in chunks of {config['chunk_mib']:g} MiB; batch {config['batch']}, "
        f"interleave {config['interleave']}, {config['epochs']} epoch(s)",
        f"  {'variant':<8}{'epoch seconds':>20}{'M rows/s':>10}{'MiB/s':>8}"
        f"{'process +MiB':>14}{'workers +MiB':>16}{'total +MiB':>12}{'x data':>8}",
    ]
    ratios = results["ratios"]
    for name, result in results["variants"].items():
        memory = result["memory"]
        workers = ", ".join(f"{w['increment_bytes'] / MIB:.0f}" for w in memory["workers"].values())
        lines.append(
            f"  {name:<8}{', '.join(f'{s:.2f}' for s in result['epoch_seconds']):>20}"
            f"{result['rows_per_second'] / 1e6:>10.2f}{result['mib_per_second']:>8.0f}"
            f"{memory['process']['increment_bytes'] / MIB:>14.0f}{workers or '-':>16}"
            f"{memory['total_increment_bytes'] / MIB:>12.0f}"
            f"{ratios['memory_increment_over_data'][name]:>8.2f}"
        )
    for name in ratios["numpy_over_dask_epoch_seconds"]:
        memory = ratios["dask_over_numpy_memory_increment"][name]
        lines.append(
            f"  {name}: numpy / dask epoch time {ratios['numpy_over_dask_epoch_seconds'][name]:.3f}"
            f", dask / numpy memory rise "
            f"{'-' if memory is None else f'{memory:.2f}'}, losses within "
            f"{ratios['loss_max_relative_difference'][name]:.1e} relative"
        )
    if "throughput_2_over_1_workers" in ratios:
        lines.append(
            f"  throughput 2 workers / 1 worker: {ratios['throughput_2_over_1_workers']:.3f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--variant``, one variant); return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m xpnn_bench.distributed", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--size", choices=tuple(SIZES), default="standard")
    parser.add_argument(
        "--variant", choices=tuple(VARIANTS), help="run this variant alone, in this process"
    )
    parser.add_argument("--json", type=Path, help="write the results to this file")
    args = parser.parse_args(argv)
    if args.variant is not None:
        size = SIZES[args.size]
        workers = VARIANTS[args.variant]
        result = run_numpy(size) if workers == 0 else run_dask(size, workers)
    else:
        result = run(args.size)
        print(table(result), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

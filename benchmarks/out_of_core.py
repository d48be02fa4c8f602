"""Train on more data than the workers can hold: xpnn on a dask.distributed cluster.

Usage::

    python benchmarks/out_of_core.py [--gib 8] [--workers 2] [--memory-limit 1GiB]
                                     [--chunk-mib 64] [--batch 262144] [--epochs 1]
                                     [--interleave N] [--scheduler ADDRESS] [--json FILE]

The data never exists in one place: every chunk of the features is drawn on
a worker from a generator seeded by the chunk's position, and its labels are
computed from it by a fixed rule (the argmax of a fixed linear map of the
features, ``CLASSES`` classes), so the task is learnable and the same at
every size. ``fit`` shuffles blocks of one chunk each and ``--interleave``
of them feed every batch, which the workers process side by side.

By default the script starts a ``LocalCluster`` of ``--workers`` processes,
one thread each, with ``--memory-limit`` each; ``--scheduler`` joins a
running cluster instead. While training, it samples each worker's own
memory report every 0.2 s. It prints, and with ``--json`` writes:

- the time of each epoch, rows and MiB per second, the time per step and
  the tasks the scheduler ran per step;
- per worker: the peak of its process memory as it reported it, the peak
  resident size of the process (``VmHWM``, from the worker itself),
  the most it held spilled to disk, and whether it was restarted (a worker that
  died of memory comes back under a new process id);
- the loss and accuracy of each epoch.

It is not run by CI; ``docs/distributed.md`` quotes a run. The suite's
``xpnn_bench.distributed`` trains on the same data, when it fits.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

# The data and the cluster's helpers are the suite's distributed benchmark's.
from xpnn_bench.distributed import (  # noqa: E402
    CLASSES,
    HIDDEN,
    _Sampler,
    _task_counter,
    _tasks_ran,
    _worker_report,
    dataset,
    ship_by_value,
)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=float, default=8.0, help="size of the features (GiB)")
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--chunk-mib", type=float, default=64.0, help="size of a chunk (MiB)")
    parser.add_argument("--batch", type=int, default=262144, help="rows per step")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="1GiB", help="per local worker")
    parser.add_argument("--interleave", type=int, help="blocks per batch (default: workers)")
    parser.add_argument("--scheduler", help="join this cluster instead of starting one")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    import dask
    import distributed

    import xpnn
    from xpnn import _dask
    from xpnn.optim import Adam
    from xpnn.training import fit

    row_bytes = 4 * args.features
    rows = int(args.gib * 2**30) // row_bytes
    chunk_rows = max(1, int(args.chunk_mib * 2**20) // row_bytes)
    x, y = dataset(rows, args.features, chunk_rows)
    # Workers of a cluster joined with --scheduler cannot import xpnn_bench.
    ship_by_value()

    with _dask.cluster(
        args.scheduler, workers=args.workers, threads=1, memory_limit=args.memory_limit
    ) as client:
        workers = client.scheduler_info(n_workers=-1)["workers"]
        interleave = args.interleave or len(workers)
        before = client.run(_worker_report)
        print(
            f"{len(workers)} workers at {client.scheduler.address}, memory limit "
            f"{next(iter(before.values()))['memory_limit'] / 2**30:.2f} GiB each; features "
            f"{rows * row_bytes / 2**30:.2f} GiB ({rows} rows x {args.features} float32) in "
            f"{x.numblocks[0]} chunks of {chunk_rows * row_bytes / 2**20:.0f} MiB; batches of "
            f"{args.batch} rows from {interleave} blocks",
            flush=True,
        )
        import array_api_compat.dask.array as dxp

        where = {"xp": dxp, "device": "cpu", "dtype": dxp.float32}
        model = xpnn.Sequential(
            xpnn.Linear(args.features, HIDDEN, seed=0, **where),
            xpnn.ReLU(),
            xpnn.Linear(HIDDEN, CLASSES, seed=1, **where),
        )
        optimizer = Adam(model, lr=args.lr)
        sampler = _Sampler(client)
        sampler.start()
        client.register_plugin(_task_counter())
        tasks = _tasks_ran(client)
        start = time.perf_counter()
        try:
            history = fit(
                model,
                xpnn.CrossEntropyLoss(),
                optimizer,
                x,
                y,
                epochs=args.epochs,
                batch_size=args.batch,
                interleave=interleave,
                progress=False,
            )
        finally:
            sampler.stop()
        seconds = time.perf_counter() - start
        tasks = _tasks_ran(client) - tasks
        after = client.run(_worker_report)
        steps = args.epochs * -(-rows // args.batch)
        per_worker = {
            address: {
                "peak_process_memory_gib": sampler.peak.get(address, 0) / 2**30,
                "peak_rss_gib": after[address]["peak_rss"] / 2**30,
                "spilled_gib": sampler.spilled.get(address, 0) / 2**30,
                "restarted": after[address]["pid"] != before[address]["pid"],
                "memory_limit_gib": after[address]["memory_limit"] / 2**30,
            }
            for address in before
        }
        results = {
            "workers": len(workers),
            "data_gib": rows * row_bytes / 2**30,
            "rows": rows,
            "chunk_mib": chunk_rows * row_bytes / 2**20,
            "batch": args.batch,
            "interleave": interleave,
            "epochs": args.epochs,
            "steps": steps,
            "seconds": seconds,
            "epoch_seconds": history.seconds,
            "rows_per_second": rows * args.epochs / seconds,
            "mib_per_second": rows * args.epochs * row_bytes / 2**20 / seconds,
            "ms_per_step": 1e3 * seconds / steps,
            "tasks_per_step": tasks / steps,
            "loss": history.loss,
            "accuracy": history.accuracy,
            "per_worker": per_worker,
            "dask": dask.__version__,
            "distributed": distributed.__version__,
        }
    print(
        f"{results['seconds']:.1f} s for {args.epochs} epoch(s), {steps} steps: "
        f"{results['rows_per_second'] / 1e6:.2f} M rows/s, {results['mib_per_second']:.0f} MiB/s, "
        f"{results['ms_per_step']:.0f} ms/step, ~{results['tasks_per_step']:.0f} tasks/step"
    )
    for epoch, (loss, accuracy) in enumerate(zip(history.loss, history.accuracy, strict=True)):
        print(f"epoch {epoch + 1}: loss {loss:.4f}, accuracy {accuracy:.4f}")
    for address, worker in per_worker.items():
        print(
            f"worker {address}: peak memory {worker['peak_process_memory_gib']:.2f} GiB "
            f"(peak RSS {worker['peak_rss_gib']:.2f} GiB) of {worker['memory_limit_gib']:.2f} GiB, "
            f"spilled {worker['spilled_gib']:.2f} GiB, restarted: {worker['restarted']}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

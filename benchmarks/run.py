"""Run xpnn's benchmark suite and write results.json, results.md and plots.

Usage::

    python benchmarks/run.py [--sizes smoke|standard|full] [--backends numpy,torch,...]
                             [--dtypes float32,float64] [--extras compiled,distributed|none]
                             [--out DIR]

It measures, on each backend, device and dtype, Linear forward + backward
against the library's own code, its bare GEMMs and (PyTorch) ``nn.Linear``
with autograd, and one training step of the digits MLP; then the peak
memory of one forward + backward, and how the time grows with the batch
and with the depth of a model on NumPy and PyTorch. After these, each in a
process of its own, the *extras*: training steps eager and compiled
(``xpnn_bench.compiled``, on JAX and PyTorch) and training on a
dask.distributed cluster against NumPy (``xpnn_bench.distributed``).
``docs/benchmarks.md`` describes the method.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from xpnn_bench import (  # noqa: E402
    attention,
    conv,
    linear,
    memory,
    mlp,
    recurrent,
    report,
    scaling,
    sentiment,
    speech,
)
from xpnn_bench.harness import (  # noqa: E402
    ROOT,
    Backend,
    Plan,
    Timing,
    cores,
    interleaved,
    machine,
    paired_ratios,
    ratios,
    select,
)

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class Sizes:
    """What one ``--sizes`` choice measures, and for how long."""

    shapes: tuple[Shape, ...]
    # Measured on NumPy and PyTorch in float32 only, with big_plan.
    big_shapes: tuple[Shape, ...]
    plan: Plan
    big_plan: Plan
    batch_sizes: tuple[int, ...]
    batch_width: int
    depths: tuple[int, ...]
    memory_shape: Shape
    overlap_memory: bool = False
    # The extras run unless --extras says otherwise, and their sizes.
    extras: tuple[str, ...] = ()
    compiled_sizes: str = "both"
    compiled_budget_s: float = 4.0
    distributed_size: str = "standard"
    # The batch of the convolution and LeNet benchmarks.
    conv_batch: int = 64
    # The batch of the sequence benchmarks; None: each its own (32, the bag model's 128).
    sequence_batch: int | None = None


_STANDARD_SHAPES: tuple[Shape, ...] = ((32, 64, 64), (256, 512, 512), (1024, 1024, 1024))
_STANDARD_SHAPES += ((64, 1024, 1024),)
_STANDARD_PLAN = Plan(budget_s=3.0, min_reps=15, max_reps=600, sample_s=1e-3, warmup_s=0.2)
_FEW = Plan(budget_s=0.0, min_reps=3, max_reps=3, sample_s=0.0, warmup_s=0.0)

SIZES = {
    "smoke": Sizes(
        shapes=((4, 8, 8), (16, 32, 32)),
        big_shapes=(),
        plan=Plan(budget_s=0.01, min_reps=3, max_reps=5, sample_s=1e-4, warmup_s=0.0),
        big_plan=_FEW,
        batch_sizes=(1, 8),
        batch_width=32,
        depths=(1, 2),
        memory_shape=(64, 256, 256),
        overlap_memory=True,
        compiled_sizes="small",
        compiled_budget_s=0.2,
        distributed_size="smoke",
        conv_batch=2,
        sequence_batch=2,
    ),
    "standard": Sizes(
        shapes=_STANDARD_SHAPES,
        big_shapes=(),
        plan=_STANDARD_PLAN,
        big_plan=_FEW,
        batch_sizes=(1, 8, 64, 512, 4096),
        batch_width=256,
        depths=(1, 2, 4, 8, 16),
        memory_shape=(1024, 1024, 1024),
        extras=("compiled", "distributed"),
    ),
    "full": Sizes(
        shapes=_STANDARD_SHAPES,
        big_shapes=((4096, 4096, 4096), (64, 4096, 4096)),
        plan=Plan(budget_s=6.0, min_reps=25, max_reps=1000, sample_s=2e-3, warmup_s=0.3),
        big_plan=_FEW,
        batch_sizes=(1, 8, 64, 512, 4096),
        batch_width=256,
        depths=(1, 2, 4, 8, 16),
        memory_shape=(1024, 1024, 1024),
        extras=("compiled", "distributed"),
    ),
}
DTYPES = ("float32", "float64")
# Backends whose every call goes through a scheduler or a wrapper get half
# the budget: their ratios are not targets, and the run stays short.
_HALF_BUDGET = ("dask", "array_api_strict")
#: Benchmarks run after the others, each in a process of its own, and the
#: modules each needs: compiled needs one of its frameworks, not both.
EXTRAS = {"compiled": ("jax", "torch"), "distributed": ("dask", "distributed")}
# An extra that hangs must not hold the run forever (a cluster that never
# starts, a compilation that never ends); standard sizes take a few minutes.
_EXTRA_TIMEOUT_S = 1800.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--sizes", choices=tuple(SIZES), default="standard")
    parser.add_argument(
        "--backends",
        help="comma-separated matrix names (numpy, torch, torch-cuda, jax, array_api_strict, "
        "dask, cupy); default: every installed backend, with its GPUs where present",
    )
    parser.add_argument(
        "--dtypes", default=",".join(DTYPES), help="comma-separated (default float32,float64)"
    )
    parser.add_argument(
        "--extras",
        help="comma-separated benchmarks run after the others, each in its own process: "
        "compiled (JAX and PyTorch steps eager and compiled), distributed (a dask.distributed "
        "cluster against NumPy), or none; default: both for standard and full sizes, none for "
        "smoke",
    )
    parser.add_argument(
        "--system-allocator",
        action="store_true",
        help="keep glibc's default malloc thresholds (see steady_allocator)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "docs" / "benchmarks",
        help="output directory (default docs/benchmarks)",
    )
    return parser


# glibc hands blocks above its mmap threshold (at most 32 MiB) back to the
# kernel on free, so the next allocation of that size page-faults and zeroes
# every page again. Which variant pays depends on which arrays the others
# keep alive between calls: at (64, 1024, 1024) in float64 the same four
# NumPy products measured 11 % apart with gradients kept in a dict or not.
# Fixed thresholds keep freed memory in the heap for every variant alike.
_STEADY_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def steady_allocator() -> None:
    """Re-execute this process with glibc's malloc thresholds fixed.

    Does nothing off Linux, or when the variables are already set (by an
    earlier re-execution or by the caller).
    """
    if not sys.platform.startswith("linux") or any(k in os.environ for k in _STEADY_MALLOC):
        return
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **_STEADY_MALLOC})


def _say(text: str) -> None:
    print(text, flush=True)


def _supported(backend: Backend, dtype: str) -> bool:
    info = backend.xp.__array_namespace_info__()
    return dtype in info.dtypes(device=backend.device, kind="real floating")


def _where(backend: Backend, dtype: str) -> dict[str, str]:
    return {"backend": backend.name, "device": backend.device_name, "dtype": dtype}


def _timings(found: dict[str, Timing]) -> dict[str, Any]:
    return {name: timing.as_dict() for name, timing in found.items()}


def _compared(found: dict[str, Timing]) -> dict[str, Any]:
    return {
        "timings": _timings(found),
        "ratios": ratios(found),
        "paired_ratios": paired_ratios(found),
    }


def _brief(found: dict[str, Timing]) -> str:
    parts = [f"xpnn {report.seconds(found['xpnn'].median)}"]
    parts += [f"{key} {value:.3f}" for key, value in ratios(found).items()]
    return ", ".join(parts)


def _plan(sizes: Sizes, backend: Backend) -> Plan:
    return sizes.plan.scaled(0.5) if backend.name in _HALF_BUDGET else sizes.plan


def _measure_linear(backends: list[Backend], dtypes: list[str], sizes: Sizes) -> list[Any]:
    entries = []
    for backend in backends:
        for dtype in dtypes:
            if not _supported(backend, dtype):
                _say(f"{backend.label} has no {dtype}; skipped")
                continue
            shapes = [(s, _plan(sizes, backend)) for s in sizes.shapes]
            if backend.name in ("numpy", "torch") and dtype == "float32":
                shapes += [(s, sizes.big_plan) for s in sizes.big_shapes]
            for shape, plan in shapes:
                found = interleaved(linear.variants(backend, dtype, *shape), backend.sync, plan)
                flops = linear.flops(*shape)
                entries.append(
                    {
                        **_where(backend, dtype),
                        "shape": list(shape),
                        "flops": flops,
                        "timings": _timings(found),
                        "ratios": ratios(found),
                        "paired_ratios": paired_ratios(found),
                        "gflops": {k: flops / t.median / 1e9 for k, t in found.items()},
                    }
                )
                _say(f"linear {backend.label} {dtype} {shape}: {_brief(found)}")
    return entries


def _measure_mlp(backends: list[Backend], dtypes: list[str], sizes: Sizes) -> list[Any]:
    entries = []
    for backend in backends:
        for dtype in dtypes:
            if not _supported(backend, dtype):
                continue
            found = interleaved(
                mlp.variants(backend, dtype), _mlp_sync(backend), _plan(sizes, backend)
            )
            entries.append(
                {
                    **_where(backend, dtype),
                    "batch": mlp.BATCH,
                    "timings": _timings(found),
                    "ratios": ratios(found),
                    "paired_ratios": paired_ratios(found),
                }
            )
            _say(f"mlp step {backend.label} {dtype}: {_brief(found)}")
    return entries


def _measure_conv(backends: list[Backend], sizes: Sizes) -> tuple[list[Any], list[Any]]:
    """Conv2d forward + backward and the LeNet step, in float32 where a comparison exists."""
    conv_entries, lenet_entries = [], []
    for backend in (b for b in backends if b.name in ("numpy", "torch")):
        plan = _plan(sizes, backend)
        for shape in conv.SHAPES:
            variants = conv.conv_variants(backend, "float32", shape, sizes.conv_batch)
            found = interleaved(variants, backend.sync, plan)
            conv_entries.append(
                {
                    **_where(backend, "float32"),
                    "shape": [sizes.conv_batch, *shape],
                    "timings": _timings(found),
                    "ratios": ratios(found),
                    "paired_ratios": paired_ratios(found),
                }
            )
            _say(f"conv2d {backend.label} float32 {shape}: {_brief(found)}")
        found = interleaved(
            conv.lenet_variants(backend, "float32", sizes.conv_batch), backend.sync, plan
        )
        lenet_entries.append(
            {
                **_where(backend, "float32"),
                "batch": sizes.conv_batch,
                "timings": _timings(found),
                "ratios": ratios(found),
                "paired_ratios": paired_ratios(found),
            }
        )
        _say(f"lenet step {backend.label} float32: {_brief(found)}")
    return conv_entries, lenet_entries


def _measure_sequences(backends: list[Backend], sizes: Sizes) -> dict[str, list[Any]]:
    """Time the GRU and encoder layer forward + backward, the speech and sentiment steps."""
    cases = {
        "gru": (recurrent.gru_variants, recurrent.BATCH),
        "encoder_layer": (attention.encoder_layer_variants, attention.BATCH),
        "speech_step": (speech.step_variants, speech.BATCH),
        "bag_step": (sentiment.step_variants, sentiment.BATCH),
    }
    found: dict[str, list[Any]] = {name: [] for name in cases}
    for backend in (b for b in backends if b.name in ("numpy", "torch")):
        plan = _plan(sizes, backend)
        for name, (variants, own_batch) in cases.items():
            batch = sizes.sequence_batch or own_batch
            timings = interleaved(variants(backend, "float32", batch), backend.sync, plan)
            found[name].append({**_where(backend, "float32"), "batch": batch, **_compared(timings)})
            _say(f"{name} {backend.label} float32: {_brief(timings)}")
    return found


def _mlp_sync(backend: Backend) -> Any:
    # Dask steps persist their parameters themselves and return nothing.
    if backend.name == "dask":
        return lambda outputs: None
    return backend.sync


def _start_memory(backends: list[Backend], sizes: Sizes) -> Callable[[], list[Any]]:
    wanted: list[tuple[str, str]] = []
    for backend in backends:
        if backend.name == "numpy":
            wanted += [("xpnn-numpy", "cpu"), ("numpy", "cpu")]
        elif backend.name == "torch" and backend.device_name in ("cpu", "cuda"):
            wanted += [("xpnn-torch", backend.device_name), ("torch-autograd", backend.device_name)]
    shape, dtype = sizes.memory_shape, "float32"
    pending = memory.start(wanted, shape, dtype)
    return lambda: _memory_entries(wanted, shape, dtype, pending())


def _memory_entries(
    wanted: list[tuple[str, str]], shape: Shape, dtype: str, measured: list[dict[str, Any]]
) -> list[Any]:
    found = {(r["variant"], r["device"]): r for r in measured}
    entries = []
    for ours, reference in memory.PAIRS.items():
        for device in sorted({d for v, d in wanted if v == ours}):
            mine, theirs = found[(ours, device)], found[(reference, device)]
            library = memory.VARIANTS[ours][0]
            entry: dict[str, Any] = {
                "backend": library,
                "device": device,
                "dtype": dtype,
                "shape": list(shape),
                "xpnn": mine,
                "reference": theirs,
                "reference_name": reference,
            }
            if "error" in mine or "error" in theirs:
                entry["error"] = mine.get("error") or theirs.get("error")
                entries.append(entry)
                continue
            measure = "cuda_bytes" if device.startswith("cuda") else "rss_bytes"
            entry["measure"] = measure
            if theirs[measure] > 0:
                entry["ratio"] = mine[measure] / theirs[measure]
            if theirs.get("traced_bytes"):
                entry["ratio_traced"] = mine["traced_bytes"] / theirs["traced_bytes"]
            entries.append(entry)
            _say(
                f"memory {library}-{device} {shape}: xpnn {report._mib(mine[measure])}, "
                f"{reference} {report._mib(theirs[measure])}"
            )
    return entries


def _measure_scaling(backends: list[Backend], sizes: Sizes) -> tuple[list[Any], list[Any]]:
    batch, depth = [], []
    dtype = "float32"
    width = sizes.batch_width
    for backend in backends:
        if backend.name not in ("numpy", "torch") or backend.gpu:
            continue
        plan = sizes.plan
        points = []
        for n in sizes.batch_sizes:
            variants = linear.variants(
                backend, dtype, n, width, width, include=("xpnn", "native", "autograd")
            )
            found = interleaved(variants, backend.sync, plan)
            points.append({"n": n, **_compared(found)})
            _say(f"batch scaling {backend.label} n={n}: {_brief(found)}")
        batch.append({**_where(backend, dtype), "m": width, "p": width, "points": points})
        found_k = []
        points = []
        for k in sizes.depths:
            found = interleaved(scaling.depth_variants(backend, dtype, k), backend.sync, plan)
            found_k.append(found)
            points.append({"k": k, **_compared(found)})
            _say(f"depth scaling {backend.label} k={k}: {_brief(found)}")
        fit = scaling.fit_line(list(sizes.depths), found_k)
        depth.append(
            {
                **_where(backend, dtype),
                "batch": scaling.DEPTH_BATCH,
                "width": scaling.WIDTH,
                "points": points,
                "fit": fit,
                "overhead_per_layer_s": fit["xpnn"]["b_s"] - fit["native"]["b_s"],
            }
        )
    return batch, depth


def _dispatch(linear_entries: list[Any], sizes: Sizes) -> list[Any]:
    smallest = list(min(sizes.shapes, key=math.prod))
    found = []
    for e in linear_entries:
        if e["shape"] == smallest:
            xpnn_s = e["timings"]["xpnn"]["median_s"]
            native_s = e["timings"]["native"]["median_s"]
            found.append(
                {
                    "backend": e["backend"],
                    "device": e["device"],
                    "dtype": e["dtype"],
                    "shape": smallest,
                    "xpnn_s": xpnn_s,
                    "native_s": native_s,
                    "overhead_s": xpnn_s - native_s,
                }
            )
    return found


def _available(module: str) -> bool:
    """Return whether ``module`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class Extra:
    """One extra benchmark, ready to run: its name and its module's arguments."""

    name: str
    arguments: tuple[str, ...]


def _extras(asked: str | None, sizes: Sizes) -> tuple[list[Extra], list[str]]:
    """Decide which extras run, with what; return them and a note for each left out.

    Parameters
    ----------
    asked : str or None
        ``--extras``: names, comma-separated, or ``none``; ``None`` takes the
        size's default.
    sizes : Sizes
        The run's sizes, which size the extras too.

    Raises
    ------
    ValueError
        For an unknown name, or an extra asked for by name whose libraries
        are not installed: what was asked for must run, not be skipped.
    """
    explicit = asked is not None
    if asked is None:
        names = list(sizes.extras)
    elif asked.strip() == "none":
        names = []
    else:
        names = [name.strip() for name in asked.split(",") if name.strip()]
        unknown = [name for name in names if name not in EXTRAS]
        if unknown or not names:
            raise ValueError(f"--extras takes {', '.join(EXTRAS)} or none, got {asked!r}")
    chosen, notes = [], []
    for name in dict.fromkeys(names):
        modules = EXTRAS[name]
        present = [module for module in modules if _available(module)]
        reason = ""
        if name == "compiled" and not present:
            reason = f"{name} extra: needs {' or '.join(modules)}, neither is installed"
        elif name != "compiled" and len(present) < len(modules):
            missing = [module for module in modules if module not in present]
            reason = f"{name} extra: needs {' and '.join(modules)}; "
            reason += f"{' and '.join(missing)} not installed"
        if reason:
            if explicit:
                raise ValueError(f"{reason} (asked for with --extras)")
            notes.append(reason)
            continue
        arguments: tuple[str, ...]
        if name == "compiled":
            notes += [f"compiled extra: {m} not installed" for m in modules if m not in present]
            arguments = ("--frameworks", ",".join(present), "--sizes", sizes.compiled_sizes)
            arguments += ("--budget", f"{sizes.compiled_budget_s:g}")
        else:
            arguments = ("--size", sizes.distributed_size)
        chosen.append(Extra(name, arguments))
    return chosen, notes


def _extra_environment() -> dict[str, str]:
    """Return this process's environment for an extra, without the timing allocator.

    The extras run as they do on their own: the distributed one measures
    whole processes' memory, which glibc's thresholds of ``steady_allocator``
    would inflate. Only values that ``steady_allocator`` itself sets are
    dropped; a caller's own settings pass through.
    """
    import xpnn

    env = {k: v for k, v in os.environ.items() if _STEADY_MALLOC.get(k) != v}
    # The extra imports the same xpnn as this process, installed or not.
    source = str(Path(xpnn.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), source, env.get("PYTHONPATH")]))
    return env


def run_extra(extra: Extra, timeout_s: float = _EXTRA_TIMEOUT_S) -> dict[str, Any]:
    """Run one extra in a fresh process; return its results, or ``{"error": ...}``.

    Its output goes to this process's standard output as it comes. The
    child has a session of its own, so that a timeout ends whatever it
    started (a cluster's workers) along with it.
    """
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / f"{extra.name}.json"
        command = [sys.executable, "-m", f"xpnn_bench.{extra.name}", *extra.arguments]
        command += ["--json", str(out)]
        _say(f"extra {extra.name}: {' '.join(command[1:-2])}")
        env = _extra_environment()
        child = subprocess.Popen(command, cwd=HERE, env=env, start_new_session=True)
        try:
            status = child.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, 9)
            child.wait()
            return {"error": f"ran past {timeout_s:.0f} s and was stopped"}
        except BaseException:
            os.killpg(child.pid, 9)  # interrupted: leave no cluster behind
            child.wait()
            raise
        if status != 0:
            return {"error": f"exit status {status}"}
        found: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return found


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; return the exit status."""
    args = _parser().parse_args(argv)
    sizes = SIZES[args.sizes]
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    unknown = [d for d in dtypes if d not in DTYPES]
    if unknown or not dtypes:
        print(f"run.py: error: --dtypes takes {', '.join(DTYPES)}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        backends, notes = select(args.backends)
        extras, extra_notes = _extras(args.extras, sizes)
    except ValueError as exc:
        print(f"run.py: error: {exc}", file=sys.stderr)
        return 2
    notes += extra_notes
    for note in notes:
        _say(f"skipped {note}")
    if not backends:
        print("run.py: error: no backend to measure", file=sys.stderr)
        return 2
    _say(
        f"sizes {args.sizes}; {', '.join(b.label for b in backends)}; {', '.join(dtypes)}; "
        f"{cores()} cores"
    )
    results: dict[str, Any] = {
        "schema": 1,
        "config": {
            "sizes": args.sizes,
            "backends": [b.label for b in backends],
            "dtypes": dtypes,
            "shapes": [list(s) for s in sizes.shapes],
            "big_shapes": [list(s) for s in sizes.big_shapes],
            "plan": dict(vars(sizes.plan)),
            "batch_sizes": list(sizes.batch_sizes),
            "batch_width": sizes.batch_width,
            "depths": list(sizes.depths),
            "depth_width": scaling.WIDTH,
            "depth_batch": scaling.DEPTH_BATCH,
            "memory_shape": list(sizes.memory_shape),
            "extras": {extra.name: list(extra.arguments) for extra in extras},
            "skipped": notes,
        },
    }
    # Memory first, in child processes, while nothing is being timed (the
    # smoke run, which checks only that everything runs, overlaps them).
    memory_results = _start_memory(backends, sizes)
    if not sizes.overlap_memory:
        results["memory"] = memory_results()
    results["linear"] = _measure_linear(backends, dtypes, sizes)
    results["mlp"] = _measure_mlp(backends, dtypes, sizes)
    results["conv"], results["lenet"] = _measure_conv(backends, sizes)
    results.update(_measure_sequences(backends, sizes))
    results["scaling_batch"], results["scaling_depth"] = _measure_scaling(backends, sizes)
    if sizes.overlap_memory:
        results["memory"] = memory_results()
    results["dispatch"] = _dispatch(results["linear"], sizes)
    # The extras last, when nothing else is being timed: compiling and
    # clusters would disturb the measurements above.
    results["extras_seconds"] = {}
    for extra in extras:
        began = time.perf_counter()
        results[extra.name] = run_extra(extra)
        results["extras_seconds"][extra.name] = time.perf_counter() - began
    results["targets"] = report.targets(results)
    results["machine"] = machine(backends)
    results["elapsed_s"] = time.perf_counter() - start
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    (out / "results.md").write_text(report.markdown(results), encoding="utf-8")
    written = ["results.json", "results.md", *report.plots(results, out)]
    failed = [t for t in results["targets"] if not t["passed"]]
    _say(
        f"{len(results['targets']) - len(failed)} of {len(results['targets'])} targets met; "
        f"wrote {', '.join(written)} to {out} after {time.perf_counter() - start:.1f} s"
    )
    broken = [extra.name for extra in extras if "error" in results[extra.name]]
    for name in broken:
        print(f"run.py: error: extra {name}: {results[name]['error']}", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    if "--system-allocator" not in sys.argv[1:]:
        steady_allocator()  # replaces this process; main() itself never does
    sys.exit(main())

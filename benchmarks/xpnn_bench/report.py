"""Targets, the Markdown report and the plots, from the results dictionary."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# Shapes with at least this many multiply-adds per GEMM count as large.
LARGE = 256 * 512 * 512
MICRO = "\u00b5"
NAMES = {
    "xpnn": "xpnn",
    "native": "hand-written",
    "gemm": "bare GEMMs",
    "autograd": "torch autograd",
}


def _size(shape: Iterable[int]) -> int:
    return math.prod(shape)


def _shape(shape: Iterable[int]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def seconds(value: float) -> str:
    """Format a duration with a unit that keeps three or four digits."""
    if value < 1e-3:
        return f"{value * 1e6:.1f} {MICRO}s"
    if value < 1:
        return f"{value * 1e3:.2f} ms"
    return f"{value:.2f} s"


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.2f} MiB"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


# -- targets -------------------------------------------------------------------


#: ``(results key, the variant xpnn is held against, target name, limit)``.
_SEQUENCE_TARGETS = (
    ("gru", "native", "GRU fwd+bwd / hand-written NumPy GRU", 1.2),
    ("gru", "autograd", "GRU fwd+bwd / nn.GRU + autograd", 2.0),
    ("encoder_layer", "autograd", "TransformerEncoderLayer fwd+bwd / torch autograd", 1.5),
    ("speech_step", "autograd", "spoken-digits step / torch autograd + Adam", 1.5),
    ("bag_step", "autograd", "sentiment bag step / nn.EmbeddingBag + Adam", 2.0),
)

#: How the sequence section names each case and what it is held against.
_SEQUENCE_CASES = {
    "gru": ("GRU 13->64, 40 steps, fwd+bwd", "hand-written NumPy GRU", "nn.GRU + autograd"),
    "encoder_layer": (
        "TransformerEncoderLayer, length 40, d_model 64, 4 heads, fwd+bwd",
        "-",
        "nn.TransformerEncoderLayer + autograd",
    ),
    "speech_step": (
        "spoken-digits GRU step (lengths 6..40, Adam)",
        "-",
        "nn.GRU on packed sequences + Adam",
    ),
    "bag_step": (
        "sentiment bag step (130,000 x 16 table, 4..60 tokens, Adam)",
        "-",
        "nn.EmbeddingBag + Adam",
    ),
}


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Check the results against xpnn's performance targets.

    The small shape is the smallest of the run, ``(32, 64, 64)`` in the
    standard and full sizes; large shapes have ``n m p`` at least that of
    ``(256, 512, 512)``. All targets are on the CPU, in float32.
    """
    found: list[dict[str, Any]] = []

    def add(
        name: str,
        entry: dict[str, Any],
        value: float,
        limit: float,
        op: str,
        paired: float | None = None,
    ) -> None:
        passed = value <= limit if op == "<=" else value >= limit
        found.append(
            {
                "target": name,
                "backend": entry["backend"],
                "device": entry["device"],
                "dtype": entry["dtype"],
                "shape": entry.get("shape"),
                "value": value,
                "limit": limit,
                "op": op,
                "passed": passed,
                "paired": paired,
            }
        )

    shapes = [tuple(shape) for shape in results["config"]["shapes"]]
    small = min(shapes, key=_size) if shapes else None
    cpu32 = [
        e
        for e in results["linear"]
        if e["device"] == "cpu" and e["dtype"] == "float32" and e["backend"] in ("numpy", "torch")
    ]
    for entry in cpu32:
        shape = tuple(entry["shape"])
        is_small = shape == small
        if not is_small and _size(shape) < LARGE:
            continue
        ratio, paired = entry["ratios"], entry.get("paired_ratios", {})
        if "xpnn/autograd" in ratio:
            limit = 0.75 if is_small else 1.02
            value = ratio["xpnn/autograd"]
            add(
                "xpnn / nn.Linear + autograd",
                entry,
                value,
                limit,
                "<=",
                paired.get("xpnn/autograd"),
            )
        limit = 1.25 if is_small else 1.03
        add(
            "xpnn / hand-written",
            entry,
            ratio["xpnn/native"],
            limit,
            "<=",
            paired.get("xpnn/native"),
        )
        if not is_small:
            share = 1 / ratio["xpnn/gemm"]
            inverse = 1 / paired["xpnn/gemm"] if "xpnn/gemm" in paired else None
            add("xpnn GFLOP/s / bare-GEMM GFLOP/s", entry, share, 0.95, ">=", inverse)
    for entry in results["dispatch"]:
        if entry["backend"] == "numpy" and entry["dtype"] == "float32":
            add(f"fixed cost per call ({MICRO}s)", entry, entry["overhead_s"] * 1e6, 3.0, "<=")
    for entry in results["mlp"]:
        if (
            entry["backend"] in ("numpy", "torch")
            and entry["device"] == "cpu"
            and entry["dtype"] == "float32"
        ):
            # The whole training step: forward, cross-entropy, backward, SGD.
            ratio = entry["ratios"].get("xpnn/native")
            paired = entry.get("paired_ratios", {}).get("xpnn/native")
            if ratio is not None:
                add("digits MLP step / hand-written step", entry, ratio, 1.5, "<=", paired)
        if entry["backend"] == "torch" and entry["device"] == "cpu" and entry["dtype"] == "float32":
            ratio = entry["ratios"].get("xpnn/autograd")
            paired = entry.get("paired_ratios", {}).get("xpnn/autograd")
            if ratio is not None:
                name = "digits MLP step / nn.Sequential + autograd + SGD"
                add(name, entry, ratio, 1.0, "<=", paired)
    # Convolution and the LeNet step; older results files have neither.
    for entry in results.get("conv", []):
        if entry["device"] != "cpu":
            continue
        ratio, paired = entry["ratios"], entry.get("paired_ratios", {})
        if "xpnn/native" in ratio:
            name = "Conv2d fwd+bwd / sliding_window_view + tensordot"
            add(name, entry, ratio["xpnn/native"], 1.2, "<=", paired.get("xpnn/native"))
        if "xpnn/autograd" in ratio:
            name = "Conv2d fwd+bwd / nn.Conv2d + autograd"
            add(name, entry, ratio["xpnn/autograd"], 1.5, "<=", paired.get("xpnn/autograd"))
    for entry in results.get("lenet", []):
        ratio = entry["ratios"].get("xpnn/autograd")
        if entry["device"] == "cpu" and ratio is not None:
            paired = entry.get("paired_ratios", {}).get("xpnn/autograd")
            add("LeNet step / torch autograd + Adam", entry, ratio, 1.5, "<=", paired)
    # The sequence layers and the spoken-digits step; older results files have none.
    for key, other, name, limit in _SEQUENCE_TARGETS:
        for entry in results.get(key, []):
            ratio = entry["ratios"].get(f"xpnn/{other}")
            if entry["device"] == "cpu" and ratio is not None:
                paired = entry.get("paired_ratios", {}).get(f"xpnn/{other}")
                add(name, entry, ratio, limit, "<=", paired)
    for entry in results["memory"]:
        if entry["backend"] == "torch" and entry["device"] == "cpu" and entry.get("ratio"):
            add("peak memory / torch autograd", entry, entry["ratio"], 1.0, "<=")
    return found


# -- Markdown ------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _versions(machine: dict[str, Any]) -> str:
    versions = machine["versions"]
    threads = machine["threads"]
    parts = []
    for name in ("xpnn", "numpy", "torch", "jax", "dask", "array-api-strict", "array-api-compat"):
        if name in versions:
            extra = ""
            if name == "torch" and "torch_num_threads" in threads:
                extra = f" ({threads['torch_num_threads']} threads)"
            parts.append(f"{name} {versions[name]}{extra}")
    return ", ".join(parts)


def _allocator(machine: dict[str, Any]) -> str:
    environment = machine["threads"]["environment"]
    if "MALLOC_MMAP_THRESHOLD_" not in environment:
        return " glibc's default malloc thresholds."
    return (
        f" glibc malloc thresholds fixed at MALLOC_MMAP_THRESHOLD_="
        f"{environment['MALLOC_MMAP_THRESHOLD_']} (see `--system-allocator`)."
    )


def _linear_section(results: dict[str, Any]) -> list[str]:
    lines = [
        "## Linear forward + backward",
        "",
        "`y, back = layer.forward(x); back(dy)` against the same four results written with the "
        "library's functions, against the three matrix products alone, and on PyTorch against "
        "`nn.Linear` with autograd. GFLOP/s count `6 n m p` flops per forward + backward.",
        "",
    ]
    for label in dict.fromkeys(f"{e['backend']}-{e['device']}" for e in results["linear"]):
        entries = [e for e in results["linear"] if f"{e['backend']}-{e['device']}" == label]
        autograd = any("autograd" in e["timings"] for e in entries)
        header = ["dtype", "shape (n, m, p)", "xpnn", "hand-written", "bare GEMMs"]
        header += ["nn.Linear + autograd"] if autograd else []
        header += ["xpnn / hand-written", "xpnn / GEMMs"]
        header += ["xpnn / autograd"] if autograd else []
        header += ["xpnn GFLOP/s", "GEMM GFLOP/s", "reps"]
        rows = []
        for e in entries:
            t = {k: v["median_s"] for k, v in e["timings"].items()}
            row = [e["dtype"], _shape(e["shape"]), seconds(t["xpnn"])]
            row += [seconds(t["native"]), seconds(t["gemm"])]
            row += [seconds(t["autograd"])] if autograd else []
            row += [_ratio(e["ratios"]["xpnn/native"]), _ratio(e["ratios"]["xpnn/gemm"])]
            row += [_ratio(e["ratios"].get("xpnn/autograd"))] if autograd else []
            row += [f"{e['gflops']['xpnn']:.1f}", f"{e['gflops']['gemm']:.1f}"]
            row += [str(e["timings"]["xpnn"]["reps"])]
            rows.append(row)
        lines += [f"### {label}", "", *_table(header, rows)]
    return lines


def _mlp_section(results: dict[str, Any]) -> list[str]:
    rows = []
    for e in results["mlp"]:
        t = {k: v["median_s"] for k, v in e["timings"].items()}
        rows.append(
            [
                f"{e['backend']}-{e['device']}",
                e["dtype"],
                seconds(t["xpnn"]),
                seconds(t["native"]),
                seconds(t["autograd"]) if "autograd" in t else "-",
                _ratio(e["ratios"]["xpnn/native"]),
                _ratio(e["ratios"].get("xpnn/autograd")),
            ]
        )
    header = ["backend", "dtype", "xpnn", "hand-written", "torch autograd"]
    header += ["xpnn / hand-written", "xpnn / torch autograd"]
    return [
        "## Digits MLP training step",
        "",
        "One step of `xpnn train`'s model, `Linear(64, 64) - ReLU - Linear(64, 10)` on a batch "
        "of 32: forward, `CrossEntropyLoss`, backward, `SGD(lr=0.1).step()`. On PyTorch "
        "against `nn.Sequential` + `F.cross_entropy` + autograd + `torch.optim.SGD`.",
        "",
        *_table(header, rows),
    ]


def _conv_section(results: dict[str, Any]) -> list[str]:
    rows = []
    for e in results.get("conv", []):
        t = {k: v["median_s"] for k, v in e["timings"].items()}
        other = "native" if "native" in t else "autograd" if "autograd" in t else None
        rows.append(
            [
                f"{e['backend']}-{e['device']}",
                _shape(e["shape"]),
                seconds(t["xpnn"]),
                {
                    "native": "sliding_window_view + tensordot",
                    "autograd": "nn.Conv2d + autograd",
                }.get(other or "", "-"),
                seconds(t[other]) if other else "-",
                _ratio(e["ratios"].get(f"xpnn/{other}")) if other else "-",
            ]
        )
    for e in results.get("lenet", []):
        t = {k: v["median_s"] for k, v in e["timings"].items()}
        rows.append(
            [
                f"{e['backend']}-{e['device']}",
                f"LeNet step, batch {e['batch']}",
                seconds(t["xpnn"]),
                "torch autograd + Adam" if "autograd" in t else "-",
                seconds(t["autograd"]) if "autograd" in t else "-",
                _ratio(e["ratios"].get("xpnn/autograd")),
            ]
        )
    if not rows:
        return []
    header = ["backend", "what (N, C_in, C_out, side)", "xpnn", "against", "time", "ratio"]
    return [
        "## Convolution and the LeNet step",
        "",
        "`Conv2d` forward + backward (output, input, weight and bias gradients) at the two "
        "shapes of `xpnn train --task mnist`'s network, 5x5 kernel, padding 2, float32: on "
        "NumPy against `sliding_window_view` + `tensordot` written by hand, on PyTorch against "
        "`nn.Conv2d` with autograd. Then one training step of that network (forward, "
        "`CrossEntropyLoss`, backward, `Adam`) against the same network in PyTorch.",
        "",
        *_table(header, rows),
    ]


def _sequence_section(results: dict[str, Any]) -> list[str]:
    rows = []
    for key, (what, native, autograd) in _SEQUENCE_CASES.items():
        for e in results.get(key, []):
            t = {k: v["median_s"] for k, v in e["timings"].items()}
            other = "native" if "native" in t else "autograd" if "autograd" in t else None
            against = {"native": native, "autograd": autograd}.get(other or "", "-")
            rows.append(
                [
                    f"{e['backend']}-{e['device']}",
                    f"{what}, batch {e['batch']}",
                    seconds(t["xpnn"]),
                    against,
                    seconds(t[other]) if other else "-",
                    _ratio(e["ratios"].get(f"xpnn/{other}")) if other else "-",
                ]
            )
    if not rows:
        return []
    per_step = [
        f"{e['backend']} {seconds(e['timings']['xpnn']['median_s'] / 40)}"
        for e in results.get("gru", [])
    ]
    header = ["backend", "what", "xpnn", "against", "time", "ratio"]
    return [
        "## Sequence layers and the spoken-digits step",
        "",
        "Forward + backward of a `GRU` (given the gradient of every output) and of a "
        "post-norm `TransformerEncoderLayer` (feed-forward 256, dropout 0), then one training "
        "step of `xpnn train --task spoken-digits`'s default model (GRU 64, `Linear`, "
        "`CrossEntropyLoss`, `Adam`) on recordings of 6 to 40 frames, and one of "
        "`xpnn train --task sentiment`'s `bag` model (`Embedding` of 130,000 rows, masked "
        "mean, `Linear`, `Adam`) on texts of 4 to 60 Zipf-drawn token ids; float32. The time loop "
        "is a Python loop of standard operations; forward + backward per time step: "
        f"{', '.join(per_step) or '-'}.",
        "",
        *_table(header, rows),
    ]


def _memory_section(results: dict[str, Any]) -> list[str]:
    rows = []
    for e in results["memory"]:
        if "error" in e:
            rows.append([f"{e['backend']}-{e['device']}", e["dtype"], "-", "-", "-", e["error"]])
            continue
        traced = ""
        if e["xpnn"].get("traced_bytes") is not None:
            traced = (
                f"traced: {_mib(e['xpnn']['traced_bytes'])} vs "
                f"{_mib(e['reference']['traced_bytes'])}"
            )
        rows.append(
            [
                f"{e['backend']}-{e['device']}",
                e["dtype"],
                _mib(e["xpnn"].get(e["measure"])),
                f"{_mib(e['reference'].get(e['measure']))} ({e['reference_name']})",
                _ratio(e.get("ratio")),
                traced,
            ]
        )
    shape = _shape(results["memory"][0]["shape"]) if results["memory"] else ""
    return [
        f"## Peak memory of forward + backward, {shape}",
        "",
        "Each variant in a fresh process: the rise of the peak resident set over the "
        "post-setup baseline (on CUDA, of `torch.cuda.max_memory_allocated`), with the "
        "outputs alive at the end; NumPy's also as `tracemalloc` sees them.",
        "",
        *_table(["backend", "dtype", "xpnn", "reference", "ratio", "NumPy, tracemalloc"], rows),
    ]


def _dispatch_section(results: dict[str, Any]) -> list[str]:
    rows = [
        [
            f"{e['backend']}-{e['device']}",
            e["dtype"],
            _shape(e["shape"]),
            seconds(e["xpnn_s"]),
            seconds(e["native_s"]),
            f"{e['overhead_s'] * 1e6:.2f} {MICRO}s",
        ]
        for e in results["dispatch"]
    ]
    return [
        "## Fixed cost per call",
        "",
        "xpnn's Linear forward + backward less the hand-written one, at the smallest shape.",
        "",
        *_table(["backend", "dtype", "shape", "xpnn", "hand-written", "difference"], rows),
    ]


def _scaling_sections(results: dict[str, Any]) -> list[str]:
    lines = ["## Scaling with the batch size", ""]
    for e in results["scaling_batch"]:
        names = list(e["points"][0]["timings"])
        header = ["n", *(NAMES[n] for n in names), *(f"xpnn / {NAMES[n]}" for n in names[1:])]
        rows = []
        for point in e["points"]:
            times = [seconds(point["timings"][n]["median_s"]) for n in names]
            ratios = [_ratio(point["ratios"][f"xpnn/{n}"]) for n in names[1:]]
            rows.append([str(point["n"]), *times, *ratios])
        title = f"### {e['backend']}-{e['device']}, {e['dtype']}, m = p = {e['m']}"
        lines += [title, "", *_table(header, rows)]
    lines += [
        "## Scaling with depth",
        "",
        f"`Sequential` of k blocks `Linear({results['config']['depth_width']}, "
        f"{results['config']['depth_width']}) + ReLU`, batch {results['config']['depth_batch']}, "
        "forward + backward; `time = a + b k` fitted to the medians.",
        "",
    ]
    rows = []
    for e in results["scaling_depth"]:
        for name, fit in e["fit"].items():
            extra = "-"
            if name == "xpnn":
                extra = f"{e['overhead_per_layer_s'] * 1e6:.2f} {MICRO}s"
            rows.append(
                [
                    f"{e['backend']}-{e['device']}",
                    e["dtype"],
                    NAMES[name],
                    f"{fit['a_s'] * 1e6:.2f} {MICRO}s",
                    f"{fit['b_s'] * 1e6:.2f} {MICRO}s",
                    extra,
                ]
            )
    header = ["backend", "dtype", "variant", "a (fixed)", "b (per block)", "b - hand-written b"]
    lines += _table(header, rows)
    for e in results["scaling_depth"]:
        names = list(e["points"][0]["timings"])
        rows = [
            [str(p["k"]), *(seconds(p["timings"][n]["median_s"]) for n in names)]
            for p in e["points"]
        ]
        lines += [
            f"### {e['backend']}-{e['device']}, {e['dtype']}",
            "",
            *_table(["k", *(NAMES[n] for n in names)], rows),
        ]
    return lines


def _compiled_section(compiled: dict[str, Any], arguments: list[str]) -> list[str]:
    lines = [
        "## Compiled training steps",
        "",
        "One training step of `Linear - ReLU - Linear(10)`, softmax cross-entropy, SGD with "
        "momentum, on a fixed batch in float32: xpnn eager, xpnn compiled "
        "(`xpnn.interop.jax.train_step`, `xpnn.interop.torch.compiled_step`) and the "
        "framework's own step, eager and compiled. Timed interleaved after compilation; "
        "*compile* is the time of the first two calls. Not targets. "
        f"`python -m xpnn_bench.compiled {' '.join(arguments)}`, in a process of its own.",
        "",
    ]
    if "error" in compiled:
        return [*lines, f"The benchmark failed: {compiled['error']}.", ""]
    for run in compiled["runs"]:
        timings = run["timings"]
        fastest = min(t["median_s"] for t in timings.values())
        rows = [
            [
                name,
                seconds(t["median_s"]),
                _ratio(t["median_s"] / fastest),
                f"{run['compile_s'][name]:.1f} s" if name in run["compile_s"] else "-",
            ]
            for name, t in timings.items()
        ]
        title = (
            f"### {run['framework']}, batch {run['batch']}, {run['features']}-{run['hidden']}-10"
        )
        lines += [title, "", *_table(["variant", "per step", "/ fastest", "compile"], rows)]
        lines += _table(
            ["ratio of steps", "value"],
            [[label, _ratio(value)] for label, value in run["ratios"].items()],
        )
        if "xpnn_compiled_graph_breaks" in run:
            lines += [
                f"Graph breaks of the xpnn step under `torch.compile`: "
                f"{run['xpnn_compiled_graph_breaks']}.",
                "",
            ]
    return lines


def _distributed_section(distributed: dict[str, Any]) -> list[str]:
    lines = ["## Training on a dask.distributed cluster", ""]
    if "error" in distributed:
        return [*lines, f"The benchmark failed: {distributed['error']}.", ""]
    config = distributed["config"]
    lines += [
        f"`fit` of `Linear({config['features']}, {config['hidden']}) - ReLU - "
        f"Linear({config['hidden']}, {config['classes']})`, Adam (lr {config['lr']:g}), "
        f"float32, on {config['rows']} rows of {config['features']} features "
        f"({_mib(config['features_bytes'])}; {_mib(config['data_bytes'])} with the labels) "
        f"in chunks of {config['chunk_mib']:g} MiB, batch {config['batch']}, interleave "
        f"{config['interleave']}, {config['epochs']} epochs: on NumPy arrays, and on a "
        "`LocalCluster` of 1 and 2 single-threaded workers with the data persisted on them; "
        "each in a fresh process. Throughput is of the last epoch (a Dask run's first one "
        "includes its warm-up). Memory is the rise of each process's peak resident set over "
        "its resident set once its libraries are imported; for Dask, of the client (which "
        "runs the scheduler) and of each worker. Not targets.",
        "",
    ]
    ratios = distributed["ratios"]
    rows = []
    for name, result in distributed["variants"].items():
        memory = result["memory"]
        workers = ", ".join(_mib(w["increment_bytes"]) for w in memory["workers"].values())
        rows.append(
            [
                name,
                ", ".join(f"{value:.2f}" for value in result["epoch_seconds"]),
                f"{result['rows_per_second'] / 1e6:.3f}",
                f"{result['mib_per_second']:.1f}",
                ", ".join(f"{value:.4f}" for value in result["loss"]),
                _mib(memory["process"]["increment_bytes"]),
                workers or "-",
                _mib(memory["total_increment_bytes"]),
                f"{ratios['memory_increment_over_data'][name]:.2f}",
                f"{result['load_before']:.2f} to {result['load_after']:.2f}",
            ]
        )
    header = ["variant", "epoch seconds", "M rows/s", "MiB/s", "loss per epoch"]
    header += ["memory rise: process", "workers", "total", "total / data", "load average"]
    lines += _table(header, rows)
    names = list(ratios["numpy_over_dask_epoch_seconds"])
    rows = [
        [
            "NumPy epoch time / Dask epoch time",
            *(_ratio(ratios["numpy_over_dask_epoch_seconds"][n]) for n in names),
        ],
        [
            "Dask memory rise / NumPy memory rise",
            *(_ratio(ratios["dask_over_numpy_memory_increment"][n]) for n in names),
        ],
        [
            "largest relative difference of the losses",
            *(f"{ratios['loss_max_relative_difference'][n]:.1e}" for n in names),
        ],
    ]
    lines += _table(["comparison", *names], rows)
    if "throughput_2_over_1_workers" in ratios:
        lines += [
            f"Throughput of 2 workers over 1 worker: {ratios['throughput_2_over_1_workers']:.3f}.",
            "",
        ]
    return lines


def markdown(results: dict[str, Any]) -> str:
    """Return ``results.md``: the targets, then one table per comparison."""
    machine = results["machine"]
    config = results["config"]
    gpus = f"; {', '.join(machine['gpus'])}" if machine["gpus"] else ""
    lines = [
        "---",
        "orphan: true",
        "---",
        "",
        "# Benchmark results",
        "",
        f"`python benchmarks/run.py --sizes {config['sizes']}` on {machine['date']}, "
        f"{results['elapsed_s']:.0f} s: {machine['cpu']}, {machine['cores']} cores{gpus}; "
        f"Python {machine['python']}; {_versions(machine)}.{_allocator(machine)}",
        "",
        "Times are medians of interleaved samples, per call. A ratio is xpnn's median over the "
        "other variant's: below 1, xpnn is faster. *Paired* is the median over repetitions of "
        "the same ratio taken sample by sample; a gap between the two marks a noisy comparison.",
        "",
        "## Targets",
        "",
    ]
    rows = []
    for t in results["targets"]:
        value = f"{t['value']:.2f}" if "cost" in t["target"] else _ratio(t["value"])
        limit = f"{t['op'].replace('<=', '≤').replace('>=', '≥')} {t['limit']:g}"
        shape = _shape(t["shape"]) if t.get("shape") else "-"
        mark = "✅ pass" if t["passed"] else "❌ fail"
        paired = _ratio(t.get("paired"))
        where = f"{t['backend']}-{t['device']}"
        rows.append([t["target"], where, shape, value, paired, limit, mark])
    if rows:
        header = ["target", "backend", "shape", "measured", "paired", "limit", "result"]
        lines += _table(header, rows)
    else:
        lines += ["No target applies to the shapes and backends of this run.", ""]
    lines += _linear_section(results)
    lines += _mlp_section(results)
    lines += _conv_section(results)
    lines += _sequence_section(results)
    if results["memory"]:
        lines += _memory_section(results)
    lines += _dispatch_section(results)
    lines += _scaling_sections(results)
    extras = results["config"].get("extras", {})
    if "compiled" in results:
        lines += _compiled_section(results["compiled"], extras.get("compiled", []))
    if "distributed" in results:
        lines += _distributed_section(results["distributed"])
    return "\n".join(lines).rstrip() + "\n"


# -- plots ---------------------------------------------------------------------


def plots(results: dict[str, Any], out: Path) -> list[str]:
    """Draw throughput.png, scaling_batch.png and scaling_depth.png; return the names."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    if results["linear"]:
        _throughput(plt, results["linear"], out / "throughput.png")
        written.append("throughput.png")
    if results["scaling_batch"]:
        _scaling(plt, results["scaling_batch"], "n", out / "scaling_batch.png")
        written.append("scaling_batch.png")
    if results["scaling_depth"]:
        _scaling(plt, results["scaling_depth"], "k", out / "scaling_depth.png")
        written.append("scaling_depth.png")
    return written


def _throughput(plt: Any, linear: list[dict[str, Any]], path: Path) -> None:
    labels = list(dict.fromkeys(f"{e['backend']}-{e['device']}" for e in linear))
    columns = min(3, len(labels))
    rows = math.ceil(len(labels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.6 * rows), squeeze=False)
    for ax, label in zip(axes.flat, labels, strict=False):
        entries = [e for e in linear if f"{e['backend']}-{e['device']}" == label]
        shapes = list(dict.fromkeys(tuple(e["shape"]) for e in entries))
        dtypes = list(dict.fromkeys(e["dtype"] for e in entries))
        bars = [(d, v) for d in dtypes for v in ("gemm", "xpnn")]
        width = 0.8 / len(bars)
        for index, (dtype, variant) in enumerate(bars):
            heights = []
            for shape in shapes:
                match = [e for e in entries if tuple(e["shape"]) == shape and e["dtype"] == dtype]
                heights.append(match[0]["gflops"][variant] if match else 0.0)
            offsets = [s + (index - (len(bars) - 1) / 2) * width for s in range(len(shapes))]
            ax.bar(
                offsets,
                heights,
                width,
                label=f"{'xpnn' if variant == 'xpnn' else 'bare GEMMs'}, {dtype}",
                color=f"C{dtypes.index(dtype)}",
                alpha=1.0 if variant == "xpnn" else 0.45,
            )
        ax.set_xticks(range(len(shapes)), [_shape(s) for s in shapes], rotation=20, fontsize=8)
        ax.set(title=label, ylabel="GFLOP/s")
    for ax in list(axes.flat)[len(labels) :]:
        ax.axis("off")
    # One legend for all panels, below the title, clear of the bars.
    handles, names = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, names, loc="upper center", ncol=len(names), bbox_to_anchor=(0.5, 0.95))
    figure.suptitle("Linear forward + backward throughput (6 n m p flops)")
    figure.tight_layout(rect=(0, 0, 1, 0.91))
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _scaling(plt: Any, entries: list[dict[str, Any]], key: str, path: Path) -> None:
    figure, axes = plt.subplots(1, len(entries), figsize=(5 * len(entries), 3.8), squeeze=False)
    for ax, e in zip(axes.flat, entries, strict=True):
        xs = [point[key] for point in e["points"]]
        for index, name in enumerate(e["points"][0]["timings"]):
            ys = [point["timings"][name]["median_s"] * 1e6 for point in e["points"]]
            ax.plot(xs, ys, "o-" if key == "n" else "o", color=f"C{index}", label=NAMES[name])
            if key == "k":
                fit = e["fit"][name]
                line = [(fit["a_s"] + fit["b_s"] * x) * 1e6 for x in xs]
                ax.plot(xs, line, "-", color=f"C{index}", alpha=0.6)
        if key == "n":
            ax.set(xscale="log", yscale="log", xlabel="batch size n")
            ax.set_title(f"{e['backend']}-{e['device']}, {e['dtype']}, m = p = {e['m']}")
        else:
            ax.set(xlabel="blocks k (Linear + ReLU)")
            ax.set_title(f"{e['backend']}-{e['device']}, {e['dtype']}, batch {e['batch']}")
        ax.set_ylabel(f"{MICRO}s per forward + backward")
        ax.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)

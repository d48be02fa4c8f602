"""The benchmark suite runs end to end at its smoke sizes (no timing is checked).

The extras run at their smallest sizes where their libraries are installed:
the distributed one in the dask session, the compiled one with JAX and with
PyTorch.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from selection import ON_HOST

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("matplotlib")

# The smoke run times NumPy and torch whatever the session; the extras run in
# their own framework's session.
pytestmark = ON_HOST


@pytest.fixture(scope="module")
def run_module():
    spec = importlib.util.spec_from_file_location(
        "xpnn_benchmarks_run", ROOT / "benchmarks" / "run.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def smoke(run_module, tmp_path_factory):
    backends = ["numpy"]
    if importlib.util.find_spec("torch") is not None:
        backends.append("torch-cpu")
    out = tmp_path_factory.mktemp("bench")
    status = run_module.main(
        [
            "--sizes",
            "smoke",
            "--backends",
            ",".join(backends),
            "--dtypes",
            "float32",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    return out, backends


def _positive_medians(timings):
    assert timings
    for name, timing in timings.items():
        assert timing["median_s"] > 0, name
        assert timing["p25_s"] <= timing["median_s"] <= timing["p75_s"], name
        assert timing["reps"] >= 1, name


def test_smoke_run_writes_every_output(smoke):
    out, _ = smoke
    for name in (
        "results.json",
        "results.md",
        "throughput.png",
        "scaling_batch.png",
        "scaling_depth.png",
    ):
        assert (out / name).is_file(), name
    for name in ("throughput.png", "scaling_batch.png", "scaling_depth.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG"), name
    text = (out / "results.md").read_text(encoding="utf-8")
    assert text.startswith("---\norphan: true\n---\n")
    for heading in (
        "## Targets",
        "## Linear forward + backward",
        "## Digits MLP training step",
        "## Convolution and the LeNet step",
        "## Peak memory",
        "## Fixed cost per call",
        "## Sequence layers and the spoken-digits step",
        "## Scaling with the batch size",
        "## Scaling with depth",
    ):
        assert heading in text, heading


def test_smoke_results_have_every_comparison(smoke):
    out, backends = smoke
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    machine = results["machine"]
    assert machine["cores"] >= 1
    assert machine["cpu"]
    assert {"xpnn", "numpy"} <= set(machine["versions"])
    assert results["config"]["sizes"] == "smoke"
    shapes = [tuple(s) for s in results["config"]["shapes"]]
    measured = {f"{b}-cpu" if "-" not in b else b for b in backends}

    linear = results["linear"]
    assert {(f"{e['backend']}-{e['device']}", tuple(e["shape"])) for e in linear} == {
        (b, s) for b in measured for s in shapes
    }
    for e in linear:
        expected = {"xpnn", "native", "gemm"} | ({"autograd"} if e["backend"] == "torch" else set())
        assert set(e["timings"]) == expected
        _positive_medians(e["timings"])
        assert set(e["ratios"]) == {f"xpnn/{name}" for name in expected - {"xpnn"}}
        assert set(e["paired_ratios"]) == set(e["ratios"])
        assert all(r > 0 for r in e["ratios"].values())
        assert all(r > 0 for r in e["paired_ratios"].values())
        assert all(g > 0 for g in e["gflops"].values())

    mlp = {f"{e['backend']}-{e['device']}": e for e in results["mlp"]}
    assert set(mlp) == measured
    for e in mlp.values():
        _positive_medians(e["timings"])
        assert "xpnn/native" in e["ratios"]
    if "torch-cpu" in mlp:
        assert "xpnn/autograd" in mlp["torch-cpu"]["ratios"]

    compared = {"numpy-cpu": "native", "torch-cpu": "autograd"}
    conv = results["conv"]
    assert {(f"{e['backend']}-{e['device']}", tuple(e["shape"][1:])) for e in conv} == {
        (b, s) for b in measured & set(compared) for s in ((1, 16, 28), (16, 32, 14))
    }
    for e in conv + results["lenet"]:
        _positive_medians(e["timings"])
    for e in conv:
        assert set(e["ratios"]) == {f"xpnn/{compared[e['backend'] + '-cpu']}"}
    lenet = {f"{e['backend']}-{e['device']}": e for e in results["lenet"]}
    assert set(lenet) == measured & set(compared)
    if "torch-cpu" in lenet:
        assert set(lenet["torch-cpu"]["ratios"]) == {"xpnn/autograd"}

    # The sequence cases: GRU against hand-written NumPy and nn.GRU, the rest against torch.
    expected_ratios = {
        ("gru", "numpy"): {"xpnn/native"},
        ("gru", "torch"): {"xpnn/autograd"},
        ("encoder_layer", "numpy"): set(),
        ("encoder_layer", "torch"): {"xpnn/autograd"},
        ("speech_step", "numpy"): set(),
        ("speech_step", "torch"): {"xpnn/autograd"},
        ("bag_step", "numpy"): {"xpnn/autograd"},
        ("bag_step", "torch"): {"xpnn/autograd"},
    }
    for key in ("gru", "encoder_layer", "speech_step", "bag_step"):
        entries = {f"{e['backend']}-{e['device']}": e for e in results[key]}
        assert set(entries) == measured & set(compared)
        for e in entries.values():
            _positive_medians(e["timings"])
            assert set(e["ratios"]) == expected_ratios[key, e["backend"]]

    memory = {f"{e['backend']}-{e['device']}": e for e in results["memory"]}
    assert set(memory) == measured
    for e in memory.values():
        assert "error" not in e, e.get("error")
        assert e["xpnn"]["rss_bytes"] >= 0
        assert e["reference"]["rss_bytes"] >= 0
    assert memory["numpy-cpu"]["xpnn"]["traced_bytes"] > 0

    for key in ("scaling_batch", "scaling_depth"):
        assert {f"{e['backend']}-{e['device']}" for e in results[key]} == measured
        for e in results[key]:
            for point in e["points"]:
                _positive_medians(point["timings"])
    for e in results["scaling_depth"]:
        assert set(e["fit"]) >= {"xpnn", "native"}
        assert isinstance(e["overhead_per_layer_s"], float)

    dispatch = {f"{e['backend']}-{e['device']}": e for e in results["dispatch"]}
    assert set(dispatch) == measured
    for e in dispatch.values():
        assert e["xpnn_s"] > 0
        assert e["native_s"] > 0

    for target in results["targets"]:
        assert isinstance(target["passed"], bool)
        assert target["op"] in ("<=", ">=")
    assert results["elapsed_s"] > 0
    # The smoke size runs no extra unless asked.
    assert results["config"]["extras"] == {}
    assert "compiled" not in results
    assert "distributed" not in results


def test_unknown_backend_is_a_usage_error(run_module, tmp_path, capsys):
    assert run_module.main(["--sizes", "smoke", "--backends", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown backend" in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()


# -- the extras ----------------------------------------------------------------


def _with_extra(run_module, out, extra):
    argv = ["--sizes", "smoke", "--backends", "numpy", "--dtypes", "float32"]
    return run_module.main([*argv, "--extras", extra, "--out", str(out)])


def _gone(pids, wait_s=10.0):
    import psutil

    deadline = time.monotonic() + wait_s
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if psutil.pid_exists(pid)}
        if alive:
            time.sleep(0.1)
    return not alive


@pytest.mark.backend("dask")
def test_distributed_extra_runs_every_variant(run_module, tmp_path):
    pytest.importorskip("distributed", reason="needs dask.distributed")
    pytest.importorskip("psutil")
    assert _with_extra(run_module, tmp_path, "distributed") == 0
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert results["config"]["extras"] == {"distributed": ["--size", "smoke"]}
    found = results["distributed"]
    assert "error" not in found, found.get("error")
    config = found["config"]
    assert found["size"] == "smoke"
    assert config["data_bytes"] == config["rows"] * (4 * config["features"] + 8)
    variants = found["variants"]
    assert set(variants) == {"numpy", "dask-1", "dask-2"}
    for name, result in variants.items():
        assert len(result["epoch_seconds"]) == config["epochs"], name
        assert all(s > 0 for s in result["epoch_seconds"]), name
        assert result["rows_per_second"] > 0, name
        assert result["mib_per_second"] > 0, name
        assert all(math.isfinite(loss) for loss in result["loss"]), name
        memory = result["memory"]
        process = memory["process"]
        assert process["baseline_bytes"] > 0, name
        assert process["peak_bytes"] >= process["baseline_bytes"], name
        assert process["increment_bytes"] >= 0, name
        assert len(memory["workers"]) == result["workers"], name
        for worker in memory["workers"].values():
            assert worker["increment_bytes"] >= 0, name
            assert worker["peak_bytes"] >= worker["baseline_bytes"] > 0, name
            assert not worker["restarted"], name
        total = process["increment_bytes"] + sum(
            w["increment_bytes"] for w in memory["workers"].values()
        )
        assert memory["total_increment_bytes"] == total, name
    assert variants["numpy"]["workers"] == 0
    assert variants["dask-1"]["workers"] == 1
    assert variants["dask-2"]["workers"] == 2
    # Every chunk of x and of y is persisted on the workers before training.
    chunks = -(-config["rows"] // config["chunk_rows"])
    for name in ("dask-1", "dask-2"):
        held = [w["keys_held"] for w in variants[name]["memory"]["workers"].values()]
        assert sum(held) == 2 * chunks, name
        assert variants[name]["tasks_per_step"] > 0
    # The same batches on NumPy and on Dask: the same losses, up to the
    # order of float32 sums over a batch's chunks.
    numpy_loss = np.asarray(variants["numpy"]["loss"])
    for name in ("dask-1", "dask-2"):
        np.testing.assert_allclose(variants[name]["loss"], numpy_loss, rtol=1e-5)
    ratios = found["ratios"]
    assert set(ratios["loss_max_relative_difference"]) == {"dask-1", "dask-2"}
    assert max(ratios["loss_max_relative_difference"].values()) <= 1e-5
    assert ratios["throughput_2_over_1_workers"] > 0
    assert all(r > 0 for r in ratios["numpy_over_dask_epoch_seconds"].values())
    assert set(ratios["memory_increment_over_data"]) == set(variants)
    text = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "## Training on a dask.distributed cluster" in text
    # Each variant's process closed its cluster: no worker outlives the run.
    pids = [w["pid"] for r in variants.values() for w in r["memory"]["workers"].values()]
    assert _gone(pids), pids


@pytest.mark.parametrize(
    "framework", [pytest.param(name, marks=pytest.mark.backend(name)) for name in ("jax", "torch")]
)
def test_compiled_extra_runs_one_framework(run_module, tmp_path, monkeypatch, framework):
    if importlib.util.find_spec(framework) is None:
        pytest.skip(f"needs {framework}")
    other = "torch" if framework == "jax" else "jax"
    installed = run_module._available
    monkeypatch.setattr(run_module, "_available", lambda name: name != other and installed(name))
    assert _with_extra(run_module, tmp_path, "compiled") == 0
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert f"compiled extra: {other} not installed" in results["config"]["skipped"]
    found = results["compiled"]
    assert "error" not in found, found.get("error")
    [run] = found["runs"]
    assert (run["framework"], run["size"]) == (framework, "small")
    _positive_medians(run["timings"])
    assert set(run["compile_s"]) < set(run["timings"])
    assert all(s > 0 for s in run["compile_s"].values())
    assert run["ratios"]
    assert all(r > 0 for r in run["ratios"].values())
    if framework == "torch":
        assert run["xpnn_compiled_graph_breaks"] >= 0
    text = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "## Compiled training steps" in text
    assert f"### {framework}, batch 32" in text


@pytest.mark.parametrize(
    ("extra", "missing"), [("distributed", {"distributed"}), ("compiled", {"jax", "torch"})]
)
def test_extra_asked_for_without_its_libraries_is_a_usage_error(
    run_module, tmp_path, capsys, monkeypatch, extra, missing
):
    monkeypatch.setattr(run_module, "_available", lambda name: name not in missing)
    assert _with_extra(run_module, tmp_path, extra) == 2
    err = capsys.readouterr().err
    assert f"{extra} extra: needs" in err
    assert "installed" in err
    assert not (tmp_path / "results.json").exists()


def test_extras_left_out_by_default_are_noted(run_module, monkeypatch):
    monkeypatch.setattr(run_module, "_available", lambda name: name == "torch")
    extras, notes = run_module._extras(None, run_module.SIZES["standard"])
    assert [(e.name, e.arguments[:2]) for e in extras] == [("compiled", ("--frameworks", "torch"))]
    assert "compiled extra: jax not installed" in notes
    assert any(note.startswith("distributed extra:") for note in notes)
    assert run_module._extras("none", run_module.SIZES["standard"]) == ([], [])
    with pytest.raises(ValueError, match="--extras takes"):
        run_module._extras("nope", run_module.SIZES["standard"])


def test_unknown_extra_is_a_usage_error(run_module, tmp_path, capsys):
    assert _with_extra(run_module, tmp_path, "compiled,nope") == 2
    assert "--extras takes" in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()

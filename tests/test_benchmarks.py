"""The benchmark suite runs end to end at its smoke sizes (no timing is checked)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("matplotlib")


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
        "## Peak memory",
        "## Fixed cost per call",
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


def test_unknown_backend_is_a_usage_error(run_module, tmp_path, capsys):
    assert run_module.main(["--sizes", "smoke", "--backends", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown backend" in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists()

"""Training steps eager and compiled: xpnn under jax.jit and torch.compile.

One training step of an MLP, ``Linear - ReLU - Linear``, softmax
cross-entropy, SGD with momentum 0.9, on a fixed batch, per framework:

JAX
    ``xpnn eager``: xpnn's loop on JAX arrays (what ``xpnn.fit`` runs);
    ``xpnn jit``: the same step through :func:`xpnn.interop.jax.train_step`;
    ``jax jit``: the step written in ``jax.numpy`` with ``jax.value_and_grad``
    and the momentum update, under ``jax.jit``: what JAX alone gets.
PyTorch
    ``xpnn eager``: xpnn's loop on torch tensors;
    ``xpnn compiled``: :func:`xpnn.interop.torch.compiled_step` (inductor);
    ``torch eager``: ``nn.Sequential``, ``F.cross_entropy``, autograd and
    ``torch.optim.SGD``;
    ``torch compiled``: the same with the model and ``optimizer.step``
    compiled by ``torch.compile`` (inductor), PyTorch's own recipe.

Every variant is timed interleaved with the others of its framework (see
``harness``), after its compilation, whose seconds (the first calls, both
traces of the xpnn steps) are reported apart. The report counts the graph
breaks of the xpnn step under torch.compile, as ``explain_step`` finds them.

Run from ``benchmarks/``: ``python -m xpnn_bench.compiled [--sizes
small|wide|both] [--budget SECONDS] [--frameworks jax,torch] [--json
FILE]``. ``run.py`` runs it after its own measurements, in a process of
its own.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import xpnn
from xpnn.optim import SGD

from .harness import Plan, Timing, Variant, cores, host_rng, interleaved, machine

LR = 0.1
MOMENTUM = 0.9
CLASSES = 10
#: name -> (batch, features, hidden)
SIZES = {"small": (32, 64, 64), "wide": (256, 512, 512)}


def _data(batch: int, features: int) -> tuple[np.ndarray, np.ndarray]:
    rng = host_rng(7)
    return rng.random((batch, features)).astype(np.float32), rng.integers(0, CLASSES, batch)


def _model(features: int, hidden: int, xp: Any) -> xpnn.Sequential:
    model = xpnn.Sequential(
        xpnn.Linear(features, hidden, seed=0), xpnn.ReLU(), xpnn.Linear(hidden, CLASSES, seed=1)
    )
    return model.to(xp, dtype="float32")


def _compile_seconds(function: Variant, sync: Callable[[Any], None]) -> float:
    """Time the first two calls: the traces and compilations of a step."""
    began = time.perf_counter()
    for _ in range(2):
        sync(function())
    return time.perf_counter() - began


# -- JAX -----------------------------------------------------------------------


def jax_variants(size: tuple[int, int, int]) -> tuple[dict[str, Variant], Callable[[Any], None]]:
    """Build the JAX variants for one size, and their synchronisation."""
    import jax
    import jax.numpy as jnp

    from xpnn.interop.jax import train_step

    batch, features, hidden = size
    host_x, host_y = _data(batch, features)
    x, y = jnp.asarray(host_x), jnp.asarray(host_y.astype(np.int32))
    loss_fn = xpnn.CrossEntropyLoss()

    eager_model = _model(features, hidden, jnp)
    eager_opt = SGD(eager_model, lr=LR, momentum=MOMENTUM)

    def xpnn_eager() -> Any:
        prediction, backward = eager_model.forward(x)
        value, dprediction = loss_fn(prediction, y)
        eager_opt.zero_grad()
        backward(dprediction)
        eager_opt.step()
        return value, eager_model.parameters()

    jit_model = _model(features, hidden, jnp)
    step = train_step(jit_model, xpnn.CrossEntropyLoss(), SGD(jit_model, lr=LR, momentum=MOMENTUM))
    carried = list(step.init())

    def xpnn_jit() -> Any:
        params, state, value = step(carried[0], carried[1], x, y)
        carried[:] = [params, state]
        return value, params

    native = dict(_model(features, hidden, jnp).named_parameters())
    velocity = {name: jnp.zeros_like(value) for name, value in native.items()}

    def loss_of(params: dict[str, Any]) -> Any:
        h = jnp.maximum(x @ params["0.weight"] + params["0.bias"], 0)
        z = h @ params["2.weight"] + params["2.bias"]
        picked = jnp.take_along_axis(z, y[:, None], axis=1)[:, 0]
        return jnp.mean(jax.nn.logsumexp(z, axis=1) - picked)

    @jax.jit
    def native_step(params: Any, velocity: Any) -> Any:
        value, grads = jax.value_and_grad(loss_of)(params)
        velocity = jax.tree_util.tree_map(lambda v, g: MOMENTUM * v + g, velocity, grads)
        params = jax.tree_util.tree_map(lambda p, v: p - LR * v, params, velocity)
        return params, velocity, value

    native_state = [native, velocity]

    def jax_jit() -> Any:
        params, v, value = native_step(*native_state)
        native_state[:] = [params, v]
        return value, params

    def sync(outputs: Any) -> None:
        jax.block_until_ready(outputs)

    return {"xpnn eager": xpnn_eager, "xpnn jit": xpnn_jit, "jax jit": jax_jit}, sync


# -- PyTorch -------------------------------------------------------------------


def torch_variants(
    size: tuple[int, int, int],
) -> tuple[dict[str, Variant], Callable[[Any], None], int]:
    """Build the PyTorch variants for one size; the last item counts graph breaks."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    from xpnn.interop.torch import compiled_step, explain_step, to_torch

    batch, features, hidden = size
    host_x, host_y = _data(batch, features)
    x, y = torch.as_tensor(host_x), torch.as_tensor(host_y)
    loss_fn = xpnn.CrossEntropyLoss()

    eager_model = _model(features, hidden, torch)
    eager_opt = SGD(eager_model, lr=LR, momentum=MOMENTUM)

    def xpnn_eager() -> Any:
        prediction, backward = eager_model.forward(x)
        value, dprediction = loss_fn(prediction, y)
        eager_opt.zero_grad()
        backward(dprediction)
        eager_opt.step()
        return value

    compiled_model = _model(features, hidden, torch)
    step = compiled_step(
        compiled_model, xpnn.CrossEntropyLoss(), SGD(compiled_model, lr=LR, momentum=MOMENTUM)
    )
    breaks = explain_step(step, x, y).graph_break_count
    carried = list(step.init())

    def xpnn_compiled() -> Any:
        params, state, value = step(carried[0], carried[1], x, y)
        carried[:] = [params, state]
        return value

    def torch_step(net: nn.Module, opt: torch.optim.Optimizer, opt_step: Callable[[], Any]) -> Any:
        def run() -> Any:
            value = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt_step()
            return value

        return run

    net = to_torch(_model(features, hidden, np), dtype="float32")
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    compiled_net = to_torch(_model(features, hidden, np), dtype="float32")
    compiled_opt = torch.optim.SGD(compiled_net.parameters(), lr=LR, momentum=MOMENTUM)
    variants: dict[str, Variant] = {
        "xpnn eager": xpnn_eager,
        "xpnn compiled": xpnn_compiled,
        "torch eager": torch_step(net, opt, opt.step),
        "torch compiled": torch_step(
            torch.compile(compiled_net), compiled_opt, torch.compile(compiled_opt.step)
        ),
    }
    return variants, (lambda outputs: None), breaks


# -- running -------------------------------------------------------------------


def _measure(
    variants: dict[str, Variant], sync: Callable[[Any], None], compiled: tuple[str, ...], plan: Plan
) -> tuple[dict[str, Timing], dict[str, float]]:
    compile_s = {name: _compile_seconds(variants[name], sync) for name in compiled}
    return interleaved(variants, sync, plan), compile_s


def _table(title: str, timings: dict[str, Timing], compile_s: dict[str, float]) -> list[str]:
    fastest = min(t.median for t in timings.values())
    lines = [title, f"  {'variant':<16}{'per step':>12}{'vs fastest':>12}{'compile':>10}"]
    for name, timing in timings.items():
        compiled = f"{compile_s[name]:.1f} s" if name in compile_s else ""
        lines.append(
            f"  {name:<16}{timing.median * 1e6:>9.1f} us{timing.median / fastest:>11.2f}x"
            f"{compiled:>10}"
        )
    return lines


def _ratios(timings: dict[str, Timing], pairs: list[tuple[str, str]]) -> dict[str, float]:
    return {f"{a} / {b}": timings[a].median / timings[b].median for a, b in pairs}


def main(argv: list[str] | None = None) -> int:
    """Run the comparisons, print them, and write them as JSON if asked."""
    parser = argparse.ArgumentParser(
        prog="python -m xpnn_bench.compiled", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--sizes", choices=(*SIZES, "both"), default="both")
    parser.add_argument(
        "--budget", type=float, default=4.0, help="seconds of timing per comparison (default 4)"
    )
    parser.add_argument("--frameworks", default="jax,torch", help="comma-separated: jax, torch")
    parser.add_argument("--json", type=Path, help="write the results to this file")
    args = parser.parse_args(argv)
    plan = Plan(budget_s=args.budget, min_reps=5, max_reps=200, sample_s=0.05, warmup_s=0.2)
    sizes = list(SIZES) if args.sizes == "both" else [args.sizes]
    frameworks = [name.strip() for name in args.frameworks.split(",") if name.strip()]
    results: dict[str, Any] = {"plan": vars(plan), "runs": []}
    backends: list[Any] = []
    for framework in frameworks:
        for size_name in sizes:
            size = SIZES[size_name]
            batch, features, hidden = size
            title = (
                f"{framework}, batch {batch}, Linear({features}, {hidden}) - ReLU - "
                f"Linear({hidden}, {CLASSES}), float32"
            )
            extra: dict[str, Any] = {}
            if framework == "jax":
                variants, sync = jax_variants(size)
                timings, compile_s = _measure(variants, sync, ("xpnn jit", "jax jit"), plan)
                ratios = _ratios(timings, [("xpnn eager", "xpnn jit"), ("xpnn jit", "jax jit")])
            elif framework == "torch":
                import torch

                torch.set_num_threads(cores())
                with warnings.catch_warnings():
                    # Importing inductor reaches a deprecated torch.jit call.
                    warnings.simplefilter("ignore", DeprecationWarning)
                    variants, sync, breaks = torch_variants(size)
                    timings, compile_s = _measure(
                        variants, sync, ("xpnn compiled", "torch compiled"), plan
                    )
                extra["xpnn_compiled_graph_breaks"] = breaks
                ratios = _ratios(
                    timings,
                    [
                        ("xpnn eager", "xpnn compiled"),
                        ("torch eager", "torch compiled"),
                        ("xpnn compiled", "torch compiled"),
                        ("xpnn eager", "torch eager"),
                    ],
                )
            else:
                parser.error(f"unknown framework {framework!r}; choose jax or torch")
            print("\n".join(_table(title, timings, compile_s)))
            for label, value in ratios.items():
                print(f"  {label}: {value:.2f}")
            if extra:
                print(f"  graph breaks of the xpnn step under torch.compile: {breaks}")
            print(flush=True)
            results["runs"].append(
                {
                    "framework": framework,
                    "size": size_name,
                    "batch": batch,
                    "features": features,
                    "hidden": hidden,
                    "timings": {name: t.as_dict() for name, t in timings.items()},
                    "compile_s": compile_s,
                    "ratios": ratios,
                    **extra,
                }
            )
    results["machine"] = machine(backends)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

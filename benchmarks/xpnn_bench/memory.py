"""Peak memory of one Linear forward + backward, each variant in a fresh process.

Run as a script, ``python memory.py VARIANT N M P DTYPE DEVICE``, it sets up
one variant, runs one forward + backward untimed (so that one-time
allocations of the library, such as BLAS buffers or autograd's engine, are
done), then measures a second one and prints JSON:

``rss_bytes``
    The rise of the resident set over the post-setup baseline: the peak RSS
    (``VmHWM``, reset first by writing ``5`` to ``/proc/self/clear_refs``)
    less the RSS just before the call. Where the peak cannot be reset
    (not Linux), ``getrusage``'s ``ru_maxrss`` rise is reported instead; it
    can only underestimate. The launcher sets glibc's
    ``MALLOC_MMAP_THRESHOLD_=65536``, so that every large buffer is its own
    mapping, returned to the system when freed, and the RSS follows the
    bytes alive rather than the allocator's cache.
``traced_bytes``
    NumPy variants: the peak that ``tracemalloc`` sees (NumPy reports its
    buffers to it) above the bytes traced before the call; exact, and
    independent of the allocator.
``cuda_bytes``
    CUDA variants: ``torch.cuda.max_memory_allocated`` above the bytes
    allocated before the call.

The outputs (``y``, ``dx``, ``dW``, ``db``) are alive at the end of the
call and count in every variant.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

# (variant, library, implementation)
VARIANTS = {
    "xpnn-numpy": ("numpy", "xpnn"),
    "numpy": ("numpy", "native"),
    "xpnn-torch": ("torch", "xpnn"),
    "torch-autograd": ("torch", "autograd"),
}
# Which variant each xpnn variant is held against.
PAIRS = {"xpnn-numpy": "numpy", "xpnn-torch": "torch-autograd"}


def _status() -> dict[str, int]:
    values = {}
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    return values


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def _maxrss() -> int:
    import resource

    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(value) if sys.platform == "darwin" else int(value) * 1024


def _nothing() -> None:
    return None


Setup = tuple[Callable[[], tuple[Any, ...]], Callable[[], None]]


def _setup(library: str, how: str, shape: tuple[int, int, int], dtype: str, device: str) -> Setup:
    """Return the variant's forward + backward, and what drops its gradients."""
    import numpy as np

    import xpnn

    n, m, p = shape
    rng = np.random.default_rng(0)
    x_host = rng.standard_normal((n, m)).astype(dtype)
    dy_host = rng.standard_normal((n, p)).astype(dtype)
    if library == "numpy":
        if how == "xpnn":
            layer = xpnn.Linear(m, p, dtype=np.dtype(dtype), seed=0)

            def run_xpnn() -> tuple[Any, ...]:
                layer.zero_grad()
                y, back = layer.forward(x_host)
                dx = back(dy_host)
                return y, dx, layer.grads["weight"], layer.grads["bias"]

            return run_xpnn, layer.zero_grad
        w = rng.standard_normal((m, p)).astype(dtype)
        b = rng.standard_normal(p).astype(dtype)

        def run_numpy() -> tuple[Any, ...]:
            y = x_host @ w + b
            dx = dy_host @ w.T
            dw = x_host.T @ dy_host
            return y, dx, dw, dy_host.sum(axis=0)

        return run_numpy, _nothing

    import torch

    kind = getattr(torch, dtype)
    x = torch.as_tensor(x_host, device=device)
    dy = torch.as_tensor(dy_host, device=device)
    if how == "xpnn":
        layer = xpnn.Linear(m, p, xp=torch, device=torch.device(device), dtype=kind, seed=0)

        def run_xpnn_torch() -> tuple[Any, ...]:
            layer.zero_grad()
            y, back = layer.forward(x)
            dx = back(dy)
            return y, dx, layer.grads["weight"], layer.grads["bias"]

        return run_xpnn_torch, layer.zero_grad
    module = torch.nn.Linear(m, p, device=device, dtype=kind)
    leaf = x.clone().requires_grad_(True)

    def run_autograd() -> tuple[Any, ...]:
        module.zero_grad(set_to_none=True)
        leaf.grad = None
        y = module(leaf)
        y.backward(dy)
        return y, leaf.grad, module.weight.grad, module.bias.grad

    def clear() -> None:
        module.zero_grad(set_to_none=True)
        leaf.grad = None

    return run_autograd, clear


def measure(variant: str, shape: tuple[int, int, int], dtype: str, device: str) -> dict[str, Any]:
    """Measure one variant in this process (call it in a fresh one)."""
    library, how = VARIANTS[variant]
    run, clear = _setup(library, how, shape, dtype, device)
    cuda = device.startswith("cuda")
    sync: Callable[[], None] = lambda: None  # noqa: E731
    if cuda:
        import torch

        sync = torch.cuda.synchronize
    outputs = run()  # warm-up
    sync()
    del outputs
    clear()  # every measurement starts without gradients
    result: dict[str, Any] = {"variant": variant}
    if not cuda:
        if _reset_peak():
            baseline = _status()["VmRSS"]
            outputs = run()
            result["rss_bytes"] = _status()["VmHWM"] - baseline
            result["rss_method"] = "VmHWM reset through /proc/self/clear_refs"
        else:
            baseline = _maxrss()
            outputs = run()
            result["rss_bytes"] = _maxrss() - baseline
            result["rss_method"] = "ru_maxrss rise (a lower bound)"
        del outputs
        clear()
    if library == "numpy":
        import tracemalloc

        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        outputs = run()
        result["traced_bytes"] = tracemalloc.get_traced_memory()[1] - before
        tracemalloc.stop()
        del outputs
        clear()
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        outputs = run()
        sync()
        result["cuda_bytes"] = torch.cuda.max_memory_allocated() - before
        del outputs
    return result


def _child_environment() -> dict[str, str]:
    import xpnn

    env = dict(os.environ)
    env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    env.pop("MALLOC_TRIM_THRESHOLD_", None)  # the timing runs' setting, not this one's
    # The child imports the same xpnn as this process, installed or not.
    source = str(Path(xpnn.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
    return env


def start(
    variants: list[tuple[str, str]], shape: tuple[int, int, int], dtype: str
) -> Callable[[], list[dict[str, Any]]]:
    """Start measuring ``(variant, device)`` pairs, each in its own fresh process.

    Two children run at a time. Returns a function that waits for them and
    returns their results, in the order of ``variants``.
    """
    env = _child_environment()

    def one(item: tuple[str, str]) -> dict[str, Any]:
        variant, device = item
        command = [sys.executable, __file__, variant, *map(str, shape), dtype, device]
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
            return {"variant": variant, "device": device, "error": tail[0]}
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        result["device"] = device
        return result

    pool = ThreadPoolExecutor(max_workers=2)
    futures = [pool.submit(one, item) for item in variants]
    pool.shutdown(wait=False)

    def results() -> list[dict[str, Any]]:
        return [future.result() for future in futures]

    return results


if __name__ == "__main__":
    name, n, m, p, kind, where = sys.argv[1:7]
    print(json.dumps(measure(name, (int(n), int(m), int(p)), kind, where)))

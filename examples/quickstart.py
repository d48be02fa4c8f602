"""Run the same xpnn code on every array library installed here.

python examples/quickstart.py
"""

from __future__ import annotations

import importlib

import numpy as np

from xpnn import Linear
from xpnn.testing import to_numpy


def step(name: str, xp: object) -> np.ndarray:
    """One forward and backward pass of a Linear layer on ``xp``'s arrays."""
    layer = Linear(4, 3, xp=xp, seed=0)  # same seed: same weights everywhere
    x = layer.xp.asarray(
        np.linspace(-1, 1, 8).reshape(2, 4), dtype=layer.dtype, device=layer.device
    )
    y, backward = layer.forward(x)
    dx = backward(layer.xp.ones_like(y))
    dweight = layer.grads["weight"]
    print(
        f"{name:<17} {y.dtype!s:<24} y[0] = {np.round(to_numpy(y)[0], 6)}  "
        f"dx {tuple(dx.shape)}  dweight {tuple(dweight.shape)}"
    )
    return to_numpy(y).astype(np.float64)


def main() -> None:
    """Run :func:`step` on each installed library and compare the outputs."""
    results = {}
    for name in ("numpy", "torch", "array_api_strict", "jax.numpy"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            print(f"{name:<17} not installed, skipped")
            continue
        results[name] = step(name, module)
    reference = results["numpy"]
    for name, y in results.items():
        # Defaults differ (float64 on NumPy, float32 on torch and JAX).
        assert np.allclose(y, reference, rtol=1e-5, atol=1e-6), name
    print(f"same output on {', '.join(results)}")


if __name__ == "__main__":
    main()

"""Train an xpnn model on PyTorch, then deploy it on NumPy.

The digits classifier of ``xpnn train`` is trained with PyTorch arrays,
saved as a safetensors checkpoint, and loaded back on NumPy, where it
predicts the same classes with nothing but NumPy installed. The same model
is also moved in memory with ``Module.to``. Run it with
``python examples/train_on_torch_deploy_on_numpy.py``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits

import xpnn
from xpnn.optim import SGD


def main() -> None:
    """Train on torch, deploy through a checkpoint and through Module.to, checking both."""
    digits = load_digits()
    images = (digits.data / 16.0).astype(np.float32)  # (1797, 64), values in [0, 1]
    labels = digits.target  # (1797,), classes 0..9

    # Train on PyTorch: the parameters and the data are torch tensors.
    where = {"xp": torch, "device": "cpu", "dtype": torch.float32}
    model = xpnn.Sequential(
        xpnn.Linear(64, 64, seed=0, **where), xpnn.ReLU(), xpnn.Linear(64, 10, seed=1, **where)
    )
    history = xpnn.fit(
        model,
        xpnn.CrossEntropyLoss(),
        SGD(model, lr=0.1, momentum=0.9),
        torch.asarray(images),
        torch.asarray(labels),
        epochs=5,
        progress=False,
    )
    on_torch = model(torch.asarray(images)).numpy()
    print(f"trained on torch: loss {history.loss[-1]:.3f}")

    # Deploy on NumPy through a checkpoint: no code runs when it loads.
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "digits.safetensors"
        xpnn.save(model, path)
        deployed = xpnn.load(path, xp=np)
    on_numpy = deployed(images)
    assert isinstance(on_numpy, np.ndarray)
    np.testing.assert_allclose(on_numpy, on_torch, rtol=1e-5, atol=1e-5)
    same = np.array_equal(on_numpy.argmax(axis=1), on_torch.argmax(axis=1))
    print(f"deployed on numpy: same classes for all {len(images)} images: {same}")

    # Or move the model itself, in memory: torch -> NumPy, float64.
    model.to(np, dtype="float64")
    np.testing.assert_allclose(model(images.astype(np.float64)), on_torch, rtol=1e-5, atol=1e-5)
    print(f"moved in memory: {model[0]!r}")


if __name__ == "__main__":
    main()

"""Loss modules converted between torch.nn and xpnn, with their options: equal both ways."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import xpnn  # noqa: E402
from xpnn.interop.torch import from_torch, to_torch  # noqa: E402
from xpnn.testing import assert_close, to_numpy  # noqa: E402

RNG = np.random.default_rng(0)
WEIGHT = np.array([0.5, 2.0, 1.0, 3.0])


def _labels() -> np.ndarray:
    labels = RNG.integers(0, 4, size=(2, 3))
    labels[1, 2] = -100
    return labels


def _probabilities(shape: tuple[int, ...]) -> np.ndarray:
    raw = RNG.uniform(size=shape)
    return raw / raw.sum(axis=1, keepdims=True)


# name -> (torch module, input, target): inputs in torch's layout, classes on axis 1.
CASES: dict[str, tuple[Callable[[], Any], np.ndarray, np.ndarray]] = {
    "cross_entropy": (
        lambda: torch.nn.CrossEntropyLoss(
            weight=torch.tensor(WEIGHT), ignore_index=-100, label_smoothing=0.1
        ),
        RNG.normal(size=(2, 4, 3)),
        _labels(),
    ),
    "cross_entropy_probabilities": (
        lambda: torch.nn.CrossEntropyLoss(reduction="sum"),
        RNG.normal(size=(2, 4, 3)),
        _probabilities((2, 4, 3)),
    ),
    "nll": (
        lambda: torch.nn.NLLLoss(weight=torch.tensor(WEIGHT), reduction="none", ignore_index=2),
        np.log(_probabilities((2, 4, 3))),
        RNG.integers(0, 4, size=(2, 3)),
    ),
    "mse": (
        lambda: torch.nn.MSELoss(reduction="sum"),
        RNG.normal(size=(3, 2)),
        RNG.normal(size=(3, 2)),
    ),
    "bce_with_logits": (
        lambda: torch.nn.BCEWithLogitsLoss(),
        RNG.normal(size=(3, 4)),
        RNG.uniform(size=(3, 4)),
    ),
}


def _torch_result(module: Any, x: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tx = torch.tensor(x, requires_grad=True)
    tt = torch.tensor(target)
    value = module(tx, tt)
    value.sum().backward()
    return value.detach().numpy(), tx.grad.numpy()


@pytest.mark.parametrize("case", list(CASES))
def test_from_torch_then_to_torch_compute_what_torch_computes(xp, device, case):
    make, x_host, target_host = CASES[case]
    available = xp.__array_namespace_info__().dtypes(device=device)
    if "float64" not in available:
        pytest.skip(f"{device} has no float64, which the comparison in float64 needs")
    module = make()
    loss_fn = from_torch(module, xp=xp, device=device, dtype="float64")
    assert type(loss_fn).__name__ == type(module).__name__
    if isinstance(loss_fn, xpnn.losses.LabelLoss):
        assert loss_fn.axis == 1  # torch's class axis, said out loud
    x = xp.asarray(x_host, dtype=xp.float64, device=device)
    integral = target_host.dtype.kind in "iu"
    target_dtype = available["int64"] if integral else xp.float64
    target = xp.asarray(target_host, dtype=target_dtype, device=device)
    value, grad = loss_fn(x, target)
    ref_value, ref_grad = _torch_result(module, x_host, target_host)
    same = {"xp": xp, "device": device, "dtype": xp.float64}
    assert_close(value, ref_value, **same, err_msg="loss")
    assert_close(grad, ref_grad, **same, err_msg="grad")
    back = to_torch(loss_fn)
    assert type(back) is type(module)
    again_value, again_grad = _torch_result(back, x_host, target_host)
    np.testing.assert_allclose(again_value, ref_value, rtol=1e-12)
    np.testing.assert_allclose(again_grad, ref_grad, rtol=1e-12)
    for name in ("weight", "pos_weight"):
        mine, theirs = getattr(back, name, None), getattr(module, name, None)
        if theirs is None:
            assert mine is None
        else:
            np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
            assert mine.data_ptr() != theirs.data_ptr()


def test_to_torch_refuses_the_last_axis_and_says_how():
    with pytest.raises(ValueError, match=r"puts them on axis 1.*build the loss with axis=1"):
        to_torch(xpnn.CrossEntropyLoss())
    assert isinstance(to_torch(xpnn.CrossEntropyLoss(axis=1)), torch.nn.CrossEntropyLoss)


def test_losses_without_a_twin_are_named():
    with pytest.raises(TypeError, match=r"cannot convert the loss .*MultiMarginLoss"):
        from_torch(torch.nn.MultiMarginLoss())


def test_a_weight_kept_in_torch_stays_on_its_device_and_is_copied():
    module = torch.nn.CrossEntropyLoss(weight=torch.tensor(WEIGHT))
    loss_fn = from_torch(module)
    assert loss_fn.weight.device == module.weight.device
    assert loss_fn.weight.data_ptr() != module.weight.data_ptr()
    assert to_numpy(loss_fn.weight).tolist() == WEIGHT.tolist()

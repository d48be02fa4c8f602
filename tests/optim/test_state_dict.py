"""Optimizer state dicts: format, round trips, and validation before loading."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from xpnn import Linear
from xpnn._compat import array_namespace
from xpnn._compat import device as device_of
from xpnn.layers.sequential import Sequential
from xpnn.optim import SGD, Adam, AdamW
from xpnn.testing import random_array, to_numpy

FACTORIES = {
    "sgd-momentum": lambda model: SGD(model, lr=0.1, momentum=0.9, weight_decay=0.01),
    "sgd-nesterov": lambda model: SGD(model, lr=0.1, momentum=0.5, nesterov=True),
    "adam": lambda model: Adam(model, lr=1e-2, weight_decay=0.01),
    "adamw": lambda model: AdamW(model, lr=1e-2),
}


def make_model(xp: Any, device: Any) -> Sequential:
    return Sequential(
        Linear(3, 4, xp=xp, device=device, seed=0), Linear(4, 2, xp=xp, device=device, seed=1)
    )


def feed(model: Any, xp: Any, device: Any, step: int) -> None:
    for index, (name, param) in enumerate(model.named_parameters()):
        grad = random_array(
            xp, tuple(param.shape), dtype=param.dtype, device=device, seed=10 * step + index
        )
        model.set_gradient(name, grad)


def host_state(optimizer: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Hyper-parameters and state, with buffers copied to NumPy for comparison."""
    saved = optimizer.state_dict()
    state = {
        name: {
            key: value if key == "step" or value is None else to_numpy(value)
            for key, value in entry.items()
        }
        for name, entry in saved["state"].items()
    }
    return saved["hyperparameters"], state


def assert_same_state(a: Any, b: Any) -> None:
    hyper_a, state_a = a
    hyper_b, state_b = b
    assert hyper_a == hyper_b
    assert state_a.keys() == state_b.keys()
    for name in state_a:
        assert state_a[name].keys() == state_b[name].keys(), name
        for key, value in state_a[name].items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(value, state_b[name][key], err_msg=f"{name}.{key}")
            else:
                assert value == state_b[name][key], f"{name}.{key}"


# -- format and round trip ---------------------------------------------------


def test_format(xp, device):
    model = make_model(xp, device)
    optimizer = Adam(model, lr=1e-2)
    model.set_gradient("0.weight", xp.ones_like(model[0].weight))
    optimizer.step()
    saved = optimizer.state_dict()
    assert list(saved) == ["optimizer", "hyperparameters", "state"]
    assert saved["optimizer"] == "Adam"
    assert saved["hyperparameters"] == {
        "lr": 1e-2,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        "amsgrad": False,
        "maximize": False,
    }
    assert list(saved["state"]) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    entry = saved["state"]["0.weight"]
    assert list(entry) == ["step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
    assert entry["max_exp_avg_sq"] is None  # amsgrad=False
    assert type(entry["step"]) is int
    assert entry["step"] == 1
    for key in ("exp_avg", "exp_avg_sq"):
        buffer = entry[key]
        assert array_namespace(buffer=buffer) is xp
        assert device_of(buffer) == device
        assert buffer.dtype == model[0].weight.dtype
        assert tuple(buffer.shape) == (3, 4)
    for name in ("0.bias", "1.weight", "1.bias"):
        assert saved["state"][name] == {
            "step": 0,
            "exp_avg": None,
            "exp_avg_sq": None,
            "max_exp_avg_sq": None,
        }


def test_sgd_without_momentum_keeps_no_buffer(xp, device):
    model = make_model(xp, device)
    optimizer = SGD(model, lr=0.1)
    feed(model, xp, device, 1)
    optimizer.step()
    saved = optimizer.state_dict()
    assert saved["optimizer"] == "SGD"
    assert saved["state"]["1.bias"] == {"step": 1, "momentum_buffer": None}
    SGD(make_model(xp, device), lr=0.3).load_state_dict(saved)


@pytest.mark.parametrize("factory", FACTORIES.values(), ids=FACTORIES.keys())
def test_round_trip_continues_like_an_uninterrupted_run(xp, device, real_dtype, factory):
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    model = Sequential(Linear(3, 4, seed=0, **same), Linear(4, 2, seed=1, **same))
    uninterrupted = factory(model)
    for step in range(3):
        feed(model, xp, device, step)
        uninterrupted.step()
    saved = uninterrupted.state_dict()

    # A fresh model with the same parameter values and a fresh optimizer of
    # the same class, with other settings, which the load replaces.
    resumed_model = Sequential(Linear(3, 4, seed=5, **same), Linear(4, 2, seed=6, **same))
    for name, param in model.named_parameters():
        resumed_model.set_parameter(name, xp.asarray(param, copy=True, device=device))
    resumed = type(uninterrupted)(resumed_model, lr=0.5)
    resumed.load_state_dict(saved)
    assert resumed.hyperparameters == uninterrupted.hyperparameters

    for step in range(3, 6):
        for target in (model, resumed_model):
            feed(target, xp, device, step)
        uninterrupted.step()
        resumed.step()
        for (name, ours), (_, theirs) in zip(
            resumed_model.named_parameters(), model.named_parameters(), strict=True
        ):
            np.testing.assert_array_equal(to_numpy(ours), to_numpy(theirs), err_msg=name)
    assert_same_state(host_state(resumed), host_state(uninterrupted))


def test_state_dict_is_a_snapshot_and_load_copies(xp, device):
    model = make_model(xp, device)
    optimizer = Adam(model)
    feed(model, xp, device, 0)
    optimizer.step()
    saved = optimizer.state_dict()
    before = {name: to_numpy(entry["exp_avg"]) for name, entry in saved["state"].items()}
    feed(model, xp, device, 1)
    optimizer.step()
    for name, entry in saved["state"].items():
        assert entry["step"] == 1
        np.testing.assert_array_equal(to_numpy(entry["exp_avg"]), before[name], err_msg=name)
    # Loading copies too: stepping after a load leaves the loaded dict alone.
    optimizer.load_state_dict(saved)
    feed(model, xp, device, 2)
    optimizer.step()
    for name, entry in saved["state"].items():
        np.testing.assert_array_equal(to_numpy(entry["exp_avg"]), before[name], err_msg=name)


# -- validation --------------------------------------------------------------


def _other_dtype(xp: Any, device: Any, dtype: Any) -> Any:
    floats = xp.__array_namespace_info__().dtypes(device=device, kind="real floating")
    others = [candidate for candidate in floats.values() if candidate != dtype]
    return others[0] if others else xp.int32


def _foreign_array(xp: Any, value: Any) -> Any:
    """The same values in a library other than ``xp``: NumPy, or array_api_strict for NumPy."""
    import array_api_strict

    host = to_numpy(value)
    return array_api_strict.asarray(host) if xp.__name__ == "array_api_compat.numpy" else host


Mutation = Callable[[dict[str, Any], Any, Any], None]


def _set(path: tuple[str, ...], value: Callable[[Any, Any, Any], Any]) -> Mutation:
    def mutate(saved: dict[str, Any], xp: Any, device: Any) -> None:
        target = saved
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value(target.get(path[-1]), xp, device)

    return mutate


def _delete(path: tuple[str, ...]) -> Mutation:
    def mutate(saved: dict[str, Any], xp: Any, device: Any) -> None:
        target = saved
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


def _rename_parameter(saved: dict[str, Any], xp: Any, device: Any) -> None:
    saved["state"]["1.weights"] = saved["state"].pop("1.weight")


LAST = ("state", "1.bias")
ERRORS: dict[str, tuple[Mutation, str]] = {
    "extra-top-key": (_set(("extra",), lambda *_: 1), r"state_dict has unknown keys 'extra'"),
    "missing-top-key": (_delete(("state",)), r"state_dict has missing keys 'state'"),
    "optimizer-type": (
        _set(("optimizer",), lambda *_: "SGD"),
        r"state_dict\['optimizer'\] must be 'Adam', the class of this optimizer, got 'SGD'",
    ),
    "unknown-hyperparameter": (
        _set(("hyperparameters", "momentum"), lambda *_: 0.9),
        r"\['hyperparameters'\] has unknown keys 'momentum'",
    ),
    "missing-hyperparameter": (
        _delete(("hyperparameters", "eps")),
        r"\['hyperparameters'\] has missing keys 'eps'; expected 'lr', 'betas', 'eps'",
    ),
    "bad-hyperparameter": (
        _set(("hyperparameters", "betas"), lambda *_: (0.9, 1.5)),
        r"\['hyperparameters'\]: betas\[1\] must be in \[0, 1\), got 1.5",
    ),
    "hyperparameters-not-a-dict": (
        _set(("hyperparameters",), lambda *_: [0.1]),
        r"\['hyperparameters'\] must be a dict, got list",
    ),
    "unknown-and-missing-parameter": (
        _rename_parameter,
        r"\['state'\] has unknown parameter names '1.weights' and missing parameter names "
        r"'1.weight'",
    ),
    "missing-parameter": (_delete(LAST), r"\['state'\] has missing parameter names '1.bias'"),
    "entry-not-a-dict": (_set(LAST, lambda *_: 3), r"\['state'\]\['1.bias'\] must be a dict"),
    "missing-buffer": (
        _delete((*LAST, "exp_avg_sq")),
        r"\['1.bias'\] has missing keys 'exp_avg_sq'",
    ),
    "negative-step": (
        _set((*LAST, "step"), lambda *_: -1),
        r"\['1.bias'\]\['step'\] must be >= 0, got -1",
    ),
    "float-step": (
        _set((*LAST, "step"), lambda *_: 2.0),
        r"\['1.bias'\]\['step'\] must be an int, got float 2.0",
    ),
    "buffer-none": (
        _set((*LAST, "exp_avg"), lambda *_: None),
        r"\['1.bias'\]\['exp_avg'\] must be an array at step 2, got None",
    ),
    "buffer-at-step-zero": (
        _set((*LAST, "step"), lambda *_: 0),
        r"\['1.bias'\]\['exp_avg'\] must be None at step 0 .*, got an array of \S+",
    ),
    "buffer-shape": (
        _set(
            (*LAST, "exp_avg"),
            lambda old, xp, device: xp.zeros((2, 2), dtype=old.dtype, device=device),
        ),
        r"\['1.bias'\]\['exp_avg'\] must match its parameter: expected shape \(2,\), got \(2, 2\)",
    ),
    "buffer-dtype": (
        _set(
            (*LAST, "exp_avg_sq"),
            lambda old, xp, device: xp.astype(old, _other_dtype(xp, device, old.dtype)),
        ),
        r"\['1.bias'\]\['exp_avg_sq'\] must match its parameter: expected dtype .+, got .+",
    ),
    "buffer-not-an-array": (
        _set((*LAST, "exp_avg"), lambda *_: [0.0, 0.0]),
        r"\['1.bias'\]\['exp_avg'\] must be an array of the model's library, \S+, got list",
    ),
    "buffer-of-another-library": (
        _set((*LAST, "exp_avg"), lambda old, xp, device: _foreign_array(xp, old)),
        r"must be an array of the model's library, \S+, got an array of \S+; buffers of "
        r"another library are not converted",
    ),
}


@pytest.mark.parametrize("case", ERRORS.values(), ids=ERRORS.keys())
def test_invalid_state_dict_raises_and_changes_nothing(xp, device, case):
    mutate, match = case
    # The target has state of its own, different from what is being loaded,
    # so anything half-loaded would show.
    model = make_model(xp, device)
    optimizer = Adam(model, lr=1e-2)
    feed(model, xp, device, 0)
    optimizer.step()
    source_model = make_model(xp, device)
    source = Adam(source_model, lr=0.5, betas=(0.5, 0.6))
    for step in range(1, 3):
        feed(source_model, xp, device, step)
        source.step()
    saved = source.state_dict()
    mutate(saved, xp, device)
    before = host_state(optimizer)
    params = {name: to_numpy(p) for name, p in model.named_parameters()}
    with pytest.raises(ValueError, match=match):
        optimizer.load_state_dict(saved)
    assert_same_state(host_state(optimizer), before)
    for name, param in model.named_parameters():
        np.testing.assert_array_equal(to_numpy(param), params[name], err_msg=name)


def test_not_a_mapping_raises_value_error():
    with pytest.raises(ValueError, match="state_dict must be a dict, got list"):
        SGD(Linear(2, 2, seed=0), lr=0.1).load_state_dict([])


def test_sgd_buffer_without_momentum_raises_value_error():
    layer = Linear(2, 2, seed=0)
    saved = SGD(layer, lr=0.1, momentum=0.9).state_dict()
    saved["state"]["weight"] = {"step": 1, "momentum_buffer": np.zeros((2, 2))}
    saved["state"]["bias"] = {"step": 1, "momentum_buffer": np.zeros(2)}
    saved["hyperparameters"]["momentum"] = 0.0
    with pytest.raises(
        ValueError, match=r"\['momentum_buffer'\] must be None at step 1 with these hyperparam"
    ):
        SGD(layer, lr=0.1).load_state_dict(saved)


def test_adam_state_does_not_load_into_adamw():
    layer = Linear(2, 2, seed=0)
    with pytest.raises(
        ValueError,
        match=r"\['optimizer'\] must be 'AdamW', the class of this optimizer, got 'Adam'",
    ):
        AdamW(layer).load_state_dict(Adam(layer).state_dict())


def test_buffer_on_another_device_raises_value_error():
    import array_api_strict as strict

    layer = Linear(2, 2, xp=strict, device="device1", seed=0)
    optimizer = SGD(layer, lr=0.1, momentum=0.9)
    layer.grads["weight"] = strict.ones((2, 2), device=strict.Device("device1"))
    optimizer.step()
    saved = optimizer.state_dict()
    saved["state"]["weight"]["momentum_buffer"] = strict.zeros(
        (2, 2), dtype=layer.dtype, device=strict.Device("device2")
    )
    with pytest.raises(
        ValueError, match=r"must match its parameter: expected device .*device1.*, got .*device2"
    ):
        optimizer.load_state_dict(saved)

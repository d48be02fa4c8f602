"""xpnn._checks: the check boundary remembers a kind of input once it passed, and no more."""

from __future__ import annotations

import numpy as np
import pytest

import xpnn
from xpnn._checks import CheckBoundary, Checked, kind
from xpnn.optim import SGD

strict = pytest.importorskip("array_api_strict")
DEVICE1 = strict.Device("device1")


def counting_check(calls: list[tuple[object, ...]]):
    def check(*arrays: object, **options: object) -> Checked:
        calls.append((arrays, options))
        if any(a is not None and not hasattr(a, "dtype") for a in arrays):
            raise TypeError("not an array")
        return Checked(xp=np)

    return check


def test_kind_is_type_dtype_shape_device():
    x = np.zeros((2, 3), dtype=np.float32)
    assert kind(x) == (np.ndarray, np.dtype("float32"), (2, 3), "cpu")
    assert kind(None) is None
    assert kind([1, 2]) != kind([1, 2])  # no array: a key equal to nothing


def test_a_kind_is_checked_once_and_a_new_kind_again():
    calls: list[tuple[object, ...]] = []
    check, boundary = counting_check(calls), CheckBoundary()
    first = boundary.check(check, np.zeros((2, 3)))
    assert boundary.check(check, np.ones((2, 3))) is first  # same kind, other values
    assert len(calls) == 1
    for other in (np.zeros((3, 3)), np.zeros((2, 3), dtype=np.float32)):
        boundary.check(check, other)
    boundary.check(check, np.zeros((2, 3)), flag=True)  # an option is part of the key
    assert len(calls) == 4
    boundary.reset()
    assert len(boundary) == 0
    boundary.check(check, np.zeros((2, 3)), flag=True)
    assert len(calls) == 5


def test_a_failed_check_is_not_remembered():
    calls: list[tuple[object, ...]] = []
    check, boundary = counting_check(calls), CheckBoundary()
    for _ in range(2):
        with pytest.raises(TypeError):
            boundary.check(check, "not an array")
    assert len(calls) == 2
    assert len(boundary) == 0


def test_context_reaches_the_check_but_not_the_key_and_records_compare_by_identity():
    calls: list[tuple[object, ...]] = []
    check, boundary = counting_check(calls), CheckBoundary()
    forward = Checked(xp=np)
    dy = np.zeros(3)
    boundary.check(check, dy, context=(np.zeros(4),), forward=forward)
    boundary.check(check, dy, context=(np.zeros(5),), forward=forward)
    assert len(calls) == 1
    assert calls[0][0][1].shape == (4,)  # the context came after the keyed arrays
    boundary.check(check, dy, context=(np.zeros(5),), forward=Checked(xp=np))
    assert len(calls) == 2  # another forward record, equal in value: checked again


def test_models_copy_and_pickle_after_a_step_with_fresh_boundaries():
    import copy
    import pickle

    model = xpnn.Sequential(xpnn.Linear(3, 2, seed=0), xpnn.ReLU())
    loss_fn = xpnn.MSELoss()
    _, backward = model.forward(np.ones((4, 3)))
    backward(np.ones((4, 2)))
    loss_fn(np.ones(2), np.zeros(2))
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert all(len(m._checks) == 0 for m in clone.modules())
        np.testing.assert_array_equal(clone(np.ones((4, 3))), model(np.ones((4, 3))))
    assert len(copy.deepcopy(loss_fn)._checks) == 0
    assert len(model[0]._checks) > 0  # the original keeps its records


def on1(shape: tuple[int, ...], dtype=None):
    return strict.ones(shape, dtype=dtype or strict.float32, device=DEVICE1)


@pytest.mark.parametrize(
    "layer", [xpnn.ReLU(), xpnn.Tanh(), xpnn.Softmax(), xpnn.Dropout(0.5, seed=0)], ids=repr
)
def test_layers_check_every_new_kind_after_a_remembered_call(layer):
    _, backward = layer.forward(on1((4, 3)))
    backward(on1((4, 3)))
    with pytest.raises(ValueError, match="CPU_DEVICE"):
        layer.forward(strict.ones((4, 3), dtype=strict.float32))[1](on1((4, 3)))
    with pytest.raises(TypeError, match="floating dtype"):
        layer.forward(on1((4, 3), strict.int32))
    _, backward = layer.forward(on1((4, 3)))
    with pytest.raises(ValueError, match="shape"):
        backward(on1((5, 3)))
    with pytest.raises(ValueError, match="CPU_DEVICE"):
        backward(strict.ones((4, 3), dtype=strict.float32))


def test_losses_check_every_new_kind_after_a_remembered_call():
    loss_fn = xpnn.CrossEntropyLoss()
    labels = strict.asarray([0, 1, 2, 0], device=DEVICE1)
    loss_fn(on1((4, 3)), labels)
    with pytest.raises(ValueError, match="CPU_DEVICE"):
        loss_fn(on1((4, 3)), strict.asarray([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="target must have shape"):
        loss_fn(on1((5, 3)), labels)
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\).*got 7"):
        loss_fn(on1((4, 3)), strict.asarray([0, 7, 2, 0], device=DEVICE1))  # values, every call
    mse = xpnn.MSELoss()
    mse(on1((4, 3)), on1((4, 3)))
    with pytest.raises(ValueError, match="target must have the shape of pred"):
        mse(on1((4, 3)), on1((4, 2)))


def test_optimizers_check_every_new_kind_after_a_remembered_call():
    layer = xpnn.Linear(3, 2, xp=strict, device="device1", dtype="float32", seed=0)
    optimizer = SGD(layer, lr=0.1)
    _, backward = layer.forward(on1((4, 3)))
    backward(on1((4, 2)))
    optimizer.step()
    before = strict.asarray(layer.weight, copy=True)
    layer.grads["weight"] = strict.ones((3, 2), dtype=strict.float32)  # CPU_DEVICE
    with pytest.raises(ValueError, match="device"):
        optimizer.step()
    layer.grads["weight"] = on1((2, 3))
    with pytest.raises(ValueError, match="shape"):
        optimizer.step()
    assert bool(strict.all(layer.weight == before))  # nothing changed before the raise


# What people pass where an array belongs: data not yet wrapped, or nothing.
NOT_ARRAYS = {
    "list": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]],
    "tuple": ((1.0, 2.0, 3.0),),
    "float": 1.5,
    "None": None,
}
NOT_ARRAY_GOT = {"list": "builtins.list", "tuple": "builtins.tuple", "float": "builtins.float"}


def _refused(name: str, which: str) -> str:
    got = NOT_ARRAY_GOT.get(which, "None")
    return (
        rf"^{name} must be an array from an array API library .*, got {got}; "
        r"wrap data with xp\.asarray\(\.\.\.\) first$"
    )


def _labels() -> np.ndarray:
    return np.asarray([0, 2])


CALLS = {
    "Linear(x)": (lambda bad: xpnn.Linear(3, 2, seed=0)(bad), "x"),
    "Linear.forward(x)": (lambda bad: xpnn.Linear(3, 2, seed=0).forward(bad), "x"),
    "Linear backward(dy)": (
        lambda bad: xpnn.Linear(3, 2, seed=0).forward(np.ones((2, 3)))[1](bad),
        "dy",
    ),
    "ReLU(x)": (lambda bad: xpnn.ReLU()(bad), "x"),
    "ReLU.forward(x)": (lambda bad: xpnn.ReLU().forward(bad), "x"),
    "ReLU backward(dy)": (lambda bad: xpnn.ReLU().forward(np.ones((2, 3)))[1](bad), "dy"),
    "CrossEntropyLoss(logits)": (lambda bad: xpnn.CrossEntropyLoss()(bad, _labels()), "logits"),
    "CrossEntropyLoss(target)": (
        lambda bad: xpnn.CrossEntropyLoss()(np.ones((2, 3)), bad),
        "target",
    ),
    "MSELoss(pred)": (lambda bad: xpnn.MSELoss()(bad, np.ones((2, 3))), "pred"),
    "MSELoss(target)": (lambda bad: xpnn.MSELoss()(np.ones((2, 3)), bad), "target"),
}


@pytest.mark.parametrize("which", NOT_ARRAYS)
@pytest.mark.parametrize("call", CALLS)
def test_something_that_is_no_array_is_named_and_refused(call, which):
    function, name = CALLS[call]
    with pytest.raises(TypeError, match=_refused(name, which)):
        function(NOT_ARRAYS[which])


@pytest.mark.parametrize("which", NOT_ARRAYS)
def test_no_array_after_a_remembered_call_is_refused_too(which):
    # A boundary holding the record of a good call still refuses what comes next.
    bad = NOT_ARRAYS[which]
    layer, relu, loss_fn = xpnn.Linear(3, 2, seed=0), xpnn.ReLU(), xpnn.MSELoss()
    x = np.ones((2, 3))
    layer(x), relu(x), loss_fn(x, x)
    with pytest.raises(TypeError, match=_refused("x", which)):
        layer(bad)
    with pytest.raises(TypeError, match=_refused("x", which)):
        relu(bad)
    with pytest.raises(TypeError, match=_refused("target", which)):
        loss_fn(x, bad)


@pytest.mark.parametrize("which", NOT_ARRAYS)
def test_an_optimizer_refuses_a_gradient_that_is_no_array(which):
    layer = xpnn.Linear(3, 2, seed=0)
    before = layer.weight.copy()
    layer.grads["weight"] = NOT_ARRAYS[which]
    if which == "None":  # no gradient: the parameter is skipped, as in PyTorch
        SGD(layer, lr=0.1).step()
    else:
        with pytest.raises(TypeError, match=_refused("gradient of 'weight'", which)):
            SGD(layer, lr=0.1).step()
    np.testing.assert_array_equal(layer.weight, before)


def test_a_linear_without_bias_still_takes_none_for_it():
    layer = xpnn.Linear(3, 2, bias=False, seed=0)
    np.testing.assert_allclose(layer(np.ones((1, 3))), np.ones((1, 3)) @ layer.weight)
    np.testing.assert_allclose(
        xpnn.functional.linear(np.ones((1, 3)), layer.weight, None), np.ones((1, 3)) @ layer.weight
    )

"""Module.state_dict / load_state_dict: PyTorch's names and layouts, checked all-or-nothing."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from xpnn import Linear, ReLU, Sequential, Tanh
from xpnn._compat import array_namespace, is_writeable
from xpnn._compat import device as device_of
from xpnn.testing import assert_close, random_array, to_numpy


def _model(xp, device, dtype, seed=0):
    return Sequential(
        Linear(3, 4, xp=xp, device=device, dtype=dtype, seed=seed),
        ReLU(),
        Linear(4, 2, xp=xp, device=device, dtype=dtype, seed=seed + 1),
    )


def _host(model):
    """The parameters as NumPy copies, by name."""
    return {name: to_numpy(value) for name, value in model.named_parameters()}


def _write_into(array):
    """Overwrite ``array`` in place where its library allows it (not JAX; Dask lazily)."""
    if not type(array).__module__.startswith("jax"):
        with contextlib.suppress(TypeError, ValueError):  # read-only
            array[...] = 9.0


def _assert_unchanged(model, before):
    after = _host(model)
    assert after.keys() == before.keys()
    for name, value in before.items():
        np.testing.assert_array_equal(after[name], value, err_msg=name)


def test_names_and_shapes_are_torch_sequentials():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    model = Sequential(Linear(3, 4, seed=0), ReLU(), Sequential(Linear(4, 2, seed=1), Tanh()))
    twin = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 2), nn.Tanh()))
    names = [name for name, _ in twin.named_parameters()]
    assert (
        [name for name, _ in model.named_parameters()]
        == names
        == ["0.weight", "0.bias", "2.0.weight", "2.0.bias"]
    )
    assert list(model.state_dict()) == list(twin.state_dict()) == names
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {
        k: tuple(v.shape) for k, v in twin.state_dict().items()
    }
    assert len(model.parameters()) == len(list(twin.parameters()))


def test_round_trip_through_torch_gives_equal_outputs(xp, device, real_dtype):
    torch = pytest.importorskip("torch")
    from xpnn.interop.torch import to_torch

    model = _model(xp, device, real_dtype)
    net = to_torch(model, device="cpu", dtype="float64")
    with torch.no_grad():  # other values than the model's, so the load shows
        for param in net.parameters():
            param.mul_(-1.5).add_(0.25)
    result = model.load_state_dict(net.state_dict())
    assert result.missing_keys == []
    assert result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"
    for _, value in model.named_parameters():
        assert array_namespace(value=value) is xp
        assert device_of(value) == device
        assert value.dtype == real_dtype
    x = random_array(xp, (5, 3), dtype=real_dtype, device=device, seed=3)
    want = net(torch.as_tensor(to_numpy(x), dtype=torch.float64)).detach().numpy()
    assert_close(model(x), want, xp=xp, device=device, dtype=real_dtype)

    # And back: xpnn's state dict loads into a fresh torch model as it is.
    fresh = to_torch(_model(xp, device, real_dtype, seed=7), device="cpu", dtype="float64")
    state = {k: torch.as_tensor(to_numpy(v)) for k, v in model.state_dict().items()}
    assert not fresh.load_state_dict(state).missing_keys
    got = fresh(torch.as_tensor(to_numpy(x), dtype=torch.float64)).detach().numpy()
    assert_close(model(x), got, xp=xp, device=device, dtype=real_dtype)


def test_state_dict_is_a_copy_in_torch_layout(xp, device, real_dtype):
    model = _model(xp, device, real_dtype)
    before = _host(model)
    state = model.state_dict()
    assert list(state) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    for name, value in state.items():
        assert array_namespace(value=value) is xp
        assert device_of(value) == device
        assert value.dtype == real_dtype
        want = before[name].T if name.endswith("weight") else before[name]
        np.testing.assert_array_equal(to_numpy(value), want)
        if is_writeable(value):  # (JAX's immutable arrays may be shared)
            assert value is not model[int(name[0])].params[name[2:]]
    # Writing into a value (where the library allows it) leaves the model be.
    _write_into(state["0.weight"])
    _assert_unchanged(model, before)
    # And the model's later updates leave the state dict be.
    snapshot = {k: to_numpy(v) for k, v in state.items()}
    bias = model[0].params["bias"]
    model.set_parameter("0.bias", bias * 2.0)
    assert_close(state["0.bias"], xp.asarray(snapshot["0.bias"], device=device))


def test_loaded_values_are_copied_not_kept(xp, device, real_dtype):
    model = _model(xp, device, real_dtype)
    state = _model(xp, device, real_dtype, seed=5).state_dict()
    model.load_state_dict(state)
    for name, value in model.named_parameters():
        if is_writeable(value):  # (JAX's immutable arrays may be shared)
            assert all(value is not given for given in state.values()), name
    loaded = _host(model)
    _write_into(state["0.bias"])
    _assert_unchanged(model, loaded)


def test_loads_numpy_float64_into_the_models_place(xp, device, real_dtype):
    model = _model(xp, device, real_dtype)
    rng = np.random.default_rng(0)
    state = {
        "0.weight": rng.standard_normal((4, 3)),
        "0.bias": rng.standard_normal(4),
        "2.weight": rng.standard_normal((2, 4)),
        "2.bias": rng.standard_normal(2),
    }
    model.load_state_dict(state)
    for name, value in model.named_parameters():
        assert array_namespace(value=value) is xp
        assert device_of(value) == device
        assert value.dtype == real_dtype
        want = state[name].T if name.endswith("weight") else state[name]
        np.testing.assert_allclose(to_numpy(value), want, rtol=1e-6, err_msg=name)


def test_strict_lists_missing_and_unexpected_keys_in_one_error(xp, device, real_dtype):
    model = _model(xp, device, real_dtype)
    before = _host(model)
    state = _model(xp, device, real_dtype, seed=5).state_dict()
    del state["2.bias"]
    state["3.weight"] = state["2.weight"]
    with pytest.raises(
        ValueError, match="Error\\(s\\) in loading state_dict for Sequential"
    ) as info:
        model.load_state_dict(state)
    message = str(info.value)
    assert "Missing key(s) in state_dict: '2.bias'." in message
    assert "Unexpected key(s) in state_dict: '3.weight'." in message
    assert "strict=False" in message
    _assert_unchanged(model, before)


def test_wrong_shape_names_torch_layout_and_changes_nothing(xp, device, real_dtype):
    model = _model(xp, device, real_dtype)
    before = _host(model)
    state = _model(xp, device, real_dtype, seed=5).state_dict()
    state["2.bias"] = xp.zeros((3,), dtype=real_dtype, device=device)
    with pytest.raises(
        ValueError,
        match=r"'2.bias': the state dict has shape \(3,\), the model "
        r"expects \(2,\)",
    ):
        model.load_state_dict(state)
    _assert_unchanged(model, before)  # 0.weight, ... were fine, and not loaded either
    # xpnn's own layout is the transpose of what a state dict holds: said so.
    state = model.state_dict()
    state["0.weight"] = model[0].weight
    with pytest.raises(
        ValueError,
        match=r"has shape \(3, 4\), the model expects \(4, 3\) "
        r"\(PyTorch's layout",
    ):
        model.load_state_dict(state, strict=False)
    _assert_unchanged(model, before)


def test_not_strict_reports_keys_and_loads_the_rest(xp, device, real_dtype):
    model = _model(xp, device, real_dtype)
    before = _host(model)
    other = _model(xp, device, real_dtype, seed=5)
    state = other.state_dict()
    del state["0.weight"]
    state["extra"] = state["0.bias"]
    result = model.load_state_dict(state, strict=False)
    assert result == (["0.weight"], ["extra"])
    assert result.missing_keys == ["0.weight"]
    assert result.unexpected_keys == ["extra"]
    after, theirs = _host(model), _host(other)
    np.testing.assert_array_equal(after["0.weight"], before["0.weight"])
    for name in ("0.bias", "2.weight", "2.bias"):
        np.testing.assert_array_equal(after[name], theirs[name])


def test_values_that_cannot_load_raise_type_error(xp, device, real_dtype):
    model = _model(xp, device, real_dtype)
    before = _host(model)
    state = model.state_dict()
    with pytest.raises(TypeError, match="state_dict must be a mapping"):
        model.load_state_dict(list(state.items()))
    with pytest.raises(
        TypeError, match=r"state_dict\['0.bias'\] must be an array .* got builtins.list"
    ):
        model.load_state_dict({**state, "0.bias": [0.0] * 4})
    with pytest.raises(TypeError, match=r"state_dict\['0.bias'\] must have a real or complex"):
        model.load_state_dict({**state, "0.bias": np.zeros(4, dtype=np.int64)})
    with pytest.raises(TypeError, match="imaginary parts"):
        model.load_state_dict({**state, "0.bias": np.zeros(4, dtype=np.complex128)})
    _assert_unchanged(model, before)

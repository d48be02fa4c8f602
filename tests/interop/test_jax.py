"""xpnn.interop.jax: an xpnn model as a jax.custom_vjp function.

The oracle is JAX's own differentiation of the same network written in
jax.numpy, with the same weights. JAX computes in float32 unless x64 is on
(the jax session turns it on); the tests use whichever JAX gives.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
pytestmark = pytest.mark.backend("jax")

import xpnn  # noqa: E402
from xpnn import (  # noqa: E402
    GELU,
    BatchNorm1d,
    Dropout,
    LeakyReLU,
    Linear,
    LogSoftmax,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from xpnn.interop.jax import as_function  # noqa: E402
from xpnn.testing import assert_close, random_array  # noqa: E402

#: What JAX computes in here: float64 with x64 on, else float32.
DTYPE = jnp.asarray(0.0).dtype
DTYPE_NAME = str(DTYPE)
DEVICE = jnp.asarray(0.0).device
SIZES = (5, 7, 6, 4)


def build(kind: str) -> Sequential:
    """An MLP with every activation, on JAX, and its output layer by ``kind``."""
    a, b, c, d = SIZES
    layers = [
        Linear(a, b, seed=0),
        Tanh(),
        Linear(b, c, seed=1),
        ReLU(),
        Linear(c, c, seed=2),
        GELU(),
        Linear(c, c, seed=3),
        LeakyReLU(0.1),
        Sigmoid(),
        Linear(c, d, seed=4),
    ]
    if kind == "log_softmax":
        layers.append(LogSoftmax())
    elif kind == "softmax":
        layers.append(Softmax())
    return Sequential(*layers).to(jnp, dtype=DTYPE_NAME)


def oracle(kind: str) -> Any:
    """The same network in jax.numpy, differentiated by JAX itself."""

    def network(params: dict[str, Any], x: Any) -> Any:
        def linear(h: Any, index: int) -> Any:
            return h @ params[f"{index}.weight"] + params[f"{index}.bias"]

        h = jnp.tanh(linear(x, 0))
        h = jax.nn.relu(linear(h, 2))
        h = jax.nn.gelu(linear(h, 4), approximate=False)
        h = jax.nn.sigmoid(jax.nn.leaky_relu(linear(h, 6), 0.1))
        h = linear(h, 9)
        if kind == "log_softmax":
            return jax.nn.log_softmax(h, axis=-1)
        if kind == "softmax":
            return jax.nn.softmax(h, axis=-1)
        return h

    return network


def batch(n: int = 8, seed: int = 10) -> tuple[Any, Any]:
    x = random_array(jnp, (n, SIZES[0]), dtype=DTYPE, device=DEVICE, seed=seed)
    target = random_array(jnp, (n, SIZES[-1]), dtype=DTYPE, device=DEVICE, seed=seed + 1)
    return x, target


def loss_of(function: Any) -> Any:
    """A scalar loss through every output, for gradients of all parameters."""

    def loss(params: dict[str, Any], x: Any, target: Any) -> Any:
        y = function(params, x)
        return jnp.sum(jnp.sin(3 * y) * target) + 0.5 * jnp.sum(y**2)

    return loss


def assert_trees_close(actual: dict[str, Any], desired: dict[str, Any]) -> None:
    assert set(actual) == set(desired)
    for name in desired:
        assert_close(actual[name], desired[name], err_msg=name)


def leaves(value: Any) -> Any:
    """Every object a module's attributes hold, containers opened."""
    if isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from leaves(item)
    else:
        yield value


def modules(model: xpnn.Module) -> Any:
    yield model
    for child in model.children():
        yield from modules(child)


KINDS = ("linear", "softmax", "log_softmax")
JIT = pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])


@pytest.mark.parametrize("kind", KINDS)
def test_output_equals_the_model_and_the_oracle(kind):
    model = build(kind)
    f, params = as_function(model)
    x, _ = batch()
    assert_close(f(params, x), model(x))
    assert_close(jax.jit(f)(params, x), model(x))
    assert_close(f(params, x), oracle(kind)(params, x))


@JIT
@pytest.mark.parametrize("kind", KINDS)
def test_gradients_equal_jax_autodiff_of_the_same_network(kind, jit):
    f, params = as_function(build(kind))
    x, target = batch()
    grad = jax.grad(loss_of(f), argnums=(0, 1))
    expected = jax.grad(loss_of(oracle(kind)), argnums=(0, 1))(params, x, target)
    got = (jax.jit(grad) if jit else grad)(params, x, target)
    assert_trees_close(got[0], expected[0])
    assert_close(got[1], expected[1])
    for name, value in params.items():
        assert got[0][name].shape == value.shape
        assert got[0][name].dtype == value.dtype


@JIT
def test_value_and_grad_and_the_hand_written_backward_agree(jit):
    """The VJP of f is model.forward's backward closure, called directly."""
    model = build("log_softmax")
    f, params = as_function(model)
    x, target = batch()
    _, vjp = jax.vjp(f, params, x)
    if jit:
        vjp = jax.jit(vjp)
    dparams, dx = vjp(target)
    _, backward = model.forward(x)
    expected_dx = backward(target)
    assert_close(dx, expected_dx)
    assert_trees_close(dparams, dict(model.named_gradients()))


@JIT
def test_per_example_gradients_under_vmap(jit):
    f, params = as_function(build("softmax"))
    x, target = batch(n=4)
    per_example = jax.vmap(jax.grad(loss_of(f)), in_axes=(None, 0, 0))
    if jit:
        per_example = jax.jit(per_example)
    got = per_example(params, x, target)
    expected = jax.vmap(jax.grad(loss_of(oracle("softmax"))), in_axes=(None, 0, 0))(
        params, x, target
    )
    assert got["0.weight"].shape == (4, SIZES[0], SIZES[1])
    assert_trees_close(got, expected)


def test_second_derivatives_differentiate_the_backward_pass():
    """Reverse over reverse: JAX differentiates the layers' backward code."""
    f, params = as_function(build("linear"))
    x, target = batch(n=3)

    def input_gradient_norm(function: Any) -> Any:
        def norm(params: dict[str, Any]) -> Any:
            dx = jax.grad(loss_of(function), argnums=1)(params, x, target)
            return jnp.sum(dx**2)

        return norm

    got = jax.grad(input_gradient_norm(f))(params)
    expected = jax.grad(input_gradient_norm(oracle("linear")))(params)
    assert_trees_close(got, expected)


def sgd(loss: Any, params: dict[str, Any], x: Any, target: Any, *, jit: bool) -> Any:
    def step(params: dict[str, Any]) -> dict[str, Any]:
        grads = jax.grad(loss)(params, x, target)
        return {name: value - 0.01 * grads[name] for name, value in params.items()}

    if jit:
        step = jax.jit(step)
    history = []
    for _ in range(5):
        params = step(params)
        history.append(float(loss(params, x, target)))
    return params, history


def test_sgd_steps_under_jit_equal_eager_and_the_oracle():
    model = build("log_softmax")
    f, params = as_function(model)
    x, target = batch()
    jitted, jitted_losses = sgd(loss_of(f), params, x, target, jit=True)
    eager, eager_losses = sgd(loss_of(f), params, x, target, jit=False)
    reference, reference_losses = sgd(loss_of(oracle("log_softmax")), params, x, target, jit=False)
    assert_trees_close(jitted, eager)
    assert_trees_close(jitted, reference)
    rtol = 1e-10 if jnp.float64 == DTYPE else 1e-4
    np.testing.assert_allclose(jitted_losses, eager_losses, rtol=rtol)
    np.testing.assert_allclose(jitted_losses, reference_losses, rtol=rtol)
    assert jitted_losses[-1] < jitted_losses[0]
    # Trained parameters go back into the model by name.
    for name, value in jitted.items():
        model.set_parameter(name, value)
    assert_close(model(x), f(jitted, x))


def test_the_model_is_left_as_it_was_and_holds_no_tracers():
    model = build("softmax")
    x, target = batch()
    # Gradients from an earlier backward must survive the bridge untouched.
    _, backward = model.forward(x)
    backward(target)
    arrays = dict(model.named_parameters())
    grads = dict(model.named_gradients())
    f, params = as_function(model)
    assert all(params[name] is value for name, value in arrays.items())
    jax.jit(jax.grad(loss_of(f)))(params, x, target)
    jax.grad(loss_of(f))(params, x, target)
    jax.vmap(jax.grad(loss_of(f)), in_axes=(None, 0, 0))(params, x, target)
    with pytest.raises(ValueError, match=r"expected last dimension 5 \(in_features\), got 3"):
        jax.jit(f)(params, x[:, :3])
    for name, value in model.named_parameters():
        assert value is arrays[name], name
    for name, value in model.named_gradients():
        assert value is grads[name], name
    for module in modules(model):
        for value in leaves(vars(module)):
            assert not isinstance(value, jax.core.Tracer), (module, value)
    # And the model still runs eagerly and under a new trace.
    assert_close(model(x), f(params, x))
    assert_close(jax.jit(f)(params, x + 1), model(x + 1))


def test_models_from_the_session_backend_move_to_jax(xp, device):
    """A model built on any backend is used in JAX after model.to(jax.numpy)."""
    where = {"xp": xp, "device": device, "dtype": "float32"}  # every device has float32
    model = Sequential(Linear(3, 4, **where, seed=0), Tanh(), Linear(4, 2, **where, seed=1))
    if xpnn._compat.library_of(model.layers[0].weight) != "jax":
        with pytest.raises(TypeError, match=r"parameter '0\.weight' is a .* array.*model\.to"):
            as_function(model)
    model.to(jnp, dtype=DTYPE_NAME)
    f, params = as_function(model)
    x = random_array(jnp, (6, 3), dtype=DTYPE, device=DEVICE, seed=2)
    dx = jax.jit(jax.grad(lambda x: jnp.sum(f(params, x) ** 2)))(x)
    y, backward = model.forward(x)
    assert_close(dx, backward(2 * y))


def test_mixed_dtypes_give_gradients_in_the_primal_dtypes():
    if jnp.float64 != DTYPE:
        pytest.skip("needs JAX's x64 mode for two floating dtypes")
    model = Sequential(Linear(3, 2, seed=0)).to(jnp, dtype="float64")
    f, params = as_function(model)
    x = random_array(jnp, (4, 3), dtype=jnp.float32, device=DEVICE, seed=1)
    dparams, dx = jax.grad(lambda p, x: jnp.sum(f(p, x)), argnums=(0, 1))(params, x)
    assert dparams["0.weight"].dtype == jnp.float64
    assert dx.dtype == jnp.float32


def test_a_model_without_parameters_works():
    f, params = as_function(Sequential(Tanh(), Softmax()))
    assert params == {}
    x, _ = batch()
    dx = jax.jit(jax.grad(lambda x: jnp.sum(f({}, x)[:, 0])))(x)
    expected = jax.grad(lambda x: jnp.sum(jax.nn.softmax(jnp.tanh(x))[:, 0]))(x)
    assert_close(dx, expected)


def test_dropout_runs_in_eval_mode_only():
    model = Sequential(Linear(5, 4, seed=0), Dropout(0.5, seed=0), Linear(4, 2, seed=1))
    model.to(jnp, dtype=DTYPE_NAME)
    f, params = as_function(model)
    x, _ = batch()
    with pytest.raises(ValueError, match=r"Dropout layer in training mode.*model\.eval\(\)"):
        f(params, x)
    with pytest.raises(ValueError, match="Dropout layer in training mode"):
        jax.jit(jax.grad(lambda p: jnp.sum(f(p, x))))(params)
    model.eval()
    assert_close(jax.jit(f)(params, x), model(x))
    model.train()
    with pytest.raises(ValueError, match="Dropout layer in training mode"):
        f(params, x)
    model.layers[1].p = 0.0
    assert_close(f(params, x), model(x))


def test_batch_norm_runs_in_eval_mode_or_untracked():
    """f returns the output alone: a batch norm that would replace its statistics is refused."""
    model = Sequential(Linear(5, 4, seed=0), BatchNorm1d(4), Linear(4, 2, seed=1))
    model.to(jnp, dtype=DTYPE_NAME)
    buffers = dict(model.named_buffers())
    f, params = as_function(model)
    x, _ = batch()
    with pytest.raises(ValueError, match=r"BatchNorm1d\(4\) in training mode.*train_step"):
        f(params, x)
    with pytest.raises(ValueError, match=r"BatchNorm1d\(4\) in training mode"):
        jax.jit(jax.grad(lambda p: jnp.sum(f(p, x))))(params)
    model.eval()
    assert_close(jax.jit(f)(params, x), model(x))
    assert all(value is buffers[name] for name, value in model.named_buffers())
    # Without running statistics the batch's own normalise, in training mode too.
    untracked = Sequential(Linear(5, 4, seed=0), BatchNorm1d(4, track_running_stats=False))
    untracked.to(jnp, dtype=DTYPE_NAME)
    f, params = as_function(untracked)
    assert_close(jax.jit(f)(params, x), untracked(x))


# -- errors -------------------------------------------------------------------


def test_models_off_jax_are_refused():
    model = Sequential(Linear(3, 2, seed=0))
    with pytest.raises(
        TypeError, match=r"parameter '0\.weight' is a numpy array\. Move the model first"
    ):
        as_function(model)
    with pytest.raises(TypeError, match="takes an xpnn Module, got function"):
        as_function(lambda x: x)


def test_a_layer_used_twice_is_refused():
    shared = Linear(3, 3, seed=0)
    model = Sequential(shared, Tanh(), shared).to(jnp, dtype=DTYPE_NAME)
    with pytest.raises(ValueError, match=r"'0\.weight' and '2\.weight' are one array"):
        as_function(model)


def test_params_must_name_every_parameter():
    f, params = as_function(build("linear"))
    x, _ = batch()
    with pytest.raises(TypeError, match="params must be a dict.*got list"):
        f(list(params.values()), x)
    fewer = {name: value for name, value in params.items() if name != "0.bias"}
    with pytest.raises(ValueError, match="missing: 0.bias; unexpected: none"):
        f(fewer, x)
    with pytest.raises(ValueError, match="missing: none; unexpected: extra"):
        f({**params, "extra": params["0.bias"]}, x)


def test_forward_mode_is_refused_by_jax():
    f, params = as_function(build("linear"))
    x, _ = batch()
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jvp(lambda x: f(params, x), (x,), (x,))

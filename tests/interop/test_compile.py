"""Training steps under jax.jit and torch.compile, with xpnn's own layers, losses and optimizers.

The oracle is the eager loop that ``xpnn.fit`` runs (forward, loss,
backward, ``optimizer.step()``), on NumPy and on the compiled library
itself: a compiled step must give the same losses, parameters and optimizer
state, to the dtype's tolerance.

The torch.compile tests are the slow ones of this file: Dynamo traces each
step function, several seconds a compile, and one test compiles with
inductor (C++ on CPU), about 20 seconds. They use small models and few
steps, compile one step once for two tests (``adam_run``), and keep the
model with every activation for the checks that are about the layers; the
other ones use Dynamo's ``aot_eager`` backend, which traces as inductor
does but compiles nothing.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnn
from selection import require_backend
from xpnn import (
    GELU,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    LeakyReLU,
    Linear,
    LogSoftmax,
    MaxPool2d,
    Module,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from xpnn.interop.step import TrainStep
from xpnn.optim import SGD, Adam, AdamW
from xpnn.testing import assert_close, to_numpy

OPTIMIZERS: dict[str, Callable[[Module], Any]] = {
    "sgd-momentum-dampening": lambda m: SGD(m, lr=0.1, momentum=0.9, dampening=0.2),
    "sgd-nesterov-decay": lambda m: SGD(m, lr=0.1, momentum=0.5, nesterov=True, weight_decay=0.01),
    "adam": lambda m: Adam(m, lr=1e-2, weight_decay=0.01),
    "adamw": lambda m: AdamW(m, lr=1e-2),
}
LOSSES: dict[str, Callable[[], Any]] = {
    "cross-entropy": xpnn.CrossEntropyLoss,
    "mse": xpnn.MSELoss,
    "bce": xpnn.BCEWithLogitsLoss,
}
FEATURES, CLASSES = 6, 3


@pytest.fixture
def numpy_selected(request: pytest.FixtureRequest) -> None:
    require_backend(request.config, "numpy")


def every_activation(dropout: float = 0.0) -> Sequential:
    return Sequential(
        Linear(FEATURES, 8, seed=0),
        ReLU(),
        Linear(8, 8, seed=1),
        LeakyReLU(0.1),
        Dropout(dropout, seed=3),
        Linear(8, 8, seed=2),
        Tanh(),
        Sigmoid(),
        GELU(),
        Linear(8, CLASSES, seed=4),
        Softmax(),
        LogSoftmax(),
    )


def small(dropout: float = 0.0) -> Sequential:
    """Two linear layers, for the checks that are not about the layers: cheaper to trace."""
    return Sequential(
        Linear(FEATURES, 8, seed=0), Tanh(), Dropout(dropout, seed=3), Linear(8, CLASSES, seed=1)
    )


def lenet() -> Sequential:
    """A LeNet-like CNN for 1x8x8 images: conv, batch norm, ReLU, 2x2 max-pool, Flatten, Linear.

    The convolution has no bias, as before a batch norm, whose mean cancels
    it; 3x3 without padding, 8x8 to 6x6, pooled to 3x3.
    """
    return Sequential(
        Conv2d(1, 2, 3, bias=False, seed=0),
        BatchNorm2d(2),
        ReLU(),
        MaxPool2d(2),
        Flatten(),
        Linear(2 * 3 * 3, CLASSES, seed=1),
    )


#: The names of lenet()'s buffers, the last entries of a step's params.
LENET_BUFFERS = ["1.running_mean", "1.running_var", "1.num_batches_tracked"]


def images(steps: int = 3, rows: int = 4) -> list[tuple[Any, Any]]:
    """Host batches of 1x8x8 images, shape (rows, 1, 8, 8), and class labels."""
    rng = np.random.default_rng(1)
    return [
        (rng.standard_normal((rows, 1, 8, 8)), rng.integers(0, CLASSES, rows)) for _ in range(steps)
    ]


def batches(loss: str, sizes: tuple[int, ...] = (16, 16, 16, 9)) -> list[tuple[Any, Any]]:
    """Host batches; the last one smaller, as the last batch of an epoch."""
    rng = np.random.default_rng(0)
    out = []
    for rows in sizes:
        x = rng.standard_normal((rows, FEATURES))
        if loss == "cross-entropy":
            y: Any = rng.integers(0, CLASSES, rows)
        elif loss == "bce":
            y = rng.random((rows, CLASSES))
        else:
            y = rng.standard_normal((rows, CLASSES))
        out.append((x, y))
    return out


def eager(model: Module, loss_fn: Any, optimizer: Any, data: list[tuple[Any, Any]]) -> list[Any]:
    """The losses of xpnn.fit's loop, one per batch."""
    losses = []
    for x, y in data:
        prediction, backward = model.forward(x)
        value, dprediction = loss_fn(prediction, y)
        optimizer.zero_grad()
        backward(dprediction)
        optimizer.step()
        losses.append(to_numpy(value))
    return losses


def on(xp: Any, dtype: str, data: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    def move(a: np.ndarray) -> Any:
        if np.issubdtype(a.dtype, np.floating):
            return xp.asarray(a.astype(dtype))
        return xp.asarray(a)

    return [(move(x), move(y)) for x, y in data]


def compare_models(model: Module, oracle: Module) -> None:
    """Parameters and buffers, by their state-dict names, against the oracle's."""
    theirs = oracle.state_dict()
    assert list(model.state_dict()) == list(theirs)
    for name, value in model.state_dict().items():
        assert_close(to_numpy(value), to_numpy(theirs[name]), err_msg=name)


def compare_states(optimizer: Any, oracle: Any, dtype: str) -> None:
    ours, theirs = optimizer.state_dict()["state"], oracle.state_dict()["state"]
    assert ours.keys() == theirs.keys()
    for name, entry in theirs.items():
        assert ours[name]["step"] == entry["step"]
        assert type(ours[name]["step"]) is int
        for key, value in entry.items():
            if key == "step":
                continue
            if value is None:
                assert ours[name][key] is None, key
                continue
            assert_close(to_numpy(ours[name][key]), to_numpy(value).astype(dtype), err_msg=key)


# -- a pure step on any backend, uncompiled ----------------------------------------


@pytest.mark.usefixtures("numpy_selected")
def test_pure_step_on_numpy_is_the_eager_step() -> None:
    data = on(np, "float64", batches("cross-entropy"))
    model, oracle = every_activation(), every_activation()
    optimizer, oracle_optimizer = OPTIMIZERS["adam"](model), OPTIMIZERS["adam"](oracle)
    expected = eager(oracle, xpnn.CrossEntropyLoss(), oracle_optimizer, data)
    # Taken from the model's own arrays: copies, since NumPy's are updated in place.
    step = TrainStep(model, xpnn.CrossEntropyLoss(), optimizer)
    params, state = step.init()
    params = {name: value.copy() for name, value in params.items()}
    before = {name: value.copy() for name, value in model.named_parameters()}
    losses = []
    for x, y in data:
        params, state, loss = step(params, state, x, y)
        losses.append(loss)
    np.testing.assert_array_equal(np.array(losses), np.array(expected))
    # Until written back, the model and the optimizer are as they were.
    for name, value in model.named_parameters():
        np.testing.assert_array_equal(value, before[name])
    assert optimizer.state_dict()["state"]["0.weight"]["step"] == 0
    assert all(grad is None for _, grad in model.named_gradients())
    step.write_back(params, state)
    for name, value in model.named_parameters():
        np.testing.assert_array_equal(value, dict(oracle.named_parameters())[name])
    compare_states(optimizer, oracle_optimizer, "float64")


@pytest.mark.usefixtures("numpy_selected")
def test_pure_step_threads_the_batch_norm_buffers() -> None:
    data = on(np, "float64", images())
    model, oracle = lenet(), lenet()
    optimizer = SGD(model, lr=0.1, momentum=0.9)
    oracle_optimizer = SGD(oracle, lr=0.1, momentum=0.9)
    expected = eager(oracle, xpnn.CrossEntropyLoss(), oracle_optimizer, data)
    step = TrainStep(model, xpnn.CrossEntropyLoss(), optimizer)
    params, state = step.init()
    assert list(params) == [*step.names, *LENET_BUFFERS]
    assert set(params) == set(model.state_dict())
    own = dict(model.named_buffers())
    losses = []
    for x, y in data:
        given = dict(params)
        params, state, loss = step(params, state, x, y)
        losses.append(loss)
        # New running statistics; the ones passed in keep their values.
        for name in LENET_BUFFERS:
            assert params[name] is not given[name]
    np.testing.assert_array_equal(np.array(losses), np.array(expected))
    np.testing.assert_array_equal(own["1.running_mean"], np.zeros(2))
    assert int(own["1.num_batches_tracked"]) == 0
    assert all(value is own[name] for name, value in model.named_buffers())
    assert int(params["1.num_batches_tracked"]) == len(data)
    step.write_back(params, state)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, oracle.state_dict()[name], err_msg=name)


@pytest.mark.usefixtures("numpy_selected")
def test_step_refuses_what_it_cannot_run() -> None:
    model = every_activation()
    with pytest.raises(ValueError, match="optimizer.model is model"):
        TrainStep(model, xpnn.MSELoss(), SGD(every_activation(), lr=0.1))
    with pytest.raises(TypeError, match="xpnn optimizer"):
        TrainStep(model, xpnn.MSELoss(), object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        TrainStep(model, None, SGD(model, lr=0.1))  # type: ignore[arg-type]
    shared = Linear(4, 4, seed=0)
    twice = Sequential(shared, Tanh(), shared)
    with pytest.raises(ValueError, match=r"'0.weight' and '2.weight' are one array"):
        TrainStep(twice, xpnn.MSELoss(), SGD(twice, lr=0.1))
    step = TrainStep(model, xpnn.MSELoss(), SGD(model, lr=0.1))
    params, state = step.init()
    del params["0.bias"]
    with pytest.raises(ValueError, match="missing: 0.bias"):
        step(params, state, np.ones((2, FEATURES)), np.ones((2, CLASSES)))
    cnn = lenet()
    step = TrainStep(cnn, xpnn.CrossEntropyLoss(), SGD(cnn, lr=0.1))
    params, state = step.init()
    without = {name: params[name] for name in step.names}
    with pytest.raises(ValueError, match="buffers after its parameters.*missing: 1.running_mean"):
        step(without, state, *images(1)[0])
    with pytest.raises(ValueError, match="buffers after its parameters"):
        step.write_back(without, state)


# -- jax.jit -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def jnp(request: pytest.FixtureRequest) -> Any:
    require_backend(request.config, "jax")
    pytest.importorskip("jax")
    import jax.numpy

    return jax.numpy


def jax_dtype(jnp: Any) -> str:
    """What JAX computes in here: float64 with x64 on, else float32."""
    return str(jnp.asarray(0.0).dtype)


def traced(step: TrainStep) -> list[int]:
    """Count the traces of a step: its body runs once per trace under jit."""
    count = [0]
    body = step.body

    def counting(x: Any, y: Any) -> Any:
        count[0] += 1
        return body(x, y)

    step.body = counting
    return count


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_jit_step_matches_eager_jax_and_numpy(jnp: Any, optimizer: str, loss: str) -> None:
    from xpnn.interop.jax import train_step

    dtype = jax_dtype(jnp)
    data = batches(loss)
    reference = every_activation().to(dtype=dtype)
    reference_optimizer = OPTIMIZERS[optimizer](reference)
    on_numpy = eager(reference, LOSSES[loss](), reference_optimizer, on(np, dtype, data))
    eager_model = every_activation().to(jnp, dtype=dtype)
    on_jax = eager(
        eager_model, LOSSES[loss](), OPTIMIZERS[optimizer](eager_model), on(jnp, dtype, data)
    )

    model = every_activation().to(jnp, dtype=dtype)
    opt = OPTIMIZERS[optimizer](model)
    step = train_step(model, LOSSES[loss](), opt)
    count = traced(step)
    params, state = step.init()
    losses = []
    for x, y in on(jnp, dtype, data):
        params, state, value = step(params, state, x, y)
        losses.append(to_numpy(value))
    # One trace before the optimizer's buffers exist, one after, one for the
    # smaller last batch.
    assert count[0] == 3
    assert_close(np.array(losses), np.array(on_jax))
    assert_close(np.array(losses), np.array(on_numpy))
    step.write_back(params, state)
    for name, value in model.named_parameters():
        assert_close(to_numpy(value), dict(reference.named_parameters())[name], err_msg=name)
    compare_states(opt, reference_optimizer, dtype)


def test_jit_step_leaves_no_tracer_in_the_model(jnp: Any) -> None:
    import jax

    from xpnn.interop.jax import train_step

    dtype = jax_dtype(jnp)
    model = every_activation().to(jnp, dtype=dtype)
    loss_fn = xpnn.CrossEntropyLoss()
    opt = Adam(model, lr=1e-2)
    before = dict(model.named_parameters())
    step = train_step(model, loss_fn, opt)
    params, state = step.init()
    for x, y in on(jnp, dtype, batches("cross-entropy")):
        params, state, _ = step(params, state, x, y)

    def leaves(obj: Any) -> list[Any]:
        return jax.tree_util.tree_leaves(
            obj, is_leaf=lambda leaf: not isinstance(leaf, dict | list | tuple)
        )

    found = [vars(m) for m in model.modules()] + [vars(opt)]
    assert not any(isinstance(leaf, jax.core.Tracer) for leaf in leaves(found))
    # What the checks remembered of the traced inputs is forgotten.
    boundaries = [m._checks for m in model.modules()] + [opt._checks, loss_fn._checks]
    assert all(len(boundary) == 0 for boundary in boundaries)
    assert all(value is before[name] for name, value in model.named_parameters())
    assert all(grad is None for _, grad in model.named_gradients())


def test_jit_step_continues_from_eager_steps_and_a_new_lr(jnp: Any) -> None:
    from xpnn.interop.jax import train_step

    dtype = jax_dtype(jnp)
    data = on(jnp, dtype, batches("mse", (8,) * 6))
    oracle = every_activation().to(jnp, dtype=dtype)
    oracle_opt = Adam(oracle, lr=1e-2)
    expected = eager(oracle, xpnn.MSELoss(), oracle_opt, data[:3])
    oracle_opt.lr = 1e-3
    expected += eager(oracle, xpnn.MSELoss(), oracle_opt, data[3:])

    model = every_activation().to(jnp, dtype=dtype)
    opt = Adam(model, lr=1e-2)
    losses = eager(model, xpnn.MSELoss(), opt, data[:2])
    step = train_step(model, xpnn.MSELoss(), opt)
    params, state = step.init()
    for index, (x, y) in enumerate(data[2:], start=2):
        if index == 3:
            opt.lr = 1e-3
        params, state, value = step(params, state, x, y)
        losses.append(to_numpy(value))
    assert_close(np.array(losses), np.array([to_numpy(v) for v in expected]))
    step.write_back(params, state)
    compare_states(opt, oracle_opt, dtype)


def test_jit_and_eager_pure_steps_agree(jnp: Any) -> None:
    from xpnn.interop.jax import train_step

    dtype = jax_dtype(jnp)
    results = []
    for jit in (True, False):
        model = every_activation().to(jnp, dtype=dtype)
        step = train_step(model, xpnn.CrossEntropyLoss(), SGD(model, lr=0.1, momentum=0.9), jit=jit)
        params, state = step.init()
        for x, y in on(jnp, dtype, batches("cross-entropy")):
            params, state, value = step(params, state, x, y)
        results.append((to_numpy(value), to_numpy(params["9.weight"])))
    assert_close(results[0][0], results[1][0])
    assert_close(results[0][1], results[1][1])


def test_jit_step_then_a_checkpoint(jnp: Any, tmp_path: Path) -> None:
    from xpnn.interop.jax import train_step

    dtype = jax_dtype(jnp)
    model = every_activation().to(jnp, dtype=dtype)
    opt = AdamW(model, lr=1e-2)
    step = train_step(model, xpnn.CrossEntropyLoss(), opt)
    params, state = step.init()
    for x, y in on(jnp, dtype, batches("cross-entropy")):
        params, state, _ = step(params, state, x, y)
    step.write_back(params, state)
    xpnn.save(model, tmp_path / "m.safetensors", optimizer=opt)
    loaded = xpnn.load(tmp_path / "m.safetensors")
    restored = AdamW(loaded, lr=1e-2)
    xpnn.load_optimizer(tmp_path / "m.safetensors", restored)
    compare_states(restored, opt, dtype)


def test_jit_step_refuses_dropout_in_training_and_numpy_parameters(jnp: Any) -> None:
    from xpnn.interop.jax import train_step

    dtype = jax_dtype(jnp)
    model = every_activation(dropout=0.5).to(jnp, dtype=dtype)
    step = train_step(model, xpnn.MSELoss(), SGD(model, lr=0.1))
    params, state = step.init()
    (x, y), *_ = on(jnp, dtype, batches("mse"))
    with pytest.raises(ValueError, match=r"Dropout\(p=0.5\) in training mode.*jax.jit"):
        step(params, state, x, y)
    model.eval()  # the same step, now without masks
    step(params, state, x, y)
    numpy_model = every_activation()
    with pytest.raises(TypeError, match="train_step needs a model whose parameters are JAX"):
        train_step(numpy_model, xpnn.MSELoss(), SGD(numpy_model, lr=0.1))


def test_jit_step_trains_a_cnn_with_batch_norm_as_eager_numpy(jnp: Any) -> None:
    """The running statistics go through the step as buffers: new arrays, never written into."""
    from xpnn.interop.jax import train_step

    dtype = jax_dtype(jnp)
    data = images()
    oracle = lenet().to(dtype=dtype)
    oracle_opt = SGD(oracle, lr=0.1, momentum=0.9)
    expected = eager(oracle, xpnn.CrossEntropyLoss(), oracle_opt, on(np, dtype, data))
    model = lenet().to(jnp, dtype=dtype)
    opt = SGD(model, lr=0.1, momentum=0.9)
    step = train_step(model, xpnn.CrossEntropyLoss(), opt)
    count = traced(step)
    params, state = step.init()
    first = dict(params)
    losses = []
    for x, y in on(jnp, dtype, data):
        params, state, value = step(params, state, x, y)
        losses.append(to_numpy(value))
    # Before and after the momentum buffers exist: new running statistics
    # of the same shapes and dtypes trace nothing new.
    assert count[0] == 2
    assert_close(np.array(losses), np.array(expected))
    np.testing.assert_array_equal(to_numpy(first["1.running_mean"]), np.zeros(2))
    assert int(first["1.num_batches_tracked"]) == 0
    assert all(value is first[name] for name, value in model.named_buffers())
    step.write_back(params, state)
    compare_models(model, oracle)
    compare_states(opt, oracle_opt, dtype)

    # In eval mode the running statistics normalise and stay: another trace.
    model.eval()
    oracle.eval()
    (x, y), *_ = data
    expected = eager(oracle, xpnn.CrossEntropyLoss(), oracle_opt, on(np, dtype, [(x, y)]))
    kept = dict(params)
    params, state, value = step(params, state, *on(jnp, dtype, [(x, y)])[0])
    assert count[0] == 3
    assert_close(to_numpy(value), expected[0])
    for name in LENET_BUFFERS:
        np.testing.assert_array_equal(to_numpy(params[name]), to_numpy(kept[name]))
    step.write_back(params, state)
    compare_models(model, oracle)


# -- torch.compile (slow: Dynamo traces every step function) --------------------------


@pytest.fixture(scope="module")
def torch(request: pytest.FixtureRequest) -> Any:
    require_backend(request.config, "torch")
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)  # the test machines are shared
    yield torch
    torch._dynamo.reset()


def torch_losses(
    torch: Any,
    model: Module,
    loss: str,
    optimizer: str,
    dtype: str,
    sizes: tuple[int, ...] = (16, 16, 16),
    **options: Any,
) -> tuple[list[Any], TrainStep, Any, Any]:
    from xpnn.interop.torch import compiled_step

    torch._dynamo.reset()
    opt = OPTIMIZERS[optimizer](model)
    step = compiled_step(model, LOSSES[loss](), opt, **options)
    params, state = step.init()
    losses = []
    for x, y in on(torch, dtype, batches(loss, sizes)):
        params, state, value = step(params, state, x, y)
        losses.append(to_numpy(value))
    return losses, step, params, state


#: adam_run's batches: a smaller one (a new shape), then the learning rate
#: changes before the last.
ADAM_SIZES, NEW_LR_AT = (16, 16, 9, 16), 3


@pytest.fixture(scope="module")
def adam_run(torch: Any) -> dict[str, Any]:
    """One compiled run of the model with every activation, shared by two tests.

    Cross-entropy and Adam in float64, over batches of a new shape and a new
    learning rate: four compiles, each several seconds. Returns the step
    (compiled, for more calls), and host copies of the losses, parameters
    and optimizer state after the run.
    """
    from xpnn.interop.torch import compiled_step

    torch._dynamo.reset()
    model = every_activation().to(torch)
    opt = OPTIMIZERS["adam"](model)
    step = compiled_step(model, xpnn.CrossEntropyLoss(), opt, backend="aot_eager")
    params, state = step.init()
    losses = []
    for index, (x, y) in enumerate(on(torch, "float64", batches("cross-entropy", ADAM_SIZES))):
        if index == NEW_LR_AT:
            opt.lr = 1e-3
        params, state, value = step(params, state, x, y)
        losses.append(to_numpy(value))
    step.write_back(params, state)
    return {
        "step": step,
        "losses": np.array(losses),
        "params": {name: to_numpy(value) for name, value in model.named_parameters()},
        "state": {
            name: {
                key: value if key == "step" else to_numpy(value)
                for key, value in entry.items()
                if value is not None
            }
            for name, entry in opt.state_dict()["state"].items()
        },
    }


def test_torch_compile_with_adam_matches_eager_numpy(adam_run: dict[str, Any]) -> None:
    """Every activation, a smaller batch (dynamic shapes) and a new learning rate (a retrace)."""
    oracle = every_activation()
    oracle_opt = OPTIMIZERS["adam"](oracle)
    data = on(np, "float64", batches("cross-entropy", ADAM_SIZES))
    expected = eager(oracle, xpnn.CrossEntropyLoss(), oracle_opt, data[:NEW_LR_AT])
    oracle_opt.lr = 1e-3
    expected += eager(oracle, xpnn.CrossEntropyLoss(), oracle_opt, data[NEW_LR_AT:])
    assert_close(adam_run["losses"], np.array(expected))
    for name, value in oracle.named_parameters():
        assert_close(adam_run["params"][name], value, err_msg=name)
    for name, entry in oracle_opt.state_dict()["state"].items():
        assert adam_run["state"][name]["step"] == entry["step"] == len(ADAM_SIZES)
        for key in ("exp_avg", "exp_avg_sq"):
            assert_close(adam_run["state"][name][key], entry[key], err_msg=f"{key} of {name}")


def refuses_bad_labels(torch: Any, step: TrainStep) -> None:
    """Labels -1 and CLASSES are refused before any update; a good batch then trains."""
    params, state = step.init()
    params = {name: value.clone() for name, value in params.items()}
    state = {
        name: {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in entry.items()}
        for name, entry in state.items()
    }
    before = {name: value.clone() for name, value in params.items()}
    counts = {name: entry["step"].clone() for name, entry in state.items()}
    x, y = on(torch, "float64", batches("cross-entropy"))[0]
    for bad in (-1, CLASSES):
        wrong = y.clone()
        wrong[3] = bad
        with pytest.raises(
            ValueError, match=rf"labels must be class indices in \[0, {CLASSES}\).*got {bad}"
        ):
            step(params, state, x, wrong)
        for name, value in params.items():
            assert torch.equal(value, before[name]), name
        assert all(torch.equal(entry["step"], counts[name]) for name, entry in state.items())
        assert step.loss_fn.check_labels  # put back after the failed step
    params, state, loss = step(params, state, x, y)
    assert bool(torch.isfinite(loss))
    first = step.names[0]
    assert not torch.equal(params[first], before[first])


def test_torch_compiled_step_refuses_a_bad_label_before_the_compiled_body(
    torch: Any, adam_run: dict[str, Any]
) -> None:
    """The output width is known: the labels are checked eagerly, before the body.

    On adam_run's step, which is compiled already: the test comes right
    after the other one of that run, before a test resets Dynamo's cache.
    """
    refuses_bad_labels(torch, adam_run["step"])


@pytest.mark.parametrize(
    ("loss", "optimizer", "dtype"),
    [
        ("mse", "sgd-momentum-dampening", "float32"),
        ("bce", "sgd-nesterov-decay", "float64"),
    ],
)
def test_torch_compile_matches_eager_numpy(
    torch: Any, loss: str, optimizer: str, dtype: str
) -> None:
    reference = every_activation().to(dtype=dtype)
    reference_opt = OPTIMIZERS[optimizer](reference)
    data = on(np, dtype, batches(loss, (16, 16, 16)))
    expected = eager(reference, LOSSES[loss](), reference_opt, data)
    model = every_activation().to(torch, dtype=dtype)
    losses, step, params, state = torch_losses(
        torch, model, loss, optimizer, dtype, backend="aot_eager"
    )
    assert_close(np.array(losses), np.array(expected))
    step.write_back(params, state)
    for name, value in model.named_parameters():
        assert_close(to_numpy(value), dict(reference.named_parameters())[name], err_msg=name)
    compare_states(step.optimizer, reference_opt, dtype)


def test_torch_compile_with_dropout_in_training_draws_the_eager_masks(torch: Any) -> None:
    model = small(dropout=0.5).to(torch)
    losses, *_ = torch_losses(
        torch, model, "mse", "sgd-momentum-dampening", "float64", backend="aot_eager"
    )
    reference = small(dropout=0.5)
    expected = eager(
        reference,
        xpnn.MSELoss(),
        OPTIMIZERS["sgd-momentum-dampening"](reference),
        on(np, "float64", batches("mse", (16, 16, 16))),
    )
    assert_close(np.array(losses), np.array(expected))


def test_torch_compile_trains_a_cnn_with_batch_norm_as_eager_numpy(torch: Any) -> None:
    """Conv2d, BatchNorm2d, ReLU, MaxPool2d, Flatten, Linear; the running statistics as buffers."""
    from xpnn.interop.torch import compiled_step

    data = images()
    oracle = lenet()
    oracle_opt = SGD(oracle, lr=0.1, momentum=0.9)
    expected = eager(oracle, xpnn.CrossEntropyLoss(), oracle_opt, on(np, "float64", data))
    torch._dynamo.reset()
    model = lenet().to(torch)
    opt = SGD(model, lr=0.1, momentum=0.9)
    step = compiled_step(model, xpnn.CrossEntropyLoss(), opt, backend="aot_eager")
    params, state = step.init()
    first = {name: params[name].clone() for name in LENET_BUFFERS}
    own = dict(model.named_buffers())
    losses = []
    for x, y in on(torch, "float64", data):
        given = dict(params)
        params, state, value = step(params, state, x, y)
        losses.append(to_numpy(value))
        for name in LENET_BUFFERS:
            assert params[name] is not given[name], name
    assert_close(np.array(losses), np.array(expected))
    # The model's own buffers were neither replaced nor written into.
    for name, value in model.named_buffers():
        assert value is own[name]
        assert torch.equal(value, first[name]), name
    step.write_back(params, state)
    compare_models(model, oracle)
    compare_states(opt, oracle_opt, "float64")


def break_sites(report: Any) -> set[str]:
    """Where the graph breaks happened: the innermost xpnn file and line of each."""
    sites = set()
    for reason in report.break_reasons:
        frames = [f for f in reason.user_stack if "/xpnn/" in f.filename.replace("\\", "/")]
        if frames:
            name = frames[-1].filename.replace("\\", "/").split("/xpnn/", 1)[1]
            sites.add(f"{name}:{frames[-1].lineno}")
    return sites


def test_torch_graph_breaks(torch: Any) -> None:
    """No graph break in xpnn's layers, optimizers and losses.

    CrossEntropyLoss reads one number back to check the labels: the step
    checks them before its compiled body when the model's output width is
    known, and the graph stays whole. What remains: that check inside the
    body for a model whose output width xpnn cannot tell, and Dropout in
    training, which draws its masks on the host. Every activation is traced
    once; the other losses and cases take a small model.
    """
    from xpnn.interop.torch import compiled_step, explain_step

    for loss, build in (("cross-entropy", every_activation), ("mse", small), ("bce", small)):
        model = build().to(torch)
        before = {name: value.clone() for name, value in model.named_parameters()}
        step = compiled_step(model, LOSSES[loss](), AdamW(model), backend="aot_eager")
        x, y = on(torch, "float64", batches(loss))[0]
        report = explain_step(step, x, y)
        assert (report.graph_count, report.graph_break_count) == (1, 0), loss
        # explain_step ran the body on copies.
        for name, value in model.named_parameters():
            assert torch.equal(value, before[name])
        assert step.optimizer.state_dict()["state"]["0.weight"]["step"] == 0

    data = on(torch, "float64", batches("cross-entropy"))
    model = Sequential(small(), Unknown()).to(torch)
    step = compiled_step(model, xpnn.CrossEntropyLoss(), Adam(model), backend="aot_eager")
    report = explain_step(step, *data[0])
    assert report.graph_break_count >= 1
    assert {site.split(":")[0] for site in break_sites(report)} == {"functional/cross_entropy.py"}

    model = small(dropout=0.5).to(torch)
    step = compiled_step(model, xpnn.MSELoss(), Adam(model), backend="aot_eager")
    x, y = on(torch, "float64", batches("mse"))[0]
    report = explain_step(step, x, y)
    # Dynamo records no reason for these: it stops at the NumPy generator
    # that draws the mask (xpnn/_random.py), and resumes after it.
    assert report.graph_break_count >= 1


class Unknown(xpnn.Module):
    """A layer of a user's own, which keeps the shape, though xpnn cannot know it."""

    def forward(self, x: Any) -> tuple[Any, Any]:
        return x * 2.0, lambda dy: dy * 2.0


def test_torch_compiled_step_refuses_a_bad_label_inside_the_body(torch: Any) -> None:
    """The output width is unknown: the loss checks the labels inside the body (a graph break)."""
    from xpnn.interop.torch import compiled_step

    torch._dynamo.reset()
    model = Sequential(small(), Unknown()).to(torch)
    step = compiled_step(model, xpnn.CrossEntropyLoss(), Adam(model), backend="aot_eager")
    refuses_bad_labels(torch, step)


def _cxx_compiler() -> str | None:
    return shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")


# Importing inductor reaches torch.utils.mkldnn, which still calls a
# deprecated torch.jit function: torch's warning, not xpnn's.
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_torch_compile_inductor_matches_eager(torch: Any) -> None:
    """The default backend, inductor, which compiles C++ on CPU (the slow test: ~20 s)."""
    if _cxx_compiler() is None:
        pytest.skip("torch.compile's inductor backend needs a C++ compiler on CPU; none found")
    reference = Sequential(Linear(FEATURES, 8, seed=0), GELU(), Linear(8, CLASSES, seed=1))
    reference_opt = AdamW(reference, lr=1e-2)
    data = batches("mse", (16, 16, 16))
    expected = eager(
        reference.to(dtype="float32"), xpnn.MSELoss(), reference_opt, on(np, "float32", data)
    )
    model = Sequential(Linear(FEATURES, 8, seed=0), GELU(), Linear(8, CLASSES, seed=1))
    model.to(torch, dtype="float32")
    from xpnn.interop.torch import compiled_step

    torch._dynamo.reset()
    step = compiled_step(model, xpnn.MSELoss(), AdamW(model, lr=1e-2))
    params, state = step.init()
    losses = []
    for x, y in on(torch, "float32", data):
        params, state, value = step(params, state, x, y)
        losses.append(to_numpy(value))
    assert_close(np.array(losses), np.array(expected))
    step.write_back(params, state)
    for name, value in model.named_parameters():
        assert_close(to_numpy(value), dict(reference.named_parameters())[name], err_msg=name)


def test_torch_step_refuses_other_parameters(torch: Any) -> None:
    from xpnn.interop.torch import compiled_step

    model = every_activation()
    with pytest.raises(TypeError, match="compiled_step needs the model's parameters to be torch"):
        compiled_step(model, xpnn.MSELoss(), SGD(model, lr=0.1))

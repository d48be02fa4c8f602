"""xpnn.interop.sklearn: models from fitted MLPClassifier and MLPRegressor."""

from __future__ import annotations

import copy
import functools
from typing import Any

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.datasets import (  # noqa: E402
    load_digits,
    make_multilabel_classification,
    make_regression,
)
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.neural_network import MLPClassifier, MLPRegressor  # noqa: E402

import xpnn  # noqa: E402
from xpnn.interop.sklearn import from_sklearn, predict, predict_proba  # noqa: E402
from xpnn.testing import assert_close, to_numpy  # noqa: E402

ACTIVATIONS = ("identity", "logistic", "tanh", "relu")
TASKS = ("multiclass", "binary", "multilabel", "regression", "multioutput")
HIDDEN_LAYERS = {
    "identity": [],
    "logistic": [xpnn.Sigmoid],
    "tanh": [xpnn.Tanh],
    "relu": [xpnn.ReLU],
}
# A short fit leaves the weights wherever it stopped, which is all these
# tests need; scikit-learn warns that it did not converge.
quick_fit = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def data(task: str) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(X, y)`` for ``task``: small, with features of order one."""
    if task in ("multiclass", "binary"):
        digits = load_digits(n_class=4 if task == "multiclass" else 2)
        return digits.data[:150] / 16.0, digits.target[:150]
    if task == "multilabel":
        x, y = make_multilabel_classification(
            n_samples=120, n_features=10, n_classes=3, random_state=0
        )
        return x / x.max(), y
    x, y = make_regression(
        n_samples=120,
        n_features=8,
        n_targets=1 if task == "regression" else 3,
        noise=0.1,
        random_state=0,
    )
    return x, y / np.abs(y).max()


@functools.cache
def fitted(task: str, activation: str, dtype: str = "float64") -> Any:
    """Fit an estimator once per task and activation, for every backend."""
    x, y = data(task)
    settings = dict(hidden_layer_sizes=(12, 7), activation=activation, max_iter=30, random_state=0)
    kind = MLPClassifier if task in ("multiclass", "binary", "multilabel") else MLPRegressor
    return kind(**settings).fit(x.astype(dtype), y)


def inputs(task: str, xp: Any, device: Any, dtype: Any) -> tuple[np.ndarray, Any]:
    x, _ = data(task)
    return x, xp.asarray(x, dtype=dtype, device=device)


@quick_fit
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("task", TASKS)
def test_outputs_match_scikit_learn(task, activation, xp, device, real_dtype):
    estimator = fitted(task, activation)
    model = from_sklearn(estimator, xp=xp, device=device, dtype=real_dtype)
    x_host, x = inputs(task, xp, device, real_dtype)
    same = {"xp": xp, "device": device, "dtype": real_dtype}
    if task in ("regression", "multioutput"):
        expected = estimator.predict(x_host).reshape(len(x_host), -1)
    else:
        expected = estimator.predict_proba(x_host)
        if task == "binary":
            expected = expected[:, 1:]
    assert_close(model(x), expected, **same)
    y, _ = model.forward(x)
    assert_close(y, expected, **same)


@quick_fit
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("task", TASKS)
def test_predict_helpers_match_scikit_learn(task, activation, xp, device, real_dtype):
    estimator = fitted(task, activation)
    model = from_sklearn(estimator, xp=xp, device=device, dtype=real_dtype)
    x_host, x = inputs(task, xp, device, real_dtype)
    labels = predict(model, estimator, x)
    expected = estimator.predict(x_host)
    assert isinstance(labels, np.ndarray)
    assert labels.shape == expected.shape
    if task in ("regression", "multioutput"):
        rtol = 1e-4 if to_numpy(model(x)).dtype == np.float32 else 1e-10
        np.testing.assert_allclose(labels, expected, rtol=rtol, atol=rtol)
        return
    # The data keep clear of ties and of the 0.5 threshold, in float32 too.
    assert labels.dtype == expected.dtype
    np.testing.assert_array_equal(labels, expected)
    assert_close(
        predict_proba(model, estimator, x),
        estimator.predict_proba(x_host),
        xp=xp,
        device=device,
        dtype=real_dtype,
    )


@quick_fit
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("task", TASKS)
def test_layers_follow_the_estimator(task, activation):
    estimator = fitted(task, activation)
    model = from_sklearn(estimator)
    hidden = HIDDEN_LAYERS[activation]
    output = {"multiclass": [xpnn.Softmax], "binary": [xpnn.Sigmoid], "multilabel": [xpnn.Sigmoid]}
    expected = [
        *([xpnn.Linear, *hidden] * 2),
        xpnn.Linear,
        *output.get(task, []),
    ]
    assert [type(layer) for layer in model.layers] == expected
    linears = [layer for layer in model.layers if isinstance(layer, xpnn.Linear)]
    for layer, coef, intercept in zip(
        linears, estimator.coefs_, estimator.intercepts_, strict=True
    ):
        # NumPy float64 by default: the estimator's values, bit for bit.
        assert isinstance(layer.weight, np.ndarray)
        np.testing.assert_array_equal(layer.weight, coef)
        np.testing.assert_array_equal(layer.bias, intercept)
        assert layer.weight.dtype == coef.dtype == np.float64


@quick_fit
def test_an_estimator_fitted_on_float32_gives_a_float32_model():
    estimator = fitted("multiclass", "tanh", "float32")
    assert estimator.coefs_[0].dtype == np.float32
    model = from_sklearn(estimator)
    assert all(value.dtype == np.float32 for value in model.parameters())
    x, _ = data("multiclass")
    x = x.astype(np.float32)
    proba = model(x)
    assert proba.dtype == np.float32
    np.testing.assert_allclose(proba, estimator.predict_proba(x), rtol=1e-5, atol=1e-6)


@quick_fit
def test_dtype_by_name_and_the_model_is_a_copy():
    estimator = fitted("regression", "relu")
    before = [coef.copy() for coef in estimator.coefs_]
    model = from_sklearn(estimator, dtype="float32")
    assert model.layers[0].weight.dtype == np.float32
    model64 = from_sklearn(estimator)
    optimizer = xpnn.optim.SGD(model64, lr=0.1)
    x, y = data("regression")
    loss_fn = xpnn.MSELoss()
    prediction, backward = model64.forward(x)
    _, dprediction = loss_fn(prediction, y.reshape(-1, 1))
    backward(dprediction)
    optimizer.step()
    assert not np.array_equal(model64.layers[0].weight, before[0])
    for coef, original in zip(estimator.coefs_, before, strict=True):
        np.testing.assert_array_equal(coef, original)


@quick_fit
def test_output_layer_can_be_left_out_for_training_on_logits():
    estimator = fitted("multiclass", "relu")
    model = from_sklearn(estimator)
    logits = xpnn.Sequential(*model.layers[:-1])
    x, _ = data("multiclass")
    np.testing.assert_allclose(xpnn.Softmax()(logits(x)), estimator.predict_proba(x), rtol=1e-12)


@quick_fit
def test_string_labels_come_back_as_labels():
    x, y = data("binary")
    names = np.array(["even", "odd"])[y]
    estimator = MLPClassifier(hidden_layer_sizes=(6,), max_iter=20, random_state=0).fit(x, names)
    model = from_sklearn(estimator)
    np.testing.assert_array_equal(predict(model, estimator, x), estimator.predict(x))


# -- errors -------------------------------------------------------------------


def test_unfitted_estimator_is_refused():
    with pytest.raises(NotFittedError, match=r"unfitted MLPClassifier.*call estimator\.fit"):
        from_sklearn(MLPClassifier())
    assert issubclass(NotFittedError, ValueError)


@pytest.mark.parametrize("estimator", [LogisticRegression(), "MLPClassifier", None])
def test_other_objects_are_refused(estimator):
    with pytest.raises(
        TypeError, match="takes a fitted scikit-learn MLPClassifier or MLPRegressor"
    ):
        from_sklearn(estimator)


@quick_fit
def test_output_functions_without_a_layer_are_refused():
    x, y = data("regression")
    estimator = MLPRegressor(
        hidden_layer_sizes=(4,), loss="poisson", max_iter=5, random_state=0
    ).fit(x, np.abs(y))
    assert estimator.out_activation_ == "exp"
    with pytest.raises(ValueError, match=r"out_activation_='exp' \(from loss='poisson'\)"):
        from_sklearn(estimator)


@quick_fit
def test_hidden_activation_changed_after_fit_is_refused():
    estimator = fitted("regression", "relu")
    changed = copy.deepcopy(estimator)
    changed.activation = "softplus"
    with pytest.raises(ValueError, match="hidden activations.*got activation='softplus'"):
        from_sklearn(changed)


@quick_fit
def test_non_real_dtypes_are_refused():
    estimator = fitted("regression", "relu")
    with pytest.raises(TypeError, match="real floating"):
        from_sklearn(estimator, dtype="complex128")
    with pytest.raises(TypeError, match="floating"):
        from_sklearn(estimator, dtype="int32")


@quick_fit
def test_default_dtype_the_device_lacks_says_what_to_pass():
    xps = pytest.importorskip("array_api_strict")
    estimator = fitted("regression", "relu")
    with pytest.raises(ValueError, match=r"weights are float64.*dtype='float32'"):
        from_sklearn(estimator, xp=xps, device="no_float64")
    model = from_sklearn(estimator, xp=xps, device="no_float64", dtype="float32")
    assert model.layers[0].weight.dtype == xps.float32


@quick_fit
def test_helpers_refuse_mismatched_models_and_estimators():
    classifier = fitted("multiclass", "relu")
    regressor = fitted("regression", "relu")
    x, _ = data("multiclass")
    model = from_sklearn(classifier)
    with pytest.raises(TypeError, match="predict_proba takes a classifier"):
        predict_proba(from_sklearn(regressor), regressor, x[:, :8])
    logits = xpnn.Sequential(*model.layers[:-1])
    with pytest.raises(ValueError, match="ends with Softmax; got a model ending with Linear"):
        predict(logits, classifier, x)
    binary = fitted("binary", "relu")
    with pytest.raises(ValueError, match="ends with Sigmoid; got a model ending with Softmax"):
        predict(model, binary, x)
    x_regression, _ = data("regression")
    with pytest.raises(
        ValueError, match=r"estimator has 3 outputs, but the model gave shape \(120, 1\)"
    ):
        predict(
            regressor_model := from_sklearn(regressor), fitted("multioutput", "relu"), x_regression
        )
    assert predict(regressor_model, regressor, x_regression).shape == (120,)
    with pytest.raises(TypeError, match="takes a fitted scikit-learn"):
        predict(model, LogisticRegression(), x)


@quick_fit
@pytest.mark.backend("torch")
def test_a_device_that_cannot_be_used_is_named():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: 'cuda' can be used")
    with pytest.raises(ValueError, match="device 'cuda' is not available here") as info:
        from_sklearn(fitted("multiclass", "relu"), xp=torch, device="cuda")
    assert "does not support" not in str(info.value)

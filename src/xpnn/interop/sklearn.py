"""Models from fitted scikit-learn multi-layer perceptrons.

:func:`from_sklearn` turns a fitted ``MLPClassifier`` or ``MLPRegressor``
into an :class:`xpnn.Sequential` on any array library and device, with the
estimator's weights. The model ends with the estimator's output function,
so that calling it gives what scikit-learn gives:

- a classifier of three or more classes ends with :class:`~xpnn.Softmax`,
  and ``model(x)`` equals ``predict_proba(x)``;
- a binary classifier ends with :class:`~xpnn.Sigmoid`, and ``model(x)``
  equals the positive class's column, ``predict_proba(x)[:, 1:]``;
- a multilabel classifier ends with :class:`~xpnn.Sigmoid`, and
  ``model(x)`` equals ``predict_proba(x)``;
- a regressor ends with its last :class:`~xpnn.Linear`, and ``model(x)``
  equals ``predict(x)`` (as a column for a single output).

:func:`predict` and :func:`predict_proba` give the rest of the estimator's
answers (class labels, the two columns of a binary classifier). To train
the model further with a loss that takes logits
(:class:`~xpnn.CrossEntropyLoss`, :class:`~xpnn.BCEWithLogitsLoss`), leave
out the output layer: ``Sequential(*model.layers[:-1])``.

scikit-learn is imported when these functions are called, never when xpnn
is imported.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._compat import (
    Array,
    Device,
    DType,
    array_namespace,
    check_device,
    resolve_device,
    resolve_dtype,
)
from .._compat import resolve_namespace as _resolve_namespace
from .._transfer import to_numpy, transfer
from ..layers import Linear, Module, ReLU, Sequential, Sigmoid, Softmax, Tanh

__all__ = ["from_sklearn", "predict", "predict_proba"]

#: scikit-learn's hidden activations and the layers that compute them;
#: ``None`` for the identity, which needs no layer.
_HIDDEN: dict[str, type[Module] | None] = {
    "identity": None,
    "logistic": Sigmoid,
    "tanh": Tanh,
    "relu": ReLU,
}
_OUTPUT: dict[str, type[Module] | None] = {
    "identity": None,
    "logistic": Sigmoid,
    "softmax": Softmax,
}


def _mlp_classes() -> tuple[type[Any], type[Any]]:
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    return MLPClassifier, MLPRegressor


def _check_estimator(estimator: object, caller: str) -> bool:
    """Check that ``estimator`` is a fitted MLP; return whether it classifies."""
    expected = "a fitted scikit-learn MLPClassifier or MLPRegressor"
    try:
        classifier_type, regressor_type = _mlp_classes()
    except ImportError:
        # Without scikit-learn installed nothing can be one of its estimators.
        raise TypeError(
            f"{caller} takes {expected}, got {type(estimator).__name__} "
            "(and scikit-learn is not installed)"
        ) from None
    if not isinstance(estimator, (classifier_type, regressor_type)):
        raise TypeError(
            f"{caller} takes {expected}, got {type(estimator).__module__}."
            f"{type(estimator).__qualname__}; other estimators have no layers to convert"
        )
    if not hasattr(estimator, "coefs_"):
        from sklearn.exceptions import NotFittedError

        # NotFittedError is a ValueError, and what scikit-learn users catch.
        raise NotFittedError(
            f"{caller} takes {expected}, got an unfitted {type(estimator).__name__}; "
            "call estimator.fit(X, y) first"
        )
    if estimator.activation not in _HIDDEN:
        raise ValueError(
            f"{caller} supports the hidden activations {', '.join(map(repr, _HIDDEN))}, "
            f"got activation={estimator.activation!r}"
        )
    if estimator.out_activation_ not in _OUTPUT:
        raise ValueError(
            f"{caller} supports the output functions {', '.join(map(repr, _OUTPUT))}, got "
            f"out_activation_={estimator.out_activation_!r} (from loss={estimator.loss!r}); "
            "xpnn has no layer for it"
        )
    return isinstance(estimator, classifier_type)


def from_sklearn(
    estimator: Any,
    *,
    xp: object | None = None,
    device: Device | str | None = None,
    dtype: DType | str | None = None,
) -> Sequential:
    """Build an xpnn model from a fitted ``MLPClassifier`` or ``MLPRegressor``.

    Parameters
    ----------
    estimator : sklearn.neural_network.MLPClassifier or MLPRegressor
        A fitted estimator. Its hidden activation may be ``"identity"``,
        ``"logistic"``, ``"tanh"`` or ``"relu"``; its output function
        (``out_activation_``) ``"softmax"``, ``"logistic"`` or
        ``"identity"``.
    xp : module, optional
        The array library of the model's parameters. NumPy when omitted.
    device : device or str, optional
        Where the parameters live; the library's default device when omitted.
    dtype : dtype or str, optional
        A real floating dtype of ``xp``, or its name (``"float32"``). When
        omitted, the dtype of the estimator's ``coefs_``: float64, or
        float32 for an estimator fitted on float32 data, as scikit-learn
        computes.

    Returns
    -------
    Sequential
        For each of the estimator's layers a :class:`~xpnn.Linear` with
        weight ``coefs_[i]`` (shape ``(n_in, n_out)``, the layout xpnn uses)
        and bias ``intercepts_[i]``, followed by the hidden activation (none
        for ``"identity"``); the last one is followed by the output function:
        :class:`~xpnn.Softmax` for ``"softmax"``, :class:`~xpnn.Sigmoid` for
        ``"logistic"``, nothing for ``"identity"``. The model is in training
        mode, as every new xpnn module; it has no dropout, so the mode
        changes nothing.

        Given ``x`` of shape ``(n_samples, n_features)``, ``model(x)`` has
        shape ``(n_samples, n_outputs_)`` and equals ``predict_proba(x)`` of
        a multiclass or multilabel classifier, the positive class's column
        ``predict_proba(x)[:, 1:]`` of a binary one, and ``predict(x)`` of a
        regressor (as a column for a single output).

    Raises
    ------
    TypeError
        If ``estimator`` is not an ``MLPClassifier`` or ``MLPRegressor``, or
        ``dtype`` is not a real floating dtype.
    sklearn.exceptions.NotFittedError
        A ``ValueError``, if the estimator is not fitted.
    ValueError
        For an activation or output function xpnn has no layer for (the
        ``"exp"`` of ``loss="poisson"``), or a ``dtype`` the device lacks.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from sklearn.neural_network import MLPClassifier
    >>> from xpnn.interop.sklearn import from_sklearn
    >>> X = np.random.default_rng(0).normal(size=(40, 3))
    >>> y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # a short fit does not converge
    ...     clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=20, random_state=0).fit(X, y)
    >>> model = from_sklearn(clf)
    >>> [type(layer).__name__ for layer in model.layers]
    ['Linear', 'ReLU', 'Linear', 'Softmax']
    >>> bool(np.allclose(model(X), clf.predict_proba(X)))
    True
    """
    _check_estimator(estimator, "from_sklearn")
    coefs = [np.asarray(coef) for coef in estimator.coefs_]
    intercepts = [np.asarray(intercept) for intercept in estimator.intercepts_]
    namespace = _resolve_namespace(xp)
    where = resolve_device(namespace, device)
    # A device that cannot be used says so itself, before any dtype is blamed.
    check_device(namespace, where)
    try:
        target = resolve_dtype(namespace, coefs[0].dtype.name if dtype is None else dtype, where)
    except ValueError as exc:
        if dtype is not None:
            raise
        raise ValueError(
            f"the estimator's weights are {coefs[0].dtype.name}, which the device does not "
            f"support ({exc}); pass dtype= as well, for example dtype='float32'"
        ) from None
    if not namespace.isdtype(target, "real floating"):
        raise TypeError(
            f"dtype must be a real floating dtype (scikit-learn's weights are real), got {dtype!r}"
        )
    hidden = _HIDDEN[estimator.activation]
    output = _OUTPUT[estimator.out_activation_]
    layers: list[Module] = []
    for index, (coef, intercept) in enumerate(zip(coefs, intercepts, strict=True)):
        n_in, n_out = coef.shape
        # Zeros instead of random draws: the estimator's values replace them.
        layer = Linear(
            n_in,
            n_out,
            xp=namespace,
            device=where,
            dtype=target,
            weight_init="zeros",
            bias_init="zeros",
        )
        # Copies: an optimizer that updates the model in place must not
        # change the estimator.
        for name, value in (("weight", coef), ("bias", intercept)):
            layer.set_parameter(
                name, transfer(np.array(value, copy=True), xp=namespace, device=where, dtype=target)
            )
        layers.append(layer)
        activation = hidden if index < len(coefs) - 1 else output
        if activation is not None:
            layers.append(activation())
    return Sequential(*layers)


def _check_model(model: Module, estimator: Any, classifier: bool, caller: str) -> None:
    """Check that ``model`` ends the way :func:`from_sklearn` built it."""
    if not classifier:
        return
    expected = _OUTPUT[estimator.out_activation_]
    last = model.layers[-1] if isinstance(model, Sequential) and len(model) else None
    if expected is not None and not isinstance(last, expected):
        raise ValueError(
            f"{caller} expects the model from_sklearn(estimator) built, which ends with "
            f"{expected.__name__}; got a model ending with {type(last).__name__}. Its thresholds "
            "apply to probabilities, not to logits"
        )


def _outputs(model: Module, estimator: Any, x: Array, caller: str) -> Array:
    y = model(x)
    if y.ndim != 2 or y.shape[1] != estimator.n_outputs_:
        raise ValueError(
            f"{caller}: the estimator has {estimator.n_outputs_} outputs, but the model gave "
            f"shape {tuple(y.shape)}; pass the model from_sklearn(estimator) built and x of "
            "shape (n_samples, n_features)"
        )
    return y


def predict_proba(model: Module, estimator: Any, x: Array) -> Array:
    """Return the class probabilities, as ``estimator.predict_proba(x)`` does.

    Parameters
    ----------
    model : Sequential
        The model :func:`from_sklearn` built from ``estimator``.
    estimator : sklearn.neural_network.MLPClassifier
        The fitted classifier.
    x : array of shape (n_samples, n_features)
        Input, in the model's namespace and on its device.

    Returns
    -------
    array of shape (n_samples, n_classes)
        In the model's namespace, on its device, with its dtype. For a
        binary classifier the columns are ``1 - p`` and ``p``, ``p`` being
        ``model(x)``; otherwise ``model(x)`` itself.

    Raises
    ------
    TypeError
        If ``estimator`` is not a fitted ``MLPClassifier``.
    ValueError
        If ``model`` does not end with the estimator's output function.
    """
    if not _check_estimator(estimator, "predict_proba"):
        raise TypeError(
            f"predict_proba takes a classifier, got a {type(estimator).__name__}; "
            "for a regressor call predict(model, estimator, x) or model(x)"
        )
    _check_model(model, estimator, True, "predict_proba")
    proba = _outputs(model, estimator, x, "predict_proba")
    if estimator.n_outputs_ == 1:
        xp = array_namespace(proba=proba)
        return xp.concat((1 - proba, proba), axis=-1)
    return proba


def predict(model: Module, estimator: Any, x: Array) -> np.ndarray:
    """Return what ``estimator.predict(x)`` returns, computed by ``model``.

    Parameters
    ----------
    model : Sequential
        The model :func:`from_sklearn` built from ``estimator``.
    estimator : sklearn.neural_network.MLPClassifier or MLPRegressor
        The fitted estimator.
    x : array of shape (n_samples, n_features)
        Input, in the model's namespace and on its device.

    Returns
    -------
    numpy.ndarray
        A NumPy array, as the labels in ``estimator.classes_`` are: the
        labels of the most probable classes, shape ``(n_samples,)``, for a
        multiclass classifier; ``classes_[1]`` where the probability is above
        0.5 and ``classes_[0]`` elsewhere for a binary one; 0/1 integers of
        shape ``(n_samples, n_labels)`` for a multilabel one; and the
        predictions of a regressor, of shape ``(n_samples,)`` for a single
        output, else ``(n_samples, n_outputs)``.

    Raises
    ------
    TypeError
        If ``estimator`` is not a fitted ``MLPClassifier`` or ``MLPRegressor``.
    ValueError
        If a classifier's model does not end with its output function.
    """
    classifier = _check_estimator(estimator, "predict")
    _check_model(model, estimator, classifier, "predict")
    y = to_numpy(_outputs(model, estimator, x, "predict"))
    if not classifier:
        return y.ravel() if y.shape[1] == 1 else y
    # The thresholds and tie-breaking of scikit-learn's LabelBinarizer: a
    # strict "> 0.5", and the first of equal maxima.
    if estimator.out_activation_ == "softmax":
        return np.asarray(estimator.classes_[np.argmax(y, axis=1)])
    if estimator.n_outputs_ == 1:
        return np.asarray(estimator.classes_[(y[:, 0] > 0.5).astype(np.intp)])
    return (y > 0.5).astype(np.intp)

"""What ``xpnn check`` runs: gradient checks and cross-backend agreement.

On every installed backend and present device of the matrix, in float32
and float64 where the device has them:

- every layer, activation and loss passes :func:`xpnn.testing.check_gradients`
  against float64 central differences;
- a small MLP with a cross-entropy loss gives the loss and every gradient of
  the same model run by NumPy in float64, to the dtype's tolerance.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._compat import resolve_namespace
from ..functional import activations as act
from ..functional import linear, linear_backward
from ..functional import losses as fl
from ..layers import Linear, Sequential, Tanh
from ..testing import check_gradients, default_tolerances, random_array, to_numpy
from ..testing.matrix import Unavailable, load_matrix, resolve
from .backends import SelectionError

__all__ = ["CheckResult", "run_checks"]


@dataclass(frozen=True)
class CheckResult:
    """One row of the ``xpnn check`` table."""

    backend: str
    device: str
    dtype: str
    check: str
    passed: bool
    error: float
    message: str = ""


def _first(f: Callable[..., Any]) -> Callable[..., tuple[Any, ...]]:
    """Wrap a single-gradient backward as check_gradients expects."""
    return lambda *args: (f(*args),)


def _gradient_cases(xp: Any, device: Any, dtype: Any) -> dict[str, tuple[Any, Any, list[Any]]]:
    def rand(shape: tuple[int, ...], seed: int) -> Any:
        return random_array(xp, shape, dtype=dtype, device=device, seed=seed)

    x = rand((3, 4), 1)
    labels = xp.asarray(np.array([0, 2, 1]), device=device)
    half = xp.asarray(np.array([[0.0, 1.0, 0.5, 1.0]] * 3), dtype=dtype, device=device)
    return {
        "linear": (
            linear,
            lambda dy, x, w, b: linear_backward(dy, x, w),
            [x, rand((4, 5), 2), rand((5,), 3)],
        ),
        "relu": (act.relu, _first(act.relu_backward), [x]),
        "leaky_relu": (act.leaky_relu, _first(act.leaky_relu_backward), [x]),
        "tanh": (act.tanh, _first(lambda dy, x: act.tanh_backward(dy, act.tanh(x))), [x]),
        "sigmoid": (
            act.sigmoid,
            _first(lambda dy, x: act.sigmoid_backward(dy, act.sigmoid(x))),
            [x],
        ),
        "gelu": (act.gelu, _first(act.gelu_backward), [x]),
        "softmax": (
            act.softmax,
            _first(lambda dy, x: act.softmax_backward(dy, act.softmax(x))),
            [x],
        ),
        "log_softmax": (
            act.log_softmax,
            _first(lambda dy, x: act.log_softmax_backward(dy, act.log_softmax(x))),
            [x],
        ),
        # Targets are inputs with no gradient, so that the float64 fallback
        # moves them with the predictions.
        "mse_loss": (
            lambda p, t: fl.mse_loss(p, t)[0],
            lambda dy, p, t: (dy * fl.mse_loss(p, t)[1], None),
            [x, half],
        ),
        "cross_entropy": (
            lambda p, t: fl.softmax_cross_entropy(p, t)[0],
            lambda dy, p, t: (dy * fl.softmax_cross_entropy(p, t)[1], None),
            [x, labels],
        ),
        "bce_with_logits": (
            lambda p, t: fl.binary_cross_entropy_with_logits(p, t)[0],
            lambda dy, p, t: (dy * fl.binary_cross_entropy_with_logits(p, t)[1], None),
            [x, half],
        ),
    }


def _mlp(xp: Any, device: Any, dtype: Any) -> dict[str, Any]:
    """Loss and every gradient of Linear-Tanh-Linear + cross-entropy."""
    where = {"xp": xp, "device": device, "dtype": dtype}
    model = Sequential(Linear(6, 8, seed=1, **where), Tanh(), Linear(8, 4, seed=2, **where))
    x = random_array(xp, (5, 6), dtype=dtype, device=device, seed=3)
    labels = xp.asarray(np.array([0, 3, 1, 2, 3]), device=device)
    logits, backward = model.forward(x)
    value, dlogits = fl.softmax_cross_entropy(logits, labels)
    out = {"loss": value, "dx": backward(dlogits)}
    out.update(dict(model.named_gradients()))
    return out


def _agreement(xp: Any, device: Any, dtype: Any, dtype_name: str) -> tuple[float, str]:
    npx = resolve_namespace(None)
    ours = {k: to_numpy(v) for k, v in _mlp(xp, device, dtype).items()}
    reference = {k: to_numpy(v) for k, v in _mlp(npx, "cpu", npx.float64).items()}
    rtol, atol = default_tolerances(dtype_name)
    worst, message = 0.0, ""
    for name, want in reference.items():
        got = ours[name].astype(np.float64)
        error = float(np.max(np.abs(got - want))) if want.size else 0.0
        worst = max(worst, error)
        if not np.allclose(got, want, rtol=rtol, atol=atol):
            message = message or f"{name} differs from NumPy float64 by {error:.3g}"
    return worst, message


def run_checks(only: list[str] | None = None) -> list[CheckResult]:
    """Run every check on every installed backend and present device.

    Parameters
    ----------
    only : list of str, optional
        Names of the backends to check (``xpnn check --backend``); by
        default every backend of the matrix that is installed.

    Returns
    -------
    list of CheckResult
        One per check, backend, device and dtype (float32 and float64
        where the device has them), in the matrix's order. A check that
        raises is a failed row carrying the error's first line, not an
        exception.

    Raises
    ------
    SelectionError
        If ``only`` names a backend the matrix does not have.
    """
    matrix = load_matrix()
    if only is not None:
        unknown = [name for name in only if name not in matrix]
        if unknown:
            raise SelectionError(f"unknown backend {unknown[0]!r}; choose from {', '.join(matrix)}")
    results = []
    for spec in matrix.values():
        if only is not None and spec.name not in only:
            continue
        for device_spec in spec.devices:
            try:
                xp, device = resolve(spec, device_spec)
            except Unavailable:
                continue
            floating = xp.__array_namespace_info__().dtypes(device=device, kind="real floating")
            for dtype_name, dtype in floating.items():
                if dtype_name not in ("float32", "float64"):
                    continue
                row = {"backend": spec.name, "device": device_spec.name, "dtype": dtype_name}
                for check, (f, backward, inputs) in _gradient_cases(xp, device, dtype).items():
                    try:
                        error = check_gradients(f, backward, inputs)
                        results.append(CheckResult(**row, check=check, passed=True, error=error))
                    except Exception as exc:
                        results.append(
                            CheckResult(
                                **row,
                                check=check,
                                passed=False,
                                error=float("nan"),
                                message=_summary(exc),
                            )
                        )
                try:
                    error, message = _agreement(xp, device, dtype, dtype_name)
                    results.append(
                        CheckResult(
                            **row,
                            check="agrees with numpy float64",
                            passed=not message,
                            error=error,
                            message=message,
                        )
                    )
                except Exception as exc:
                    results.append(
                        CheckResult(
                            **row,
                            check="agrees with numpy float64",
                            passed=False,
                            error=float("nan"),
                            message=_summary(exc),
                        )
                    )
    return results


def _summary(exc: BaseException) -> str:
    lines = traceback.format_exception_only(type(exc), exc)
    return " ".join(line.strip() for line in lines)[:300]

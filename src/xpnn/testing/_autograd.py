"""``check_against_autograd``: a hand-written backward against ``torch.autograd``.

A function written against the array API runs unchanged on PyTorch tensors
(through ``array_api_compat.torch``), and PyTorch records what it does. So the
very function under test, run on float64 tensors that require grad, gives
an independent vector-Jacobian product to compare the hand-written backward
with, on whatever backend and device the backward itself ran.

This is the one module of ``xpnn.testing`` that imports torch, and only when
the check runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._compat import Array, device
from .._transfer import to_numpy
from ._assert import assert_close
from ._gradcheck import _check_meta, _run_backward

__all__ = ["check_against_autograd"]


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ImportError(
            "check_against_autograd needs PyTorch, whose autograd is its oracle, and "
            "torch is not installed; install it (pip install torch), or skip the test "
            "without it: pytest.importorskip('torch'). check_gradients needs no torch."
        ) from None
    return torch


def check_against_autograd(
    f: Callable[..., Array],
    backward: Callable[..., Sequence[Array | None]],
    inputs: Sequence[Array],
    *,
    dy: Array | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    seed: int = 0,
) -> float:
    """Check a hand-written backward against ``torch.autograd`` on the same function.

    ``f`` runs once more, on float64 (complex128) CPU PyTorch tensors that
    require grad, and ``torch.autograd.grad`` gives the reference
    vector-Jacobian product. The hand-written ``backward`` runs on the
    original inputs, in their namespace, device and dtype.

    Parameters
    ----------
    f : callable
        ``f(*inputs) -> y``, written against the array API: it must take its
        namespace from its inputs (``array_namespace``) and stay in it, so
        that PyTorch can follow it.
    backward : callable
        ``backward(dy, *inputs) -> grads``, one gradient (or ``None``, not
        checked) per input, following PyTorch's convention for complex
        values (see :func:`check_gradients`).
    inputs : sequence of arrays
        Arrays of one namespace, on any device. Non-floating inputs (class
        labels) go to PyTorch as integer tensors and need a ``None``
        gradient.
    dy : array, optional
        The cotangent. By default a seeded standard-normal array shaped like
        ``f(*inputs)``.
    rtol, atol : float, optional
        Tolerances; defaults depend on each gradient's dtype
        (:func:`default_tolerances`).
    seed : int, default 0
        Seed of the default ``dy``.

    Returns
    -------
    float
        The largest absolute difference found.

    Raises
    ------
    ImportError
        If PyTorch is not installed. Under pytest, guard the test with
        ``pytest.importorskip("torch")`` to skip it instead.
    RuntimeError
        If ``f`` fails on PyTorch tensors.
    AssertionError
        If a gradient has the wrong namespace, device, dtype or shape, or
        differs from PyTorch's; the message lists the worst elements.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnn.testing import check_against_autograd
    >>> def cube(x):
    ...     return x * x * x
    >>> def cube_backward(dy, x):
    ...     return (3 * x * x * dy,)
    >>> error = check_against_autograd(cube, cube_backward, [np.asarray([1.0, -2.0])])
    >>> error < 1e-12
    True
    """
    torch = _import_torch()
    xp, y, dy, grads = _run_backward(f, backward, inputs, dy, seed)

    tensors = [torch.asarray(_widen(to_numpy(x))) for x in inputs]
    tracked = [
        i
        for i, (t, grad) in enumerate(zip(tensors, grads, strict=True))
        if grad is not None and (t.is_floating_point() or t.is_complex())
    ]
    for i in tracked:
        tensors[i].requires_grad_(True)
    try:
        with torch.enable_grad():
            y_torch = f(*tensors)
    except Exception as exc:
        raise RuntimeError(
            f"f failed on float64 PyTorch tensors, which check_against_autograd runs it on "
            f"({type(exc).__name__}: {exc}); f must use only the array API namespace of "
            "its inputs, or use check_gradients instead"
        ) from exc
    if tuple(y_torch.shape) != tuple(y.shape):
        raise AssertionError(
            f"f gave shape {tuple(y_torch.shape)} on PyTorch, {tuple(y.shape)} on "
            f"{xp.__name__}: it does not compute the same thing on both"
        )
    dy_torch = torch.asarray(_widen(to_numpy(dy)))
    if y_torch.is_complex() and not dy_torch.is_complex():
        dy_torch = dy_torch.to(y_torch.dtype)
    references: dict[int, Any] = {}
    if tracked and y_torch.requires_grad:
        found = torch.autograd.grad(
            y_torch, [tensors[i] for i in tracked], grad_outputs=dy_torch, allow_unused=True
        )
        references = dict(zip(tracked, found, strict=True))
    detached = bool(tracked) and not y_torch.requires_grad

    worst = 0.0
    for i in tracked:
        grad, x = grads[i], inputs[i]
        what = f"gradient of inputs[{i}]"
        _check_meta(xp, what, grad, x)
        reference = references.get(i)
        want = (
            np.zeros(tuple(x.shape), dtype=_widen(to_numpy(x)).dtype)
            if reference is None
            else reference.detach().resolve_conj().numpy()
        )
        got = to_numpy(grad)
        if got.size:
            worst = max(worst, float(np.max(np.abs(got - want))))
        note = (
            "; PyTorch saw no path from the inputs to f's result: does f leave "
            "the namespace of its inputs (through NumPy, say)?"
            if detached
            else ""
        )
        try:
            assert_close(grad, want, xp=xp, device=device(x), dtype=x.dtype, rtol=rtol, atol=atol)
        except AssertionError as exc:
            raise AssertionError(f"{what} differs from torch.autograd{note}: {exc}") from None
    return worst


def _widen(host: np.ndarray) -> np.ndarray:
    """float64 (complex128) copies of floating arrays; others unchanged."""
    if host.dtype.kind == "c":
        return host.astype(np.complex128)
    if host.dtype.kind == "f":
        return host.astype(np.float64)
    return host

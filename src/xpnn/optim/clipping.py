"""Gradient clipping, as ``torch.nn.utils.clip_grad_norm_`` and ``clip_grad_value_``.

Both functions act on the gradients a model holds (``model.grads`` of each
layer, by name through :meth:`~xpnn.Module.parameter_slots`), skip the
gradients that are ``None``, and store the clipped gradients back into the
layers as new arrays: like :class:`~xpnn.Module`'s own accumulation, they
never change an array in place, since a caller may hold a gradient it gave
with ``set_gradient``. The arithmetic stays in the gradients' library, on
their device, and reads nothing back to the host (so lazy Dask arrays stay
lazy), except ``error_if_nonfinite=True``.
"""

from __future__ import annotations

import math

from .._compat import Array, Namespace, array_namespace
from .._compat import device as device_of
from ..layers import Module
from ._base import check_real

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _gradients(model: object) -> list[tuple[Module, str, Array]]:
    if not isinstance(model, Module):
        raise TypeError(
            f"model must be an xpnn Module (Linear, Sequential, ...), got {type(model).__name__}"
        )
    found = []
    for _, owner, local in model.parameter_slots():
        grad = owner.grads.get(local)
        if grad is not None:
            found.append((owner, local, grad))
    return found


def _check_norm_type(norm_type: object) -> float:
    if isinstance(norm_type, str) and norm_type == "inf":
        return math.inf
    number = check_real("norm_type", norm_type)
    if not number > 0:  # also nan
        raise ValueError(f"norm_type must be a number > 0 or inf, got {number!r}")
    return number


def _norm(xp: Namespace, x: Array, p: float) -> Array:
    """Return the ``p``-norm of all the entries of ``x``, a 0-d real array."""
    a = xp.abs(x)
    if math.isinf(p):
        return xp.max(a)
    if p == 1.0:
        return xp.sum(a)
    if p == 2.0:
        return xp.sqrt(xp.sum(a * a))
    return xp.sum(a**p) ** (1.0 / p)


def _real_dtype(xp: Namespace, x: Array) -> object:
    if xp.isdtype(x.dtype, "complex floating"):
        return xp.float32 if x.dtype == xp.complex64 else xp.float64
    return x.dtype


def clip_grad_norm_(
    model: Module,
    max_norm: float,
    norm_type: float | str = 2.0,
    error_if_nonfinite: bool = False,
) -> Array:
    r"""Scale a model's gradients so that their total norm is at most ``max_norm``.

    As ``torch.nn.utils.clip_grad_norm_``: the total norm :math:`N` is the
    ``norm_type``-norm of the norms of the gradients (the norm of all their
    entries as one vector), and every gradient is multiplied by
    :math:`\min(1, \text{max\_norm} / (N + 10^{-6}))`, unconditionally, so
    no value is read back to decide whether to clip.

    Parameters
    ----------
    model : Module
        The model whose gradients are clipped; ``None`` gradients are skipped.
    max_norm : float
        Largest total norm, a real number.
    norm_type : float or 'inf', default 2.0
        Order of the norm, > 0; ``math.inf`` (or ``'inf'``) for the largest
        absolute entry.
    error_if_nonfinite : bool, default False
        Raise ``RuntimeError`` if the total norm is ``nan`` or infinite. This
        reads the norm back to the host (it computes a lazy Dask array).

    Returns
    -------
    array
        The total norm before clipping: a 0-d array of the gradients'
        library, on their device, of their real dtype (promoted across
        gradients of several dtypes). A zero of the first parameter's
        library and dtype if no gradient is set.

    Raises
    ------
    TypeError
        If ``model`` is not an xpnn Module or a number is not a real number.
    ValueError
        If ``norm_type`` is not > 0.
    RuntimeError
        With ``error_if_nonfinite=True``, if the total norm is not finite.

    Notes
    -----
    The clipped gradients are new arrays stored into the layers' ``grads``;
    the arrays held before are not changed. Gradients of a dtype narrower
    than the total norm's are scaled in their own dtype.
    """
    found = _gradients(model)
    limit = check_real("max_norm", max_norm)
    p = _check_norm_type(norm_type)
    if not isinstance(error_if_nonfinite, bool):
        raise TypeError(
            f"error_if_nonfinite must be a bool, got {type(error_if_nonfinite).__name__}"
        )
    if not found:
        params = model.parameters()
        if not params:
            raise ValueError("model has no parameters, so no gradients to clip")
        xp = array_namespace(parameter=params[0])
        return xp.asarray(0.0, dtype=_real_dtype(xp, params[0]), device=device_of(params[0]))
    xp = array_namespace(**{f"grads[{i}]": grad for i, (_, _, grad) in enumerate(found)})
    norms = [_norm(xp, grad, p) for _, _, grad in found]
    total = norms[0] if len(norms) == 1 else _norm(xp, xp.stack(norms), p)
    if error_if_nonfinite and not bool(xp.all(xp.isfinite(total))):
        raise RuntimeError(
            f"The total norm of order {p} of the gradients is {float(total)}, not finite, "
            "so they cannot be clipped; pass error_if_nonfinite=False to clip anyway"
        )
    coef = limit / (total + 1e-6)
    clamped = xp.minimum(coef, xp.asarray(1.0, dtype=coef.dtype, device=device_of(coef)))
    factors: dict[object, Array] = {}
    for owner, local, grad in found:
        dtype = _real_dtype(xp, grad)
        factor = factors.get(dtype)
        if factor is None:
            factor = factors[dtype] = xp.astype(clamped, dtype)
        owner.grads[local] = grad * factor
    return total


def clip_grad_value_(model: Module, clip_value: float) -> None:
    """Clip every gradient of a model to ``[-clip_value, clip_value]``.

    As ``torch.nn.utils.clip_grad_value_``; ``None`` gradients are skipped.
    The clipped gradients are new arrays stored into the layers' ``grads``,
    of the same dtype.

    Parameters
    ----------
    model : Module
        The model whose gradients are clipped.
    clip_value : float
        Largest absolute value, a real number >= 0 (``inf`` clips nothing).

    Raises
    ------
    TypeError
        If ``model`` is not an xpnn Module, ``clip_value`` is not a real
        number, or a gradient is complex (torch refuses those too).
    ValueError
        If ``clip_value`` is negative or ``nan``.
    """
    found = _gradients(model)
    value = check_real("clip_value", clip_value)
    if not value >= 0:
        raise ValueError(f"clip_value must be >= 0, got {value!r}")
    for _, local, grad in found:  # all checked before any changes
        if not array_namespace(gradient=grad).isdtype(grad.dtype, "real floating"):
            raise TypeError(
                f"clip_grad_value_ needs real floating gradients, got {grad.dtype} for {local!r}"
            )
    for owner, local, grad in found:
        xp = array_namespace(gradient=grad)
        clipped = xp.clip(grad, min=-value, max=value)
        if clipped.dtype != grad.dtype:
            clipped = xp.astype(clipped, grad.dtype)
        owner.grads[local] = clipped

"""Input validation shared by the functional API and the layers, and the check boundary.

Every check runs before any arithmetic and raises an error that says what
was expected, what came, and what to do about it.

The check boundary
------------------
A layer, loss or optimizer sees inputs of the same kind at every step of a
training loop: the same library, dtype, shape and device. What its checks
conclude depends on those alone, so a :class:`CheckBoundary` remembers it:
the first input of a kind goes through the check, later ones of that kind
reuse the :class:`Checked` record it returned. :func:`kind` is the one key
function; an input of another kind, or with a dimension of unknown size,
is checked again. :meth:`CheckBoundary.reset` forgets everything, as code
that traces a model calls once the trace ends, so that no stand-in array
outlives it. A new layer adopts it in a few lines::

    checked = self._checks.check(check_my_layer, x, weight)
    y = my_layer_kernel(checked.xp, x, weight, checked.dtype)

where ``check_my_layer(x, weight) -> Checked`` raises for bad input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Hashable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from ._compat import Array, DType, Namespace, device

__all__ = [
    "CheckBoundary",
    "Checked",
    "check_exact_keys",
    "check_floating",
    "check_known_shape",
    "check_real_floating",
    "check_same_device",
    "has_unknown",
    "is_unknown",
    "key_difference",
    "kind",
    "shape_str",
]


def kind(x: Array | None) -> Hashable:
    """Return what checks of ``x`` depend on: ``(type, dtype, shape, device)``.

    ``None`` (an absent optional array, such as a layer without bias) gives
    ``None``; something that is no array gives a new object that equals
    nothing else, so the check runs and says so.

    Sizes unknown until computed (``None``, or NaN in Dask) need no special
    case: a check is a function of these four, and a record is kept only
    for inputs that passed it, so an input whose key equals a record's
    would pass again. (NaN sizes equal each other only when they are one
    object, through tuple comparison's identity test.)
    """
    try:
        # The standard's attribute first: a function call less on every
        # input of every step.
        return (type(x), x.dtype, x.shape, x.device)  # type: ignore[union-attr]
    except Exception:
        if x is None:
            return None
        # Dask arrays have no .device, and a JAX tracer may refuse it.
        if hasattr(x, "shape") and hasattr(x, "dtype"):
            return (type(x), x.dtype, x.shape, device(x))
        return object()  # not an array: the check will say so


@dataclass(frozen=True, slots=True, eq=False)
class Checked:
    """What a check concluded about inputs of one kind.

    Attributes
    ----------
    xp : namespace
        The namespace the inputs share.
    dtype : dtype or None
        The dtype the computation runs in (the result type of the inputs),
        where the check decides one.
    same_real_dtype : bool
        Whether every input already has ``dtype``, a real one: kernels may
        then skip casts and conjugates.
    constants : object
        Whatever else the check prepared for kernels and keeps between
        calls: 0-d arrays, class indices, a namespace per parameter.
    key : tuple
        The kinds of the inputs (see :func:`kind`), filled in by
        :class:`CheckBoundary`.

    Records compare by identity: one that a backward pass's key holds
    stands for the kinds of its forward pass's inputs.
    """

    xp: Namespace
    dtype: DType | None = None
    same_real_dtype: bool = False
    constants: Any = None
    key: tuple[Hashable, ...] | None = None


class CheckBoundary:
    """Remembers, for each check, the last kinds of input that passed it.

    Layers, losses and optimizers hold one each, as ``self._checks``, and
    call :meth:`check` where their inputs enter; ``reset_checks()`` on them
    calls :meth:`reset`.
    """

    __slots__ = ("_records",)

    def __init__(self) -> None:
        self._records: dict[Callable[..., Checked], Checked] = {}

    def check(
        self,
        check: Callable[..., Checked],
        *arrays: Array | None,
        context: tuple[Array | None, ...] = (),
        **options: Hashable,
    ) -> Checked:
        """Return ``check(*arrays, *context, **options)``, or what it returned for the same kinds.

        Parameters
        ----------
        check : callable
            ``check(*arrays, *context, **options) -> Checked``; raises
            ``TypeError`` or ``ValueError`` for bad input, before any
            arithmetic.
        *arrays : array or None
            The inputs whose kinds decide whether ``check`` runs again.
        context : tuple of arrays, optional
            Further inputs of ``check`` whose kinds an option fixes already,
            so they need no key of their own: a backward pass's forward
            inputs, with the forward pass's record as an option.
        **options : hashable
            Anything else the outcome depends on (names, flags, the record of
            a forward pass), passed to ``check`` and compared like the
            arrays' kinds. A :class:`Checked` record compares by identity.
        """
        try:
            # kind() inlined: this runs for every input of every step.
            kinds = [(type(a), a.dtype, a.shape, a.device) for a in arrays]  # type: ignore[union-attr]
            key = (*kinds, *options.values())
        except Exception:  # None, Dask arrays (no .device), or no array at all
            key = (*map(kind, arrays), *options.values())
        record = self._records.get(check)
        if record is not None and record.key == key:
            return record
        record = replace(check(*arrays, *context, **options), key=key)
        self._records[check] = record
        return record

    def __reduce__(self) -> tuple[type[CheckBoundary], tuple[()]]:
        # A copy or a pickle starts empty: records hold namespaces, which do
        # not pickle, and the copy checks its first inputs again anyway.
        return (CheckBoundary, ())

    def __len__(self) -> int:
        """Return the number of checks with a remembered record."""
        return len(self._records)

    def reset(self) -> None:
        """Forget every record: the next input of any kind is checked again."""
        self._records.clear()


_FLOATING = ("real floating", "complex floating")


def shape_str(shape: tuple[int | None, ...]) -> str:
    """Format a shape the way users write it: ``(3, 4)``."""
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def is_unknown(size: object) -> bool:
    """Tell whether a dimension's size is unknown until computed.

    The standard reports such a size as ``None``; Dask reports ``nan`` (after
    boolean indexing, for example).
    """
    return size is None or (isinstance(size, float) and math.isnan(size))


def has_unknown(shape: tuple[int | None, ...]) -> bool:
    """Tell whether any dimension of ``shape`` is unknown (see :func:`is_unknown`)."""
    # Layers ask on every call: one product (NaN if any size is NaN) costs a
    # third of a loop over the sizes.
    if None in shape:
        return True
    total = math.prod(shape)  # type: ignore[arg-type]
    return bool(total != total)


def check_known_shape(name: str, x: Array, needs: str) -> tuple[int, ...]:
    """Return the shape of ``x`` as Python ints, or raise if a size is unknown.

    Parameters
    ----------
    name : str
        How the message names ``x``.
    x : array
        The array whose shape is needed.
    needs : str
        What needs the shape, for the message (``"the loss"``, ...).

    Raises
    ------
    ValueError
        If a dimension of ``x`` is unknown (``None``, or ``nan`` in Dask). No
        value of ``x`` is computed to find it out.
    """
    shape = tuple(x.shape)
    if has_unknown(shape):
        raise ValueError(
            f"{name} has shape {shape_str(shape)} with unknown dimensions, but {needs} needs "
            "a known shape; compute the sizes first (for a Dask array, call its "
            "compute_chunk_sizes() method, which computes the array once)"
        )
    return tuple(int(size) for size in shape)


def check_floating(xp: Namespace, **named: Array | None) -> None:
    """Raise ``TypeError`` unless every named array has a floating dtype."""
    for name, value in named.items():
        if value is None:
            continue
        if not xp.isdtype(value.dtype, _FLOATING):
            raise TypeError(
                f"{name} must have a real or complex floating dtype, got "
                f"{value.dtype}; convert it first, for example with "
                f"xp.astype({name}, xp.float32)"
            )


def check_real_floating(xp: Namespace, what: str, **named: Array) -> None:
    """Raise ``TypeError`` unless every named array has a real floating dtype.

    ``what`` names the function or layer defined for real numbers only, for
    the message given to complex arrays.
    """
    for name, value in named.items():
        if xp.isdtype(value.dtype, "real floating"):
            continue
        if xp.isdtype(value.dtype, "complex floating"):
            raise TypeError(
                f"{name} must have a real floating dtype, got the complex dtype {value.dtype}: "
                f"{what} is defined for real numbers only; pass a real array, for example "
                f"xp.real({name}) or xp.abs({name})"
            )
        raise TypeError(
            f"{name} must have a real floating dtype, got {value.dtype}; convert it "
            f"first, for example with xp.astype({name}, xp.float32)"
        )


def check_same_device(**named: Array | None) -> None:
    """Raise ``ValueError`` naming both devices when arrays live apart."""
    first_name = None
    first_device = None
    for name, value in named.items():
        if value is None:
            continue
        where = device(value)
        if where is None:
            # Unknown, as for a JAX tracer under jit: nothing to compare.
            continue
        if first_name is None:
            first_name, first_device = name, where
        elif where != first_device:
            raise ValueError(
                f"{first_name} is on device {first_device!r} but {name} is on "
                f"device {where!r}; move one of them, for example with "
                f"xp.asarray({name}, device=...) or {name}.to_device(...)"
            )


def key_difference(given: Iterable[str], expected: Collection[str]) -> tuple[list[str], list[str]]:
    """Return ``(unexpected, missing)``: keys of ``given`` not expected, expected keys not given.

    Both in the order of their own collection, for messages that list them.
    """
    given = list(given)
    present = set(given)
    return [key for key in given if key not in expected], [
        key for key in expected if key not in present
    ]


def check_exact_keys(
    where: str, given: Collection[str], expected: Collection[str], what: str = "keys"
) -> None:
    """Raise ``ValueError`` unless ``given`` has exactly the ``expected`` keys.

    ``where`` names the mapping and ``what`` its keys, for the message, which
    lists the unknown and the missing ones and what was expected.
    """
    unknown, missing = key_difference(given, expected)
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"unknown {what} {', '.join(map(repr, unknown))}")
        if missing:
            parts.append(f"missing {what} {', '.join(map(repr, missing))}")
        raise ValueError(
            f"{where} has {' and '.join(parts)}; expected {', '.join(map(repr, expected))}"
        )

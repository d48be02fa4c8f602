"""Testing helpers for array API code, on every backend and device.

- :func:`assert_close` compares namespace, device, dtype and shape as well as
  values, with per-dtype tolerances.
- :func:`check_gradients` checks a hand-written backward against float64
  central finite differences, complex included.
- :func:`check_against_autograd` checks it against ``torch.autograd`` run on
  the same array API function (needs PyTorch, imported only then).
- :func:`random_array` draws the same values on every backend for a seed.
- :func:`to_numpy` copies any supported array to the host.

``xpnn.testing.plugin`` is a pytest plugin that gives tests the ``xp``,
``device`` and ``dtype`` fixtures over every backend and device of the
matrix; see ``docs/testing-plugin.md``.
"""

from .._transfer import to_numpy
from ._assert import assert_close
from ._autograd import check_against_autograd
from ._gradcheck import check_gradients
from ._random import random_array
from ._tolerances import default_tolerances

__all__ = [
    "assert_close",
    "check_against_autograd",
    "check_gradients",
    "default_tolerances",
    "random_array",
    "to_numpy",
]

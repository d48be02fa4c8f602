"""xpnn.training.sources: one batch-source interface, chosen once per run."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import array_api_compat.numpy as npx
import numpy as np
import pytest

import xpnn
from xpnn.training import loop
from xpnn.training.plan import epoch_plan
from xpnn.training.sources import BatchSource, EagerSource, add

SRC = Path(xpnn.__file__).resolve().parent
INTERFACE = ("block_rows", "batches", "after_step", "end_epoch", "evaluate")


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """``(module, names)`` of every import of a module of xpnn, resolved to absolute names."""
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[: len(base) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            found.append((module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
    return found


def test_dask_module_sits_below_training_and_layers():
    for module, names in _imports(SRC / "_dask.py"):
        assert not module.startswith("xpnn") or module == "xpnn._compat", (module, names)


@pytest.mark.parametrize("name", ["dask_source"])
def test_every_source_has_the_interface(name):
    import importlib

    pytest.importorskip("dask")
    module = importlib.import_module(f"xpnn.training.{name}")
    for cls in (EagerSource, module.DaskSource):
        for member in INTERFACE:
            assert hasattr(cls, member), (cls, member)
        for member in INTERFACE[1:]:
            ours = inspect.signature(getattr(cls, member)).parameters
            theirs = inspect.signature(getattr(BatchSource, member)).parameters
            assert list(ours) == list(theirs), (cls, member)


def test_the_loop_has_no_backend_branches():
    # fit and evaluate pick a source once (open_source) and run one loop.
    for function in (loop.fit, loop.evaluate):
        code = inspect.getsource(function).split('"""')[2]  # the body, not the docstring
        for word in ("dask", "steps is not None", "is_lazy", "library_of"):
            assert word not in code, (function.__name__, word)


def test_eager_source_gives_the_plan_rows_and_passes_sums_through():
    x, y = np.arange(20.0).reshape(10, 2), np.arange(10)
    source = loop.open_source(npx, x, y)
    assert isinstance(source, EagerSource)
    assert source.block_rows is None
    windows = epoch_plan(np.random.default_rng(1), 10, 4, 2, 3, True)
    order = np.concatenate([w.indices() for w in windows])
    batches = list(source.batches(windows, 3))
    assert [yb.shape[0] for _, yb in batches] == [3, 3, 3, 1]
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in batches]), order)
    np.testing.assert_array_equal(np.concatenate([xb for xb, _ in batches]), x[order])
    loss_sum, correct_sum = np.asarray(2.5), None
    assert source.after_step(loss_sum, correct_sum) == (loss_sum, None)
    assert source.end_epoch(loss_sum, correct_sum) == (2.5, None)


def test_eager_evaluate_scores_every_row_once_in_order():
    x, y = np.arange(7.0), np.arange(7)
    seen = []

    def score(xb, yb):
        seen.append(yb.tolist())
        return np.sum(xb), None

    assert EagerSource(npx, x, y).evaluate(score, 3) == (21.0, None)
    assert seen == [[0, 1, 2], [3, 4, 5], [6]]
    assert EagerSource(npx, x[:0], y[:0]).evaluate(score, 3) == (None, None)


def test_add_starts_at_the_first_part():
    assert add(None, None) is None
    assert add(None, 2) == 2
    assert add(3, None) == 3
    assert add(3, 2) == 5

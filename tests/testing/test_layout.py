"""The modules of xpnn.testing import each other in one direction only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import xpnn.testing
from xpnn.testing import cases, plugin

TESTING = Path(xpnn.testing.__file__).resolve().parent


def _local_imports(name: str) -> set[str]:
    """The modules of xpnn.testing that ``xpnn/testing/<name>.py`` imports."""
    tree = ast.parse((TESTING / f"{name}.py").read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("xpnn.testing."):
            found.add(node.module.split(".")[2])
    return found


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("matrix", set()),
        ("cases", {"matrix"}),
        ("_fixtures", {"cases"}),
        ("plugin", {"_fixtures", "cases", "matrix"}),
    ],
)
def test_plugin_modules_form_no_cycle(name, allowed):
    assert _local_imports(name) <= allowed


def test_plugin_re_exports_the_case_queries():
    for name in cases.__all__:
        if name not in {"RUN", "PluginRun"}:
            assert getattr(plugin, name) is getattr(cases, name), name

"""The house rules that no linter checks: private names stay inside their package.

A name whose first component that starts with ``_`` (``_check_dy``, the
module ``_module``) belongs to the package that holds it, and only that
package and the packages inside it may import it. ``xpnn._compat`` and the
other private modules at the top belong to ``xpnn`` itself, so every module
may use them; ``xpnn.layers._module`` belongs to ``xpnn.layers`` alone.
The import-linter contracts in ``pyproject.toml`` (the floors, no cycles,
private modules) run in the lint session.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "xpnn"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(path: Path) -> str:
    name = _module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _is_package(dotted: str) -> bool:
    return (SRC.joinpath(*dotted.split(".")) / "__init__.py").exists()


def _is_private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def owner(dotted: str) -> str | None:
    """Return the package a dotted name is private to, or None for a public name.

    The owner is the package that holds the first private component: the
    package itself for a private module or subpackage, the module's package
    for a private name defined in a module.
    """
    parts = dotted.split(".")
    for index, part in enumerate(parts):
        if _is_private(part):
            holder = ".".join(parts[:index])
            return holder if _is_package(holder) else holder.rpartition(".")[0]
    return None


def imported_names(path: Path) -> list[tuple[int, str]]:
    """Return ``(line, dotted name)`` for every xpnn name ``path`` imports."""
    package = _package_of(path)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "xpnn":
                continue
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "xpnn"]
    return found


def violations(path: Path) -> list[str]:
    package = _package_of(path)
    bad = []
    for line, dotted in imported_names(path):
        holder = owner(dotted)
        if holder is not None and not (package == holder or package.startswith(holder + ".")):
            bad.append(f"{path.relative_to(SRC)}:{line} imports {dotted}, private to {holder}")
    return bad


def test_no_module_imports_a_private_name_of_another_package():
    bad = [problem for path in sorted(PACKAGE.rglob("*.py")) for problem in violations(path)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(
    ("dotted", "expected"),
    [
        ("xpnn._compat.Array", "xpnn"),
        ("xpnn.layers._module.Module", "xpnn.layers"),
        ("xpnn.functional.linear._check_dy", "xpnn.functional"),
        ("xpnn.layers.Module", None),
        ("xpnn.__version__", None),
        ("xpnn.checkpoint.atomic_write", None),
    ],
)
def test_owner_of_a_name(dotted: str, expected: str | None):
    assert owner(dotted) == expected


def test_the_check_catches_a_private_name_across_packages(tmp_path: Path, monkeypatch):
    # A module of xpnn.optim reaching into xpnn.layers' private module.
    fake = PACKAGE / "optim" / "sgd.py"
    source = "from ..layers._module import Module\nfrom ..layers import Module as M\n"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source)
    assert violations(fake) == [
        "xpnn/optim/sgd.py:1 imports xpnn.layers._module.Module, private to xpnn.layers"
    ]

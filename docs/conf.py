"""Sphinx configuration of the xpnn documentation.

Build from the repository root with::

    sphinx-build -W --keep-going -b html docs docs/_build/html

The backend matrix page is not written by hand: this file reads
``backends/*.toml`` with the loader the test suite and ``noxfile.py`` use,
and writes the tables into ``docs/generated/`` (git-ignored), which
``backends.md`` includes.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# Document the source tree even when xpnn is not installed.
sys.path.insert(0, str(ROOT / "src"))

import xpnn  # noqa: E402
from xpnn.testing.matrix import BackendSpec, load_matrix  # noqa: E402

# -- Project -----------------------------------------------------------------

project = "xpnn"
author = "The xpnn developers"
copyright = "The xpnn developers"
release = xpnn.__version__
version = ".".join(release.split(".")[:2])

# -- General -----------------------------------------------------------------

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
# generated/ holds fragments that pages include, not pages of their own.
exclude_patterns = ["_build", "generated", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# -- API pages ---------------------------------------------------------------

autodoc_typehints = "none"  # the numpydoc sections carry the types
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
# numpydoc loads autosummary, which these pages do not use; with Markdown
# sources only, its stub generation would warn.
autosummary_generate = False

# -- HTML --------------------------------------------------------------------

html_theme = "alabaster"
html_title = f"xpnn {release}"
html_static_path: list[str] = []
html_theme_options = {
    "description": "Neural-network layers on the Python array API standard",
    "fixed_sidebar": True,
}

# -- The backend matrix, generated from backends/*.toml ----------------------

GENERATED = DOCS / "generated"


def _cell(text: str) -> str:
    """Escape text for one cell of a Markdown table."""
    return text.replace("|", "\\|")


def _code(items: list[str] | tuple[str, ...], empty: str = "none") -> str:
    if not items:
        return empty
    return "<br>".join(_cell(f"`{item}`") for item in items)


def _requirements(backend: BackendSpec, extra: tuple[str, ...]) -> list[str]:
    merged: list[str] = []
    for requirement in (*backend.requirements, *extra):
        if requirement not in merged:
            merged.append(requirement)
    return merged


def matrix_markdown(matrix: dict[str, BackendSpec]) -> str:
    """Return the backend-by-device table and the backend summaries."""
    lines = [
        "| backend | device | needs GPU | namespace | pip requirements | environment |",
        "|---|---|---|---|---|---|",
    ]
    for backend in matrix.values():
        env = [f"{key}={value}" for key, value in backend.env.items()]
        for device in backend.devices:
            lines.append(
                "| "
                + " | ".join(
                    [
                        f"`{backend.name}`",
                        f"`{device.name}`",
                        "yes" if device.gpu else "no",
                        f"`{backend.namespace}`",
                        _code(_requirements(backend, device.requirements)),
                        _code(env),
                    ]
                )
                + " |"
            )
    lines += ["", "| backend | summary |", "|---|---|"]
    for backend in matrix.values():
        lines.append(f"| `{backend.name}` | {_cell(backend.summary)} |")
    return "\n".join(lines) + "\n"


def sessions_markdown(matrix: dict[str, BackendSpec]) -> str:
    """Return the nox session names, one per backend-device pair."""
    names = [
        f"tests({backend.name}-{device.name})"
        for backend in matrix.values()
        for device in backend.devices
    ]
    return "```text\n" + "\n".join(names) + "\n```\n"


def _write(path: Path, text: str) -> None:
    # Rewrite only on change, so an unchanged matrix leaves pages up to date.
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


_MATRIX = load_matrix(ROOT / "backends")
GENERATED.mkdir(exist_ok=True)
_write(GENERATED / "matrix.md", matrix_markdown(_MATRIX))
_write(GENERATED / "sessions.md", sessions_markdown(_MATRIX))

"""The runnable examples, scripts and docs pages alike, run and print what they claim.

Each example checks its own claims with ``assert``; these tests run it in a
fresh interpreter and look for the line that says it got to the end.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from selection import ON_HOST

pytestmark = ON_HOST  # the examples pick their libraries themselves

ROOT = Path(__file__).resolve().parents[1]

# Script or docs page -> a line its output ends with (a prefix of it).
SCRIPTS = {
    "quickstart.py": "same output on numpy",
    "train_on_torch_deploy_on_numpy.py": "moved in memory: Linear(",
}
PAGES = {
    "portability.md": "",
    "checkpoints.md": "the continued run equals the whole run: True",
    "interop-torch.md": "loss",
    "interop-jax.md": "loss after 100 steps",
    "interop-sklearn.md": "loss after 2 more epochs",
    "export.md": "onnxruntime and xpnn agree on",
}
# The backend a page needs beyond the test environment's own (numpy, torch,
# array_api_strict, scikit-learn): it runs in that backend's sessions.
NEEDS = {"interop-jax.md": "jax"}


def _run(args: list[str], cwd: Path) -> str:
    done = subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def page_code(page: Path) -> str:
    """Join the page's ```python blocks, in order, into one program."""
    blocks = page.read_text(encoding="utf-8").split("```python\n")[1:]
    return "\n".join(block.split("```", 1)[0] for block in blocks)


def test_every_example_is_listed():
    assert sorted(p.name for p in (ROOT / "examples").glob("*.py")) == sorted(SCRIPTS)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_script_runs(name, tmp_path):
    out = _run([sys.executable, str(ROOT / "examples" / name)], tmp_path)
    assert out.splitlines()[-1].startswith(SCRIPTS[name])


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.backend(NEEDS.get(name, "numpy")))
        for name in sorted(PAGES)
    ],
)
def test_page_examples_run(name, tmp_path):
    if name in NEEDS:
        pytest.importorskip(NEEDS[name])
    code = page_code(ROOT / "docs" / name)
    assert code.strip(), f"{name} has no python block"
    out = _run([sys.executable, "-c", code], tmp_path)
    assert PAGES[name] in out

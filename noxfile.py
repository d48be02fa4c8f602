"""Sessions of the xpnn test matrix, made from the data in ``backends/``.

``nox`` runs every session; each backend-device pair is its own session,
``tests(<backend>-<device>)``, e.g. ``nox -s "tests(torch-cuda)"``. A device
that is not present is skipped with a one-line reason; set
``XPNN_REQUIRE_DEVICES=1`` to make it fail instead, on machines that are
meant to have it.

On a machine whose Python already has the backends and no package index
(a GPU box), use that Python directly::

    nox --no-venv --no-install -s "tests(torch-cuda)"

Extra arguments after ``--`` go to pytest.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
nox.options.default_venv_backend = "virtualenv"
nox.options.sessions = ["lint", "typecheck", "tests", "portability", "docs"]

# The matrix reader uses only the standard library; load it by path so nox
# needs nothing installed to list the sessions.
_spec = importlib.util.spec_from_file_location(
    "xpnn_matrix", ROOT / "src" / "xpnn" / "testing" / "matrix.py"
)
assert _spec is not None
assert _spec.loader is not None
_matrix = importlib.util.module_from_spec(_spec)
sys.modules["xpnn_matrix"] = _matrix
_spec.loader.exec_module(_matrix)
MATRIX = _matrix.load_matrix(ROOT / "backends")
CASES = [(b.name, d.name) for b in MATRIX.values() for d in b.devices]
# torch.autograd is the gradient oracle in every session; install it with
# the pin its backend file gives (a quick CPU build where one lies on disk).
ORACLE = MATRIX["torch"].requirements


def _require_devices() -> bool:
    return os.environ.get("XPNN_REQUIRE_DEVICES") == "1"


def _source_tree_env(session: nox.Session) -> dict[str, str]:
    """Put ``src/`` first on PYTHONPATH under ``--no-venv``.

    There the Python on PATH has the array libraries but not xpnn, so the
    source tree stands in for the installed package.
    """
    if session.venv_backend != "none":
        return {}
    paths = [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def _missing(session: nox.Session, reason: str) -> None:
    if _require_devices():
        session.error(f"{reason} (XPNN_REQUIRE_DEVICES=1)")
    session.skip(reason)


@nox.session
@nox.parametrize(
    "backend,device",
    [nox.param(b, d, id=f"{b}-{d}") for b, d in CASES],
)
def tests(session: nox.Session, backend: str, device: str) -> None:
    """Run the test suite on one backend and device."""
    spec = MATRIX[backend]
    dev = spec.device(device)
    if dev.gpu and not _matrix.host_has_nvidia_gpu():
        _missing(session, f"{backend}-{device}: no NVIDIA GPU on this machine")
    session.install(".[test,demo]", *spec.requirements, *dev.requirements, *ORACLE)
    env = {**spec.env, "XPNN_BACKEND": backend, "XPNN_DEVICE": device}
    env.update(_source_tree_env(session))
    probe = session.run(
        "python",
        "-m",
        "xpnn.testing.matrix",
        "probe",
        backend,
        device,
        env=env,
        silent=True,
        success_codes=[0, _matrix.UNAVAILABLE_EXIT],
    )
    if isinstance(probe, str) and probe.strip().startswith("unavailable:"):
        _missing(session, probe.strip().removeprefix("unavailable: "))
    session.run("pytest", *session.posargs, env=env)


# Moves and checkpoints between every pair of CPU backends need all of them
# in one environment; each tests() session has only its own and the oracle.
PORTABILITY_TESTS = ("tests/layers/test_module.py", "tests/test_checkpoint.py")


@nox.session
def portability(session: nox.Session) -> None:
    """Move models and checkpoints between every pair of CPU backend-devices."""
    cpu = [spec for spec in MATRIX.values() if any(not d.gpu for d in spec.devices)]
    session.install(".[test,demo]", *(r for spec in cpu for r in spec.requirements), *ORACLE)
    env = {key: value for spec in cpu for key, value in spec.env.items()}
    env["XPNN_BACKEND"] = ",".join(spec.name for spec in cpu)
    env["XPNN_DEVICE"] = ",".join(sorted({d.name for s in cpu for d in s.devices if not d.gpu}))
    env.update(_source_tree_env(session))
    session.run("pytest", *(session.posargs or PORTABILITY_TESTS), env=env)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style with ruff, and the floors of the house with import-linter."""
    session.install("ruff>=0.6", "import-linter>=2.1")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # The contracts in pyproject.toml: floors, no cycles, private modules.
    # import-linter reads the source tree; nothing needs installing.
    session.run("lint-imports", env={"PYTHONPATH": str(ROOT / "src")})


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the package with mypy."""
    # The interop modules are typed against the libraries they import.
    session.install("-e", ".[typecheck,test,demo]", *MATRIX["jax"].requirements, *ORACLE)
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the docs with warnings as errors, and run the docstring examples."""
    # The examples of xpnn.interop import the libraries they exchange with.
    session.install(".[docs,test,demo]", *MATRIX["jax"].requirements, *ORACLE)
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")
    session.run(
        "pytest",
        "--doctest-modules",
        "--pyargs",
        "xpnn",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",
        "-o",
        "testpaths=",
        "-o",
        "pythonpath=",
        env=dict(MATRIX["jax"].env),
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmark suite (not part of the default run).

    Writes ``docs/benchmarks/``; arguments after ``--`` go to
    ``benchmarks/run.py``, e.g. ``nox -s bench -- --sizes full``.
    """
    backends = [MATRIX[name].requirements for name in ("jax", "dask", "array_api_strict")]
    session.install(".[demo]", *ORACLE, *(r for reqs in backends for r in reqs))
    env = _source_tree_env(session)
    session.run("python", "benchmarks/run.py", *session.posargs, env=env)

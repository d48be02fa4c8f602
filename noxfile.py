"""Sessions of the xpnn test matrix, made from the data in ``backends/``.

``nox`` runs every session; each backend-device pair is its own session,
``tests(<backend>-<device>)``, e.g. ``nox -s "tests(torch-cuda)"``. A device
that is not present is skipped with a one-line reason; set
``XPNN_REQUIRE_DEVICES=1`` to make it fail instead, on machines that are
meant to have it.

Every session but ``lint`` runs in one shared environment, ``.nox/shared``:
a nox run installs into it once, the union of what its sessions need, so
the matrix downloads and unpacks each library once and needs the disk of
one environment, not of a dozen.

On a machine whose Python already has the backends and no package index
(a GPU box), name that Python; nothing is installed and ``src/`` goes first
on ``PYTHONPATH``::

    XPNN_PYTHON=python3 nox -s "tests(torch-cuda)"

Extra arguments after ``--`` go to pytest.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Iterable
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
CPU_BACKENDS = [spec for spec in MATRIX.values() if any(not d.gpu for d in spec.devices)]
# What every CPU session needs, in one list: xpnn with the extras of the
# tests, the docs and the type check, and each CPU backend with the pin its
# file gives. torch.autograd, the gradient oracle of every session, is the
# torch backend's own pin (a quick CPU build where one lies on disk).
SHARED_REQUIREMENTS = (
    ".[test,demo,docs,typecheck,images,speech,text]",
    *dict.fromkeys(r for spec in CPU_BACKENDS for r in spec.requirements),
)
SHARED_ENV = ROOT / ".nox" / "shared"
# Two workers fill both cores of a CI machine; "auto" takes all of a larger one.
PARALLEL = ("-n", "auto")
# With a worker on every core, each worker's own BLAS, OpenMP (torch) and XLA
# thread pools oversubscribe the cores: their threads spin-wait for peers that
# are descheduled, and a float64 CNN step was 10x slower than on one thread.
# One thread per worker, unless the caller set these.
ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}


def _one_thread_per_worker(env: dict[str, str]) -> dict[str, str]:
    """Return ``env`` with :data:`ONE_THREAD` for every variable the caller left unset."""
    return {**{k: v for k, v in ONE_THREAD.items() if k not in os.environ}, **env}


def _require_devices() -> bool:
    return os.environ.get("XPNN_REQUIRE_DEVICES") == "1"


def _given_python() -> str | None:
    """The interpreter named by ``XPNN_PYTHON``, which is used as it is."""
    return os.environ.get("XPNN_PYTHON") or None


class _SharedEnvironment:
    """The one virtual environment of the sessions, filled once per nox run."""

    def __init__(self, location: Path) -> None:
        self.location = location
        self.installed: set[str] = set()

    @property
    def bin(self) -> Path:
        return self.location / ("Scripts" if sys.platform == "win32" else "bin")

    def prepare(
        self, session: nox.Session, extra: Iterable[str] = ()
    ) -> tuple[str, dict[str, str]]:
        """Install what is missing this run; return its interpreter and environment variables.

        Commands run as ``python -m tool`` through that interpreter: nox
        looks a bare command up on its own ``PATH``, not on the one returned.

        The first call of a run installs xpnn from the checkout with all of
        ``SHARED_REQUIREMENTS``; later calls install only what they add (a
        GPU session's own requirements).
        """
        given = _given_python()
        if given is not None:
            found = shutil.which(given)
            if found is None:
                session.error(f"XPNN_PYTHON={given!r} is not an interpreter on PATH")
            source = [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
            bin_dir = str(Path(found).parent)
            return found, {
                "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")]),
                "PYTHONPATH": os.pathsep.join(p for p in source if p),
            }
        python = str(self.bin / ("python.exe" if sys.platform == "win32" else "python"))
        if not Path(python).exists():
            session.run(sys.executable, "-m", "virtualenv", "-q", str(self.location), external=True)
        env = {
            "VIRTUAL_ENV": str(self.location),
            "PATH": os.pathsep.join([str(self.bin), os.environ.get("PATH", "")]),
        }
        wanted = [r for r in (*SHARED_REQUIREMENTS, *extra) if r not in self.installed]
        if wanted:
            # The checkout is reinstalled once per run, so a rerun tests the current source.
            session.run(python, "-m", "pip", "install", *wanted, env=env, external=True)
            self.installed.update(wanted)
        return python, env


SHARED = _SharedEnvironment(SHARED_ENV)


def _missing(session: nox.Session, reason: str) -> None:
    if _require_devices():
        session.error(f"{reason} (XPNN_REQUIRE_DEVICES=1)")
    session.skip(reason)


SHARED_SESSION = {"venv_backend": "none"}


@nox.session(**SHARED_SESSION)
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
    # A GPU backend's own wheels (cupy, jax's CUDA plugin) join the shared
    # environment only on a machine that runs them.
    extra = [*spec.requirements, *dev.requirements] if dev.gpu else []
    python, env = SHARED.prepare(session, extra)
    env.update(spec.env, XPNN_BACKEND=backend, XPNN_DEVICE=device)
    probe = session.run(
        python,
        "-m",
        "xpnn.testing.matrix",
        "probe",
        backend,
        device,
        env=env,
        external=True,
        silent=True,
        success_codes=[0, _matrix.UNAVAILABLE_EXIT],
    )
    if isinstance(probe, str) and probe.strip().startswith("unavailable:"):
        _missing(session, probe.strip().removeprefix("unavailable: "))
    env = _one_thread_per_worker(env)
    session.run(python, "-m", "pytest", *PARALLEL, *session.posargs, env=env, external=True)


# Moves and checkpoints between every pair of CPU backends need all of them
# at once; each tests() session selects only its own.
PORTABILITY_TESTS = ("tests/layers/test_module.py", "tests/test_checkpoint.py")


@nox.session(**SHARED_SESSION)
def portability(session: nox.Session) -> None:
    """Move models and checkpoints between every pair of CPU backend-devices."""
    python, env = SHARED.prepare(session)
    env.update({key: value for spec in CPU_BACKENDS for key, value in spec.env.items()})
    env["XPNN_BACKEND"] = ",".join(spec.name for spec in CPU_BACKENDS)
    env["XPNN_DEVICE"] = ",".join(
        sorted({d.name for s in CPU_BACKENDS for d in s.devices if not d.gpu})
    )
    tests = session.posargs or PORTABILITY_TESTS
    env = _one_thread_per_worker(env)
    session.run(python, "-m", "pytest", *PARALLEL, *tests, env=env, external=True)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style with ruff, and the floors of the house with import-linter."""
    session.install("ruff>=0.6", "import-linter>=2.1")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # The contracts in pyproject.toml: floors, no cycles, private modules.
    # import-linter reads the source tree; nothing needs installing.
    session.run("lint-imports", env={"PYTHONPATH": str(ROOT / "src")})


@nox.session(**SHARED_SESSION)
def typecheck(session: nox.Session) -> None:
    """Type-check the package with mypy."""
    # The interop modules are typed against the libraries they import.
    python, env = SHARED.prepare(session)
    session.run(python, "-m", "mypy", env=env, external=True)


@nox.session(**SHARED_SESSION)
def docs(session: nox.Session) -> None:
    """Build the docs with warnings as errors, and run the docstring examples."""
    # The examples of xpnn.interop import the libraries they exchange with.
    python, env = SHARED.prepare(session)
    build = (python, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")
    session.run(*build, env=env, external=True)
    session.run(
        python,
        "-m",
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
        env={**env, **MATRIX["jax"].env},
        external=True,
    )


@nox.session(**SHARED_SESSION)
def bench(session: nox.Session) -> None:
    """Run the benchmark suite (not part of the default run).

    Writes ``docs/benchmarks/``; arguments after ``--`` go to
    ``benchmarks/run.py``, e.g. ``nox -s bench -- --sizes full``.
    """
    python, env = SHARED.prepare(session)
    session.run(python, "benchmarks/run.py", *session.posargs, env=env, external=True)

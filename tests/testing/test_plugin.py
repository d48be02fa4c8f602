"""xpnn.testing.plugin, seen from a downstream library's test suite.

Each test builds a small project in a temporary folder and runs pytest on
it. Runs that import array libraries go to a subprocess (a fresh
interpreter, where the entry point loads the plugin as it would for a
user); the others run in this process, against a matrix of their own
(``xpnn_matrix``) in which ``ghost`` is a library that is never installed
and ``numpy-imaginary`` a device that is never present.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
from pathlib import Path

import pytest

import xpnn.testing
from selection import ON_HOST
from xpnn.testing.matrix import default_directory, load_matrix, resolve

pytestmark = ON_HOST  # the plugin is tested in pytester runs of their own

pytest_plugins = ["pytester"]

PLUGIN = "xpnn.testing.plugin"
SHIPPED = load_matrix()

# In-process runs put sys.modules back as they found it, and NumPy cannot be
# loaded twice in one process: import here what those runs use.
for _name, _device in (("numpy", "cpu"), ("array_api_strict", "CPU_DEVICE")):
    resolve(SHIPPED[_name], SHIPPED[_name].device(_device))

INI = """
[pytest]
addopts = -p no:cacheprovider
xfail_strict = true
filterwarnings =
    error
    ignore:.*Failed to initialize NumPy.*:UserWarning
"""

DOCS = Path(__file__).resolve().parents[2] / "docs" / "testing-plugin.md"

# Beyond the docs page's example: what assert_close catches.
CATCHES = """
import numpy as np
import pytest

from xpnn.testing import assert_close, to_numpy


def test_assert_close_catches_what_numpy_testing_lets_through():
    strict = pytest.importorskip("array_api_strict")
    torch = pytest.importorskip("torch")
    cpu, device1 = strict.Device("CPU_DEVICE"), strict.Device("device1")
    a = strict.asarray([1.0, 2.0], device=cpu)
    elsewhere = strict.asarray([1.0, 2.0], device=device1)
    np.testing.assert_allclose(to_numpy(a), to_numpy(elsewhere))
    with pytest.raises(AssertionError, match="device differs"):
        assert_close(a, elsewhere)

    single, double = np.asarray([1.0, 2.0], dtype=np.float32), np.asarray([1.0, 2.0])
    np.testing.assert_allclose(single, double)
    with pytest.raises(AssertionError, match="dtype differs: actual float32, expected float64"):
        assert_close(single, double)

    tensor = torch.asarray([1.0, 2.0], dtype=torch.float64)
    np.testing.assert_allclose(tensor, double)
    with pytest.raises(AssertionError, match="namespace differs: actual torch, expected numpy"):
        assert_close(tensor, double)
"""

FAKE_NUMPY = """
name = "numpy"
imports = ["numpy"]
namespace = "array_api_compat.numpy"
requirements = []

[[devices]]
name = "cpu"
device = "'cpu'"

[[devices]]
name = "imaginary"
device = "'cpu'"
probe = "False"
"""

FAKE_GHOST = """
name = "ghost"
imports = ["no_such_array_library_for_xpnn_tests"]
namespace = "no_such_array_library_for_xpnn_tests"
requirements = ["ghost-arrays>=1"]

[[devices]]
name = "cpu"
device = "'cpu'"
"""

SIMPLE_TEST = """
def test_one(xp, device):
    assert xp.ones(1, device=device).shape == (1,)
"""


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs inside start with no selection: this suite's own must not leak in."""
    for name in ("XPNN_BACKEND", "XPNN_DEVICE", "XPNN_REQUIRE_DEVICES", "PYTEST_PLUGINS"):
        monkeypatch.delenv(name, raising=False)


def docs_files() -> dict[str, str]:
    """The files of the docs page's example: code blocks whose first line is ``# <path>``."""
    files = {}
    for block in re.findall(r"```(?:python|toml)\n(.*?)```", DOCS.read_text(), flags=re.DOTALL):
        first, _, rest = block.partition("\n")
        if re.fullmatch(r"# [\w/.]+", first):
            files[first[2:]] = rest
    return files


def downstream(pytester: pytest.Pytester) -> None:
    """The docs page's example project, and one more test file."""
    for name, text in docs_files().items():
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (pytester.path / "tests" / "test_assert_close.py").write_text(CATCHES)


# Run settings that this suite's own ini would give.
STRICT_RUN = (
    "-p",
    "no:cacheprovider",
    "-W",
    "error",
    "-W",
    "ignore:.*Failed to initialize NumPy.*:UserWarning",
)


def fake_matrix(pytester: pytest.Pytester, *extra: str) -> None:
    """A project whose matrix is numpy (cpu, imaginary), ghost and ``extra`` shipped files."""
    pytester.makeini(INI + "xpnn_matrix = matrix\n")
    folder = pytester.mkdir("matrix")
    (folder / "numpy.toml").write_text(FAKE_NUMPY)
    (folder / "ghost.toml").write_text(FAKE_GHOST)
    for name in extra:
        shutil.copy(default_directory() / f"{name}.toml", folder)


def outcomes(result: pytest.RunResult) -> dict[str, dict[str, str]]:
    """``{case id: {test: outcome}}`` from a ``-v`` run."""
    found: dict[str, dict[str, str]] = {}
    for line in result.outlines:
        match = re.match(r"^\S+::(\w+)\[([^\]]+)\] (PASSED|FAILED|SKIPPED|XFAIL|XPASS|ERROR)", line)
        if match:
            test, params, outcome = match.groups()
            case = next(c for c in CASE_IDS if params == c or params.endswith(f"-{c}"))
            found.setdefault(case, {})[f"{test}[{params}]"] = outcome
    return found


CASE_IDS = [f"{b.name}-{d.name}" for b in SHIPPED.values() for d in b.devices]


# -- the downstream library on every installed backend ------------------------


def test_the_docs_example_project_has_its_files() -> None:
    assert set(docs_files()) == {
        "pyproject.toml",
        "src/softplus_lib/__init__.py",
        "tests/test_softplus.py",
    }
    assert '"-p", "xpnn.testing.plugin"' in docs_files()["pyproject.toml"]


# It runs every installed backend itself, so one session of the matrix is enough.
@pytest.mark.backend("numpy")
def test_downstream_library_on_every_installed_backend(pytester: pytest.Pytester) -> None:
    """The docs page's example, turned on by its pyproject's addopts, on every pair."""
    downstream(pytester)
    result = pytester.runpytest_subprocess(*STRICT_RUN, "-v", "-rsx")
    counts = result.parseoutcomes()
    assert "failed" not in counts, result.stdout.str()
    assert "errors" not in counts, result.stdout.str()
    by_case = outcomes(result)
    assert set(by_case) == set(CASE_IDS)
    ran = []
    per_case = {len(tests) for tests in by_case.values()}
    assert len(per_case) == 1, by_case
    for case, tests in by_case.items():
        if set(tests.values()) == {"SKIPPED"}:
            # Not installed or not present: each skip says why.
            backend = case.split("-")[0]
            assert re.search(
                rf"SKIPPED .*({backend} is not installed.*pip install|{case}: not present)",
                result.stdout.str(),
            ), case
            continue
        ran.append(case)
        assert "FAILED" not in tests.values()
        skip_marked = tests[f"test_writes_in_place[{case}]"] == "SKIPPED"
        assert skip_marked == case.startswith(("dask-", "jax-"))
        expected_xfail = "XFAIL" if case == "array_api_strict-device1" else "PASSED"
        assert tests[f"test_xfail_on_one_device[{case}]"] == expected_xfail
    # numpy and array_api_strict are test requirements; torch is the oracle.
    assert {"numpy-cpu", "array_api_strict-CPU_DEVICE", "torch-cpu"} <= set(ran)
    result.stdout.fnmatch_lines(["*::test_assert_close_catches_what_numpy_* PASSED*"])
    result.stdout.fnmatch_lines(["*lazy or immutable: no in-place writes*"])
    # The no_float64 device has no float64: the inspection API says so.
    no_float64 = by_case["array_api_strict-no_float64"]
    assert no_float64["test_values[float64-array_api_strict-no_float64]"] == "SKIPPED"
    result.stdout.fnmatch_lines(["*has no float64 (inspection API)*"])


# -- off unless asked for ------------------------------------------------------


def test_off_by_default_a_project_keeps_its_own_xp_fixture(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def xp():
            return "the project's own"
        """
    )
    pytester.makepyfile(
        """
        def test_own(xp):
            assert xp == "the project's own"
        """
    )
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*::test_own PASSED*"])
    result.stdout.no_fnmatch_line("*xpnn matrix*")


def test_off_by_default_there_is_no_xp_fixture_and_no_marker(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(SIMPLE_TEST)
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'xp' not found*"])
    markers = pytester.runpytest("--markers")
    markers.stdout.no_fnmatch_line("*skip_xp_backends*")
    # The options are always there, so that asking for them turns it on.
    helped = pytester.runpytest("--help")
    helped.stdout.fnmatch_lines(["*--xp-backend=NAME*", "*--xp-device=NAME*", "*xpnn_plugin*"])


def test_off_by_default_no_array_library_is_imported(pytester: pytest.Pytester) -> None:
    """The entry point loads the module in every run: off, it must cost no array library."""
    pytester.makeini(INI)
    pytester.makeconftest(
        """
        import sys

        def pytest_report_header(config):
            heavy = ("torch", "jax", "dask", "cupy", "array_api_strict")
            return [f"imported: {sorted(m for m in heavy if m in sys.modules)}"]
        """
    )
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["imported: []"])


def test_a_project_fixture_still_wins_when_the_plugin_is_on(pytester: pytest.Pytester) -> None:
    fake_matrix(pytester)
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def xp():
            return "the project's own"
        """
    )
    pytester.makepyfile(
        """
        def test_own(xp):
            assert xp == "the project's own"
        """
    )
    pytester.runpytest("--xpnn").assert_outcomes(passed=1)


WAYS = ["--xpnn", "--xp-backend", "--xp-device", "XPNN_BACKEND", "XPNN_DEVICE", "ini", "conftest"]


@pytest.mark.parametrize("way", WAYS)
def test_each_way_of_turning_it_on(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    fake_matrix(pytester)
    pytester.makepyfile(SIMPLE_TEST)
    args = ["-v"]
    if way == "--xpnn":
        args.append(way)
    elif way.startswith("--"):
        args.append(f"{way}={'numpy' if way == '--xp-backend' else 'cpu'}")
    elif way.startswith("XPNN_"):
        monkeypatch.setenv(way, "numpy" if way == "XPNN_BACKEND" else "cpu")
    elif way == "ini":
        pytester.makeini(INI + "xpnn_matrix = matrix\nxpnn_plugin = true\n")
    else:
        pytester.makeconftest(f"pytest_plugins = [{PLUGIN!r}]")
    result = pytester.runpytest(*args, "-rs")
    result.stdout.fnmatch_lines(["xpnn matrix (*matrix): *", "*test_one?numpy-cpu? PASSED*"])


@pytest.mark.skipif(
    not any(ep.value == PLUGIN for ep in importlib.metadata.entry_points(group="pytest11"))
    or bool(os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD")),
    reason="no pytest11 entry point to load: xpnn is not installed (source tree on "
    "PYTHONPATH), or PYTEST_DISABLE_PLUGIN_AUTOLOAD is set",
)
@pytest.mark.parametrize("explicit", [False, True], ids=["entry-point", "entry-point-and-p"])
def test_the_plugin_is_registered_once(pytester: pytest.Pytester, explicit: bool) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(
        """
        import sys

        def pytest_report_header(config):
            module = sys.modules["xpnn.testing.plugin"]
            names = [n for n, p in config.pluginmanager.list_name_plugin() if p is module]
            return [f"registered as {names}"]
        """
    )
    pytester.makepyfile(SIMPLE_TEST)
    args = ["-p", PLUGIN] if explicit else []
    result = pytester.runpytest_subprocess(*args, "--xp-backend", "numpy")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["registered as ['xpnn.testing.plugin']"])


# -- selection: explicit and missing fails, implicit and missing skips ---------


def test_implicitly_missing_pairs_are_skipped_with_the_reason(pytester: pytest.Pytester) -> None:
    fake_matrix(pytester)
    pytester.makepyfile(SIMPLE_TEST)
    result = pytester.runpytest("--xpnn", "-rs")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines_random(
        [
            "SKIPPED * numpy-imaginary: not present (False is false)",
            "SKIPPED * ghost is not installed (No module named *); "
            "install it with pip install ghost-arrays>=1",
        ]
    )


@pytest.mark.parametrize("source", ["--xp-backend", "XPNN_BACKEND"])
def test_an_asked_for_backend_that_is_missing_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    fake_matrix(pytester)
    pytester.makepyfile(SIMPLE_TEST)
    if source == "XPNN_BACKEND":
        monkeypatch.setenv(source, "numpy,ghost")
        result = pytester.runpytest("-rs")
    else:
        result = pytester.runpytest(f"{source}=numpy,ghost", "-rs")
    result.assert_outcomes(passed=1, skipped=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "ghost is not installed (No module named *); install it with "
            f"pip install ghost-arrays>=1 (it was asked for with {source}; *"
        ]
    )
    # A device of an asked-for backend that was not itself asked for skips.
    result.stdout.fnmatch_lines(["SKIPPED * numpy-imaginary: not present*"])


def test_an_asked_for_device_that_is_missing_fails(pytester: pytest.Pytester) -> None:
    fake_matrix(pytester)
    pytester.makepyfile(SIMPLE_TEST)
    result = pytester.runpytest("--xp-device=imaginary")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["numpy-imaginary: not present (False is false); * (device imaginary was asked for *"]
    )


def test_require_devices_turns_every_missing_pair_into_a_failure(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_matrix(pytester)
    pytester.makepyfile(SIMPLE_TEST)
    monkeypatch.setenv("XPNN_REQUIRE_DEVICES", "1")
    result = pytester.runpytest("--xpnn")
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(["*XPNN_REQUIRE_DEVICES=1 makes a missing backend*"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--xp-backend=numpy,nympy"],
            "ERROR: --xp-backend: unknown backend 'nympy'; the matrix has numpy, ghost",
        ),
        (
            ["--xp-backend=numpy", "--xp-device=cuda"],
            "ERROR: --xp-device: unknown device 'cuda'; backend numpy has cpu, imaginary",
        ),
    ],
)
def test_unknown_names_are_a_usage_error(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    fake_matrix(pytester)
    pytester.makepyfile(SIMPLE_TEST)
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_the_shipped_matrix_asked_for_a_missing_library(pytester: pytest.Pytester) -> None:
    missing = next(
        (
            spec
            for spec in SHIPPED.values()
            if not all(importlib.util.find_spec(m.split(".")[0]) for m in spec.imports)
        ),
        None,
    )
    if missing is None:
        pytest.skip("every backend of the matrix is installed here")
    pytester.makeini(INI)
    pytester.makepyfile(SIMPLE_TEST)
    result = pytester.runpytest(f"--xp-backend={missing.name}")
    result.assert_outcomes(errors=len(missing.devices))
    result.stdout.fnmatch_lines(
        [f"{missing.name} is not installed *pip install {' '.join(missing.requirements)} (it *"]
    )


def test_the_shipped_matrix_asked_for_a_gpu_that_is_not_there(pytester: pytest.Pytester) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    pytester.makeini(INI)
    pytester.makepyfile(SIMPLE_TEST)
    result = pytester.runpytest_subprocess("--xp-backend=torch", "--xp-device=cuda")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "torch-cuda: not present (torch.cuda.is_available() is false); torch-cuda needs "
            "an NVIDIA GPU* and a build of torch for it: pip install torch* (device cuda was "
            "asked for with --xp-device; *"
        ]
    )


# -- markers -------------------------------------------------------------------

MARKED = """
import pytest


@pytest.mark.skip_xp_backends("numpy", reason="numpy cannot")
def test_skipped_on_numpy(xp_case):
    assert xp_case.backend != "numpy"


@pytest.mark.skip_xp_backends(devices=["device2", "no_float64"], reason="not there")
def test_skipped_on_two_devices(xp_case):
    assert xp_case.device_name not in ("device2", "no_float64")


@pytest.mark.xfail_xp_backends("array_api_strict", devices="device1", reason="known bug")
def test_fails_on_device1(xp_case):
    assert xp_case.id != "array_api_strict-device1"


@pytest.mark.xfail_xp_backends("numpy", reason="not strict", strict=False)
def test_may_pass_on_numpy(xp):
    pass
"""


def test_markers_skip_and_xfail_per_backend_and_device(pytester: pytest.Pytester) -> None:
    fake_matrix(pytester, "array_api_strict")
    pytester.makepyfile(MARKED)
    devices = "cpu,CPU_DEVICE,device1,device2,no_float64"
    result = pytester.runpytest(
        "--xp-backend=numpy,array_api_strict", f"--xp-device={devices}", "-v", "-rsx"
    )
    found = outcomes(result)
    assert found["numpy-cpu"] == {
        "test_skipped_on_numpy[numpy-cpu]": "SKIPPED",
        "test_skipped_on_two_devices[numpy-cpu]": "PASSED",
        "test_fails_on_device1[numpy-cpu]": "PASSED",
        "test_may_pass_on_numpy[numpy-cpu]": "XPASS",
    }
    assert found["array_api_strict-device1"]["test_fails_on_device1[array_api_strict-device1]"] == (
        "XFAIL"
    )
    assert found["array_api_strict-device2"][
        "test_skipped_on_two_devices[array_api_strict-device2]"
    ] == ("SKIPPED")
    result.stdout.fnmatch_lines_random(
        ["SKIPPED * numpy cannot", "SKIPPED * not there", "XFAIL * known bug"]
    )
    result.assert_outcomes(passed=15, skipped=3, xfailed=1, xpassed=1)


@pytest.mark.parametrize(
    ("marker", "problem"),
    [
        ('skip_xp_backends("numpy")', "reason='...' is required*"),
        ('skip_xp_backends("nympy", reason="r")', "unknown backend 'nympy'; the matrix has *"),
        ('xfail_xp_backends("numpy", device="cpu", reason="r")', "unknown argument device; *"),
        ('xfail_xp_backends("numpy", devices=["gpu"], reason="r")', "unknown device 'gpu'; *"),
        ('skip_xp_backends(reason="r")', "name at least one backend, or devices=*"),
    ],
)
def test_marker_mistakes_are_usage_errors(
    pytester: pytest.Pytester, marker: str, problem: str
) -> None:
    fake_matrix(pytester)
    pytester.makepyfile(f"import pytest\n\n@pytest.mark.{marker}\n{SIMPLE_TEST}")
    result = pytester.runpytest("--xpnn")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    name = marker.split("(")[0]
    result.stderr.fnmatch_lines([f"ERROR: *::test_one*: @pytest.mark.{name}: {problem}"])


def test_a_marker_on_a_test_without_xp_is_a_usage_error(pytester: pytest.Pytester) -> None:
    fake_matrix(pytester)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.skip_xp_backends("numpy", reason="r")
        def test_plain():
            pass
        """
    )
    result = pytester.runpytest("--xpnn")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*::test_plain: @pytest.mark.skip_xp_backends: the test does not*"]
    )


# -- the matrix it reads -------------------------------------------------------


def test_the_default_matrix_is_the_one_in_backends() -> None:
    """In the source tree it is ``backends/``; installed, the copy in the wheel."""
    source = Path(__file__).resolve().parents[2] / "backends"
    packaged = Path(xpnn.testing.__file__).with_name("backends")
    assert default_directory() == (packaged if packaged.is_dir() else source)
    assert load_matrix() == load_matrix(source)

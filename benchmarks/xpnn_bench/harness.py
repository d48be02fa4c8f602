"""Backends, interleaved timing and the machine record of the benchmarks.

Every comparison times all of its variants in one process, interleaved: the
repetition loop is outside, the variant loop inside, and the order of the
variants rotates from one repetition to the next, so that drift (clock
boost, a neighbour's load, a warming cache) falls on every variant alike.
One sample is a batch of back-to-back calls sized to last about
``Plan.sample_s``; each call ends with the backend's synchronisation, inside
the timed region. The summary of a variant is the median seconds per call
over its samples.
"""

from __future__ import annotations

import gc
import importlib
import importlib.metadata
import importlib.util
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from xpnn.testing.matrix import (
    BackendSpec,
    DeviceSpec,
    Unavailable,
    default_directory,
    host_has_nvidia_gpu,
    load_matrix,
    resolve,
)

ROOT = Path(__file__).resolve().parents[2]

Variant = Callable[[], Any]
Sync = Callable[[Any], None]


def matrix() -> dict[str, BackendSpec]:
    """Return the backend matrix of the checkout (or of the installed wheel)."""
    folder = ROOT / "backends"
    return load_matrix(folder if folder.is_dir() else default_directory())


def cores() -> int:
    """Return the number of CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# -- backends ------------------------------------------------------------------


def _no_sync(outputs: Any) -> None:
    return None


@dataclass
class Backend:
    """One backend-device pair of the matrix, imported and ready."""

    name: str
    device_name: str
    xp: Any
    device: Any
    gpu: bool
    sync: Sync = _no_sync

    @property
    def label(self) -> str:
        """Return ``backend-device``, the name of the pair in the matrix."""
        return f"{self.name}-{self.device_name}"

    def dtype(self, name: str) -> Any:
        """Return the namespace's dtype called ``name``."""
        return getattr(self.xp, name)

    def asarray(self, host: np.ndarray, dtype: str | None = None) -> Any:
        """Copy a host array to the device, in ``dtype`` when given."""
        kind = self.dtype(dtype) if dtype is not None else None
        return self.xp.asarray(host, dtype=kind, device=self.device)

    def labels(self, host: np.ndarray) -> Any:
        """Copy integer class labels to the device, in the default index dtype."""
        info = self.xp.__array_namespace_info__()
        kind = info.default_dtypes(device=self.device)["indexing"]
        return self.xp.asarray(host, dtype=kind, device=self.device)


def _sync_for(name: str, gpu: bool) -> Sync:
    if name == "jax":
        import jax

        def sync_jax(outputs: Any) -> None:
            jax.block_until_ready(outputs)

        return sync_jax
    if name == "dask":
        import dask

        def sync_dask(outputs: Any) -> None:
            dask.compute(*outputs)

        return sync_dask
    if name == "torch" and gpu:
        import torch

        def sync_cuda(outputs: Any) -> None:
            torch.cuda.synchronize()

        return sync_cuda
    if name == "cupy":
        import cupy

        def sync_cupy(outputs: Any) -> None:
            cupy.cuda.get_current_stream().synchronize()

        return sync_cupy
    return _no_sync


def _installed(spec: BackendSpec) -> bool:
    return all(importlib.util.find_spec(module.split(".")[0]) for module in spec.imports[:1])


def _devices(spec: BackendSpec) -> list[DeviceSpec]:
    # array_api_strict's other devices are the same CPU under other names.
    if spec.name == "array_api_strict":
        return list(spec.devices[:1])
    return list(spec.devices)


def select(names: str | None) -> tuple[list[Backend], list[str]]:
    """Import the backends asked for and find their devices.

    Parameters
    ----------
    names : str or None
        Comma-separated matrix names: ``numpy``, ``torch`` (all of its
        devices that are present) or ``torch-cuda`` (one device). ``None``
        takes every installed backend of the matrix, GPUs where present.

    Returns
    -------
    backends, notes
        The pairs to measure, and one line for each one left out.

    Raises
    ------
    ValueError
        For a name the matrix does not know, or a backend asked for by name
        that is not installed.
    """
    known = matrix()
    wanted: list[tuple[BackendSpec, list[DeviceSpec], bool]] = []
    if names is None:
        wanted = [(spec, _devices(spec), False) for spec in known.values() if _installed(spec)]
    else:
        for item in (part.strip() for part in names.split(",")):
            if not item:
                continue
            if item in known:
                wanted.append((known[item], _devices(known[item]), False))
                continue
            backend, _, device = item.partition("-")
            if backend not in known:
                raise ValueError(f"unknown backend {item!r}; the matrix has {', '.join(known)}")
            try:
                wanted.append((known[backend], [known[backend].device(device)], True))
            except KeyError as exc:
                raise ValueError(str(exc.args[0])) from None
    selected: list[Backend] = []
    notes: list[str] = []
    for spec, devices, explicit in wanted:
        for device in devices:
            if device.gpu and not host_has_nvidia_gpu() and not explicit:
                notes.append(f"{spec.name}-{device.name}: no NVIDIA GPU on this machine")
                continue
            try:
                xp, where = resolve(spec, device)
            except Unavailable as exc:
                if names is not None and ("not installed" in str(exc) or explicit):
                    raise ValueError(str(exc)) from None
                notes.append(str(exc))
                continue
            if spec.name == "torch":
                import torch

                torch.set_num_threads(cores())
            selected.append(
                Backend(
                    spec.name, device.name, xp, where, device.gpu, _sync_for(spec.name, device.gpu)
                )
            )
    return selected, notes


# -- timing --------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How long to time one comparison.

    Attributes
    ----------
    budget_s : float
        Seconds of timed repetitions, all variants together; at least
        ``min_reps`` repetitions run whatever it costs.
    min_reps, max_reps : int
        Bounds on the number of repetitions (samples per variant).
    sample_s : float
        Calls are batched until one sample lasts about this long.
    warmup_s : float
        Seconds of untimed calls per variant before timing, after a first
        call (only that one if it takes more than a second).
    """

    budget_s: float
    min_reps: int
    max_reps: int
    sample_s: float
    warmup_s: float

    def scaled(self, factor: float) -> Plan:
        """Return the plan with ``factor`` times the time budget."""
        return Plan(
            self.budget_s * factor, self.min_reps, self.max_reps, self.sample_s, self.warmup_s
        )


@dataclass
class Timing:
    """The summary of one variant: seconds per call."""

    median: float
    p25: float
    p75: float
    minimum: float
    reps: int
    number: int
    samples: list[float] = field(repr=False, default_factory=list)

    def as_dict(self) -> dict[str, float | int]:
        """Return the summary for ``results.json``, without the samples."""
        return {
            "median_s": self.median,
            "p25_s": self.p25,
            "p75_s": self.p75,
            "min_s": self.minimum,
            "reps": self.reps,
            "calls_per_sample": self.number,
        }


def _warm_up(function: Variant, sync: Sync, plan: Plan) -> float:
    """Call ``function`` untimed; return the fastest call seen, in seconds.

    The first call (which may initialise the library: autograd's engine, a
    JAX compilation) is followed by at least two more and by ``warmup_s``
    seconds of calls, unless it took more than a second.
    """
    began = time.perf_counter()
    sync(function())
    fastest = time.perf_counter() - began
    if fastest > 1.0:
        return fastest
    start = time.perf_counter()
    calls = 0
    while calls < 2 or time.perf_counter() - start < plan.warmup_s:
        began = time.perf_counter()
        sync(function())
        fastest = min(fastest, time.perf_counter() - began)
        calls += 1
    return fastest


def interleaved(variants: dict[str, Variant], sync: Sync, plan: Plan) -> dict[str, Timing]:
    """Time every variant interleaved with the others; see the module notes."""
    names = list(variants)
    numbers = {}
    for name in names:
        per_call = _warm_up(variants[name], sync, plan)
        numbers[name] = max(1, min(100_000, int(plan.sample_s / max(per_call, 1e-9))))
    samples: dict[str, list[float]] = {name: [] for name in names}
    # Free the young garbage now; no collection runs while timing. (A full
    # collection walks every object of torch and JAX: a tenth of a second.)
    gc.collect(1)
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        rep = 0
        while rep < plan.max_reps and (
            rep < plan.min_reps or time.perf_counter() - start < plan.budget_s
        ):
            shift = rep % len(names)
            for name in names[shift:] + names[:shift]:
                function, number = variants[name], numbers[name]
                began = time.perf_counter()
                for _ in range(number):
                    sync(function())
                samples[name].append((time.perf_counter() - began) / number)
            rep += 1
    finally:
        if enabled:
            gc.enable()
    return {name: _summary(samples[name], numbers[name]) for name in names}


def _summary(samples: list[float], number: int) -> Timing:
    if len(samples) >= 2:
        p25, _, p75 = statistics.quantiles(samples, n=4, method="inclusive")
    else:
        p25 = p75 = samples[0]
    return Timing(
        median=statistics.median(samples),
        p25=p25,
        p75=p75,
        minimum=min(samples),
        reps=len(samples),
        number=number,
        samples=samples,
    )


def ratios(timings: dict[str, Timing], of: str = "xpnn") -> dict[str, float]:
    """Return ``median(of) / median(other)`` for every other variant."""
    return {
        f"{of}/{name}": timings[of].median / timing.median
        for name, timing in timings.items()
        if name != of
    }


def paired_ratios(timings: dict[str, Timing], of: str = "xpnn") -> dict[str, float]:
    """Return the median over repetitions of ``sample(of) / sample(other)``.

    The samples of one repetition were taken moments apart, so this ratio
    cancels slow drift even better than the ratio of medians; a large gap
    between the two flags a noisy comparison.
    """
    ours = timings[of].samples
    return {
        f"{of}/{name}": statistics.median(a / b for a, b in zip(ours, timing.samples, strict=True))
        for name, timing in timings.items()
        if name != of
    }


# -- the machine ---------------------------------------------------------------

_DISTRIBUTIONS = (
    "numpy",
    "torch",
    "jax",
    "jaxlib",
    "dask",
    "array-api-strict",
    "array-api-compat",
    "cupy-cuda12x",
    "matplotlib",
)
_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "XLA_FLAGS",
    "JAX_ENABLE_X64",
    "JAX_DEFAULT_MATMUL_PRECISION",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _gpus(backends: Iterable[Backend]) -> list[str]:
    names: list[str] = []
    for backend in backends:
        if backend.name == "torch" and backend.gpu:
            import torch

            names.append(torch.cuda.get_device_name(backend.device))
        elif backend.name == "cupy":
            import cupy

            props = cupy.cuda.runtime.getDeviceProperties(backend.device.id)
            name = props["name"]
            names.append(name.decode() if isinstance(name, bytes) else str(name))
        elif backend.name == "jax" and backend.gpu:
            names.append(str(backend.device.device_kind))
    return sorted(set(names))


def _blas() -> list[dict[str, Any]]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("user_api", "internal_api", "num_threads", "version", "threading_layer")
    return [{k: pool.get(k) for k in keep if k in pool} for pool in threadpool_info()]


def machine(backends: Iterable[Backend]) -> dict[str, Any]:
    """Describe the machine, the library versions and the thread settings."""
    import xpnn

    backends = list(backends)
    versions: dict[str, str | None] = {"xpnn": xpnn.__version__}
    versions.update({name: _version(name) for name in _DISTRIBUTIONS})
    threads: dict[str, Any] = {
        "cores": cores(),
        "environment": {k: os.environ[k] for k in _THREAD_VARIABLES if k in os.environ},
    }
    if "torch" in sys.modules:
        import torch

        threads["torch_num_threads"] = torch.get_num_threads()
        threads["torch_num_interop_threads"] = torch.get_num_interop_threads()
    threads["threadpools"] = _blas()
    return {
        "cpu": _cpu_model(),
        "cores": cores(),
        "gpus": _gpus(backends),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {k: v for k, v in versions.items() if v is not None},
        "threads": threads,
    }


def host_rng(seed: int = 0) -> np.random.Generator:
    """Return the generator every benchmark draws its inputs from."""
    return np.random.default_rng(seed)

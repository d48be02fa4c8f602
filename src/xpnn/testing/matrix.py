"""Read the backend matrix described in ``backends/*.toml``.

This module uses the standard library only, so ``noxfile.py`` can load it by
path before anything is installed, and the test suite imports it as part of
xpnn. It is the one reader of the matrix; the data is written once, in
``backends/`` (shipped inside the wheel as ``xpnn/testing/backends``).

Run as a script it probes one entry in the current interpreter::

    python -m xpnn.testing.matrix probe torch cuda

which prints ``available`` (exit 0) or ``unavailable: <reason>`` (exit 3).
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "UNAVAILABLE_EXIT",
    "BackendSpec",
    "DeviceSpec",
    "NotInstalled",
    "NotPresent",
    "Unavailable",
    "default_directory",
    "host_has_nvidia_gpu",
    "install_hint",
    "load_matrix",
    "resolve",
]

#: Exit status of ``python -m xpnn.testing.matrix probe`` for an entry that
#: is not installed or not present (nox skips the session on it).
UNAVAILABLE_EXIT = 3


@dataclass(frozen=True)
class DeviceSpec:
    """One device of a backend, as its TOML table describes it."""

    name: str
    device: str
    probe: str | None = None
    gpu: bool = False
    requirements: tuple[str, ...] = ()


@dataclass(frozen=True)
class BackendSpec:
    """One backend: how to install it, import it, and find its devices."""

    name: str
    summary: str
    imports: tuple[str, ...]
    namespace: str
    requirements: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    devices: tuple[DeviceSpec, ...] = ()

    def device(self, name: str) -> DeviceSpec:
        """Return the device called ``name``; ``KeyError`` lists the known."""
        for spec in self.devices:
            if spec.name == name:
                return spec
        known = ", ".join(d.name for d in self.devices)
        raise KeyError(f"backend {self.name!r} has no device {name!r}; it has {known}")


class Unavailable(Exception):
    """A backend is not installed, or one of its devices is not present."""


class NotInstalled(Unavailable):
    """A backend's library cannot be imported."""


class NotPresent(Unavailable):
    """A backend is installed but one of its devices cannot be used."""


def default_directory() -> Path:
    """Where the matrix lives: inside the wheel, else the source checkout."""
    packaged = Path(__file__).with_name("backends")
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "backends"


def load_matrix(directory: str | os.PathLike[str] | None = None) -> dict[str, BackendSpec]:
    """Load every ``*.toml`` file of the matrix, in a stable order.

    Parameters
    ----------
    directory : path, optional
        Folder holding the TOML files; :func:`default_directory` if omitted.

    Returns
    -------
    dict of str to BackendSpec
        Keyed by backend name, numpy first, then alphabetical.
    """
    folder = Path(directory) if directory is not None else default_directory()
    backends = []
    for path in sorted(folder.glob("*.toml")):
        with path.open("rb") as handle:
            data = tomllib.load(handle)
        devices = tuple(
            DeviceSpec(
                name=d["name"],
                device=d["device"],
                probe=d.get("probe"),
                gpu=bool(d.get("gpu", False)),
                requirements=tuple(d.get("requirements", ())),
            )
            for d in data["devices"]
        )
        backends.append(
            BackendSpec(
                name=data["name"],
                summary=data.get("summary", ""),
                imports=tuple(data["imports"]),
                namespace=data["namespace"],
                requirements=tuple(data.get("requirements", ())),
                env={k: str(v) for k, v in data.get("env", {}).items()},
                devices=devices,
            )
        )
    if not backends:
        raise FileNotFoundError(f"no backend files (*.toml) in {folder}")
    backends.sort(key=lambda b: (b.name != "numpy", b.name))
    return {b.name: b for b in backends}


def host_has_nvidia_gpu() -> bool:
    """Tell, without importing any library, whether an NVIDIA GPU is here."""
    return Path("/proc/driver/nvidia/gpus").is_dir() or shutil.which("nvidia-smi") is not None


def _modules(backend: BackendSpec) -> dict[str, Any]:
    for key, value in backend.env.items():
        os.environ.setdefault(key, value)
    names: dict[str, Any] = {}
    for module in backend.imports:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise NotInstalled(
                f"{backend.name} is not installed ({exc}); install it with "
                f"pip install {' '.join(backend.requirements) or module}"
            ) from None
        top = module.split(".")[0]
        names[top] = sys.modules[top]
    return names


def resolve(backend: BackendSpec, device: DeviceSpec) -> tuple[Any, Any]:
    """Import a backend and find one of its devices.

    Returns
    -------
    namespace, device
        The namespace the tests use as ``xp`` and the device object.

    Raises
    ------
    NotInstalled
        With a one-line reason and the ``pip install`` line, if the library
        cannot be imported.
    NotPresent
        With a one-line reason, if the device cannot be used.
    """
    names = _modules(backend)
    where = f"{backend.name}-{device.name}"
    try:
        if device.probe is not None and not eval(device.probe, names):
            raise NotPresent(f"{where}: not present ({device.probe} is false)")
        found = eval(device.device, names)
        xp = importlib.import_module(backend.namespace)
        # Some libraries import fine and fail at the first array (CuPy
        # without a GPU), so make one.
        xp.zeros(1, device=found)
    except Unavailable:
        raise
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise NotPresent(f"{where}: not present ({type(exc).__name__}: {message})") from None
    return xp, found


def install_hint(backend: BackendSpec, device: DeviceSpec) -> str:
    """Say what a device needs, for the message of a device that is missing."""
    where = f"{backend.name}-{device.name}"
    requirements = [*backend.requirements, *device.requirements]
    install = f"pip install {' '.join(requirements)}" if requirements else ""
    if device.gpu:
        found = "" if host_has_nvidia_gpu() else " (none found on this machine)"
        build = f": {install}" if install else ""
        return f"{where} needs an NVIDIA GPU{found} and a build of {backend.name} for it{build}"
    if device.requirements:
        return f"{where} needs {install}"
    return f"{where} needs what its probe checks: {device.probe or device.device}"


def _main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[1] != "probe":
        print("usage: python -m xpnn.testing.matrix probe BACKEND DEVICE", file=sys.stderr)
        return 2
    matrix = load_matrix(os.environ.get("XPNN_MATRIX_DIR"))
    backend = matrix[argv[2]]
    try:
        resolve(backend, backend.device(argv[3]))
    except Unavailable as exc:
        print(f"unavailable: {exc}")
        return UNAVAILABLE_EXIT
    print("available")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))

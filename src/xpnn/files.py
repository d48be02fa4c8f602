"""Writing files atomically: a complete new file or the old one, never half of one.

:func:`atomic_write` is how xpnn writes every file it produces (checkpoints,
ONNX exports, the files of ``xpnn train``); :func:`sync_directory` makes
renames into a folder durable. It imports nothing from the rest of xpnn, so any module may
use it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from typing import IO

__all__ = ["atomic_write", "sync_directory"]


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path``.

    The data are flushed to disk before the rename, and the rename after
    it, so ``path`` holds either its previous content or the complete new
    file, even if the process dies midway. On any failure, interrupts
    included, the temporary file is removed and ``path`` is left as it was.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create or replace. Its directory must exist.
    write : callable
        ``write(file)`` writes the whole content to ``file``, a binary file
        open for writing at its start. Its return value is ignored.

    Raises
    ------
    OSError
        If the temporary file cannot be created, written, synced or renamed
        (``FileNotFoundError`` for a missing directory, ...).
    Exception
        Whatever ``write`` raises, after the temporary file is removed.

    Notes
    -----
    The temporary file is hidden and never ends in the target's name
    (``.<name>.<random hex>.tmp``), so a tool looking for ``*.safetensors``
    never takes the leftover of a killed process for a real file. It gets
    the permissions the umask gives any new file. A symbolic link at
    ``path`` is replaced by the file, not written through. Where the
    platform allows, the directory is synced after the rename, so that the
    rename itself survives a power cut.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from xpnn.files import atomic_write
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
    >>> atomic_write(path, lambda file: file.write(b"all or nothing"))
    >>> path.read_bytes()
    b'all or nothing'
    """
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    descriptor, temporary = _create_temporary(directory, os.path.basename(target))
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    sync_directory(directory)


def _create_temporary(directory: str, base: str) -> tuple[int, str]:
    # os.open with mode 0o666 lets the umask decide permissions, as for any
    # new file (tempfile.mkstemp would force 0o600).
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temporary = os.path.join(directory, f".{base}.{secrets.token_hex(8)}.tmp")
        try:
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file next to {base!r} in {directory!r}")


def sync_directory(directory: str | os.PathLike[str]) -> None:
    """Flush ``directory``'s entries to disk, so that renames into it survive a power cut.

    Call it after moving files into ``directory`` with :func:`os.replace`;
    :func:`atomic_write` calls it itself. Where a directory cannot be
    opened (Windows), it does nothing: the files' data are on disk already.

    Parameters
    ----------
    directory : str or os.PathLike
        An existing folder.
    """
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)

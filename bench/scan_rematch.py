"""Re-matching images after a vulnerability database change, at scale (synthetic rows).

    .venv/bin/python -m bench.scan_rematch [--images 10000] [--database-url URL]

Writes, with set-based SQL, what scanning ``--images`` images would have stored: ``--layers``
shared base layers of ``--packages`` Debian packages each (drawn from ``--sources`` source
packages) plus one layer of its own per image (2 packages), their ``scan_images`` and
``scan_image_packages`` rows (no finding yet). Then, through dtr's own code: imports a feed
(``vulnimport.import_advisories``: ``--vulnerable`` of the sources get 20 advisories each, half of
them affecting the installed versions) and times ``rematch.rematch`` (every image touched: the
first import), then re-imports with 1% of those packages' advisories changed and times the re-match
again (the daily case). Also times ``matcher.match`` of one image's packages. Prints the times,
the findings stored and the peak RSS. Without ``--database-url`` an embedded PostgreSQL is started
in a temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench.targets import databases
from dtr.db.engine import asyncpg_url
from dtr.db.migrate import upgrade
from dtr.scanning import matcher, rematch, vulndb, vulnimport
from dtr.scanning.types import Advisory, Distribution, Package

PER_SOURCE = 20


def rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def populate(engine: AsyncEngine, images: int, layers: int, packages: int, sources: int) -> None:
    """The rows of ``images`` scanned images (see the module docstring)."""
    params = {"images": images, "layers": layers, "packages": packages, "sources": sources}
    async with engine.begin() as conn:
        for sql in (
            # base layers b0..; each image's own layer o0..
            """INSERT INTO blobs (digest, size) SELECT 'sha256:base' || l, 1 FROM generate_series(0, :layers - 1) l
               UNION ALL SELECT 'sha256:own' || i, 1 FROM generate_series(0, :images - 1) i""",
            """INSERT INTO scan_layers (digest, indexer_version, status, distribution, package_dbs)
               SELECT digest, 1, 'indexed', CASE WHEN digest LIKE 'sha256:base%'
                   THEN '{"id": "debian", "version_id": "12"}'::jsonb END, '{var/lib/dpkg/status}' FROM blobs""",
            # package j of base layer l: source (l * 7 + j * 13) % sources, version 1.(j % 10)-1
            """INSERT INTO scan_packages (layer_digest, ecosystem, name, version, source_name, source_version,
                                          location)
               SELECT 'sha256:base' || l, 'deb', 'bin' || l || '-' || j, '1.' || (j % 10) || '-1',
                      'src' || ((l * 7 + j * 13) % :sources), '1.' || (j % 10) || '-1', 'var/lib/dpkg/status'
               FROM generate_series(0, :layers - 1) l, generate_series(0, :packages - 1) j""",
            """INSERT INTO scan_packages (layer_digest, ecosystem, name, version, source_name, source_version,
                                          location)
               SELECT 'sha256:own' || i, 'deb', 'app' || i || '-' || j, '2.0-1', 'app' || i, '2.0-1',
                      'var/lib/dpkg/status'
               FROM generate_series(0, :images - 1) i, generate_series(0, 1) j""",
            """INSERT INTO scan_images (digest, status, layers, os, architecture, distribution, scanned_at,
                                        check_completed_at, feed_versions)
               SELECT 'sha256:image' || i, 6, ARRAY['sha256:base' || (i % :layers), 'sha256:own' || i], 'linux',
                      'amd64', '{"id": "debian", "version_id": "12"}', now(), now(), '{}'
               FROM generate_series(0, :images - 1) i""",
            """INSERT INTO scan_image_packages (image_digest, package_id, layer_digest, layer_index, namespace,
                                                match_name, match_version)
               SELECT s.digest, p.id, p.layer_digest, CASE WHEN p.layer_digest = s.layers[1] THEN 0 ELSE 1 END,
                      'debian:12', p.source_name, p.source_version
               FROM scan_images s JOIN scan_packages p ON p.layer_digest = ANY(s.layers)""",
        ):
            await conn.execute(text(sql), params)
        await conn.execute(text("ANALYZE"))


def advisories(vulnerable: int, sources: int, changed_every: int = 0) -> Iterator[Advisory]:
    """``PER_SOURCE`` advisories of each of ``vulnerable`` sources, fixed in 1.k-2 (affecting the
    installed 1.j-1 when k >= j); with ``changed_every``, every such source's fixes are other ones."""
    step = max(1, sources // vulnerable)
    for n, s in enumerate(range(0, sources, step)):
        if n >= vulnerable:
            break
        bump = changed_every and n % changed_every == 0
        for k in range(PER_SOURCE):
            yield Advisory(vuln_id=f"CVE-{2000 + k}-{s:07d}", namespace="debian:12", package=f"src{s}",
                           state="fixed", fixed=f"1.{k // 2}-{3 if bump else 2}", severity="medium",
                           summary=f"synthetic vulnerability {k} of src{s}")


async def count(engine: AsyncEngine, sql: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(sql))).scalar_one())


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="dtr-rematch-bench-") as tmp, \
            databases(args.database_url, Path(tmp), "rematch_bench") as (url,):
        engine = create_async_engine(asyncpg_url(url))
        try:
            await upgrade(engine)
            t0 = time.perf_counter()
            await populate(engine, args.images, args.layers, args.packages, args.sources)
            rows = await count(engine, "SELECT count(*) FROM scan_image_packages")
            print(f"setup: {args.images} images, {rows} image packages in {time.perf_counter() - t0:.1f}s")

            one = [(("debian:12", f"src{(j * 13) % args.sources}", f"1.{j % 10}-1"),
                    Package("deb", f"bin{j}", f"1.{j % 10}-1", f"src{(j * 13) % args.sources}", f"1.{j % 10}-1"))
                   for j in range(args.packages)]
            assert matcher.match_key(Distribution("debian", "12"), one[0][1]) == one[0][0]
            for label, changed_every, checksum in (("first import", 0, "c1"),
                                                   ("1% of the packages changed", 100, "c2")):
                r = await vulnimport.import_advisories(
                    engine, "bench", lambda ce=changed_every: advisories(args.vulnerable, args.sources, ce),  # type: ignore[misc]
                    checksum=checksum)
                t0 = time.perf_counter()
                images = await rematch.rematch(engine, lambda _: None)
                took = time.perf_counter() - t0
                findings = await count(engine, "SELECT count(*) FROM scan_image_vulns")
                print(f"{label}: {r.records} advisories, {r.changed} packages changed -> re-matched {images} images "
                      f"in {took:.1f}s ({images / took:.0f} images/s); {findings} findings stored; "
                      f"max RSS {rss():.0f} MiB")
            async with engine.connect() as conn:
                adv = await vulndb.advisories_for(conn, sorted({(k[0], k[1]) for k, _ in one}))
            t0 = time.perf_counter()
            for _ in range(10):
                found = matcher.match(one, adv)
            print(f"match one image's {len(one)} packages: {(time.perf_counter() - t0) / 10 * 1000:.1f} ms "
                  f"({len(found)} findings)")
        finally:
            await engine.dispose()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=10_000)
    p.add_argument("--layers", type=int, default=100, help="shared base layers")
    p.add_argument("--packages", type=int, default=300, help="packages per base layer")
    p.add_argument("--sources", type=int, default=5000, help="source packages the packages come from")
    p.add_argument("--vulnerable", type=int, default=250, help="sources with advisories")
    p.add_argument("--database-url")
    asyncio.run(main(p.parse_args()))

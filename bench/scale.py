"""Scale: how dtr's listings, pulls, pushes and maintenance commands grow with the metadata.

    .venv/bin/python -m bench.scale [--sizes 10000,100000,1000000] [--database-url URL] [--no-save]

For each size N (manifests; repositories = N/10) a fresh database gets the metadata a push would
have written, seeded straight into Postgres with COPY: ``repositories``, ``blobs`` (two real
blobs in storage, a config and a layer, that every manifest references), ``repository_blobs``,
``manifests`` (valid OCI image manifests, each distinct by an annotation, so GET serves them),
``manifest_references`` and ``tags``. One repository, ``scale/big``, holds N/10 manifests (its tag
list is the one paged); the others hold about 9 each. Every tenth manifest is untagged (what GC
collects). Then, against a real ``dtr serve`` (auth off, filesystem storage), it measures:

- catalog and tag-list pages (``n=100``; the first page and a deep one with ``last=`` 90% in),
  the median of ``--repeat`` sequential requests;
- manifest GET by tag, ``--concurrency`` clients for ``--get-seconds`` (requests/s, p50, p99):
  100 tags at random after they are in dtr's manifest cache, and distinct tags at random over all
  repositories, each requested once (``--cold-requests``), so each is a cache miss;
- a push of a small image (config, 1 KiB layer, manifest), the median of 5;
- ``dtr gc --local --dry-run`` and ``dtr gc --local`` (grace period 0), ``dtr fsck --json`` and
  ``dtr backup FILE``: wall seconds of the command, Python start included (the ``dtr jobs list``
  row is that start-up cost alone). A command this checkout lacks is reported "not available".

The table (one column per size, then the growth factor per 10x) is printed and written to
``bench/results/scale-<stamp>.md``. Flags: any step growing faster than linearly (> 12 per 10x),
and pages, pulls and pushes that are not flat (> 2 per 10x, or requests/s halving).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import hashlib
import itertools
import json
import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench.client import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, Registry, seed_small_image, sha256
from bench.ops import Postgres, asyncpg_dsn, dtr_cli, has_command, header, stamp
from bench.workloads import cleanup_dir
from dtr.registry.names import blob_path
from tests.servers import DtrProcess, create_database

BENCH = Path(__file__).resolve().parent
PAGE = 100
ANNOTATION = "org.example.dtr-bench.n"


@dataclasses.dataclass
class Step:
    """One row: ``kind`` says what growth is expected: ``flat`` (pages, pulls, pushes), ``rate``
    (higher is better, flat expected), ``linear`` (at most linear), ``info`` (not judged)."""

    name: str
    unit: str
    kind: str
    values: dict[int, float | None] = dataclasses.field(default_factory=dict)
    notes: dict[int, str] = dataclasses.field(default_factory=dict)


class Layout:
    """Where seeded manifest ``i`` (1..n) lives and what it is tagged."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.repos = max(2, n // 10)
        self.big = max(1, n // 10)

    def repo_id(self, i: int) -> int:
        return 1 if i <= self.big else 2 + i % (self.repos - 1)

    def repo_name(self, rid: int) -> str:
        return "scale/big" if rid == 1 else f"scale/r{rid:07d}"

    @staticmethod
    def tag(i: int) -> str | None:
        """Every tenth manifest is untagged: garbage for GC."""
        return None if i % 10 == 0 else f"t{i:08d}"

    def tagged(self, rng: random.Random, k: int) -> list[tuple[str, str]]:
        """``k`` distinct tagged (repository, tag) pairs, at random (fewer when fewer exist)."""
        picked = rng.sample(range(1, self.n + 1), min(self.n, k * 10 // 9 + 10))
        return [(self.repo_name(self.repo_id(i)), t) for i in picked if (t := self.tag(i)) is not None][:k]


def _blobs(root: Path) -> list[tuple[str, bytes]]:
    """The two blobs every seeded manifest references, written where the filesystem driver keeps them."""
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    layer = random.Random(7).randbytes(1024)
    out = []
    for data in (config, layer):
        d = sha256(data)
        path = root / blob_path(d).lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        out.append((d, data))
    return out


def _manifest_parts(blobs: list[tuple[str, bytes]]) -> tuple[bytes, bytes]:
    """A manifest body around its annotation's value: prefix + str(i) + suffix."""
    (cd, config), (ld, layer) = blobs
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": {"mediaType": OCI_CONFIG, "digest": cd, "size": len(config)},
                       "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": ld, "size": len(layer)}],
                       "annotations": {ANNOTATION: "@"}}).encode()
    prefix, suffix = body.split(b"@")
    return prefix, suffix


async def seed(db_url: str, root: Path, lay: Layout) -> None:
    """The rows a push of each manifest would have left, by COPY; then the sequences and ANALYZE."""
    blobs = _blobs(root)
    prefix, suffix = _manifest_parts(blobs)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    dsn = asyncpg_dsn(db_url)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table("blobs", columns=["digest", "size", "created_at"],
                                         records=[(d, len(b), old) for d, b in blobs])
        await conn.copy_records_to_table("repositories", columns=["id", "name", "created_at"],
                                         records=((r, lay.repo_name(r), old) for r in range(1, lay.repos + 1)))
        await conn.copy_records_to_table("repository_blobs", columns=["repository_id", "digest", "created_at"],
                                         records=((r, d, old) for r in range(1, lay.repos + 1) for d, _ in blobs))

        def manifests() -> Iterator[tuple[Any, ...]]:
            for i in range(1, lay.n + 1):
                body = prefix + str(i).encode() + suffix
                yield (i, lay.repo_id(i), "sha256:" + hashlib.sha256(body).hexdigest(), OCI_MANIFEST, body,
                       len(body), old)

        await conn.copy_records_to_table(
            "manifests", columns=["id", "repository_id", "digest", "media_type", "payload", "size", "created_at"],
            records=manifests())
        other = await asyncpg.connect(dsn)
        try:
            await asyncio.gather(
                conn.copy_records_to_table("manifest_references", columns=["manifest_id", "digest", "kind"],
                                           records=((i, d, "blob") for i in range(1, lay.n + 1) for d, _ in blobs)),
                other.copy_records_to_table("tags", columns=["repository_id", "name", "manifest_id", "updated_at"],
                                            records=((lay.repo_id(i), t, i, old) for i in range(1, lay.n + 1)
                                                     if (t := lay.tag(i)) is not None)))
        finally:
            await other.close()
        for table in ("repositories", "manifests"):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def _database_mb(db_url: str) -> float:
    conn = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        return float(await conn.fetchval("SELECT pg_database_size(current_database())")) / 1e6
    finally:
        await conn.close()


async def page_ms(session: aiohttp.ClientSession, url: str, repeat: int) -> float:
    """The median of ``repeat`` sequential GETs of ``url`` (ms); each must answer 200."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        async with session.get(url) as r:
            await r.read()
            if r.status != 200:
                raise RuntimeError(f"GET {url} -> {r.status}")
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


async def manifest_gets(session: aiohttp.ClientSession, base: str, refs: list[tuple[str, str]], seconds: float,
                        concurrency: int, cycle: bool) -> tuple[float, float, float]:
    """GETs of ``refs`` by tag for ``seconds`` (each once unless ``cycle``, then at random):
    (requests/s, p50 ms, p99 ms)."""
    lat: list[float] = []
    end = time.perf_counter() + seconds
    headers = {"Accept": OCI_MANIFEST}
    queue = iter(refs)
    rng = random.Random(1)

    async def client() -> None:
        while time.perf_counter() < end:
            ref = rng.choice(refs) if cycle else next(queue, None)
            if ref is None:
                return
            t0 = time.perf_counter()
            async with session.get(f"{base}/v2/{ref[0]}/manifests/{ref[1]}", headers=headers) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"GET {ref[0]}:{ref[1]} -> {r.status}")
            lat.append((time.perf_counter() - t0) * 1000)

    t_start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    wall = time.perf_counter() - t_start
    lat.sort()
    return len(lat) / wall, lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]


class Run:
    """The steps of one run, measured size after size."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args, self.workdir = args, workdir
        self.steps: dict[str, Step] = {}
        self.fsck = has_command("fsck")
        self.backup = has_command("backup")

    def put(self, name: str, unit: str, kind: str, size: int, value: float | None, note: str = "") -> None:
        step = self.steps.setdefault(name, Step(name, unit, kind))
        step.values[size] = value
        if note:
            step.notes[size] = note
        shown = "n/a" if value is None else f"{value:.3g} {unit}"
        print(f"  {name}: {shown}{f' ({note})' if note else ''}", flush=True)

    def cli(self, name: str, size: int, config: Path, *args: str, problems_ok: bool = False) -> None:
        r = dtr_cli(config, *args)
        if r.rc == 0 or (problems_ok and r.rc == 1):
            self.put(name, "s", "linear", size, r.seconds, "problems reported (exit 1)" if r.rc == 1 else "")
        else:
            self.put(name, "s", "linear", size, None, f"exit {r.rc}: {(r.err or r.out).strip()[-200:]}")

    async def size(self, pg: Postgres, n: int) -> None:
        lay = Layout(n)
        print(f"scale: {n} manifests in {lay.repos} repositories", flush=True)
        db_url = await asyncio.to_thread(create_database, pg.url, f"scale_{n}_{stamp().replace('-', '_')}")
        d = self.workdir / f"dtr-{n}"
        proc = DtrProcess(d, db_url, {"jobs": {"capacity": {"gc": 0}}})
        await asyncio.to_thread(proc.start, 120)
        try:
            t0 = time.perf_counter()
            await seed(db_url, d / "registry", lay)
            self.put("seed (COPY)", "s", "linear", n, time.perf_counter() - t0)
            self.put("database size", "MB", "info", n, await _database_mb(db_url))
            await self.measure(proc, lay, n)
        finally:
            await asyncio.to_thread(proc.stop)
            if not self.args.keep:
                await _drop(pg.url, db_url)
                cleanup_dir(d)

    async def measure(self, proc: DtrProcess, lay: Layout, n: int) -> None:
        a, base, cfg = self.args, proc.url, proc.config_path
        timeout = aiohttp.ClientTimeout(total=600)
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=64)) as s:
            deep_repo = lay.repo_name(max(2, int(lay.repos * 0.9)))
            deep_tag = f"t{int(lay.big * 0.9) // 10 * 10 + 1:08d}"
            pages = [("catalog page 1", f"/v2/_catalog?n={PAGE}"),
                     ("catalog deep page", f"/v2/_catalog?n={PAGE}&last={deep_repo}"),
                     ("tags page 1 (big repo: N/10 tags)", f"/v2/scale/big/tags/list?n={PAGE}"),
                     ("tags deep page (big repo)", f"/v2/scale/big/tags/list?n={PAGE}&last={deep_tag}"),
                     ("tags of a 9-tag repo", f"/v2/{lay.repo_name(2)}/tags/list?n={PAGE}")]
            for name, path in pages:
                await page_ms(s, base + path, 2)  # warm the connection and the plan
                self.put(name, "ms", "flat", n, await page_ms(s, base + path, a.repeat))
            rng = random.Random(n)
            hot = lay.tagged(rng, 100)
            await manifest_gets(s, base, hot, 60, a.concurrency, cycle=False)  # into the cache
            for label, refs, cycle in (("100 hot tags", hot, True),
                                       ("each tag once (uncached)", lay.tagged(rng, a.cold_requests), False)):
                rps, p50, p99 = await manifest_gets(s, base, refs, a.get_seconds, a.concurrency, cycle)
                self.put(f"manifest GET, {label}", "req/s", "rate", n, rps)
                self.put(f"manifest GET, {label}, p50", "ms", "flat", n, p50)
                self.put(f"manifest GET, {label}, p99", "ms", "flat", n, p99)
            reg = Registry(s, base)
            times = []
            for k in range(5):
                t0 = time.perf_counter()
                await seed_small_image(reg, f"scale/pushed{k}", "latest", f"{n}-{k}")
                times.append((time.perf_counter() - t0) * 1000)
            self.put("push small image", "ms", "flat", n, statistics.median(times))
        self.put("CLI start-up (dtr jobs list)", "s", "info", n,
                 (await asyncio.to_thread(dtr_cli, cfg, "jobs", "list", "--limit", "1")).seconds)
        if self.fsck:
            await asyncio.to_thread(self.cli, "dtr fsck --json", n, cfg, "fsck", "--json", problems_ok=True)
        else:
            self.put("dtr fsck --json", "s", "linear", n, None, "not available")
        if self.backup:
            out = self.workdir / f"backup-{n}"
            await asyncio.to_thread(self.cli, "dtr backup FILE", n, cfg, "backup", str(out))
            cleanup_dir(out)
        else:
            self.put("dtr backup FILE", "s", "linear", n, None, "not available")
        await asyncio.to_thread(self.cli, "dtr gc --local --dry-run", n, cfg, "gc", "--local", "--dry-run",
                                "--grace-period", "0s")
        await asyncio.to_thread(self.cli, "dtr gc --local", n, cfg, "gc", "--local", "--grace-period", "0s")


async def _drop(base_url: str, db_url: str) -> None:
    name = db_url.rsplit("/", 1)[1].split("?")[0]
    conn = await asyncpg.connect(asyncpg_dsn(base_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def growth(a: float | None, b: float | None, sa: int, sb: int) -> float | None:
    """How ``a`` at size ``sa`` grew to ``b`` at ``sb``, normalised to a 10x step."""
    if a is None or b is None or a <= 0:
        return None
    return float((b / a) ** (1 / math.log10(sb / sa)))


def flag(step: Step, g: float) -> str:
    if step.kind == "info":
        return ""
    if g > 12:
        return "superlinear"
    if step.kind == "flat" and g > 2:
        return "not flat"
    if step.kind == "rate" and g < 0.5:
        return "not flat"
    return ""


def report(steps: list[Step], sizes: list[int]) -> tuple[str, list[str]]:
    """The Markdown table and the flags raised."""
    pairs = list(itertools.pairwise(sizes))
    cols = ["step", *[f"{s:,}" for s in sizes], *[f"x{a:,}→{b:,}" for a, b in pairs]]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    flags = []
    for st in steps:
        cells = [f"{st.name} ({st.unit})"]
        for s in sizes:
            v = st.values.get(s)
            cells.append(("n/a" if v is None else f"{v:.3g}") + (f" ({st.notes[s]})" if s in st.notes else ""))
        for a, b in pairs:
            g = growth(st.values.get(a), st.values.get(b), a, b)
            f = "" if g is None else flag(st, g)
            cells.append("" if g is None else f"{g:.2f}" + (f" **{f}**" if f else ""))
            if f:
                flags.append(f"{st.name}: {f} ({a:,} → {b:,}: x{g:.2f} per 10x)")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), flags


async def measure_all(args: argparse.Namespace, sizes: list[int], workdir: Path) -> tuple[list[Step], str]:
    """Every size in turn; the steps measured, and what stopped the run ("" when nothing did)."""
    pg = await asyncio.to_thread(Postgres, workdir, args.database_url)
    bench = Run(args, workdir)
    try:
        for n in sizes:
            await bench.size(pg, n)
    except Exception as e:  # report what was measured before the failure
        return list(bench.steps.values()), f"stopped at a failure: {e!r}"
    finally:
        pg.close()
    return list(bench.steps.values()), ""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10000,100000,1000000", help="manifests per step, comma-separated")
    p.add_argument("--database-url", help="a Postgres server to create the databases on (default: embedded)")
    p.add_argument("--workdir", help="where dtr and data live (default: a temp dir, removed at the end)")
    p.add_argument("--keep", action="store_true", help="keep each size's database and storage")
    p.add_argument("--repeat", type=int, default=30, help="requests per page measurement (median)")
    p.add_argument("--get-seconds", type=float, default=5.0, help="seconds of manifest GETs per size")
    p.add_argument("--cold-requests", type=int, default=5000,
                   help="at most this many distinct tags for the uncached GETs (fewer at small sizes)")
    p.add_argument("--concurrency", type=int, default=16, help="concurrent manifest GET clients")
    p.add_argument("--no-save", action="store_true", help="print only; write nothing to bench/results/")
    args = p.parse_args(argv)
    sizes = sorted(int(x) for x in args.sizes.split(","))
    if not sizes or sizes[0] < 20:
        print("--sizes: manifests, at least 20 each", file=sys.stderr)
        return 2
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="dtr-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    head = header("dtr at scale", " ".join(["python -m bench.scale", *sys.argv[1:]]))
    try:
        steps, failed = asyncio.run(measure_all(args, sizes, workdir))
    finally:
        if not args.workdir:
            cleanup_dir(workdir)
    table, flags = report(steps, sizes)
    body = [*head, table, "", "## Flags", "", *([f"- {f}" for f in flags] or ["- none"])]
    if failed:
        print(f"scale: {failed}", file=sys.stderr)
        body += ["", f"**{failed}**"]
    text = "\n".join(body) + "\n"
    print("\n" + text)
    if not args.no_save:
        path = BENCH / "results" / f"scale-{stamp()}.md"
        path.write_text(text)
        print(f"scale: wrote {path}")
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())

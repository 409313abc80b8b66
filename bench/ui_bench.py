"""The web UI at scale: each page's time with 10,000 repositories and 10,000 tags in one of them.

    .venv/bin/python -m bench.ui_bench [--manifests 111120] [--repeat 200] [--database-url URL] [--no-save]

A fresh database gets the metadata of ``--manifests`` pushed manifests, seeded with COPY as
``bench.scale`` does (repositories = manifests / 10, ``scale/big`` holding a tenth of the
manifests, nine in ten tagged: the default gives 11,112 repositories and 10,000 tags in
``scale/big``). A real ``dtr serve`` (authentication off: every visitor is a site admin, as with
auth on for an admin) then serves each page ``--repeat`` times in a row after a warm-up; the
table gives p50, p95 and max of the time to the whole answer (the server's time plus loopback),
the page's bytes, and whether any ``src``/``href``/``action`` points at another host.

Goals (issue 15): p95 under 50 ms for every page, no page over 200 KB of HTML, no request to an
outside host. The run exits 1 when a goal is missed. There is no reference registry with a UI to
run beside it: the goals are absolute.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.ops import Postgres, header, stamp
from bench.scale import Layout, seed
from bench.workloads import cleanup_dir
from tests.servers import DtrProcess, create_database

BENCH = Path(__file__).resolve().parent
P95_MS = 50.0
MAX_BYTES = 200_000
#: An attribute loading or sending to an absolute URL (``//host`` or ``scheme://``).
_OUTSIDE = re.compile(r"""(?:src|href|action|srcset)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//""", re.I)


def pages(lay: Layout) -> list[tuple[str, str]]:
    """(what, path) of every page measured."""
    big, deep_repo = lay.repo_name(1), lay.repo_name(lay.repos * 9 // 10)
    first_tag = next(t for i in range(1, lay.n + 1) if lay.repo_id(i) == 1 and (t := lay.tag(i)))
    deep_tag = next(t for i in range(lay.big * 9 // 10, lay.n + 1) if lay.repo_id(i) == 1 and (t := lay.tag(i)))
    return [
        ("repositories, first page", "/ui/repositories"),
        ("repositories, 90% in", f"/ui/repositories?start={deep_repo}"),
        ("repositories, search", "/ui/repositories?q=r00050"),
        ("repositories, namespace", "/ui/repositories?namespace=scale"),
        ("tags, first page", f"/ui/repositories/{big}"),
        ("tags, 90% in", f"/ui/repositories/{big}?start={deep_tag}"),
        ("image", f"/ui/repositories/{big}/tags/{first_tag}"),
        ("repository settings", f"/ui/repositories/{big}/settings"),
        ("repository events", f"/ui/repositories/{big}/events"),
        ("repository access", f"/ui/repositories/{big}/access"),
        ("repository pruning (an enabled policy)", f"/ui/repositories/{big}/pruning"),
        ("  its preview, loaded after it (every tag evaluated)", f"/ui/repositories/{big}/pruning/preview"),
        ("repository webhooks", f"/ui/repositories/{big}/webhooks"),
        ("repository mirroring", f"/ui/repositories/{big}/mirroring"),
        ("events", "/ui/events"),
        ("new repository", "/ui/repositories/new"),
        ("jobs", "/ui/jobs"),
        ("schedules and workers", "/ui/jobs/schedules"),
        ("storage", "/ui/storage"),
        ("admin: settings", "/ui/admin/settings"),
        ("admin: vulnerability database", "/ui/admin/scanning"),
        ("admin: users", "/ui/admin/users"),
        ("admin: organisations", "/ui/admin/orgs"),
        ("admin: LDAP", "/ui/admin/ldap"),
    ]


async def measure(session: aiohttp.ClientSession, url: str, repeat: int) -> tuple[list[float], bytes]:
    """``repeat`` sequential GETs of ``url`` after 5 to warm up: their times (ms) and the last body."""
    times: list[float] = []
    body = b""
    for i in range(repeat + 5):
        t0 = time.perf_counter()
        async with session.get(url, allow_redirects=False) as r:
            body = await r.read()
            if r.status != 200:
                raise RuntimeError(f"GET {url} -> {r.status}: {body[:300]!r}")
        if i >= 5:
            times.append((time.perf_counter() - t0) * 1000)
    return sorted(times), body


def pct(times: list[float], q: float) -> float:
    return times[min(len(times) - 1, int(len(times) * q))]


async def run(args: argparse.Namespace, workdir: Path) -> tuple[list[str], bool]:
    """The table rows, and whether every goal was met."""
    pg = await asyncio.to_thread(Postgres, workdir, args.database_url)
    lay = Layout(args.manifests)
    rows, ok = [], True
    try:
        db_url = await asyncio.to_thread(create_database, pg.url, f"ui_{stamp().replace('-', '_')}")
        proc = DtrProcess(workdir / "dtr", db_url, {"jobs": {"capacity": {"gc": 0}}})
        await asyncio.to_thread(proc.start, 120)
        try:
            await seed(db_url, workdir / "dtr" / "registry", lay)
            print(f"ui bench: {lay.repos:,} repositories, {sum(1 for i in range(1, lay.big + 1) if lay.tag(i)):,} "
                  f"tags in {lay.repo_name(1)}", flush=True)
            async with aiohttp.ClientSession(headers={"Accept": "text/html"}) as session:
                # A pruning policy on the big repository: its tab previews it over every tag.
                policy = {"rules": [{"field": "tag", "operator": "sw", "values": ["t0000"]}], "keepNewest": 10,
                          "enabled": True}
                async with session.post(f"{proc.url}/api/v0/repositories/{lay.repo_name(1)}/pruningPolicies",
                                        json=policy) as r:
                    if r.status != 201:
                        raise RuntimeError(f"pruning policy: {r.status} {await r.text()}")
                for what, path in pages(lay):
                    times, body = await measure(session, proc.url + path, args.repeat)
                    outside = len(_OUTSIDE.findall(body.decode(errors="replace")))
                    p95 = pct(times, 0.95)
                    miss = [m for m, bad in (("p95", p95 >= P95_MS), ("size", len(body) > MAX_BYTES),
                                             ("outside", outside > 0)) if bad]
                    ok = ok and not miss
                    row = (f"| {what} | {pct(times, 0.5):.1f} | {p95:.1f} | {times[-1]:.1f} | {len(body) / 1000:.1f} "
                           f"| {outside} | {'MISSED: ' + ', '.join(miss) if miss else 'ok'} |")
                    print(row, flush=True)
                    rows.append(row)
        finally:
            await asyncio.to_thread(proc.stop)
    finally:
        pg.close()
    return rows, ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ui_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifests", type=int, default=111_120, help="manifests seeded (repositories: a tenth)")
    p.add_argument("--repeat", type=int, default=200, help="requests per page")
    p.add_argument("--database-url", help="a Postgres server to create the database on (default: embedded)")
    p.add_argument("--no-save", action="store_true", help="print only; write nothing to bench/results/")
    args = p.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="dtr-ui-bench-"))
    head = header("The web UI at scale", " ".join(["python -m bench.ui_bench", *sys.argv[1:]]))
    try:
        rows, ok = asyncio.run(run(args, workdir))
    finally:
        cleanup_dir(workdir)
    table = ["| page | p50 ms | p95 ms | max ms | KB | outside links | goal |", "|---|---|---|---|---|---|---|", *rows]
    text = "\n".join([*head, "", *table, "", f"Goals: p95 < {P95_MS:g} ms, at most {MAX_BYTES // 1000} KB, "
                      "no outside host; " + ("all met." if ok else "**some missed**.")]) + "\n"
    print("\n" + text)
    if not args.no_save:
        path = BENCH / "results" / f"ui-{stamp()}.md"
        path.write_text(text)
        print(f"ui bench: wrote {path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

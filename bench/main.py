"""``make bench`` / ``bench/run.py``: dtr against the reference registry, same machine, same run.

Starts (on 127.0.0.1, under a temp dir) an embedded Postgres, ``dtr serve`` with filesystem
storage (auth off; a second one with token auth on for workload 3 when dtr's config has an
``auth`` section), Debian's ``docker-registry`` (Go distribution) and a trivial aiohttp handler
as the ceiling. Runs the workloads with the servers alternating, prints the table, writes
``bench/results/<stamp>.json`` and ``.md``, and (unless ``--no-profile``) py-spy profiles of dtr
to ``bench/results/<stamp>-profile.md``.

With ``--baseline REV``, workload 3 also measures dtr at REV (``git archive`` into the workdir, run
with its own fresh database; with token auth too when dtr_auth runs) in the same alternating rounds,
and the table adds dtr/base and dtr+auth/base: now over baseline, goal >= 0.97 (no slower, within
noise). The other workloads ignore the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import aiohttp

from bench.client import DataFile
from bench.profiling import hot_spots
from bench.report import Metric, table, write
from bench.targets import Servers, checkout, machine, which
from bench.workloads import FULL, QUICK, WORKLOADS, Ctx, cleanup_dir

BENCH = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes, short runs, one round (for development)")
    p.add_argument("--rounds", type=int, help="rounds per workload (default: 3, or 1 with --quick)")
    p.add_argument("--only", default="1,3,4,5,6,7",
                   help="comma-separated workloads to run (1 = blob push and pull, 2 is the same as 1)")
    p.add_argument("--no-profile", action="store_true", help="skip the py-spy profiles")
    p.add_argument("--no-save", action="store_true", help="print only; write nothing to bench/results/")
    p.add_argument("--workdir", help="where servers and data live (default: a temp dir, removed at the end)")
    p.add_argument("--skip-install", action="store_true", help="do not run bench/install.sh first")
    p.add_argument("--baseline", metavar="REV",
                   help="also run dtr at git revision REV in workload 3 (manifest GET/HEAD), alternating with dtr as "
                        "it is, and report now/baseline; the other workloads ignore it")
    return p.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    sizes = QUICK if args.quick else FULL
    rounds = args.rounds or (1 if args.quick else 3)
    only = {"1" if w.strip() == "2" else w.strip() for w in args.only.split(",") if w.strip()}
    unknown = only - set(WORKLOADS)
    if unknown:
        print(f"unknown workload(s): {', '.join(sorted(unknown))}; known: 1-7", file=sys.stderr)
        return 2
    for tool in ("curl", "wrk", "skopeo", "docker-registry"):
        which(tool)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S") + ("-quick" if args.quick else "")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="dtr-bench-"))
    profile_dir = None if args.no_profile else workdir / "profiles"
    await asyncio.to_thread((profile_dir or workdir).mkdir, parents=True, exist_ok=True)
    meta_machine = machine()
    t_start = time.monotonic()
    print(f"bench: workdir {workdir}, {rounds} round(s), sizes {'quick' if args.quick else 'full'}")
    baseline: dict[str, str] | None = None
    src = workdir / "baseline-src"
    if args.baseline:
        try:
            commit = checkout(args.baseline, src)
        except RuntimeError as e:
            print(f"bench: {e}", file=sys.stderr)
            if not args.workdir:
                cleanup_dir(workdir)
            return 2
        baseline = {"rev": args.baseline, "commit": commit, "short": commit[:7]}
        print(f"bench: baseline {args.baseline} = {commit}, extracted to {src}")
    data = DataFile(workdir / "blob.bin", sizes.blob)
    servers = Servers(workdir, data.path)
    metrics: list[Metric] = []
    failures: list[str] = []
    ctx: Ctx | None = None
    try:
        dtr, reference, ceiling = servers.dtr(), servers.reference(), servers.ceiling()
        print(f"bench: dtr {dtr.url} (pid {dtr.pid}), reference {reference.url}, trivial {ceiling.url}")
        connector = aiohttp.TCPConnector(limit=256)
        timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:
            ctx = Ctx(sizes=sizes, rounds=rounds, workdir=workdir, session=session, data=data, dtr=dtr,
                      reference=reference, ceiling=ceiling,
                      start_dtr_auth=(lambda: servers.dtr(auth=True)) if servers.auth_available else None,
                      profile_dir=profile_dir, metrics=metrics,
                      start_baseline=(lambda auth: servers.dtr(auth, source=src)) if baseline else None)
            for key, workload in WORKLOADS.items():
                if key not in only:
                    continue
                print(f"bench: workload {key} ({workload.__name__})")
                t0 = time.monotonic()
                try:
                    await workload(ctx)
                except Exception as e:
                    traceback.print_exc()
                    failures.append(f"workload {key} ({workload.__name__}) failed: {e!r}")
                print(f"bench: workload {key} took {time.monotonic() - t0:.0f} s")
    finally:
        servers.close()
        data.close()
    wall = time.monotonic() - t_start
    print()
    print(table(metrics, baseline["short"] if baseline else "base"))
    for f in failures:
        print(f"FAILED: {f}")
    profile_md = ""
    if ctx is not None and ctx.profiles:
        parts = [f"# py-spy profiles of dtr, run {stamp}", "",
                 "py-spy record --nonblocking -r 200 (idle threads excluded), attached to the `dtr serve` process "
                 "during extra runs after the measured ones.", ""]
        for label, raw in ctx.profiles:
            parts += [f"## {label}", "", hot_spots(raw)]
        profile_md = "\n".join(parts)
    if not args.no_save:
        meta = {"stamp": stamp, "command": " ".join(["bench/run.py", *sys.argv[1:]]), "rounds": rounds,
                "sizes": dataclasses.asdict(sizes), "machine": meta_machine, "wall_seconds": wall,
                "auth": "token auth run for workload 3" if servers.auth_available else
                        "dtr's config has no auth section: token-auth figures n/a",
                "baseline": baseline,
                "failures": failures}
        extra = "## Failures\n\n" + "\n".join(f"- {f}" for f in failures) if failures else ""
        md = write(BENCH / "results", stamp, meta, metrics, extra)
        print(f"bench: wrote {md} and {md.with_suffix('.json')}")
        if profile_md:
            prof = BENCH / "results" / f"{stamp}-profile.md"
            prof.write_text(profile_md + "\n")
            print(f"bench: wrote {prof}")
    elif profile_md:
        print(profile_md)
    if not args.workdir:
        cleanup_dir(workdir)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.skip_install:
        subprocess.run([str(BENCH / "install.sh")], check=True)
    return asyncio.run(run(args))

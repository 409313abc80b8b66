"""Replicas: throughput with 1, 2 and 3 ``dtr serve`` on one Postgres, and how soon a dead one's
job runs elsewhere.

    .venv/bin/python -m bench.replicas [--seconds 10] [--worker-timeout 3] [--kills 3] [--no-save]

Three replicas share one database (embedded PostgreSQL unless ``--database-url``) and one
filesystem storage directory; auth is off. After ``--images`` small images are pushed:

- manifest GETs by tag: one ``wrk`` per replica at once (``--connections`` split between them,
  each replica its own images), requests/s summed, worst p99;
- small blob pushes (POST + monolithic PUT of 4 KiB, each blob distinct): ``--push-clients``
  aiohttp clients, each request to the next replica in turn (round-robin in the client);

with 1, then 2, then 3 replicas serving. Then, with ``jobs.heartbeat_interval`` 1 s and
``jobs.worker_timeout`` ``--worker-timeout`` s: a long ``noop`` job is queued, the replica running
it is SIGKILLed, and the bench reads the job's row every 50 ms: seconds until it is marked
``worker_dead`` and until it runs again on another replica (``--kills`` times; the killed
replica is restarted between rounds). The load generator shares the machine's cores with dtr
and Postgres, so the figures show how the replicas share one machine, not a cluster's capacity.
Results: printed, and ``bench/results/replicas-<stamp>.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench.client import OCI_MANIFEST, Registry, seed_small_image, sha256, wrk
from bench.ops import Postgres, asyncpg_dsn, dtr_cli, header, stamp
from bench.targets import which
from bench.workloads import cleanup_dir
from tests.servers import DtrProcess, create_database

BENCH = Path(__file__).resolve().parent
POLL = 0.05
HEARTBEAT = 1.0


@dataclasses.dataclass
class Throughput:
    replicas: int
    get_rps: float
    get_p99_ms: float
    get_errors: int
    push_rps: float
    push_p50_ms: float


@dataclasses.dataclass
class Failover:
    """Seconds from the SIGKILL until the job was seen ``worker_dead`` and running elsewhere."""

    dead: float | None
    rerun: float | None


class Cluster:
    """Three ``dtr serve`` on one database and one storage directory; ``up(n)`` runs the first n."""

    def __init__(self, workdir: Path, db_url: str, worker_timeout: float) -> None:
        extra: dict[str, Any] = {
            "storage": {"filesystem": {"rootdirectory": str(workdir / "registry")}},
            "jobs": {"heartbeat_interval": HEARTBEAT, "worker_timeout": worker_timeout, "poll_interval": 0.5}}
        self.db_url = db_url
        self.procs = [DtrProcess(workdir / f"replica{k}", db_url, extra) for k in range(3)]

    def up(self, n: int) -> list[DtrProcess]:
        for p in self.procs[:n]:
            if p.proc is None or p.proc.poll() is not None:
                p.start(timeout=120)
        for p in self.procs[n:]:
            p.stop()
        return self.procs[:n]

    def close(self) -> None:
        for p in self.procs:
            p.stop()


async def gets(replicas: list[DtrProcess], images: list[str], conns: int, seconds: float
               ) -> tuple[float, float, int]:
    """One wrk per replica at once, each on its own image: (requests/s summed, worst p99 ms, errors)."""
    per = max(1, conns // len(replicas))
    runs = await asyncio.gather(*(asyncio.to_thread(
        wrk, f"{p.url}/v2/{images[k % len(images)]}/manifests/latest", "GET", {"Accept": OCI_MANIFEST}, per,
        seconds, 1) for k, p in enumerate(replicas)))
    return sum(r["rps"] for r in runs), max(r["p99_ms"] for r in runs), sum(r["errors"] for r in runs)


async def pushes(session: aiohttp.ClientSession, replicas: list[DtrProcess], clients: int, seconds: float
                 ) -> tuple[float, float]:
    """4 KiB blob pushes, round-robin over the replicas: (pushes/s, p50 ms)."""
    regs = [Registry(session, p.url) for p in replicas]
    lat: list[float] = []
    turn = 0
    end = time.perf_counter() + seconds

    async def client(k: int) -> None:
        nonlocal turn
        while time.perf_counter() < end:
            reg = regs[turn % len(regs)]
            turn += 1
            data = os.urandom(4096)
            t0 = time.perf_counter()
            await reg.push_blob(f"bench/push{k}", data, sha256(data))
            lat.append((time.perf_counter() - t0) * 1000)

    t_start = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    wall = time.perf_counter() - t_start
    return len(lat) / wall, statistics.median(lat)


async def _job(conn: asyncpg.Connection, job_id: str) -> tuple[str, str | None, int | None]:
    """(status, worker id, the worker's pid) of the job."""
    row = await conn.fetchrow("SELECT j.status, j.worker_id, w.pid FROM jobs j LEFT JOIN job_workers w "
                              "ON w.id = j.worker_id WHERE j.id = $1::uuid", job_id)
    assert row is not None, job_id
    return str(row["status"]), row["worker_id"], row["pid"]


async def failover(cluster: Cluster, conn: asyncpg.Connection, job_id: str) -> Failover:
    """Wait until the job runs, SIGKILL its replica, time until it is dead and running elsewhere."""
    deadline = time.monotonic() + 60
    while True:
        status, worker, pid = await _job(conn, job_id)
        if status == "running" and pid is not None:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} did not start: {status}")
        await asyncio.sleep(POLL)
    victim = next(p for p in cluster.procs if p.proc is not None and p.proc.pid == pid)
    t0 = time.monotonic()
    await asyncio.to_thread(victim.kill)
    dead: float | None = None
    while time.monotonic() - t0 < 120:
        status, now_worker, _ = await _job(conn, job_id)
        if dead is None and (status != "running" or now_worker != worker):
            dead = time.monotonic() - t0
        if status == "running" and now_worker != worker:
            return Failover(dead, time.monotonic() - t0)
        await asyncio.sleep(POLL)
    return Failover(dead, None)


async def measure(args: argparse.Namespace, workdir: Path) -> tuple[list[Throughput], list[Failover], str]:
    pg = await asyncio.to_thread(Postgres, workdir, args.database_url)
    cluster: Cluster | None = None
    results: list[Throughput] = []
    kills: list[Failover] = []
    try:
        db_url = await asyncio.to_thread(create_database, pg.url, f"replicas_{stamp().replace('-', '_')}")
        cluster = Cluster(workdir, db_url, args.worker_timeout)
        first = (await asyncio.to_thread(cluster.up, 1))[0]
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=64)) as s:
            images = [f"bench/img{k}" for k in range(args.images)]
            for k, repo in enumerate(images):
                await seed_small_image(Registry(s, first.url), repo, "latest", str(k))
            for n in (1, 2, 3):
                replicas = await asyncio.to_thread(cluster.up, n)
                await gets(replicas, images, len(replicas), 1)  # warm caches and connections
                rps, p99, errors = await gets(replicas, images, args.connections, args.seconds)
                push_rps, push_p50 = await pushes(s, replicas, args.push_clients, args.seconds)
                results.append(Throughput(n, rps, p99, errors, push_rps, push_p50))
                print(f"replicas: {n}: manifest GET {rps:.0f}/s (p99 {p99:.1f} ms, {errors} errors), "
                      f"blob push {push_rps:.0f}/s (p50 {push_p50:.1f} ms)", flush=True)
        conn = await asyncpg.connect(asyncpg_dsn(db_url))
        try:
            for _ in range(args.kills):
                await asyncio.to_thread(cluster.up, 3)
                run = await asyncio.to_thread(dtr_cli, first.config_path, "jobs", "run", "noop", "seconds=600",
                                              "--retries", "3")
                if run.rc != 0:
                    raise RuntimeError(f"dtr jobs run noop: exit {run.rc}: {run.err.strip()}")
                job_id = run.out.strip().splitlines()[-1]
                f = await failover(cluster, conn, job_id)
                kills.append(f)
                print(f"replicas: SIGKILL -> worker_dead after {f.dead} s, running elsewhere after {f.rerun} s",
                      flush=True)
                alive = next(p for p in cluster.procs if p.proc is not None and p.proc.poll() is None)
                await asyncio.to_thread(dtr_cli, alive.config_path, "jobs", "cancel", job_id)
        finally:
            await conn.close()
    except Exception as e:  # report what was measured before the failure
        return results, kills, f"stopped at a failure: {e!r}"
    finally:
        if cluster is not None:
            await asyncio.to_thread(cluster.close)
        pg.close()
    return results, kills, ""


def report(args: argparse.Namespace, results: list[Throughput], kills: list[Failover]) -> list[str]:
    one = results[0] if results else None
    lines = ["## Throughput", "",
             f"{args.seconds:g} s each; manifest GETs: wrk, {args.connections} connections split over the "
             f"replicas; pushes: {args.push_clients} clients, round-robin.", "",
             "| replicas | manifest GET req/s | vs 1 | GET p99 ms | GET errors | blob push/s | vs 1 | push p50 ms |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        assert one is not None
        lines.append(f"| {r.replicas} | {r.get_rps:.0f} | {r.get_rps / one.get_rps:.2f} | {r.get_p99_ms:.1f} | "
                     f"{r.get_errors} | {r.push_rps:.0f} | {r.push_rps / one.push_rps:.2f} | {r.push_p50_ms:.1f} |")
    lines += ["", "## A dead replica", "",
              f"jobs.heartbeat_interval {HEARTBEAT:g} s, jobs.worker_timeout {args.worker_timeout:g} s, "
              "poll_interval 0.5 s; SIGKILL of the replica running a `noop` job, job row read every "
              f"{POLL * 1000:.0f} ms.", "",
              "| round | worker_dead after s | running elsewhere after s |", "|---|---|---|"]

    def fmt(x: float | None) -> str:
        return "not seen" if x is None else f"{x:.2f}"

    for k, f in enumerate(kills, 1):
        lines.append(f"| {k} | {fmt(f.dead)} | {fmt(f.rerun)} |")
    reruns = [f.rerun for f in kills if f.rerun is not None]
    if reruns:
        lines += ["", f"Median time to re-run elsewhere: {statistics.median(reruns):.2f} s "
                      f"(worker_timeout {args.worker_timeout:g} s)."]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.replicas", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database-url", help="the Postgres server to use (default: embedded)")
    p.add_argument("--workdir", help="where the replicas and data live (default: a temp dir, removed at the end)")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds per load measurement")
    p.add_argument("--connections", type=int, default=48, help="wrk connections in all (split over the replicas)")
    p.add_argument("--push-clients", type=int, default=12, help="concurrent blob pushers")
    p.add_argument("--images", type=int, default=6, help="small images pushed before the GETs")
    p.add_argument("--worker-timeout", type=float, default=3.0, help="jobs.worker_timeout of the replicas (s)")
    p.add_argument("--kills", type=int, default=3, help="dead-replica rounds")
    p.add_argument("--no-save", action="store_true", help="print only; write nothing to bench/results/")
    args = p.parse_args(argv)
    if args.worker_timeout <= HEARTBEAT:
        print(f"--worker-timeout: must be longer than the heartbeat interval ({HEARTBEAT:g} s)", file=sys.stderr)
        return 2
    which("wrk")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="dtr-replicas-"))
    workdir.mkdir(parents=True, exist_ok=True)
    head = header("dtr replicas on one Postgres", " ".join(["python -m bench.replicas", *sys.argv[1:]]))
    try:
        results, kills, failed = asyncio.run(measure(args, workdir))
    finally:
        if not args.workdir:
            cleanup_dir(workdir)
    body = [*head, *report(args, results, kills)]
    if failed:
        print(f"replicas: {failed}", file=sys.stderr)
        body += ["", f"**{failed}**"]
    text = "\n".join(body) + "\n"
    print("\n" + text)
    if not args.no_save:
        path = BENCH / "results" / f"replicas-{stamp()}.md"
        path.write_text(text)
        print(f"replicas: wrote {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

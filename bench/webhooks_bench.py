"""Push time with and without webhooks: one dtr, small images pushed over /v2 (aiohttp), first with
no webhook at all, then with 5 TAG_PUSH webhooks on the repository (in-process receivers on
127.0.0.1, one of them answering only after ``--slow`` seconds).

    .venv/bin/python -m bench.webhooks_bench [--pushes 40] [--slow 2] [--database-url URL]

Prints the median seconds per push of each and their ratio (a push writes only its outbox row,
so the ratio should stay near 1), and how many deliveries had arrived when the pushes ended.
Without ``--database-url`` an embedded PostgreSQL is started in a temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from aiohttp import web

from bench.targets import databases
from tests.oci import dumps, push_image
from tests.servers import DtrProcess


async def _receivers(slow: float, got: list[str]) -> tuple[web.AppRunner, str]:
    async def handle(request: web.Request) -> web.Response:
        await request.read()
        if request.match_info["name"] == "slow":
            await asyncio.sleep(slow)
        got.append(request.match_info["name"])
        return web.Response()

    app = web.Application()
    app.router.add_post("/{name}", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def _pushes(http: aiohttp.ClientSession, base: str, repo: str, n: int) -> list[float]:
    times = []
    for i in range(n):
        config = dumps({"architecture": "amd64", "os": "linux", "n": uuid.uuid4().hex})
        start = time.perf_counter()
        await push_image(http, base, repo, f"t{i}", config, [uuid.uuid4().bytes * 64])
        times.append(time.perf_counter() - start)
    return times


async def _run(base: str, pushes: int, slow: float) -> None:
    got: list[str] = []
    runner, receivers = await _receivers(slow, got)
    try:
        async with aiohttp.ClientSession() as http:
            await _pushes(http, base, "bench/warmup", 5)
            without = await _pushes(http, base, "bench/zero", pushes)
            await _pushes(http, base, "bench/five", 1)  # the repository, for the webhooks' key
            for name in ("a", "b", "c", "d", "slow"):
                async with http.post(f"{base}/api/v0/webhooks", json={
                        "type": "TAG_PUSH", "key": "bench/five", "endpoint": f"{receivers}/{name}"}) as r:
                    assert r.status == 201, await r.text()
            with_hooks = await _pushes(http, base, "bench/five", pushes)
    finally:
        await runner.cleanup()
    a, b = statistics.median(without), statistics.median(with_hooks)
    print(f"{pushes} pushes of a small image each; median seconds per push")
    print(f"{'0 webhooks':<12} {a:.4f}\n{'5 webhooks':<12} {b:.4f}\n{'ratio':<12} {b / a:.2f}")
    print(f"deliveries received when the pushes ended: {len(got)} of {5 * pushes} (one receiver takes {slow:g}s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=40)
    parser.add_argument("--slow", type=float, default=2.0, help="seconds the slow receiver takes")
    parser.add_argument("--database-url", help="a PostgreSQL server URL (default: an embedded one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="webhooks-bench-", dir="/tmp") as tmp, \
            databases(args.database_url, Path(tmp), "webhooks_bench") as (database_url,):
        dtr = DtrProcess(Path(tmp) / "dtr", database_url, {"log": {"level": "warning"},
                                                           "webhooks": {"timeout": args.slow + 5}})
        dtr.start()
        try:
            asyncio.run(_run(dtr.url, args.pushes, args.slow))
        finally:
            dtr.stop()


if __name__ == "__main__":
    main()

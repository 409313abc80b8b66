"""The seven workloads. Each runs its rounds with the servers alternating (dtr first on even rounds,
the reference first on odd ones) and adds its figures to ``ctx.metrics``. Workload 3 also measures dtr
at the baseline revision when the run has one (``Ctx.start_baseline``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gzip
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import tarfile
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from bench.client import (
    MB,
    OCI_MANIFEST,
    BenchError,
    DataFile,
    MiB,
    Registry,
    ab_head,
    curl_get,
    curl_put_file,
    image_manifest,
    seed_small_image,
    sha256,
    wrk,
)
from bench.profiling import PySpy
from bench.report import BASELINES, Goal, Metric
from bench.targets import Target, reset_hwm, rss_status


@dataclasses.dataclass(frozen=True)
class Sizes:
    blob: int
    chunks: int
    wrk_seconds: float
    image_layers: int
    layer_size: int
    concurrent: int
    concurrent_size: int
    big_blob: int
    listing: int
    seed_concurrency: int = 32


FULL = Sizes(blob=512 * MiB, chunks=100, wrk_seconds=6, image_layers=50, layer_size=4 * MiB, concurrent=50,
             concurrent_size=20 * MiB, big_blob=2048 * MiB, listing=10_000)
QUICK = Sizes(blob=64 * MiB, chunks=100, wrk_seconds=2, image_layers=50, layer_size=256 * 1024, concurrent=50,
              concurrent_size=2 * MiB, big_blob=256 * MiB, listing=1_000)


@dataclasses.dataclass
class Ctx:
    sizes: Sizes
    rounds: int
    workdir: Path
    session: aiohttp.ClientSession
    data: DataFile
    dtr: Target
    reference: Target
    ceiling: Target
    start_dtr_auth: Callable[[], Target] | None
    profile_dir: Path | None
    #: dtr (auth on when True) at the ``--baseline`` revision; None without a baseline.
    start_baseline: Callable[[bool], Target] | None = None
    metrics: list[Metric] = dataclasses.field(default_factory=list)
    profiles: list[tuple[str, Path]] = dataclasses.field(default_factory=list)
    pushed: dict[str, str] = dataclasses.field(default_factory=dict)
    log: Callable[[str], None] = print

    def metric(self, workload: str, name: str, unit: str, higher: bool, goals: Sequence[Goal] = ()) -> Metric:
        m = Metric(workload, name, unit, higher, list(goals))
        self.metrics.append(m)
        return m

    def reg(self, t: Target) -> Registry:
        return Registry(self.session, t.url, t.creds)

    @contextlib.contextmanager
    def profiled(self, label: str, pid: int) -> Any:
        """py-spy on ``pid`` around the block, when profiling is on."""
        if self.profile_dir is None:
            yield
            return
        slug = label.lower().replace(" ", "-").replace(",", "").replace("/", "-")
        spy = PySpy(pid, self.profile_dir / f"{slug}.txt")
        try:
            yield
        finally:
            self.profiles.append((label, spy.stop()))


def order(targets: Sequence[Target], rnd: int) -> list[Target]:
    """dtr-side first on even rounds, the reference first on odd ones; the ceiling last."""
    main = [t for t in targets if t.name != "ceiling"]
    rest = [t for t in targets if t.name == "ceiling"]
    return (main if rnd % 2 == 0 else main[::-1]) + rest


def _mb(n: int) -> str:
    return f"{n / MiB:g} MiB" if n < 1024 * MiB else f"{n / (1024 * MiB):g} GiB"


# -- 1, 2: blob push and pull -------------------------------------------------------------


async def blob_push_pull(ctx: Ctx) -> None:
    s, data = ctx.sizes, ctx.data
    size = s.blob
    goal_push = [Goal("dtr", "reference", ">=", 2)]
    mono = ctx.metric("1 blob push", f"monolithic PUT, {_mb(size)} (curl)", "MB/s", True, goal_push)
    chunked = ctx.metric("1 blob push", f"{s.chunks} chunked PATCHes, {_mb(size)} (aiohttp)", "MB/s", True,
                         goal_push)
    pull = ctx.metric("2 blob pull", f"GET {_mb(size)} (curl)", "MB/s", True, [Goal("dtr", "reference", ">=", 1)])
    targets = [ctx.dtr, ctx.reference, ctx.ceiling]
    view = memoryview(data.map)
    try:
        for rnd in range(ctx.rounds):
            for t in order(targets, rnd):
                reg = ctx.reg(t)
                data.variant(f"{t.name}-mono-{rnd}")
                secs = await curl_put_file(reg, "bench/blob", data)
                mono.add(t.name, size / secs / MB)
                ctx.pushed[t.name] = data.digest
                data.variant(f"{t.name}-chunked-{rnd}")
                t0 = time.perf_counter()
                await reg.push_chunked("bench/blob", view, data.digest, s.chunks)
                chunked.add(t.name, size / (time.perf_counter() - t0) / MB)
                ctx.log(f"  round {rnd} {t.name}: push {mono.values[t.name][-1]:.0f} MB/s monolithic, "
                        f"{chunked.values[t.name][-1]:.0f} MB/s chunked")
            for t in order(targets, rnd):
                secs, n = await curl_get(ctx.reg(t).url(f"/v2/bench/blob/blobs/{ctx.pushed[t.name]}"))
                if n != size:
                    raise BenchError(f"{t.name}: pulled {n} bytes, expected {size}")
                pull.add(t.name, size / secs / MB)
                ctx.log(f"  round {rnd} {t.name}: pull {pull.values[t.name][-1]:.0f} MB/s")
        if ctx.profile_dir is not None:
            reg = ctx.reg(ctx.dtr)
            data.variant("profile-mono")
            with ctx.profiled("blob push, monolithic PUT", ctx.dtr.pid):
                for i in range(3):
                    data.variant(f"profile-mono-{i}")
                    await curl_put_file(reg, "bench/profile", data)
            with ctx.profiled("blob push, chunked PATCH", ctx.dtr.pid):
                for i in range(3):
                    data.variant(f"profile-chunked-{i}")
                    await reg.push_chunked("bench/profile", view, data.digest, s.chunks)
    finally:
        view.release()
    mono.note("Each push is a new blob (16 bytes of the file changed, digest computed before timing). "
              "Trivial handler: reads and discards the body (the client's ceiling).")
    chunked.note("POST, then PATCHes with Content-Range from an mmap of the file, then PUT ?digest=.")
    pull.note("Pulls the last blob pushed monolithically; trivial handler serves the file with sendfile.")


# -- 3: manifest GET/HEAD with wrk ---------------------------------------------------------


def _dtr_targets(ctx: Ctx) -> tuple[list[Target], str]:
    """dtr, its baseline, dtr with token auth, its baseline (each baseline beside its counterpart, so
    alternating rounds interleave them), and why the token-auth ones are missing, if they are."""
    targets = [ctx.dtr]
    if ctx.start_baseline is not None:
        targets.append(ctx.start_baseline(False))
    if ctx.start_dtr_auth is None:
        return targets, "dtr's config has no auth section: token-auth figures are n/a."
    try:
        targets.append(ctx.start_dtr_auth())
        if ctx.start_baseline is not None:
            targets.append(ctx.start_baseline(True))
    except Exception as e:  # report, go on without
        return targets, f"dtr with token auth could not be run: {e}"
    return targets, ""


async def manifests(ctx: Ctx) -> None:
    s = ctx.sizes
    targets, auth_note = _dtr_targets(ctx)
    if auth_note:
        ctx.log(f"  {auth_note}")
    targets += [ctx.reference, ctx.ceiling]
    repo = "bench/manifest"
    digests: dict[str, str] = {"ceiling": "sha256:" + "0" * 64}
    for t in list(targets):
        if t.name == "ceiling":
            continue
        try:
            _, digests[t.name], _, _ = await seed_small_image(ctx.reg(t), repo, "latest", t.name)
        except BenchError as e:
            if not t.name.startswith("dtr_auth"):
                raise
            auth_note = f"dtr with token auth could not be seeded: {e}"
            ctx.log(f"  {auth_note}")
            targets.remove(t)
    names = {t.name for t in targets}
    num = "dtr_auth" if "dtr_auth" in names else "dtr"
    no_slower = [Goal(now, base, ">=", 0.97) for now, base, _ in BASELINES if {now, base} <= names]
    cases = [("GET", "by tag", "latest"), ("HEAD", "by digest", None)]
    metrics: dict[tuple[str, int], tuple[Metric, Metric]] = {}
    for method, what, _ in cases:
        for conns in (32, 128):
            goals = [Goal(num, "reference", ">=", 5), Goal(num, "ceiling", ">=", 0.6)] if method == "GET" else []
            goals += no_slower
            rps = ctx.metric("3 manifests", f"{method} {what}, {conns} connections", "req/s", True, goals)
            p99 = ctx.metric("3 manifests", f"{method} {what}, {conns} connections, p99", "ms", False)
            if auth_note:
                rps.note(auth_note)
            metrics[(method, conns)] = (rps, p99)

    async def headers_for(t: Target) -> dict[str, str]:
        h = {"Accept": OCI_MANIFEST}
        if t.creds:
            tok = await ctx.reg(t).pull_token(repo)
            if tok is None:
                raise BenchError(f"{t.name}: auth is on but pulling needs no token")
            h["Authorization"] = f"Bearer {tok}"
        return h

    def url(t: Target, method: str) -> str:
        ref = "latest" if method == "GET" else digests[t.name]
        return f"{t.url}/v2/{repo}/manifests/{ref}"

    for t in targets:  # warm-up, and a check that each answers as it should
        h = await headers_for(t)
        async with ctx.session.get(url(t, "GET"), headers=h) as r:
            await r.read()
            if r.status != 200 or (t.name != "ceiling" and r.headers.get("Docker-Content-Digest") != digests[t.name]):
                raise BenchError(f"{t.name}: manifest GET answered {r.status} {r.headers}")
        await asyncio.to_thread(wrk, url(t, "GET"), "GET", h, 32, 1)
    for rnd in range(ctx.rounds):
        for method, _, _ in cases:
            for conns in (32, 128):
                rps, p99 = metrics[(method, conns)]
                for t in order(targets, rnd):
                    h = await headers_for(t)
                    if method == "HEAD":
                        res = await asyncio.to_thread(ab_head, url(t, method), h, conns, s.wrk_seconds)
                    else:
                        res = await asyncio.to_thread(wrk, url(t, method), method, h, conns, s.wrk_seconds)
                    rps.add(t.name, res["rps"])
                    p99.add(t.name, res["p99_ms"])
                    if res["errors"]:
                        rps.note(f"{t.name} round {rnd}: {res['errors']} errors {res['error_detail']}.")
                    ctx.log(f"  round {rnd} {t.name} {method} c={conns}: {res['rps']:.0f} req/s, "
                            f"p99 {res['p99_ms']:.1f} ms, {res['errors']} errors")
    if ctx.profile_dir is not None:
        for t in targets:
            if t.name in ("dtr", "dtr_auth"):
                h = await headers_for(t)
                label = "manifest GET by tag" + (", token auth" if t.creds else "") + ", 32 connections"
                with ctx.profiled(label, t.pid):
                    await asyncio.to_thread(wrk, url(t, "GET"), "GET", h, 32, max(s.wrk_seconds, 8))
    first = metrics[("GET", 32)][0]
    metrics[("HEAD", 32)][0].note("HEAD by ab -i -k (one thread), as wrk 4.1 cannot do HEAD; p99 at 1 ms resolution.")
    first.note("wrk -t2, Accept: OCI manifest; the token (when auth is on) is fetched before each run and sent "
               "as a Bearer header; the reference runs without auth.")


# -- 4: whole image with skopeo ------------------------------------------------------------


def build_oci_layout(d: Path, data: DataFile, salt: str, layers: int, layer_size: int) -> int:
    """An OCI image layout at ``d`` (tag ``latest``) with ``layers`` distinct gzip layers; returns its size."""
    blobs = d / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(body: bytes) -> str:
        digest = sha256(body)
        (blobs / digest.split(":")[1]).write_bytes(body)
        return digest

    span = data.size - layer_size
    descs, diff_ids, total = [], [], 0
    for i in range(layers):
        off = (i * 7919 * 4096) % max(span, 1)
        content = hashlib.sha256(f"{salt}/{i}".encode()).digest() + data.map[off:off + layer_size - 32]
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo(f"layer{i}/data")
            info.size = len(content)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(content))
        tar_bytes = buf.getvalue()
        layer = gzip.compress(tar_bytes, compresslevel=0, mtime=0)  # random data: store, do not deflate
        diff_ids.append(sha256(tar_bytes))
        descs.append((put(layer), len(layer)))
        total += len(layer)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    put(config)
    manifest = image_manifest(config, descs)
    mdigest = put(manifest)
    (d / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (d / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": mdigest, "size": len(manifest),
         "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}))
    return total


def _skopeo(*args: str) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(["skopeo", "copy", "--quiet", *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise BenchError(f"skopeo copy {' '.join(args)}: {out.stderr.strip()[-800:]}")
    return time.perf_counter() - t0


async def whole_image(ctx: Ctx) -> None:
    s = ctx.sizes
    label = f"{s.image_layers} layers x {_mb(s.layer_size)}"
    push = ctx.metric("4 image (skopeo)", f"push, {label}", "s", False)
    pull = ctx.metric("4 image (skopeo)", f"pull, {label}", "s", False)
    targets = [ctx.dtr, ctx.reference]
    for rnd in range(ctx.rounds):
        for t in order(targets, rnd):
            d = ctx.workdir / f"oci-{t.name}-{rnd}"
            await asyncio.to_thread(build_oci_layout, d, ctx.data, f"{t.name}-{rnd}", s.image_layers, s.layer_size)
            secs = await asyncio.to_thread(_skopeo, "--dest-tls-verify=false", f"oci:{d}:latest",
                                           f"docker://{t.host}/bench/image{rnd}:latest")
            push.add(t.name, secs)
            shutil.rmtree(d)
            ctx.log(f"  round {rnd} {t.name}: push {secs:.2f} s")
        for t in order(targets, rnd):
            out = ctx.workdir / f"pulled-{t.name}-{rnd}"
            secs = await asyncio.to_thread(_skopeo, "--src-tls-verify=false",
                                           f"docker://{t.host}/bench/image{rnd}:latest", f"dir:{out}")
            pull.add(t.name, secs)
            shutil.rmtree(out)
            ctx.log(f"  round {rnd} {t.name}: pull {secs:.2f} s")
    push.note("oci: layout built by hand (gzip layers of random data, a new image per round and server, so "
              "skopeo's blob-info cache cannot turn uploads into mounts); skopeo copy oci: → docker://.")
    pull.note("skopeo copy docker:// → dir: (fresh directory).")


# -- 5: concurrent pushes ------------------------------------------------------------------


async def concurrent_pushes(ctx: Ctx) -> None:
    s = ctx.sizes
    n, size = s.concurrent, s.concurrent_size
    label = f"{n} x {_mb(size)}"
    total = ctx.metric("5 concurrent push", f"{label}, total time", "s", False)
    rate = ctx.metric("5 concurrent push", f"{label}, aggregate", "MB/s", True)
    errors = ctx.metric("5 concurrent push", f"{label}, errors", "count", False, [Goal("dtr", None, "==", 0)])
    targets = [ctx.dtr, ctx.reference]
    span = ctx.data.size - size
    for rnd in range(ctx.rounds):
        for t in order(targets, rnd):
            bodies = []
            for i in range(n):
                off = (i * 7 * MiB + rnd * 4096) % max(span, 1)
                body = hashlib.sha256(f"{t.name}-{rnd}-{i}".encode()).digest()[:16] + ctx.data.map[off:off + size - 16]
                bodies.append((body, sha256(body)))
            reg = ctx.reg(t)
            t0 = time.perf_counter()
            res = await asyncio.gather(*(reg.push_blob(f"bench/concurrent{rnd}", b, d) for b, d in bodies),
                                       return_exceptions=True)
            secs = time.perf_counter() - t0
            errs = [r for r in res if isinstance(r, BaseException)]
            total.add(t.name, secs)
            rate.add(t.name, n * size / secs / MB)
            errors.add(t.name, len(errs))
            if errs:
                errors.note(f"{t.name} round {rnd}: {errs[0]!r}")
            ctx.log(f"  round {rnd} {t.name}: {secs:.2f} s, {len(errs)} errors")
            del bodies
    total.note("aiohttp, one connection per push: POST then one monolithic PUT each, all started at once.")


# -- 6: peak RSS streaming a big blob -------------------------------------------------------


class _Sampler:
    """Samples VmRSS of ``pid`` every 10 ms in a thread; ``peak`` is the largest seen."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, KeyError):
                self.peak = max(self.peak, rss_status(self.pid)["VmRSS"])
            time.sleep(0.01)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def _peak(pid: int, work: Callable[[], Awaitable[float]]) -> tuple[float, float, float]:
    """(peak RSS in MB during ``work``, RSS before, seconds ``work`` took)."""
    hwm_ok = reset_hwm(pid)
    before = rss_status(pid)["VmRSS"]
    with _Sampler(pid) as sampler:
        secs = await work()
    st = rss_status(pid)
    peak = max(sampler.peak, st["VmHWM"] if hwm_ok else 0, st["VmRSS"])
    return peak / MB, before / MB, secs


async def peak_rss(ctx: Ctx) -> None:
    size = ctx.sizes.big_blob
    big = DataFile(ctx.workdir / "big.bin", size)
    try:
        rss_in = ctx.metric("6 peak RSS", f"streaming {_mb(size)} in (push)", "MB", False,
                            [Goal("dtr", None, "<", 150)])
        rss_out = ctx.metric("6 peak RSS", f"streaming {_mb(size)} out (pull)", "MB", False,
                             [Goal("dtr", None, "<", 150)])
        grow_in = ctx.metric("6 peak RSS", f"growth over the idle RSS, {_mb(size)} in", "MB", False)
        grow_out = ctx.metric("6 peak RSS", f"growth over the idle RSS, {_mb(size)} out", "MB", False)
        tput_in = ctx.metric("6 peak RSS", f"push throughput, {_mb(size)}", "MB/s", True)
        tput_out = ctx.metric("6 peak RSS", f"pull throughput, {_mb(size)}", "MB/s", True)
        for t in order([ctx.dtr, ctx.reference], 0):
            reg = ctx.reg(t)
            big.variant(f"big-{t.name}")

            async def push(reg: Registry = reg) -> float:
                return await curl_put_file(reg, "bench/big", big)

            async def pull(reg: Registry = reg) -> float:
                secs, n = await curl_get(reg.url(f"/v2/bench/big/blobs/{big.digest}"))
                if n != size:
                    raise BenchError(f"pulled {n} bytes, expected {size}")
                return secs

            peak, before, secs = await _peak(t.pid, push)
            rss_in.add(t.name, peak)
            grow_in.add(t.name, peak - before)
            tput_in.add(t.name, size / secs / MB)
            peak, before, secs = await _peak(t.pid, pull)
            rss_out.add(t.name, peak)
            grow_out.add(t.name, peak - before)
            tput_out.add(t.name, size / secs / MB)
            ctx.log(f"  {t.name}: peak RSS {rss_in.values[t.name][-1]:.0f} MB in, {peak:.0f} MB out")
        rss_in.note("Peak = max(VmHWM after resetting it via /proc/PID/clear_refs, VmRSS sampled every 10 ms) "
                    "of the server process alone (dtr's Postgres is another process). One round.")
    finally:
        big.close()
        big.path.unlink()


# -- 7: tag list and catalog at 10,000 entries ----------------------------------------------


async def _pool(n: int, concurrency: int, job: Callable[[int], Awaitable[None]]) -> None:
    it = iter(range(n))

    async def worker() -> None:
        for i in it:
            await job(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _walk(session: aiohttp.ClientSession, reg: Registry, path: str) -> tuple[list[float], int, int]:
    """Follow Link headers from ``path``; (seconds per page, pages, entries)."""
    times: list[float] = []
    entries = 0
    url: str | None = reg.url(path)
    while url is not None and len(times) < 10_000:
        t0 = time.perf_counter()
        async with session.get(url) as r:
            body = await r.read()
            times.append(time.perf_counter() - t0)
            if r.status != 200:
                raise BenchError(f"GET {url} -> {r.status}: {body[:200]!r}")
            link = r.headers.get("Link")
        data = json.loads(body)
        entries += len(data.get("tags") or data.get("repositories") or [])
        url = reg.url(link.split(";")[0].strip().strip("<>")) if link else None
    return times, len(times), entries


async def listings(ctx: Ctx) -> None:
    s = ctx.sizes
    n = s.listing
    page = 100
    seed_tags = ctx.metric("7 listings", f"seed {n:,} tags (manifest PUTs, {s.seed_concurrency} at once)", "s",
                           False)
    seed_repos = ctx.metric("7 listings", f"seed {n:,} repositories (one blob mount each)", "s", False)
    tag_page = ctx.metric("7 listings", f"tags/list page of {page} at {n:,} tags, median", "ms", False,
                          [Goal("dtr", None, "<", 20)])
    tag_p99 = ctx.metric("7 listings", f"tags/list page of {page} at {n:,} tags, p99", "ms", False)
    tag_all = ctx.metric("7 listings", f"tags/list all {n:,} (n={n})", "ms", False)
    cat_page = ctx.metric("7 listings", f"_catalog page of {page} at {n:,} repos, median", "ms", False,
                          [Goal("dtr", None, "<", 20)])
    cat_p99 = ctx.metric("7 listings", f"_catalog page of {page} at {n:,} repos, p99", "ms", False)
    cat_all = ctx.metric("7 listings", f"_catalog all (n={n}, following Links)", "ms", False)
    targets = [ctx.dtr, ctx.reference]
    for t in order(targets, 0):
        reg = ctx.reg(t)
        manifest, _, _, layer = await seed_small_image(reg, "bench/tags", "seed", "listing")
        t0 = time.perf_counter()

        async def put_tag(i: int, reg: Registry = reg, manifest: bytes = manifest) -> None:
            await reg.put_manifest("bench/tags", f"t{i:05d}", manifest)

        await _pool(n, s.seed_concurrency, put_tag)
        seed_tags.add(t.name, time.perf_counter() - t0)
        t0 = time.perf_counter()

        async def put_repo(i: int, reg: Registry = reg, layer: bytes = layer) -> None:
            await reg.mount(f"catalog/r{i:05d}", sha256(layer), "bench/tags")

        await _pool(n, s.seed_concurrency, put_repo)
        seed_repos.add(t.name, time.perf_counter() - t0)
        ctx.log(f"  {t.name}: seeded {n} tags in {seed_tags.values[t.name][-1]:.1f} s, "
                f"{n} repos in {seed_repos.values[t.name][-1]:.1f} s")
    for rnd in range(ctx.rounds):
        for t in order(targets, rnd):
            reg = ctx.reg(t)
            times, pages, entries = await _walk(ctx.session, reg, f"/v2/bench/tags/tags/list?n={page}")
            if pages == 1 and entries > page:
                tag_page.note(f"{t.name} ignores n on tags/list (returned {entries} tags in one page): n/a.")
            else:
                tag_page.add(t.name, statistics.median(times) * 1000)
                tag_p99.add(t.name, _p99(times) * 1000)
            times, pages, entries = await _walk(ctx.session, reg, f"/v2/bench/tags/tags/list?n={n}")
            tag_all.add(t.name, sum(times) * 1000)
            if entries != n + 1:
                tag_all.note(f"{t.name}: listed {entries} tags, expected {n + 1}.")
            times, pages, entries = await _walk(ctx.session, reg, f"/v2/_catalog?n={page}")
            cat_page.add(t.name, statistics.median(times) * 1000)
            cat_p99.add(t.name, _p99(times) * 1000)
            try:
                times, pages, entries = await _walk(ctx.session, reg, f"/v2/_catalog?n={n}")
            except BenchError as e:
                if "PAGINATION_NUMBER_INVALID" not in str(e):
                    raise
                cat_all.note(f"{t.name} refuses n={n} (PAGINATION_NUMBER_INVALID): walked with n=1000, its maximum.")
                times, pages, entries = await _walk(ctx.session, reg, "/v2/_catalog?n=1000")
            cat_all.add(t.name, sum(times) * 1000)
            if entries < n:
                cat_all.note(f"{t.name}: the catalog listed {entries} repositories, fewer than the {n} seeded.")
            if pages > 1:
                cat_all.note(f"{t.name}: {pages} pages for n={n} ({entries} repositories).")
            tag_ms = f"{tag_page.values[t.name][-1]:.1f} ms" if t.name in tag_page.values else "n/a"
            ctx.log(f"  round {rnd} {t.name}: tag page {tag_ms}, catalog page {cat_page.values[t.name][-1]:.1f} ms")
    tag_page.note("Walks every page of n=100 following Link headers, timing each (aiohttp, keep-alive, "
                  "body read, JSON not parsed in the timing).")
    cat_all.note("The catalog also holds the few other bench/ repositories.")


def _p99(values: list[float]) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, round(0.99 * (len(v) - 1)))]


WORKLOADS: dict[str, Callable[[Ctx], Awaitable[None]]] = {
    "1": blob_push_pull, "3": manifests, "4": whole_image, "5": concurrent_pushes, "6": peak_rss, "7": listings,
}


def cleanup_dir(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            os.unlink(path)

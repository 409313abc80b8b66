"""Chaos: three replicas on one PostgreSQL and one S3 store (Swift) behind nginx (the shipped
deploy/nginx.conf), auth on. For a minute skopeo, the Docker engine and plain HTTP push and pull
while one replica at a time is SIGKILLed and restarted and GC jobs run. Then: every push a client
saw succeed pulls back whole (digests checked), every pull succeeded within the client's retries,
every GC job ended done with no attempt run twice, and every upload left behind either resumes
or is cleanly unknown."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from sqlalchemy.engine import make_url

from dtr.jobs.service import ended
from tests.auth.client import basic
from tests.auth.constants import ADMIN, ADMIN_PASSWORD
from tests.clients.engines import DOCKER_CLI, CommandError, DockerEngine, Skopeo, rootfs_tar, run, verify_dir_image
from tests.ha.cluster import Cluster, cluster
from tests.oci import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, digest_of, push_image
from tests.storage.sections import storage_section

pytestmark = pytest.mark.xdist_group("ha-chaos")

LOAD_SECONDS = 60
#: Pull attempts a client makes (skopeo and docker also retry inside each).
PULL_ATTEMPTS = 3
HTTP_REPO, SKOPEO_REPO, DOCKER_REPO = "chaos/http", "chaos/skopeo", "chaos/docker"
ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST))
CREDS = f"{ADMIN}:{ADMIN_PASSWORD}"


@dataclasses.dataclass
class Load:
    """What the clients saw."""

    #: (repository, tag, manifest digest) of each push a client saw succeed.
    pushed: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    push_failures: list[str] = dataclasses.field(default_factory=list)
    pull_failures: list[str] = dataclasses.field(default_factory=list)
    pulls: int = 0

    def of(self, repo: str) -> list[tuple[str, str, str]]:
        return [p for p in self.pushed if p[0] == repo]


async def _pulls_back(http: aiohttp.ClientSession, base: str, repo: str, tag: str, digest: str) -> None:
    """The manifest at ``tag`` has ``digest`` and its config and layers read back intact."""
    async with http.get(f"{base}/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT}) as r:
        body = await r.read()
        assert r.status == 200, f"{repo}:{tag}: {r.status} {body[:200]!r}"
    assert digest_of(body) == digest, f"{repo}:{tag}: another manifest"
    doc = json.loads(body)
    for d in [doc["config"], *doc["layers"]]:
        async with http.get(f"{base}/v2/{repo}/blobs/{d['digest']}") as r:
            data = await r.read()
            assert r.status == 200, f"{repo} blob {d['digest']}: {r.status}"
        assert digest_of(data) == d["digest"], f"{repo} blob {d['digest']}: corrupt"


async def _pull(load: Load, what: str, attempt: Callable[[], Awaitable[None]]) -> None:
    """One pull, as a client retries it: a failure counts only when every attempt failed."""
    load.pulls += 1
    for i in range(PULL_ATTEMPTS):
        try:
            return await attempt()
        except (AssertionError, aiohttp.ClientError, TimeoutError) as e:
            if i == PULL_ATTEMPTS - 1:
                load.pull_failures.append(f"{what}: {e}"[:2000])
            await asyncio.sleep(1)


async def _http_client(c: Cluster, load: Load, stop: asyncio.Event) -> None:
    """Plain HTTP pushes of fresh images (and one to a moving tag, garbage for GC), each followed
    by a pull of an earlier push."""
    headers = {"Authorization": f"Bearer {await c.token(HTTP_REPO)}"}
    async with aiohttp.ClientSession(auto_decompress=False, headers=headers) as http:
        i = 0
        while not stop.is_set():
            i += 1
            layers = [os.urandom(64 << 10), os.urandom((256 + i % 256) << 10)]
            config = json.dumps({"architecture": "amd64", "os": "linux", "nonce": uuid.uuid4().hex}).encode()
            for tag in (f"h{i}", "moving"):
                try:
                    body = await push_image(http, c.lb.url, HTTP_REPO, tag, config, layers)
                except (AssertionError, aiohttp.ClientError, TimeoutError) as e:
                    load.push_failures.append(f"http {tag}: {e}"[:500])
                else:
                    if tag != "moving":
                        load.pushed.append((HTTP_REPO, tag, digest_of(body)))
                config = config.replace(b"nonce", b"other")  # the moving tag's image differs
            if done := load.of(HTTP_REPO):
                _, back, digest = done[i % len(done)]

                async def pull_back(back: str = back, digest: str = digest) -> None:
                    await _pulls_back(http, c.lb.url, HTTP_REPO, back, digest)

                await _pull(load, f"http {back}", pull_back)


async def _skopeo_client(c: Cluster, load: Load, stop: asyncio.Event, skopeo: Skopeo, layouts: list[str],
                         out: Path) -> None:
    """skopeo copies OCI layouts in, then copies an earlier push back out and checks every digest."""
    i = 0
    while not stop.is_set():
        i += 1
        tag = f"s{i}"
        try:
            digest = await asyncio.to_thread(skopeo.copy, layouts[i % len(layouts)],
                                             f"docker://{c.lb.host}/{SKOPEO_REPO}:{tag}", "--dest-creds", CREDS,
                                             "--retry-times", "2")
        except CommandError as e:
            load.push_failures.append(f"skopeo {tag}: {e}"[:500])
        else:
            load.pushed.append((SKOPEO_REPO, tag, digest))
        if done := load.of(SKOPEO_REPO):
            _, back, digest = done[i % len(done)]

            async def copy_back(back: str = back, digest: str = digest) -> None:
                dest = out / f"{back}-{uuid.uuid4().hex[:6]}"
                try:
                    await asyncio.to_thread(skopeo.copy, f"docker://{c.lb.host}/{SKOPEO_REPO}:{back}", f"dir:{dest}",
                                            "--src-creds", CREDS, "--retry-times", "2")
                except CommandError as e:
                    raise AssertionError(str(e)) from None
                verify_dir_image(dest, digest)

            await _pull(load, f"skopeo {back}", copy_back)


async def _docker_client(c: Cluster, load: Load, stop: asyncio.Event, engine: DockerEngine, bases: list[str]) -> None:
    """``docker push`` under fresh tags, and ``docker pull`` of what skopeo pushed."""
    i = 0
    while not stop.is_set():
        i += 1
        ref = f"{c.lb.host}/{DOCKER_REPO}:d{i}"
        await asyncio.to_thread(engine.docker, "tag", bases[i % len(bases)], ref)
        try:
            digest, _ = await asyncio.to_thread(engine.push, ref)
        except (CommandError, AssertionError) as e:
            load.push_failures.append(f"docker d{i}: {e}"[:500])
        else:
            load.pushed.append((DOCKER_REPO, f"d{i}", digest))
        if done := load.of(SKOPEO_REPO):
            _, tag, digest = done[i % len(done)]
            pull_ref = f"{c.lb.host}/{SKOPEO_REPO}:{tag}"

            async def docker_pull(pull_ref: str = pull_ref, digest: str = digest) -> None:
                p = await asyncio.to_thread(engine.docker, "pull", pull_ref, check=False)
                assert p.returncode == 0 and digest in p.stdout, p.stdout + p.stderr
                await asyncio.to_thread(engine.docker, "rmi", pull_ref, check=False)

            await _pull(load, f"docker pull {tag}", docker_pull)


async def _gc_jobs(c: Cluster, stop: asyncio.Event, ids: list[str]) -> None:
    """Queue a GC (grace 15 s: the moving tag's old images are collected while pushes go on)
    every 20 s; a refused POST (its replica just died) is sent again."""
    async with aiohttp.ClientSession(headers={"Authorization": basic(ADMIN, ADMIN_PASSWORD)}) as http:
        while not stop.is_set():
            for _ in range(10):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.post(f"{c.lb.url}/api/v0/jobs", json={
                            "action": "gc", "parameters": {"grace_period": "15s"}, "retries": 3}) as r:
                        if r.status == 202:
                            ids.append((await r.json())["id"])
                            break
                await asyncio.sleep(1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 20)


async def _jobs_end(c: Cluster, ids: list[str]) -> dict[str, str]:
    """Each job's final status (waiting, bounded, for those still running)."""
    statuses: dict[str, str] = {}
    async with aiohttp.ClientSession(headers={"Authorization": basic(ADMIN, ADMIN_PASSWORD)}) as http:
        for job_id in ids:
            for _ in range(600):
                async with http.get(f"{c.lb.url}/api/v0/jobs/{job_id}") as r:
                    job = await r.json() if r.status == 200 else {"status": f"HTTP {r.status}"}
                statuses[job_id] = job["status"]
                if r.status == 200 and ended(job):  # worker_dead with attempts left runs again
                    break
                await asyncio.sleep(0.2)
    return statuses


async def _database_facts(url: str) -> tuple[dict[str, list[int]], list[tuple[str, str]]]:
    """(attempt numbers each GC job's log shows started, (upload id, repository) of every upload row)."""
    u = make_url(url)
    conn = await asyncpg.connect(host=u.query["host"], port=u.port, user=u.username, database=u.database)
    try:
        logs = await conn.fetch("SELECT j.id, l.data FROM jobs j JOIN job_logs l ON l.job_id = j.id "
                                "WHERE j.action = 'gc' ORDER BY l.line")
        uploads = await conn.fetch("SELECT u.id, r.name FROM uploads u JOIN repositories r ON r.id = u.repository_id")
    finally:
        await conn.close()
    attempts: dict[str, list[int]] = {}
    for row in logs:
        if m := re.search(r"gc job \S+: attempt (\d+) of \d+ on worker", row["data"]):
            attempts.setdefault(str(row["id"]), []).append(int(m.group(1)))
    return attempts, [(str(r["id"]), r["name"]) for r in uploads]


async def test_pushes_and_pulls_survive_replicas_dying(
    pg_uri: str, tmp_path: Path, request: pytest.FixtureRequest, docker_engine: DockerEngine, skopeo: Skopeo,
    oci_layout: Callable[..., Path], busybox: str, unique: str
) -> None:
    layouts = [f"oci:{oci_layout(f'v{k}', f'chaos skopeo {k} {unique}')}:v{k}" for k in range(2)]
    storage = storage_section("s3-swift", request)
    jobs = {"jobs": {"heartbeat_interval": 1, "worker_timeout": 4, "retry_backoff": 1}}
    with cluster(pg_uri, tmp_path / "cluster", storage, jobs) as c:
        c.create_repositories(HTTP_REPO, SKOPEO_REPO, DOCKER_REPO)
        p = run([DOCKER_CLI, "login", "-u", ADMIN, "--password-stdin", c.lb.host], env=docker_engine.env,
                input=ADMIN_PASSWORD + "\n")
        assert "Login Succeeded" in p.stdout
        bases = [f"chaos-base-{unique}:{k}" for k in range(2)]
        for k, base in enumerate(bases):
            docker_engine.import_image(rootfs_tar(tmp_path / f"docker{k}", f"chaos docker {k} {unique}", busybox),
                                       base)
        (tmp_path / "pulled").mkdir()

        load, stop, gc_ids = Load(), asyncio.Event(), list[str]()
        tasks = [asyncio.create_task(t) for t in (
            _http_client(c, load, stop), _skopeo_client(c, load, stop, skopeo, layouts, tmp_path / "pulled"),
            _docker_client(c, load, stop, docker_engine, bases), _gc_jobs(c, stop, gc_ids), c.chaos(stop))]
        await asyncio.sleep(LOAD_SECONDS)
        stop.set()
        await asyncio.gather(*tasks)
        await asyncio.to_thread(c.ensure_all_up)

        # The load was real: replicas died under it, every client pushed, GC ran.
        assert c.kills >= 3
        assert {r for r, _, _ in load.pushed} == {HTTP_REPO, SKOPEO_REPO, DOCKER_REPO}, load.push_failures
        assert gc_ids
        # Every pull succeeded within the client's retries.
        assert not load.pull_failures, load.pull_failures
        # Every push a client saw succeed pulls back whole.
        repos = (HTTP_REPO, SKOPEO_REPO, DOCKER_REPO)
        headers = {"Authorization": f"Bearer {await c.token(*repos, actions='pull')}"}
        async with aiohttp.ClientSession(auto_decompress=False, headers=headers) as http:
            for repo, tag, digest in load.pushed:
                await _pulls_back(http, c.lb.url, repo, tag, digest)
        # Every GC job ended done, and no attempt of one ran twice.
        statuses = await _jobs_end(c, gc_ids)
        assert set(statuses.values()) == {"done"}, statuses
        attempts, uploads = await _database_facts(c.replicas[0].config["database"]["url"])
        for job_id in gc_ids:
            assert attempts[job_id] == sorted(set(attempts[job_id])), (job_id, attempts[job_id])
        # Uploads left behind resume (their bytes are in storage) or, when a kill hit a finish
        # between moving the bytes and committing, answer BLOB_UPLOAD_UNKNOWN (the client starts
        # again; upload_cleanup reaps the row): never a 500 or a Range that storage does not hold.
        headers = {"Authorization": f"Bearer {await c.token(*repos)}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            for upload_id, repo in uploads:
                async with http.get(f"{c.lb.url}/v2/{repo}/blobs/uploads/{upload_id}") as r:
                    text = await r.text()
                    assert r.status == 204 or (r.status == 404 and "BLOB_UPLOAD_UNKNOWN" in text), \
                        (upload_id, repo, r.status, text)

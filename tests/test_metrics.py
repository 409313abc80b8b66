"""/metrics: counters move with pushes, pulls, logins, jobs and the manifest cache; scrape-time
figures (job queue, workers, storage usage, the database pool) are there; labels never name a
repository; ``metrics.token`` and ``metrics.listen`` protect and move the endpoint."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dtr.config import ConfigError, load_config
from dtr.jobs.service import JobService
from dtr.jobs.usage import recount
from dtr.keys import DATABASE
from tests.auth.constants import ADMIN, auth_config
from tests.jobs.conftest import wait_job
from tests.oci import digest_of, push_image
from tests.servers import DtrProcess, free_port

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(http: aiohttp.ClientSession, base: str, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(f"{base}/metrics", headers=headers) as r:
        assert r.status == 200, await r.text()
        text = await r.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def counted() -> Samples:
    """This process's event counters, read without scraping an app (whose database figures are
    then read fresh by its first scrape, not reused from this one)."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(generate_latest(REGISTRY).decode()) for s in f.samples}


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0) - before.get(key, 0)


async def test_pushes_pulls_bytes_and_cache(app_client: TestClient[web.Request, web.Application], app_base: str
                                            ) -> None:
    http = app_client.session
    repo = f"metrics/{uuid.uuid4().hex[:8]}"
    config, layer = b'{"architecture": "amd64", "os": "linux"}', os.urandom(50_000)
    before = await scrape(http, app_base)
    body = await push_image(http, app_base, repo, "v1", config, [layer])
    # The cache listens for invalidations once its connection is up: GET until a lookup hits.
    for _ in range(100):
        async with http.get(f"{app_base}/v2/{repo}/manifests/v1") as r:
            assert r.status == 200
        if delta(before, await scrape(http, app_base), "dtr_manifest_cache_lookups_total", result="hit"):
            break
        await asyncio.sleep(0.1)
    tag_gets = 1 + _
    async with http.get(f"{app_base}/v2/{repo}/manifests/{digest_of(body)}") as r:
        assert r.status == 200
    async with http.head(f"{app_base}/v2/{repo}/manifests/v1") as r:
        assert r.status == 200
    async with http.get(f"{app_base}/v2/{repo}/blobs/{digest_of(layer)}") as r:
        assert await r.read() == layer
    async with http.get(f"{app_base}/v2/{repo}/blobs/{digest_of(layer)}", headers={"Range": "bytes=10-19"}) as r:
        assert r.status == 206 and len(await r.read()) == 10
    after = await scrape(http, app_base)

    assert delta(before, after, "dtr_registry_pushes_total", reference="tag") == 1
    assert delta(before, after, "dtr_registry_pulls_total", reference="tag") == tag_gets
    assert delta(before, after, "dtr_registry_pulls_total", reference="digest") == 1
    assert delta(before, after, "dtr_manifest_cache_lookups_total", result="hit") >= 1
    assert delta(before, after, "dtr_manifest_cache_lookups_total", result="miss") >= 1
    assert delta(before, after, "dtr_registry_blob_bytes_received_total") == len(config) + len(layer)
    assert delta(before, after, "dtr_registry_blob_bytes_sent_total") == len(layer) + 10
    assert after[("dtr_registry_uploads_in_progress", ())] == 0
    # Bounded labels: no label value names the repository (or any part of it).
    for _name, labels in after:
        for _label, value in labels:
            assert repo not in value and repo.split("/")[1] not in value, (_name, labels)


async def test_jobs_queue_workers_and_durations(app: web.Application,
                                                app_client: TestClient[web.Request, web.Application],
                                                app_base: str) -> None:
    http = app_client.session
    jobs = JobService(app[DATABASE].engine)
    before = counted()
    quick = await jobs.queue("noop", {"seconds": 0})
    failing = await jobs.queue("noop", {"fail_attempts": 1})
    for job in (quick, failing):
        await wait_job(http, app_base, job["id"])
    # More long jobs than the worker's noop capacity (4): some run, the rest wait.
    long = [await jobs.queue("noop", {"seconds": 600}) for _ in range(5)]
    try:
        after = await scrape(http, app_base)
    finally:
        for job in long:
            await jobs.cancel(uuid.UUID(job["id"]))
    assert delta(before, after, "dtr_job_duration_seconds_count", action="noop") == 2
    assert delta(before, after, "dtr_job_failures_total", action="noop") == 1
    queued = {status: after.get(("dtr_jobs_queued", (("action", "noop"), ("status", status))), 0)
              for status in ("waiting", "running")}
    assert queued["waiting"] >= 1 and queued["waiting"] + queued["running"] == 5, queued
    assert after[("dtr_job_workers_running", ())] >= 1
    assert any(name == "dtr_job_worker_heartbeat_age_seconds" for name, _ in after)
    assert after[("dtr_metrics_database_ok", ())] == 1
    assert after[("dtr_db_pool_waiting", ())] == 0
    assert ("dtr_db_pool_in_use", ()) in after and ("dtr_db_pool_idle", ()) in after


async def test_stored_bytes_from_the_usage_count(app: web.Application,
                                                 app_client: TestClient[web.Request, web.Application],
                                                 app_base: str) -> None:
    http = app_client.session
    config, layer = b'{"architecture": "arm64", "os": "linux"}', os.urandom(30_000)
    body = await push_image(http, app_base, "usage/one", "v1", config, [layer])
    await recount(app[DATABASE].engine)
    after = await scrape(http, app_base)
    assert after[("dtr_storage_bytes", ())] == len(config) + len(layer) + len(body)
    assert after[("dtr_storage_blobs", ())] == 2
    assert after[("dtr_storage_manifests", ())] == 1
    assert after[("dtr_storage_repositories", ())] == 1
    assert after[("dtr_storage_usage_updated_timestamp_seconds", ())] > 0


async def test_failed_logins_and_lockouts(dtr_factory: Callable[..., DtrProcess], http: aiohttp.ClientSession
                                          ) -> None:
    proc = dtr_factory(auth_config(failed_login_threshold=1, failed_login_address_threshold=100, lockout_base=60))
    login = {"Authorization": "Basic " + base64.b64encode(f"{ADMIN}:not-the-password".encode()).decode()}
    before = await scrape(http, proc.url)
    async with http.get(f"{proc.url}/auth/token", headers=login) as r:
        assert r.status == 401
    async with http.get(f"{proc.url}/auth/token", headers=login) as r:
        assert r.status == 429
    after = await scrape(http, proc.url)
    assert delta(before, after, "dtr_auth_login_failures_total") == 1
    assert delta(before, after, "dtr_auth_lockouts_total") == 1
    for _name, labels in after:
        assert all(value != ADMIN for _label, value in labels)


async def test_a_token_protects_metrics_and_health(dtr_factory: Callable[..., DtrProcess],
                                                   http: aiohttp.ClientSession) -> None:
    token = "s3cret-" + uuid.uuid4().hex
    proc = dtr_factory({"metrics": {"token": token}})
    for path in ("/metrics", "/health"):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {token}"},
                        {"Authorization": f"Bearer {token}x"}):
            async with http.get(f"{proc.url}{path}", headers=headers) as r:
                assert r.status == 401, (path, headers)
                assert r.headers["WWW-Authenticate"].startswith("Bearer")
        async with http.get(f"{proc.url}{path}", headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200, (path, await r.text())
    assert ("dtr_http_requests_total", (("area", "metrics"), ("method", "GET"), ("status", "401"))) in \
        await scrape(http, proc.url, token)
    async with http.get(f"{proc.url}/_ping") as r:
        assert r.status == 200  # the load balancers' check stays open


async def test_a_separate_listen_address(dtr_factory: Callable[..., DtrProcess], http: aiohttp.ClientSession,
                                         tmp_path: Path) -> None:
    token_file = tmp_path / "metrics-token"
    token_file.write_text("file-token\n")
    port = free_port()
    proc = dtr_factory({"metrics": {"token_file": str(token_file), "listen": f"127.0.0.1:{port}"}})
    side = f"http://127.0.0.1:{port}"
    for path in ("/metrics", "/health"):
        async with http.get(f"{proc.url}{path}", headers={"Authorization": "Bearer file-token"}) as r:
            assert r.status == 404, path  # not on the main address any more
        async with http.get(f"{side}{path}") as r:
            assert r.status == 401, path
        async with http.get(f"{side}{path}", headers={"Authorization": "Bearer file-token"}) as r:
            assert r.status == 200, (path, await r.text())
    async with http.get(f"{side}/_ping") as r:
        assert r.status == 200
    async with http.get(f"{side}/v2/") as r:
        assert r.status == 404  # only the operations endpoints
    async with http.get(f"{proc.url}/_ping") as r:
        assert r.status == 200
    assert "dtr_db_pool_in_use" in {name for name, _ in await scrape(http, side, "file-token")}


@pytest.mark.parametrize("section, message", [
    ({"token": "a", "token_file": "/etc/x"}, "not both"),
    ({"token": " "}, "must not be empty"),
    ({"listen": "9102"}, "HOST:PORT"),
    ({"listen": "127.0.0.1:70000"}, "HOST:PORT"),
    ({"tokne": "a"}, "unknown key"),
])
def test_metrics_config_is_checked(tmp_path: Path, section: dict[str, Any], message: str) -> None:
    import yaml

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"metrics": section}))
    with pytest.raises(ConfigError, match=message):
        load_config(path, environ={})


def test_an_unreadable_token_file_stops_startup(dtr_factory: Callable[..., DtrProcess], tmp_path: Path) -> None:
    proc = dtr_factory({"metrics": {"token_file": str(tmp_path / "missing")}}, start=False)
    with pytest.raises(RuntimeError, match=r"metrics\.token_file: cannot read"):
        proc.start()


def test_the_example_config_documents_the_section() -> None:
    from tests.servers import ROOT

    cfg = load_config(ROOT / "config.example.yaml", environ={})
    assert (cfg.metrics.token, cfg.metrics.listen) == (None, None)
    assert "token_file:" in (ROOT / "config.example.yaml").read_text()

"""``/api/v0/meta/cluster_status`` and ``dtr replicas list``: every replica with its health; a
replica killed shows down, and the job runner hands its job to another replica (the two agree)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from tests.auth.client import Client
from tests.auth.constants import ADMIN_AUTH, PASSWORD, auth_config
from tests.cluster.conftest import api, wait_job
from tests.servers import DtrProcess
from tests.test_cli import dtr

Cluster = Callable[..., list[DtrProcess]]


def _status(proc: DtrProcess, auth: tuple[str, str] | None = ADMIN_AUTH) -> dict[str, Any]:
    r = Client(proc.url).api("GET", "/meta/cluster_status", auth, expect=200)
    return dict(r.json())


def _of(status: dict[str, Any], proc: DtrProcess) -> dict[str, Any]:
    """The replica entry of ``proc`` (matched by the address it serves on)."""
    return dict(next(r for r in status["replicas"] if r["address"] == proc.url))


def test_replicas_are_listed_with_their_health(cluster: Cluster) -> None:
    a, b = cluster(2, auth=auth_config()["auth"])
    client = Client(a.url)
    assert client.api("GET", "/meta/cluster_status").status == 401
    client.api("POST", "/accounts", ADMIN_AUTH, {"name": "someone", "password": PASSWORD, "isOrg": False},
               expect=201)
    assert client.api("GET", "/meta/cluster_status", ("someone", PASSWORD)).status == 403

    status = _status(a)
    assert status["database"]["status"] == "ok" and status["database"]["server_version"]
    workers = {w["pid"]: w["id"] for w in client.api("GET", "/workers", ADMIN_AUTH, expect=200).json()["workers"]}
    for proc in (a, b):
        entry = _of(status, proc)
        assert entry["health"] == "up" and entry["pid"] == proc.proc.pid  # type: ignore[union-attr]
        assert entry["workerID"] == workers[entry["pid"]]
        assert entry["version"] and entry["startedAt"] and entry["heartbeatAt"]
        assert status["replica_health"][entry["id"]] == "OK"
        assert status["replica_timestamp"][entry["id"]] == entry["heartbeatAt"]
    assert status["replica_id"] == _of(status, a)["id"]
    assert _status(b)["replica_id"] == _of(status, b)["id"]

    b.stop()  # a clean shutdown
    status = _status(a)
    assert _of(status, b)["health"] == "stopped"
    assert status["replica_health"][_of(status, b)["id"]] == "stopped"
    assert _of(status, a)["health"] == "up"

    listed = dtr("replicas", "list", "--json", config=a.config_path)
    assert listed.returncode == 0, listed.stderr
    assert {r["address"]: r["health"] for r in json.loads(listed.stdout)} == {a.url: "up", b.url: "stopped"}
    table = dtr("replicas", "list", config=a.config_path)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "HEALTH", "ADDRESS"] and len(lines) == 3
    assert any(line.split()[1:3] == ["stopped", b.url] for line in lines[1:]), table.stdout


async def test_a_killed_replica_is_down_and_its_job_resumes_elsewhere(
        cluster: Cluster, http: aiohttp.ClientSession) -> None:
    a, b = cluster(2, jobs={"capacity": {"noop": 1}})
    job = await api(http, "POST", f"{a.url}/api/v0/jobs",
                    {"action": "noop", "parameters": {"seconds": 6}, "retries": 2})
    running = await wait_job(http, a.url, job["id"], statuses=("running",))
    status = await api(http, "GET", f"{a.url}/api/v0/meta/cluster_status")
    holder = next(r for r in status["replicas"] if r["workerID"] == running["workerID"])
    victim, survivor = (a, b) if holder["address"] == a.url else (b, a)
    victim.kill()  # SIGKILL: no goodbye, the heartbeats just stop

    deadline = time.monotonic() + 30
    while True:  # the cluster view: the victim goes down once silent past jobs.worker_timeout
        status = await api(http, "GET", f"{survivor.url}/api/v0/meta/cluster_status")
        health = {r["address"]: r["health"] for r in status["replicas"]}
        if health[victim.url] == "down":
            break
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.2)
    assert health[survivor.url] == "up"
    assert status["replica_health"][holder["id"]].startswith("down")

    # The job runner agrees: the down replica's worker is dead and its job finishes on the survivor.
    final = await wait_job(http, survivor.url, job["id"], within=60)
    assert final["status"] == "done" and final["attempt"] == 2, final
    status = await api(http, "GET", f"{survivor.url}/api/v0/meta/cluster_status")
    assert final["workerID"] == next(r["workerID"] for r in status["replicas"] if r["address"] == survivor.url)
    workers = {w["id"]: w["status"] for w in (await api(http, "GET", f"{survivor.url}/api/v0/workers"))["workers"]}
    assert workers[holder["workerID"]] == "dead"
    logs = [x["data"] for x in await api(http, "GET", f"{survivor.url}/api/v0/jobs/{job['id']}/logs")]
    assert any(holder["workerID"] in line and "worker_dead" in line for line in logs), logs

"""Mirroring tests' servers: a local dtr (auth off; small chunks so blobs of a few MiB go in
several PATCHes), remotes (Go's reference registry with htpasswd and TLS; a second dtr with token
auth), random images, and waiting for a policy's run."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from dtr.db.engine import asyncpg_url
from tests.auth.client import Client
from tests.clients.conftest import skopeo  # noqa: F401
from tests.clients.engines import ReferenceRegistry, htpasswd_file
from tests.oci import OCI_MANIFEST, digest_of, image
from tests.servers import DtrProcess, free_port, require_binary
from tests.trust.notary_tools import TestCA

CHUNK = 1 << 20
#: The local dtr's settings: blobs over 512 KiB go in 1 MiB chunks; failed attempts retried soon.
LOCAL = {"mirroring": {"monolithic_max": CHUNK // 2, "chunk_size": CHUNK}, "jobs": {"retry_backoff": 0.5}}
USER, PASSWORD = "mirror", "Mirr0r-pass-word"


@pytest.fixture
def local(dtr_factory: Callable[..., DtrProcess]) -> DtrProcess:
    return dtr_factory(LOCAL)


@pytest.fixture
def reference(tmp_path: Path) -> Iterator[Callable[..., ReferenceRegistry]]:
    """``make(auth=False, ca=None)``: a started reference registry, with htpasswd (USER, PASSWORD)
    and, with a TestCA, TLS."""
    binary = require_binary("docker-registry", "apt-get install -y docker-registry")
    started: list[ReferenceRegistry] = []

    def make(auth: bool = False, ca: TestCA | None = None) -> ReferenceRegistry:
        work = tmp_path / f"reference{len(started)}"
        work.mkdir()
        htpasswd = None
        if auth:
            htpasswd = htpasswd_file(work / "htpasswd", USER, PASSWORD)
        tls = ca.server_cert(f"reference{len(started)}") if ca else None
        reg = ReferenceRegistry(work, binary, free_port(), htpasswd=htpasswd, tls=tls)
        started.append(reg)
        return reg.start()

    yield make
    for reg in started:
        reg.stop()


@pytest.fixture
def ca(tmp_path: Path) -> TestCA:
    return TestCA(tmp_path / "ca")


def random_image(*layer_sizes: int, shared: list[bytes] | None = None) -> tuple[bytes, list[bytes], bytes]:
    """(config, layers, manifest) of an image of random layers (``shared`` layers first)."""
    layers = [*(shared or []), *(os.urandom(n) for n in layer_sizes)]
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": [digest_of(x) for x in layers]}}).encode()
    return config, layers, image(config, layers)


def api(proc: DtrProcess, method: str, path: str, body: Any = None, expect: int | None = None,
        auth: tuple[str, str] | None = None) -> Any:
    r = Client(proc.url).api(method, path, auth, body, expect)
    return r.json() if r.body else None


def wait_run(proc: DtrProcess, path: str, after: str | None = None, timeout: float = 120,
             auth: tuple[str, str] | None = None) -> dict[str, Any]:
    """The policy at ``path`` once a run other than job ``after`` ended (SUCCESS or FAILED)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        policy = api(proc, "GET", path, expect=200, auth=auth)
        status = policy["lastStatus"]
        if status and status["job"] != after and status["code"] in ("SUCCESS", "FAILED"):
            return dict(policy)
        time.sleep(0.3)
    raise AssertionError(f"no run of {path} ended within {timeout}s:\n{proc.log_tail(30, access=False)}")


def job(proc: DtrProcess, job_id: str, timeout: float = 60) -> dict[str, Any]:
    """The job once it ended (its policy's status is written just before), with its ``log``."""
    deadline = time.monotonic() + timeout
    while (found := api(proc, "GET", f"/jobs/{job_id}", expect=200))["status"] not in ("done", "error"):
        assert time.monotonic() < deadline, found
        time.sleep(0.2)
    logs = api(proc, "GET", f"/jobs/{job_id}/logs", expect=200)
    return {**found, "log": "\n".join(x["data"] for x in logs)}


OCI = OCI_MANIFEST


async def outbox(proc: DtrProcess, *types: str) -> list[dict[str, Any]]:
    """The registry events of ``types`` the dtr recorded, oldest first."""
    engine = create_async_engine(asyncpg_url(proc.config["database"]["url"]))
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT type, repository, tag, digest, detail FROM registry_events "
                                           "WHERE type = ANY(:types) ORDER BY id"), {"types": list(types)})
            return [dict(r._mapping) for r in rows]
    finally:
        await engine.dispose()


from tests.auth.conftest import auth_dtr, client, world  # noqa: E402, F401

"""Replicas of one cluster: dtr processes on one database and one storage root, each with its own
data_dir, behind one external URL (as behind a load balancer), with fast heartbeats."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.auth.client import Client
from tests.auth.constants import auth_config
from tests.jobs.conftest import FAST_JOBS, api, cluster, wait_job  # noqa: F401
from tests.servers import DtrProcess, create_database

#: The URL clients use for every replica (as behind a load balancer): the tokens' service.
EXTERNAL_URL = "http://registry.test"


def replica_config(storage: Path, **extra: Any) -> dict[str, Any]:
    """A replica's config: shared storage, the cluster's external URL, auth on, fast heartbeats."""
    return {**auth_config(failed_login_address_threshold=100000), "jobs": FAST_JOBS,
            "http": {"external_url": EXTERNAL_URL},
            "storage": {"filesystem": {"rootdirectory": str(storage)}}, **extra}


@pytest.fixture(scope="module")
def pair(pg_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DtrProcess, DtrProcess]]:
    """Two started replicas (auth on, different data_dirs) on a fresh database."""
    root = tmp_path_factory.mktemp("cluster")
    url = create_database(pg_uri, migrated=True)
    procs = [DtrProcess(root / name, url, replica_config(root / "registry")) for name in ("a", "b")]
    try:
        for p in procs:
            p.start()
        yield procs[0], procs[1]
    finally:
        for p in procs:
            p.stop()


def token(client: Client, scopes: list[str], auth: tuple[str, str] | None) -> str:
    """A registry token from ``client``'s replica (for the cluster's service, as a client asks it)."""
    q = "&".join(f"scope={s}" for s in scopes)
    r = client.request("GET", f"/auth/token?service=registry.test&{q}", auth=auth)
    assert r.status == 200, r.body
    return str(r.json()["token"])


def eventually(check: Callable[[], Any], within: float = 30.0, step: float = 0.1) -> Any:
    """``check()``'s first truthy answer, polling up to ``within`` seconds (a bound, not a timing check)."""
    deadline = time.monotonic() + within
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"not so within {within}s: {check}"
        time.sleep(step)

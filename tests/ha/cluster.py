"""Three dtr replicas on one PostgreSQL and one object store behind nginx (the shipped
deploy/nginx.conf), with auth on, and the chaos that kills and restarts them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

from tests.auth.client import Client, basic
from tests.auth.constants import ADMIN, ADMIN_AUTH, ADMIN_PASSWORD, auth_config
from tests.ha.balancers import Balancer
from tests.servers import DtrProcess, create_database

#: The token audience every replica shares (the default follows each replica's own address).
SERVICE = "dtr-lb"


class Cluster:
    """Replicas sharing a database (and so the token signing key), storage and a service name, behind ``lb``."""

    def __init__(self, replicas: list[DtrProcess], lb: Balancer) -> None:
        self.replicas, self.lb = replicas, lb
        self.kills = 0

    async def token(self, *repos: str, actions: str = "pull,push") -> str:
        """An admin's bearer token for ``repos``, from the realm the balancer's challenge names."""
        params = [("service", SERVICE), *(("scope", f"repository:{r}:{actions}") for r in repos)]
        async with aiohttp.ClientSession() as http, http.get(
            f"{self.lb.url}/auth/token", params=params, headers={"Authorization": basic(ADMIN, ADMIN_PASSWORD)}
        ) as r:
            assert r.status == 200, await r.text()
            return str((await r.json())["token"])

    async def chaos(self, stop: asyncio.Event, pause: float = 6.0, down: float = 2.0) -> None:
        """Until ``stop``: SIGKILL one replica at a time (in turn), leave it down ``down`` s, restart it."""
        i = 0
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
            if stop.is_set():
                break
            victim = self.replicas[i % len(self.replicas)]
            i += 1
            victim.kill()
            self.kills += 1
            await asyncio.sleep(down)
            await asyncio.to_thread(victim.start, 60)

    def create_repositories(self, *repos: str) -> None:
        """Create ``org/name`` repositories (and their organisations) as the admin, through the balancer."""
        client = Client(self.lb.url)
        for org in sorted({r.split("/")[0] for r in repos}):
            client.api("POST", "/accounts", ADMIN_AUTH, {"name": org, "isOrg": True}, expect=201)
        for repo in repos:
            org, name = repo.split("/")
            client.api("POST", f"/repositories/{org}", ADMIN_AUTH, {"name": name, "visibility": "private"}, expect=201)

    def ensure_all_up(self) -> None:
        for proc in self.replicas:
            if proc.proc is None or proc.proc.poll() is not None:
                proc.start(60)


@contextlib.contextmanager
def cluster(pg_uri: str, workdir: Path, storage: dict[str, Any], extra: dict[str, Any] | None = None
            ) -> Iterator[Cluster]:
    """Three replicas behind nginx (the token signing key is the database's, shared by all)."""
    url = create_database(pg_uri, migrated=True)
    config = {**auth_config(service=SERVICE, failed_login_address_threshold=100000),
              "http": {"trusted_proxies": ["127.0.0.1"]}, "storage": storage, **(extra or {})}
    replicas = [DtrProcess(workdir / f"replica{i}", url, config) for i in range(3)]
    lb = Balancer("nginx", workdir / "nginx", [r.host for r in replicas])
    try:
        for r in replicas:
            r.start(60)
        yield Cluster(replicas, lb.start())
    finally:
        lb.stop()
        for r in replicas:
            r.stop()

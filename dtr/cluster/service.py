"""The replicas of one cluster: every ``dtr serve`` registers itself in ``replicas`` when it
starts, heartbeats every ``jobs.heartbeat_interval`` and marks itself stopped on a clean shutdown.
A replica is ``up`` while its heartbeat is younger than ``jobs.worker_timeout``, ``down`` once it
is older (it crashed, hung or lost the database: the job runner gives its jobs to others after the
same timeout), ``stopped`` after a clean shutdown. Ages are measured by the database's clock, so
the replicas' clocks need not agree.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Literal, cast

from aiohttp import web
from sqlalchemy import Table, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.cluster import shapes
from dtr.cluster.models import Replica
from dtr.config import Config
from dtr.keys import CONFIG, DATABASE, JOB_WORKER, REPLICA
from dtr.ops.health import version
from dtr.ops.tasks import background
from dtr.times import iso

log = logging.getLogger("dtr.cluster")

replicas = cast(Table, Replica.__table__)

Health = Literal["up", "down", "stopped"]
#: Replicas silent for this long (seconds) are forgotten when another replica starts.
FORGET_AFTER = 7 * 86400.0


@dataclasses.dataclass(frozen=True)
class ReplicaState:
    """A replica as the database has it, with its health now."""

    id: str
    address: str
    version: str
    host: str
    pid: int
    worker_id: str | None
    started_at: dt.datetime
    heartbeat_at: dt.datetime
    #: Seconds since its last heartbeat (by the database's clock).
    age: float
    health: Health

    def as_json(self) -> shapes.Replica:
        """As ``/api/v0/meta/cluster_status`` and ``dtr replicas list --json`` show it."""
        return {"id": self.id, "address": self.address, "version": self.version, "host": self.host,
                "pid": self.pid, "workerID": self.worker_id, "startedAt": iso(self.started_at),
                "heartbeatAt": iso(self.heartbeat_at), "heartbeatAge": round(self.age, 3), "health": self.health}


@dataclasses.dataclass(frozen=True)
class DatabaseState:
    latency: float
    server_version: str


class Membership:
    """This process's row in ``replicas``: ``register``, then ``heartbeat`` now and then, ``leave``."""

    def __init__(self, engine: AsyncEngine, cfg: Config, worker_id: Callable[[], str | None]) -> None:
        """``worker_id`` says this process's job worker id at each heartbeat (it may change)."""
        self.engine, self.cfg, self.worker_id = engine, cfg, worker_id
        self.id = uuid.uuid4().hex[:12]
        scheme = "https" if cfg.http.tls else "http"
        self.address = f"{scheme}://{cfg.http.addr}"

    async def register(self) -> None:
        """Add this replica (up), and forget replicas silent for ``FORGET_AFTER``."""
        async with self.engine.begin() as conn:
            await conn.execute(delete(replicas).where(
                replicas.c.heartbeat_at < func.now() - dt.timedelta(seconds=FORGET_AFTER)))
        await self.heartbeat()
        log.info("replica registered", extra={"replica": self.id, "address": self.address})

    async def heartbeat(self) -> None:
        """Renew this replica's heartbeat (re-adding its row if it was forgotten meanwhile)."""
        values = {"address": self.address, "version": version(), "host": socket.gethostname(),
                  "pid": os.getpid(), "status": "running", "worker_id": self.worker_id()}
        stmt = pg_insert(replicas).values(id=self.id, **values)
        async with self.engine.begin() as conn:
            await conn.execute(stmt.on_conflict_do_update(
                index_elements=[replicas.c.id], set_={**values, "heartbeat_at": func.now()}))

    async def beat(self) -> None:
        """Heartbeat every ``jobs.heartbeat_interval`` until cancelled; failures are logged and retried."""
        while True:
            await asyncio.sleep(self.cfg.jobs.heartbeat_interval)
            try:
                await self.heartbeat()
            except Exception as e:
                log.warning("replica heartbeat failed: %s", e, extra={"replica": self.id})

    async def leave(self) -> None:
        """Mark this replica stopped (a clean shutdown); a failure only logs (it then shows down)."""
        try:
            async with self.engine.begin() as conn:
                await conn.execute(update(replicas).where(replicas.c.id == self.id).values(status="stopped"))
        except Exception as e:
            log.warning("could not mark this replica stopped: %s", e, extra={"replica": self.id})


def _health(status: str, age: float, down_after: float) -> Health:
    if status == "stopped":
        return "stopped"
    return "up" if age <= down_after else "down"


async def list_replicas(engine: AsyncEngine, down_after: float) -> list[ReplicaState]:
    """Every replica known, by address then start time; down when silent longer than ``down_after`` seconds."""
    age = func.extract("epoch", func.now() - replicas.c.heartbeat_at).label("age")
    query = select(replicas, age).order_by(replicas.c.address, replicas.c.started_at, replicas.c.id)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [ReplicaState(r.id, r.address, r.version, r.host, r.pid, r.worker_id, r.started_at, r.heartbeat_at,
                         float(r.age), _health(r.status, float(r.age), down_after)) for r in rows]


async def database_state(engine: AsyncEngine) -> DatabaseState:
    """The database's round-trip time (seconds) and server version (DatabaseUnavailable if away)."""
    async with engine.connect() as conn:
        start = time.perf_counter()
        await conn.execute(text("SELECT 1"))
        latency = time.perf_counter() - start
        server = (await conn.execute(text("SHOW server_version"))).scalar()
    return DatabaseState(latency, str(server))


async def replica_registered(app: web.Application) -> AsyncIterator[None]:
    """The cleanup context: register this process, heartbeat while it runs, mark it stopped after."""
    cfg = app[CONFIG]

    def worker_id() -> str | None:
        worker = app.get(JOB_WORKER)
        return worker.id if worker is not None else None

    member = Membership(app[DATABASE].engine, cfg, worker_id)
    await member.register()
    app[REPLICA] = member
    try:
        async with background(member.beat()):
            yield
    finally:
        await member.leave()

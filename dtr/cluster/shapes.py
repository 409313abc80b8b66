"""The JSON of ``GET /api/v0/meta/cluster_status``: the replicas, their health, the database.

``replica_health`` and ``replica_timestamp`` keep DTR's names and meaning (replica id -> ``OK``
or what is wrong with it; replica id -> its last heartbeat); ``replicas`` says more of each.
"""

from __future__ import annotations

from typing import Literal

from typing_extensions import TypedDict


class Replica(TypedDict):
    id: str
    #: The URL the replica serves on (its scheme and ``http.addr``).
    address: str
    version: str
    host: str
    pid: int
    #: Its job worker's id (as in ``/api/v0/workers``); None when it runs no worker.
    workerID: str | None
    startedAt: str | None
    heartbeatAt: str | None
    #: Seconds since its last heartbeat, by the database's clock.
    heartbeatAge: float
    #: ``up``: heartbeating; ``down``: silent longer than ``jobs.worker_timeout``; ``stopped``: shut down.
    health: Literal["up", "down", "stopped"]


class DatabaseStatus(TypedDict):
    status: Literal["ok"]
    latency_ms: float
    server_version: str


class ClusterStatus(TypedDict):
    #: The replica that answered.
    replica_id: str
    replicas: list[Replica]
    replica_health: dict[str, str]
    replica_timestamp: dict[str, str | None]
    database: DatabaseStatus

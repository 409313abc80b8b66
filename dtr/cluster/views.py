"""``/api/v0/meta/cluster_status``: the replicas sharing this database and their health, and the
database's state; site admins only (a typed operation, ``dtr.api.operations``)."""

from __future__ import annotations

from aiohttp import web

from dtr.api.errors import codes
from dtr.api.operations import add_all, operation
from dtr.auth.api import require_admin
from dtr.cluster import shapes as s
from dtr.cluster.service import ReplicaState, database_state, list_replicas
from dtr.keys import CONFIG, DATABASE, REPLICA
from dtr.times import iso


def _dtr_health(r: ReplicaState) -> str:
    """DTR's replica_health value: ``OK``, else what is wrong."""
    if r.health == "down":
        return f"down: no heartbeat for {r.age:.0f}s"
    return "OK" if r.health == "up" else r.health


@operation(codes.FORBIDDEN)
async def cluster_status(request: web.Request) -> s.ClusterStatus:
    """The replicas (up, down when silent longer than ``jobs.worker_timeout``, or stopped) and the database."""
    require_admin(request)
    engine = request.config_dict[DATABASE].engine
    found = await list_replicas(engine, request.config_dict[CONFIG].jobs.worker_timeout)
    db = await database_state(engine)
    return {"replica_id": request.config_dict[REPLICA].id,
            "replicas": [r.as_json() for r in found],
            "replica_health": {r.id: _dtr_health(r) for r in found},
            "replica_timestamp": {r.id: iso(r.heartbeat_at) for r in found},
            "database": {"status": "ok", "latency_ms": round(db.latency * 1000, 3),
                         "server_version": db.server_version}}


def register(app: web.Application) -> None:
    """The cluster routes of /api/v0."""
    add_all(app.router, (("GET", "/meta/cluster_status", cluster_status),))

"""``dtr replicas list``: the replicas sharing the configured database and their health.

Like ``dtr jobs``, it reads the database named in the config (no token needed; it answers while
every replica is down). A replica is down once silent longer than ``jobs.worker_timeout``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable

from dtr.cluster.shapes import Replica
from dtr.config import Config, load_config


async def _replicas(cfg: Config) -> list[Replica]:
    from dtr.cluster.service import list_replicas
    from dtr.db.engine import Database

    db = await Database.open(cfg)
    try:
        return [r.as_json() for r in await list_replicas(db.engine, cfg.jobs.worker_timeout)]
    finally:
        await db.close()


#: The table's columns: heading, width, the field shown.
_COLUMNS = (("ID", 12, "id"), ("HEALTH", 7, "health"), ("ADDRESS", 28, "address"), ("HOST", 20, "host"),
            ("PID", 7, "pid"), ("VERSION", 12, "version"), ("AGE(s)", 8, "heartbeatAge"), ("STARTED", 0, "startedAt"))


def cmd_list(args: argparse.Namespace) -> int:
    found = asyncio.run(_replicas(load_config(args.config)))
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    print("  ".join(f"{title:{width}}" for title, width, _ in _COLUMNS).rstrip())
    for r in found:
        print("  ".join(f"{r[field]!s:{width}}" for _, width, field in _COLUMNS).rstrip())  # type: ignore[literal-required]
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser,
                 group: Callable[[str, str], argparse._SubParsersAction[argparse.ArgumentParser]]) -> None:
    """Add ``replicas`` to the ``dtr`` command (``group(name, help)`` makes a command group)."""
    replicas = group("replicas", "the dtr processes sharing the configured database")
    p = replicas.add_parser("list", help="every replica with its health (up, down, stopped)", parents=[common])
    p.add_argument("--json", action="store_true", help="print JSON as /api/v0/meta/cluster_status shows replicas")
    p.set_defaults(func=cmd_list)

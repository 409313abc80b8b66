"""Audit events: who did what, when, from where. Written by every domain through ``record``."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.accounts.models import AuditEvent

log = logging.getLogger("dtr.audit")
events = cast(Table, AuditEvent.__table__)
_pending: set[asyncio.Task[None]] = set()


async def record(engine: AsyncEngine, type_: str, actor: str | None, client_addr: str | None,
                 object_type: str = "", object_name: str = "", detail: dict[str, Any] | None = None) -> None:
    """Store one event. ``detail`` must never hold a secret (password, token)."""
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(events).values(
                type=type_, actor=actor or "", client_addr=(client_addr or "")[:64], object_type=object_type,
                object_name=object_name, detail=detail))
    except Exception:  # auditing must not fail the request it records
        log.exception("cannot record audit event %s", type_)


def record_soon(engine: AsyncEngine, type_: str, actor: str | None, client_addr: str | None,
                object_type: str = "", object_name: str = "", detail: dict[str, Any] | None = None) -> None:
    """``record`` in the background, off the request's path."""
    task = asyncio.get_running_loop().create_task(
        record(engine, type_, actor, client_addr, object_type, object_name, detail))
    _pending.add(task)
    task.add_done_callback(_pending.discard)

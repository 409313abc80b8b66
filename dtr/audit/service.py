"""Audit events: who did what, when, from where. Written by every domain through ``record``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dtr.audit.models import AuditEvent
from dtr.registry import events as registry_events
from dtr.registry.events import Event

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


#: Audit types of the registry's events, as the registry's own API calls them (dtr.registry.events).
_REGISTRY_AUDIT = {registry_events.TAG_PUSHED: "push", registry_events.TAG_MOVED: "push",
                   registry_events.MANIFEST_PUSHED: "push", registry_events.TAG_DELETED: "delete_manifest",
                   registry_events.MANIFEST_DELETED: "delete_manifest", registry_events.BLOB_UNLINKED: "delete_blob"}


async def record_registry_events(conn: AsyncConnection, batch: Sequence[Event]) -> None:
    """The outbox subscriber that audits pushes and deletes through the registry API: one audit
    event per client action (a manifest pushed with a tag is audited as its tag's push; tags
    pruned and what garbage collection deletes are not audited: their jobs log them)."""
    rows = []
    for e in batch:
        type_ = _REGISTRY_AUDIT.get(e.type)
        if type_ is None or (e.type == registry_events.MANIFEST_PUSHED and e.tag is not None) \
                or (e.detail or {}).get("pruned") or (e.detail or {}).get("gc"):
            continue
        rows.append({"type": type_, "actor": e.actor, "client_addr": e.client_addr, "object_type": "repository",
                     "object_name": e.repository, "detail": {"reference": e.tag or e.digest}, "at": e.at})
    if rows:
        await conn.execute(insert(events), rows)

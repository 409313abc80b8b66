"""Reading the outbox (``registry_events``): newest first, filtered, paged by event id.

Event ids are commit order (``dtr.registry.events.record``), so a page that starts at an id
never skips or repeats an event committed meanwhile. Nothing here writes: events are recorded
by the changes themselves, in their own transactions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, cast

from sqlalchemy import Table, and_, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection
from typing_extensions import TypedDict

from dtr.auth.access import Action
from dtr.registry.models import RegistryEvent
from dtr.signatures.access import Caller, open_repository
from dtr.times import iso

registry_events = cast(Table, RegistryEvent.__table__)


class ActivityEvent(TypedDict):
    id: int
    type: str
    createdAt: str
    actor: str
    clientAddress: str
    repository: str
    tag: str | None
    digest: str | None
    detail: dict[str, Any]


class ActivityList(TypedDict):
    events: list[ActivityEvent]


@dataclasses.dataclass(frozen=True)
class EventFilter:
    """Every field set must match; ``types`` any of them; times: ``after`` <= at < ``before``."""

    types: tuple[str, ...] = ()
    actor: str | None = None
    repository: str | None = None
    after: dt.datetime | None = None
    before: dt.datetime | None = None


def event_json(row: Any) -> ActivityEvent:
    return {"id": row.id, "type": row.type, "createdAt": iso(row.at), "actor": row.actor,
            "clientAddress": row.client_addr, "repository": row.repository, "tag": row.tag, "digest": row.digest,
            "detail": row.detail or {}}


async def _page(conn: AsyncConnection, f: EventFilter, start: int | None, size: int) -> list[Any]:
    """Up to ``size`` + 1 events (the extra one starts the next page), newest first, from ``start``."""
    e = registry_events.c
    conds: list[Any] = []
    if f.types:
        conds.append(e.type.in_(f.types))
    if f.actor is not None:
        conds.append(e.actor == f.actor)
    if f.repository is not None:
        conds.append(e.repository == f.repository)
    if f.after is not None:
        conds.append(e.at >= f.after)
    if f.before is not None:
        conds.append(e.at < f.before)
    if start is not None:
        conds.append(e.id <= start)
    q = select(registry_events).where(and_(literal(True), *conds)).order_by(e.id.desc()).limit(size + 1)
    return list((await conn.execute(q)).all())


async def registry_activity(c: Caller, f: EventFilter, start: int | None, size: int) -> list[Any]:
    """Every repository's events (site admins)."""
    c.admin()
    async with c.engine.connect() as conn:
        return await _page(conn, f, start, size)


async def repository_activity(c: Caller, namespace: str, repo: str, f: EventFilter, start: int | None,
                              size: int) -> list[Any]:
    """One repository's events (whoever may pull from it); ``f.repository`` is ignored."""
    async with c.engine.connect() as conn:
        name = await open_repository(c, conn, namespace, repo, Action.PULL)
        return await _page(conn, dataclasses.replace(f, repository=name), start, size)

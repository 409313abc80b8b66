"""Every write to the registry's tables (repositories, tags, manifests, blob links, uploads)
made from outside the /v2 handlers goes through these functions, whoever calls them (the JSON
API, jobs, the UI). Each takes the caller's open transaction and an ``Actor`` and records its
events in the outbox (``dtr.registry.events``), which also tells the manifest caches: callers
never send their own ``pg_notify``. Call them last in the transaction, then commit.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.registry import events
from dtr.registry.events import SYSTEM, Actor, Event

__all__ = [
    "SYSTEM",
    "Actor",
    "create_repository",
    "delete_repository",
    "ensure_repository",
    "prune_tags",
    "set_immutable_tags",
    "take_abandoned_uploads",
]

_CREATE = text("INSERT INTO repositories (name, immutable_tags) VALUES (:name, :immutable) "
               "ON CONFLICT DO NOTHING RETURNING id")
_REPOSITORY_ID = text("SELECT id FROM repositories WHERE name = :name")
_SET_IMMUTABLE = text("UPDATE repositories SET immutable_tags = :immutable WHERE id = :rid")
_DELETE_REPOSITORY = text("DELETE FROM repositories WHERE id = :rid")
_PRUNE_TAGS = text("""
DELETE FROM tags t USING manifests m,
    unnest(CAST(:names AS text[]), CAST(:pushed AS timestamptz[])) AS x(name, pushed_at)
WHERE t.repository_id = :rid AND t.name = x.name AND t.updated_at = x.pushed_at AND m.id = t.manifest_id
RETURNING t.name, m.digest
""")
_TAKE_UPLOADS = text("""
DELETE FROM uploads WHERE id IN (
    SELECT id FROM uploads WHERE updated_at < now() - make_interval(secs => :age)
    ORDER BY updated_at LIMIT :limit FOR UPDATE SKIP LOCKED)
RETURNING id, size
""")


async def create_repository(conn: AsyncConnection, name: str, actor: Actor, *,
                            immutable_tags: bool = False) -> int | None:
    """Create repository ``name`` (already checked against the name grammar); its id, or None if
    it exists."""
    rid = (await conn.execute(_CREATE, {"name": name, "immutable": immutable_tags})).scalar()
    if rid is None:
        return None
    await events.record(conn, actor, [Event(events.REPOSITORY_CREATED, name)])
    return int(rid)


async def ensure_repository(conn: AsyncConnection, name: str) -> tuple[int, list[Event]]:
    """The id of repository ``name``, created if missing (as a push does), and the events of its
    creation, for the caller to record last in its transaction."""
    rid = (await conn.execute(_REPOSITORY_ID, {"name": name})).scalar()
    if rid is not None:
        return int(rid), []
    rid = (await conn.execute(_CREATE, {"name": name, "immutable": False})).scalar()
    if rid is not None:
        return int(rid), [Event(events.REPOSITORY_CREATED, name)]
    rid = (await conn.execute(_REPOSITORY_ID, {"name": name})).scalar()  # lost a race with another creator
    assert rid is not None
    return int(rid), []


async def set_immutable_tags(conn: AsyncConnection, rid: int, name: str, immutable: bool, actor: Actor) -> None:
    """Turn DTR's immutableTags on or off for repository ``rid`` (named ``name``)."""
    await conn.execute(_SET_IMMUTABLE, {"rid": rid, "immutable": immutable})


async def delete_repository(conn: AsyncConnection, rid: int, name: str, actor: Actor) -> None:
    """Delete the repository's tags, manifests and links; the bytes stay for garbage collection."""
    await conn.execute(_DELETE_REPOSITORY, {"rid": rid})
    await events.record(conn, actor, [Event(events.REPOSITORY_DELETED, name)])


async def prune_tags(conn: AsyncConnection, rid: int, name: str, tags: Mapping[str, tuple[dt.datetime, str]],
                     actor: Actor = SYSTEM) -> list[str]:
    """Delete each tag (name -> (its push time as read, why)) unless it was pushed again since;
    returns the tags deleted."""
    names = sorted(tags)
    rows = (await conn.execute(_PRUNE_TAGS, {"rid": rid, "names": names,
                                             "pushed": [tags[n][0] for n in names]})).all()
    await events.record(conn, actor, [Event(events.TAG_DELETED, name, r.name, r.digest,
                                            {"pruned": tags[r.name][1]}) for r in rows])
    return sorted(r.name for r in rows)


async def take_abandoned_uploads(conn: AsyncConnection, max_age: float, limit: int) -> list[tuple[uuid.UUID, int]]:
    """Delete up to ``limit`` upload rows untouched for ``max_age`` seconds; (id, recorded size) of
    each. Their bytes are the caller's to delete (after commit)."""
    rows = (await conn.execute(_TAKE_UPLOADS, {"age": max_age, "limit": limit})).all()
    return [(r.id, int(r.size)) for r in rows]

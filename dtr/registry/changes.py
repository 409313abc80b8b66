"""Every write to the registry's tables (repositories, tags, manifests, blob links) made from
outside the /v2 handlers goes through these functions, whoever calls them (the JSON API, jobs,
the UI). Each takes the caller's open transaction and an ``Actor``; each change is announced
from here (the outbox event and the manifest-cache notification), so callers never send their
own ``pg_notify``.
"""

from __future__ import annotations

import dataclasses

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.registry.cache import CHANNEL


@dataclasses.dataclass(frozen=True)
class Actor:
    """Who made a change: an account name ("" for anonymous or the system) and a client address."""

    name: str = ""
    client_addr: str = ""


#: Changes made by dtr itself (jobs: pruning, garbage collection).
SYSTEM = Actor()

_CREATE = text("INSERT INTO repositories (name, immutable_tags) VALUES (:name, :immutable) "
               "ON CONFLICT DO NOTHING RETURNING id")
_SET_IMMUTABLE = text("UPDATE repositories SET immutable_tags = :immutable WHERE id = :rid")
_DELETE_REPOSITORY = text("DELETE FROM repositories WHERE id = :rid")
_DELETE_TAGS = text("DELETE FROM tags WHERE repository_id = :rid AND name = ANY(CAST(:names AS text[])) "
                    "RETURNING name")
_NOTIFY = text("SELECT pg_notify(:channel, :name)")


async def _changed(conn: AsyncConnection, name: str) -> None:
    await conn.execute(_NOTIFY, {"channel": CHANNEL, "name": name})


async def create_repository(conn: AsyncConnection, name: str, actor: Actor, *,
                            immutable_tags: bool = False) -> int | None:
    """Create repository ``name`` (already checked against the name grammar); its id, or None if
    it exists."""
    rid = (await conn.execute(_CREATE, {"name": name, "immutable": immutable_tags})).scalar()
    return None if rid is None else int(rid)


async def set_immutable_tags(conn: AsyncConnection, rid: int, name: str, immutable: bool, actor: Actor) -> None:
    """Turn DTR's immutableTags on or off for repository ``rid`` (named ``name``)."""
    await conn.execute(_SET_IMMUTABLE, {"rid": rid, "immutable": immutable})


async def delete_repository(conn: AsyncConnection, rid: int, name: str, actor: Actor) -> None:
    """Delete the repository's tags, manifests and links; the bytes stay for garbage collection."""
    await conn.execute(_DELETE_REPOSITORY, {"rid": rid})
    await _changed(conn, name)


async def delete_tags(conn: AsyncConnection, rid: int, name: str, tags: list[str], actor: Actor) -> list[str]:
    """Delete ``tags`` of repository ``rid`` (named ``name``); returns those that existed."""
    deleted = list((await conn.execute(_DELETE_TAGS, {"rid": rid, "names": tags})).scalars())
    if deleted:
        await _changed(conn, name)
    return deleted

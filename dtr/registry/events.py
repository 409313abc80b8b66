"""The registry's event outbox: every change to a repository is recorded as an event in the
transaction that makes it, and handed to subscribers after commit.

- ``record(conn, actor, events)`` is the last statement of a change's transaction (it takes the
  outbox lock, held until commit: keep the transaction short after it). Event ids are drawn
  under that lock, so id order is commit order across the cluster, and a rolled-back change
  announces nothing. It also tells every replica's manifest cache which repositories changed.
- ``Outbox`` delivers events to named subscribers, in id order, each event at least once: a
  subscriber's handler runs in the transaction that advances its cursor (``event_cursors``), so
  what it writes to the database commits exactly once with the cursor; a crash or restart
  resumes after the last committed position. The cursor row is locked while a batch is handled
  (``FOR UPDATE SKIP LOCKED``), so two replicas never hand a subscriber the same events at once.
  The subscribers behind share one transaction per batch; when a handler fails, that batch is
  rolled back and handed to each subscriber in its own transaction, so one failing subscriber
  holds back no other.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dtr.ops.tasks import background

log = logging.getLogger("dtr.registry.events")

# Event types. A tag pushed for the first time or again to the same manifest: TAG_PUSHED; to
# another manifest: TAG_MOVED (detail ``previous``). MANIFEST_DELETED's detail lists the tags
# that pointed at it (deleted with it). TAG_DELETED by pruning carries detail ``pruned``.
TAG_PUSHED = "tag_pushed"
TAG_MOVED = "tag_moved"
TAG_DELETED = "tag_deleted"
MANIFEST_PUSHED = "manifest_pushed"
MANIFEST_DELETED = "manifest_deleted"
BLOB_UNLINKED = "blob_unlinked"
REPOSITORY_CREATED = "repository_created"
REPOSITORY_DELETED = "repository_deleted"
# The scanner's (dtr.scanning): an image scan ended (repository: the one it was for; digest:
# the image manifest; detail: the counts, or the error), and the vulnerability database changed
# (repository '', detail: the feeds and their versions).
SCAN_COMPLETED = "scan_completed"
SCAN_FAILED = "scan_failed"
VULNDB_UPDATED = "vulndb_updated"
# Automation's: a promotion policy copied an image (repository: the target; tag and digest: the
# promoted ones; detail: {"policy": id, "source": "ns/repo", "sourceTag": tag, "path": the
# repositories it was promoted through before, source last: dtr.promotion's loop guard}); a push or poll
# mirroring run ended (repository: the local one; tag and digest: the image mirrored, or None for a
# run of several; detail: {"policy": id, "remote": "host/repo", "tags": [...], "error": str only
# when it failed}).
PROMOTED = "promoted"
PUSH_MIRRORED = "push_mirrored"
PUSH_MIRROR_FAILED = "push_mirror_failed"
POLL_MIRRORED = "poll_mirrored"
POLL_MIRROR_FAILED = "poll_mirror_failed"
#: What changes a manifest lookup's answer: each replica's cache drops the repository's entries.
_INVALIDATES = frozenset({TAG_PUSHED, TAG_MOVED, TAG_DELETED, MANIFEST_DELETED, REPOSITORY_DELETED})

POLL_INTERVAL = 0.5
RETRY_DELAY = 5.0
BATCH = 500


class Actor(NamedTuple):
    """Who made a change: an account name ("" for anonymous or dtr itself) and a client address.
    (A named tuple: one is made for every /v2 request, and a tuple is the cheapest to make.)"""

    name: str = ""
    client_addr: str = ""


#: Changes dtr makes by itself (garbage collection, pruning).
SYSTEM = Actor()


@dataclasses.dataclass(frozen=True)
class Event:
    type: str
    repository: str
    tag: str | None = None
    digest: str | None = None
    detail: dict[str, Any] | None = None
    #: Set when read back from the outbox.
    id: int = 0
    actor: str = ""
    client_addr: str = ""
    at: dt.datetime | None = None


_RECORD = text("SELECT dtr_record_events(CAST(:events AS jsonb), CAST(:invalidate AS text[]))")


async def record(conn: AsyncConnection, actor: Actor, events: Sequence[Event]) -> None:
    """Record ``events`` (in order) in the transaction of ``conn``: call it last, then commit."""
    if not events:
        return
    rows = [{"type": e.type, "repository": e.repository, "tag": e.tag, "digest": e.digest, "actor": actor.name,
             "client_addr": actor.client_addr[:64], "detail": e.detail} for e in events]
    invalidate = sorted({e.repository for e in events if e.type in _INVALIDATES})
    await conn.execute(_RECORD, {"events": json.dumps(rows), "invalidate": invalidate})


#: A subscriber: handles a batch of events in the transaction that advances its cursor.
Handler = Callable[[AsyncConnection, Sequence[Event]], Awaitable[None]]

_START = text("INSERT INTO event_cursors (subscriber, position) "
              "SELECT :s, coalesce(max(id), 0) FROM registry_events ON CONFLICT DO NOTHING")
_BEHIND = text("SELECT subscriber FROM event_cursors WHERE subscriber = ANY(CAST(:subs AS text[])) "
               "AND position < (SELECT coalesce(max(id), 0) FROM registry_events)")
_CLAIM_ALL = text("SELECT subscriber, position FROM event_cursors WHERE subscriber = ANY(CAST(:subs AS text[])) "
                  "ORDER BY subscriber FOR UPDATE SKIP LOCKED")
_ADVANCE_ALL = text("UPDATE event_cursors c SET position = v.p, updated_at = now() "
                    "FROM unnest(CAST(:subs AS text[]), CAST(:ps AS bigint[])) AS v(s, p) WHERE c.subscriber = v.s")
_READ = text("SELECT id, type, repository, tag, digest, actor, client_addr, at, detail FROM registry_events "
             "WHERE id > :after ORDER BY id LIMIT :limit")


def _event(row: Any) -> Event:
    """An event as ``_READ`` reads it back."""
    return Event(row.type, row.repository, row.tag, row.digest, row.detail, row.id, row.actor, row.client_addr, row.at)


class Outbox:
    """Delivers recorded events to subscribers (see the module docstring)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._handlers: dict[str, Handler] = {}
        #: subscriber -> loop time before which a failed subscriber is not retried
        self._retry_at: dict[str, float] = {}

    def subscribe(self, name: str, handler: Handler) -> None:
        """Deliver to ``handler`` under ``name`` (its cursor); a new name starts at the newest event."""
        self._handlers[name] = handler
        log.debug("registry event subscriber %s", name)

    async def deliver(self) -> int:
        """Hand every subscriber that is behind its pending events; the number of events handled."""
        if not self._handlers:
            return 0
        async with self.engine.connect() as conn:
            behind = list((await conn.execute(_BEHIND, {"subs": list(self._handlers)})).scalars())
        now = asyncio.get_running_loop().time()
        ready = [name for name in behind if self._retry_at.get(name, 0.0) <= now]
        if not ready:
            return 0
        try:
            return await self._deliver_together(ready)
        except Exception:  # rolled back: one by one, so that the others carry on without the failing one
            log.debug("registry event subscribers failed together; delivering to each alone", exc_info=True)
        total = 0
        for name in ready:
            try:
                total += await self._deliver_together([name])
            except Exception:
                # The batch rolled back (cursor unmoved): retried later, the others carry on.
                log.exception("registry event subscriber %s failed; retrying in %gs", name, RETRY_DELAY)
                self._retry_at[name] = now + RETRY_DELAY
        return total

    async def _deliver_together(self, names: Sequence[str]) -> int:
        """Hand ``names`` their pending events in one transaction per batch: the cursors claimed
        (``FOR UPDATE SKIP LOCKED``: those another replica is delivering to are left to it), the
        events read once, each subscriber's handler given those past its cursor in that
        transaction, every cursor advanced in one statement (after each push, this competes with
        requests for the process). Raises when a handler fails (nothing of the batch is kept)."""
        total = 0
        while True:
            async with self.engine.begin() as conn:
                claimed = {r.subscriber: int(r.position) for r in await conn.execute(_CLAIM_ALL, {"subs": list(names)})}
                if not claimed:
                    return total  # other replicas are delivering to them
                rows = (await conn.execute(_READ, {"after": min(claimed.values()), "limit": BATCH})).all()
                batch = [_event(r) for r in rows]
                advanced: dict[str, int] = {}
                for name, position in claimed.items():  # in _CLAIM_ALL's order
                    if mine := [e for e in batch if e.id > position]:
                        await self._handlers[name](conn, mine)
                        advanced[name] = mine[-1].id
                        total += len(mine)
                if advanced:
                    await conn.execute(_ADVANCE_ALL, {"subs": list(advanced), "ps": list(advanced.values())})
            if len(rows) < BATCH:
                return total

    async def _start(self) -> None:
        async with self.engine.begin() as conn:
            for name in sorted(self._handlers):
                await conn.execute(_START, {"s": name})

    async def run(self) -> None:
        """Deliver until cancelled, every poll interval."""
        started = False
        while True:
            try:
                if not started:
                    await self._start()
                    started = True
                await self.deliver()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the database is away: try again later
                log.warning("delivering registry events failed: %s", e)
                await asyncio.sleep(RETRY_DELAY)
            await asyncio.sleep(POLL_INTERVAL)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Deliver for the life of the ``async with`` block."""
        async with background(self.run()):
            yield

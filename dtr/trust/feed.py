"""notary's change feed (``trust_changes``): one record per accepted update (the new timestamp's
version and sha256) or deletion of a GUN, read with notary-server's ``change_id``/``records``
semantics. An update's record is written by ``dtr.trust.store`` in the statement storing its files."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dtr.times import iso
from dtr.trust.models import TrustChange

trust_changes = cast(Table, TrustChange.__table__)

#: ``records=0`` means this many (notary's DefaultPageSize).
DEFAULT_RECORDS = 100
#: At most this many records per answer.
MAX_RECORDS = 1000
UPDATE, DELETION = "update", "deletion"


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    id: int
    created_at: dt.datetime
    gun: str
    version: int
    sha256: str
    category: str

    def record(self) -> dict[str, Any]:
        """The record as notary-server answers it (Go field names; ID a string)."""
        return {"ID": str(self.id), "CreatedAt": iso(self.created_at), "GUN": self.gun, "Version": self.version,
                "SHA256": self.sha256, "Category": self.category}


async def record_deletion(conn: AsyncConnection, gun: str) -> None:
    await conn.execute(insert(trust_changes).values(gun=gun, version=0, sha256="", category=DELETION))


async def changes(engine: AsyncEngine, gun: str | None, change_id: int, records: int) -> list[Change]:
    """Up to ``records`` changes after ``change_id`` (``0``: from the start), oldest first; a
    negative ``records`` or ``change_id`` reads backwards: the ones before ``change_id``
    (``change_id`` <= 0: the newest), still answered oldest first. ``records`` 0 is 100.
    ``gun`` None: every GUN's."""
    backwards = change_id < 0 or records < 0
    limit = min(abs(records) or DEFAULT_RECORDS, MAX_RECORDS)
    q = select(trust_changes)
    if gun is not None:
        q = q.where(trust_changes.c.gun == gun)
    if backwards:
        if change_id > 0:
            q = q.where(trust_changes.c.id < change_id)
        q = q.order_by(trust_changes.c.id.desc())
    else:
        q = q.where(trust_changes.c.id > change_id).order_by(trust_changes.c.id)
    async with engine.connect() as conn:
        rows = (await conn.execute(q.limit(limit))).all()
    out = [Change(r.id, r.created_at, r.gun, r.version, r.sha256, r.category) for r in rows]
    return out[::-1] if backwards else out

"""Where a push policy's chunked uploads stand at its remote (``mirror_uploads``), so a run can
resume an upload an earlier one left (its process killed mid-transfer, its attempt failed)
instead of sending the blob again from its first byte."""

from __future__ import annotations

import uuid
from typing import cast

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.mirroring.models import MirrorUpload

uploads = cast(Table, MirrorUpload.__table__)


class UploadBook:
    """The uploads in progress of one push policy, by blob digest."""

    def __init__(self, engine: AsyncEngine, policy_id: uuid.UUID) -> None:
        self.engine, self.policy_id = engine, policy_id

    async def find(self, digest: str) -> str | None:
        """The location last saved for ``digest``'s upload, if one is in progress."""
        async with self.engine.connect() as conn:
            found: str | None = (await conn.execute(select(uploads.c.location).where(
                uploads.c.policy_id == self.policy_id, uploads.c.digest == digest))).scalar()
        return found

    async def save(self, digest: str, location: str) -> None:
        """Remember ``location`` as where ``digest``'s upload stands now."""
        stmt = insert(uploads).values(policy_id=self.policy_id, digest=digest, location=location)
        stmt = stmt.on_conflict_do_update(index_elements=[uploads.c.policy_id, uploads.c.digest],
                                          set_={"location": location, "updated_at": stmt.excluded.updated_at})
        async with self.engine.begin() as conn:
            await conn.execute(stmt)

    async def forget(self, digest: str) -> None:
        """``digest``'s upload is over (the blob is whole at the remote)."""
        async with self.engine.begin() as conn:
            await conn.execute(delete(uploads).where(uploads.c.policy_id == self.policy_id,
                                                     uploads.c.digest == digest))

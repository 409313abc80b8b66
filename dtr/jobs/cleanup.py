"""Abandoned uploads: rows untouched for ``upload_max_age`` and their storage (``/uploads/<id>``).

Deleting the upload directory through the driver also aborts an object store's unfinished
multipart upload. Rows are taken with ``FOR UPDATE SKIP LOCKED``, so a replica's cleanup never
deletes the same upload twice; a client resuming a deleted upload gets BLOB_UPLOAD_UNKNOWN.
Upload directories without a row (a crash between creating one and recording it) are deleted
once their data is older than the same age.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import text

from dtr.jobs.context import JobContext
from dtr.jobs.params import duration_param, only
from dtr.registry import changes
from dtr.registry.names import upload_path
from dtr.storage.base import PathNotFoundError, StorageError

BATCH = 500


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    only(params, {"max_age"})
    duration_param(params, "max_age")
    return params


async def run(ctx: JobContext) -> dict[str, Any]:
    age = duration_param(ctx.parameters, "max_age")
    if age is None:
        age = ctx.config.jobs.upload_max_age
    deleted = freed = 0
    while True:
        ctx.check_stop()
        async with ctx.engine.begin() as conn:
            rows = await changes.take_abandoned_uploads(conn, age, BATCH)
        for upload_id, recorded in rows:
            size = await _stored_size(ctx, upload_id, recorded)
            await _remove(ctx, upload_id)
            deleted += 1
            freed += size
            ctx.log(f"deleted abandoned upload {upload_id} ({size} bytes)")
        ctx.progress(deleted, None, "deleting abandoned uploads")
        if len(rows) < BATCH:
            break
    orphans = await _orphans(ctx, age)
    ctx.log(f"deleted {deleted} abandoned uploads ({freed} bytes) and {orphans} upload directories without a record")
    return {"uploads": deleted, "bytes": freed, "orphan_dirs": orphans}


async def _stored_size(ctx: JobContext, upload_id: uuid.UUID, recorded: int) -> int:
    """The upload's bytes as storage has them (the row's size is refreshed only now and then);
    the recorded size where the backend cannot stat an unfinished write."""
    try:
        return (await ctx.storage.stat(upload_path(str(upload_id)))).size
    except StorageError:
        return recorded


async def _remove(ctx: JobContext, upload_id: uuid.UUID) -> None:
    try:
        await ctx.storage.delete(f"/uploads/{upload_id}")
    except PathNotFoundError:
        pass
    except StorageError as e:
        ctx.log(f"upload {upload_id}: could not delete its storage: {e}")


async def _orphans(ctx: JobContext, age: float) -> int:
    try:
        dirs = await ctx.storage.list("/uploads")
    except PathNotFoundError:
        return 0
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age)
    removed = 0
    for path in dirs:
        name = path.rsplit("/", 1)[-1]
        try:
            upload_id = uuid.UUID(name)
        except ValueError:
            continue
        async with ctx.engine.connect() as conn:
            known = (await conn.execute(text("SELECT 1 FROM uploads WHERE id = :id"), {"id": upload_id})).first()
        if known:
            continue
        try:
            info = await ctx.storage.stat(f"{path}/data")
        except PathNotFoundError:
            info = None
        except StorageError:
            continue
        if info is not None and (info.modified is None or info.modified > cutoff):
            continue
        await _remove(ctx, upload_id)
        removed += 1
        ctx.log(f"deleted upload directory {name} (no upload record)")
    return removed

"""The scanner driven: scans of an image queued (write access), the vulnerability database's
status, its online update queued and offline bundles imported (site admins).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dtr.api.errors import APIError, codes
from dtr.auth.access import Action
from dtr.scanning import bundles, service, shapes, vulndb
from dtr.scanning import jobs as scan_jobs
from dtr.scanning.access import Caller, open_repository
from dtr.scanning.reports import requested_platform
from dtr.times import iso

log = logging.getLogger("dtr.scanning")


async def queue_scan(c: Caller, namespace: str, repo: str, reference: str, os_: str | None = None,
                     arch: str | None = None) -> shapes.ScanJobs:
    """Queue scans of the image(s) ``reference`` names (an index: every platform, or ``os``/``arch``)."""
    if not c.config.enabled:
        raise APIError(codes.UNSUPPORTED, "scanning is disabled on this server (scanning.enabled)")
    platform = requested_platform(os_, arch)
    async with c.engine.begin() as conn:
        row = await open_repository(c, conn, namespace, repo, Action.PUSH)
        try:
            jobs = await service.queue_scan(c.jobs, conn, row.name, reference, platform=platform)
        except LookupError as e:  # the service's ScanTargetError: no such tag, platform, or no image
            raise APIError(_TARGET_ERRORS.get(getattr(e, "kind", ""), codes.NOT_FOUND), str(e)) from None
    await c.changed("scan_queue", "repository", row.name,
                    {"reference": reference, **({"platform": "/".join(platform)} if platform else {})})
    return {"jobs": list(jobs)}


#: The answer to each kind of the scan service's ``ScanTargetError``.
_TARGET_ERRORS = {"repository": codes.NO_SUCH_REPOSITORY, "tag": codes.NO_SUCH_TAG, "manifest": codes.NO_SUCH_TAG,
                  "platform": codes.NOT_FOUND, "not_an_image": codes.INVALID_OPERATION}


def _feed_json(r: vulndb.FeedState) -> shapes.Feed:
    return {"name": r.name, "url": r.url, "version": r.version, "records": r.records,
            "updatedAt": iso(r.updated_at), "checkedAt": iso(r.checked_at), "lastError": r.last_error,
            "lastErrorAt": iso(r.last_error_at)}


async def status(c: Caller) -> shapes.ScannerStatus:
    """The vulnerability database's version, last update, and whether the last update failed (why)."""
    c.admin()
    db = await vulndb.status(c.engine)
    return {"enabled": c.config.enabled, "dbVersion": db.version, "lastDBUpdate": iso(db.updated_at),
            "lastDBUpdateFailed": db.failed,
            "lastDBUpdateError": f"{db.failed_feed}: {db.last_error}" if db.failed else None,
            "feeds": [_feed_json(f) for f in db.feeds]}


async def queue_update(c: Caller) -> Any:
    """Queue the online update of the vulnerability database (site admins)."""
    c.admin()
    job = await service.queue_update(c.jobs)
    await c.changed("vulndb_update_queue", "vulndb", "online", {"job": job["id"]})
    return job


async def import_upload(c: Caller, path: Path) -> shapes.ScannerStatus:
    """Import an offline bundle spooled at ``path`` (site admins); INVALID_BUNDLE with the reason
    when it is refused (signature, checksum, format): the database is then unchanged."""
    c.admin()
    keys = await asyncio.to_thread(_trusted_keys, c.config.bundle_trusted_keys)
    if not keys:
        raise APIError(codes.INVALID_BUNDLE, "no trusted bundle signing key is configured "
                                             "(scanning.bundle_trusted_keys): no bundle can be imported")
    try:
        results = await bundles.import_bundle(c.engine, path, keys, _log_progress)
    except ValueError as e:  # the bundle's own fault (format, checksum, signature): nothing imported
        await c.changed("vulndb_import_refused", "vulndb", "offline", {"reason": str(e)[:1000]})
        raise APIError(codes.INVALID_BUNDLE, f"the bundle is refused: {e}") from None
    await c.changed("vulndb_import", "vulndb", "offline", {"feeds": len(results)})
    await service.database_updated(c.engine, c.jobs, scan_jobs.changes(results))
    return await status(c)


def _trusted_keys(paths: Iterable[str]) -> list[bytes]:
    out = []
    for path in paths:
        try:
            out.append(Path(path).read_bytes())
        except OSError as e:
            raise APIError(codes.INVALID_BUNDLE, f"cannot read the trusted key {path}: {e.strerror}") from None
    return out


def _log_progress(done: int, total: int) -> None:
    log.debug("vulndb import", extra={"progress": {"done": done, "total": total}})


"""What a webhook receives: the outbox's event types as DTR's, and DTR's payload
``{"type", "createdAt", "contents", "location"}`` for an event.

``contents`` by type (every field always present; '' or null when unknown):

- TAG_PUSH: namespace, repository, tag, digest, imageName (``ns/repo:tag``), os, architecture
  (from the image's config; '' for an index or an artifact), author, pushedAt.
- TAG_DELETE: namespace, repository, tag, digest, imageName, author, deletedAt.
- MANIFEST_PUSH: namespace, repository, digest, imageName (``ns/repo@digest``), os,
  architecture, author, pushedAt; MANIFEST_DELETE: the same without os/architecture, with the
  tags deleted with it and deletedAt.
- REPO_CREATED / REPO_DELETED: namespace, repository, author, createdAt / deletedAt.
- SCAN_COMPLETED / SCAN_FAILED: namespace, repository, tag, digest, imageName, scanSummary (the
  counts) / error, at.
- SCANNER_UPDATE_COMPLETED: feeds (name -> version), updatedAt.
- PROMOTION: namespace, repository, tag, digest, imageName, os, architecture, policyId,
  sourceRepository, sourceTag, author, promotedAt.
- PUSH_MIRRORING / POLL_MIRRORING: namespace, repository, tag, digest, policyId, remote, tags,
  success, error, at.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.registry import events as ev
from dtr.registry.events import Event
from dtr.registry.manifests import IMAGE_TYPES
from dtr.registry.names import blob_path
from dtr.storage.base import StorageDriver

TAG_PUSH, TAG_DELETE = "TAG_PUSH", "TAG_DELETE"
MANIFEST_PUSH, MANIFEST_DELETE = "MANIFEST_PUSH", "MANIFEST_DELETE"
REPO_CREATED, REPO_DELETED = "REPO_CREATED", "REPO_DELETED"
SCAN_COMPLETED, SCAN_FAILED = "SCAN_COMPLETED", "SCAN_FAILED"
SCANNER_UPDATE_COMPLETED = "SCANNER_UPDATE_COMPLETED"
PROMOTION, PUSH_MIRRORING, POLL_MIRRORING = "PROMOTION", "PUSH_MIRRORING", "POLL_MIRRORING"
#: DTR's webhook types, in its order.
TYPES = (TAG_PUSH, TAG_DELETE, MANIFEST_PUSH, MANIFEST_DELETE, REPO_CREATED, REPO_DELETED, SCAN_COMPLETED,
         SCAN_FAILED, SCANNER_UPDATE_COMPLETED, PROMOTION, PUSH_MIRRORING, POLL_MIRRORING)
#: The one type with no key (the whole site's): made by site admins only.
SITE_TYPES = frozenset({SCANNER_UPDATE_COMPLETED})

#: The outbox's event types, as DTR's.
FROM_OUTBOX = {
    ev.TAG_PUSHED: TAG_PUSH, ev.TAG_MOVED: TAG_PUSH, ev.TAG_DELETED: TAG_DELETE,
    ev.MANIFEST_PUSHED: MANIFEST_PUSH, ev.MANIFEST_DELETED: MANIFEST_DELETE,
    ev.REPOSITORY_CREATED: REPO_CREATED, ev.REPOSITORY_DELETED: REPO_DELETED,
    ev.SCAN_COMPLETED: SCAN_COMPLETED, ev.SCAN_FAILED: SCAN_FAILED, ev.VULNDB_UPDATED: SCANNER_UPDATE_COMPLETED,
    ev.PROMOTED: PROMOTION, ev.PUSH_MIRRORED: PUSH_MIRRORING, ev.PUSH_MIRROR_FAILED: PUSH_MIRRORING,
    ev.POLL_MIRRORED: POLL_MIRRORING, ev.POLL_MIRROR_FAILED: POLL_MIRRORING,
}
#: The types whose contents name the image's platform.
_WITH_PLATFORM = frozenset({TAG_PUSH, MANIFEST_PUSH, PROMOTION})
_FAILED = frozenset({ev.PUSH_MIRROR_FAILED, ev.POLL_MIRROR_FAILED})
#: Image configs larger than this are not read for the platform.
MAX_CONFIG = 1 << 20
_READ_TIMEOUT = 5.0

Platform = tuple[str, str]


def rfc3339(t: dt.datetime | None) -> str | None:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if t else None


def _image(repository: str, tag: str | None, digest: str | None) -> str:
    if tag:
        return f"{repository}:{tag}"
    return f"{repository}@{digest}" if digest else repository


def contents(kind: str, e: Event, platform: Platform = ("", "")) -> dict[str, Any]:
    """The ``contents`` of the DTR type ``kind`` for the outbox event ``e``."""
    namespace, _, repo = e.repository.partition("/")
    at, detail = rfc3339(e.at), e.detail or {}
    where = {"namespace": namespace, "repository": repo}
    image = {**where, "tag": e.tag or "", "digest": e.digest or "", "imageName": _image(e.repository, e.tag, e.digest)}
    os_arch = {"os": platform[0], "architecture": platform[1]}
    if kind == TAG_PUSH:
        return {**image, **os_arch, "author": e.actor, "pushedAt": at}
    if kind == TAG_DELETE:
        return {**image, "author": e.actor, "deletedAt": at}
    if kind == MANIFEST_PUSH:
        return {**where, "digest": e.digest or "", "imageName": _image(e.repository, None, e.digest), **os_arch,
                "author": e.actor, "pushedAt": at}
    if kind == MANIFEST_DELETE:
        return {**where, "digest": e.digest or "", "imageName": _image(e.repository, None, e.digest),
                "tags": list(detail.get("tags") or []), "author": e.actor, "deletedAt": at}
    if kind == REPO_CREATED:
        return {**where, "author": e.actor, "createdAt": at}
    if kind == REPO_DELETED:
        return {**where, "author": e.actor, "deletedAt": at}
    if kind == SCAN_COMPLETED:
        return {**image, "scanSummary": detail, "at": at}
    if kind == SCAN_FAILED:
        return {**image, "error": str(detail.get("error") or ""), "at": at}
    if kind == SCANNER_UPDATE_COMPLETED:
        return {"feeds": detail.get("feeds") or {}, "updatedAt": at}
    if kind == PROMOTION:
        return {**image, **os_arch, "policyId": detail.get("policy"), "sourceRepository": detail.get("source"),
                "sourceTag": detail.get("sourceTag"), "author": e.actor, "promotedAt": at}
    return {**where, "tag": e.tag or "", "digest": e.digest or "", "policyId": detail.get("policy"),
            "remote": detail.get("remote"), "tags": list(detail.get("tags") or []), "success": e.type not in _FAILED,
            "error": detail.get("error"), "at": at}


def location(kind: str, e: Event) -> str:
    """Where in DTR the event happened (a path of its UI and API)."""
    if kind == SCANNER_UPDATE_COMPLETED:
        return "/"
    if e.tag and kind not in (REPO_CREATED, REPO_DELETED):
        return f"/repositories/{e.repository}/tags/{e.tag}"
    if e.digest and kind not in (REPO_CREATED, REPO_DELETED):
        return f"/repositories/{e.repository}/manifests/{e.digest}"
    return f"/repositories/{e.repository}"


def body(kind: str, e: Event, platform: Platform = ("", "")) -> bytes:
    """The JSON body sent for ``e`` to a webhook of type ``kind``."""
    doc = {"type": kind, "createdAt": rfc3339(e.at or dt.datetime.now(dt.UTC)), "contents": contents(kind, e, platform),
           "location": location(kind, e)}
    return json.dumps(doc, separators=(",", ":")).encode()


def sample(kind: str) -> Event:
    """A made-up event of the DTR type ``kind`` (for test deliveries)."""
    outbox = next(t for t, k in FROM_OUTBOX.items() if k == kind)
    digest = "sha256:" + "0" * 64
    samples: dict[str, dict[str, Any]] = {
        SCAN_COMPLETED: {"critical": 0, "major": 1, "minor": 2}, SCAN_FAILED: {"error": "sample failure"},
        SCANNER_UPDATE_COMPLETED: {"feeds": {"osv": "sample"}}, MANIFEST_DELETE: {"tags": ["latest"]},
        PROMOTION: {"policy": "sample", "source": "test/source", "sourceTag": "latest"},
        PUSH_MIRRORING: {"policy": "sample", "remote": "registry.example.com/test/test", "tags": ["latest"]},
        POLL_MIRRORING: {"policy": "sample", "remote": "registry.example.com/test/test", "tags": ["latest"]},
    }
    detail = samples.get(kind, {})
    repository = "" if kind in SITE_TYPES else "test/test"
    tag = None if kind in (MANIFEST_PUSH, MANIFEST_DELETE, REPO_CREATED, REPO_DELETED, SCANNER_UPDATE_COMPLETED) \
        else "latest"
    return Event(outbox, repository, tag, None if repository == "" or kind in (REPO_CREATED, REPO_DELETED) else digest,
                 detail, actor="admin", at=dt.datetime.now(dt.UTC))


_MANIFESTS = text("SELECT r.name, m.digest, m.media_type, m.payload FROM manifests m "
                  "JOIN repositories r ON r.id = m.repository_id "
                  "WHERE (r.name, m.digest) IN "
                  "(SELECT * FROM unnest(CAST(:repos AS text[]), CAST(:digests AS text[])))")


async def platforms(conn: AsyncConnection, storage: StorageDriver, wanted: Iterable[tuple[str, str]]
                    ) -> dict[tuple[str, str], Platform]:
    """(os, architecture) of each image (repository, digest) of ``wanted`` still there, read from
    its config; ('', '') for an index, an artifact or an unreadable config."""
    pairs = sorted(set(wanted))
    if not pairs:
        return {}
    rows = (await conn.execute(_MANIFESTS, {"repos": [p[0] for p in pairs], "digests": [p[1] for p in pairs]})).all()
    return {(r.name, r.digest): await _platform(storage, r.media_type, bytes(r.payload)) for r in rows}


async def _platform(storage: StorageDriver, media_type: str, payload: bytes) -> Platform:
    if media_type not in IMAGE_TYPES:
        return "", ""
    try:
        config = json.loads(payload).get("config") or {}
        if not isinstance(config.get("size"), int) or config["size"] > MAX_CONFIG:
            return "", ""
        async with asyncio.timeout(_READ_TIMEOUT):
            doc = json.loads(await storage.get_content(blob_path(str(config["digest"]))))
        os_, arch, variant = (doc.get(k) for k in ("os", "architecture", "variant"))
    except Exception:  # a broken or missing config names no platform; the delivery goes on
        return "", ""
    arch_s = arch if isinstance(arch, str) else ""
    if arch_s and isinstance(variant, str) and variant:
        arch_s += f"/{variant}"
    return (os_ if isinstance(os_, str) else ""), arch_s


def wants_platform(kind: str) -> bool:
    return kind in _WITH_PLATFORM

"""A manifest as a person inspects it (``get_manifest``): an image's config and Dockerfile, layer by
layer, or an index's platforms with each image's detail; read by whoever may pull from the
repository. Configs come from storage (``dtr.images.configs``), at most ``MAX_CHILDREN`` of an index."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.api.errors import APIError, codes
from dtr.auth.access import Action
from dtr.images import configs, shapes
from dtr.registry.manifests import INDEX_TYPES
from dtr.registry.models import Manifest, Repository, Tag
from dtr.registry.names import DIGEST_RE, TAG_RE
from dtr.scanning.service import json_object
from dtr.signatures.access import open_repository
from dtr.signatures.trustedkeys import Caller

manifests = cast(Table, Manifest.__table__)
repositories = cast(Table, Repository.__table__)
tags = cast(Table, Tag.__table__)

#: The most entries of an index given with their image's detail (configs read); the others by
#: digest and platform only.
MAX_CHILDREN = 16
_COLUMNS = (manifests.c.digest, manifests.c.media_type, manifests.c.payload, manifests.c.size)


async def _find(conn: AsyncConnection, repository: str, reference: str) -> Any:
    """The manifest a tag or digest names: NO_SUCH_TAG, NO_SUCH_MANIFEST, INVALID_PARAMETER for
    a reference that is neither."""
    rid = select(repositories.c.id).where(repositories.c.name == repository).scalar_subquery()
    if len(reference) <= 200 and DIGEST_RE.fullmatch(reference):
        q = select(*_COLUMNS).where(manifests.c.repository_id == rid, manifests.c.digest == reference)
        missing = APIError(codes.NO_SUCH_MANIFEST, f"no manifest {reference[:200]!r} in {repository}")
    elif TAG_RE.fullmatch(reference):
        q = (select(*_COLUMNS).join(tags, tags.c.manifest_id == manifests.c.id)
             .where(tags.c.repository_id == rid, tags.c.name == reference))
        missing = APIError(codes.NO_SUCH_TAG, f"no tag {reference!r} in {repository}")
    else:
        raise APIError(codes.INVALID_PARAMETER, "the reference must be a tag or a digest (algorithm:hex)")
    row = (await conn.execute(q)).first()
    if row is None:
        raise missing
    return row


def _entry_platform(entry: dict[str, Any]) -> shapes.ImagePlatform:
    p = entry["platform"] if isinstance(entry.get("platform"), dict) else {}
    return {"digest": entry["digest"], "os": str(p.get("os") or ""), "architecture": str(p.get("architecture") or ""),
            "variant": str(p.get("variant") or "")}


async def get_manifest(c: Caller, namespace: str, repo: str, reference: str) -> shapes.ManifestDetail:
    """The manifest ``reference`` (a tag or a digest) names in ``namespace/repo``, with its image's
    detail or, for an index, each entry's platform and image detail. NO_SUCH_REPOSITORY,
    NO_SUCH_TAG, NO_SUCH_MANIFEST, INVALID_PARAMETER; a config missing from storage NOT_FOUND, one
    too large UNSUPPORTED."""
    async with c.engine.connect() as conn:
        name = await open_repository(c, conn, namespace, repo, Action.PULL)
        row = await _find(conn, name, reference)
        entries: list[dict[str, Any]] = []
        stored: dict[str, Any] = {}
        if row.media_type in INDEX_TYPES:
            listed = json_object(bytes(row.payload)).get("manifests")
            entries = [e for e in listed if isinstance(e, dict) and isinstance(e.get("digest"), str)] \
                if isinstance(listed, list) else []
            wanted = sorted({e["digest"] for e in entries[:MAX_CHILDREN]})
            if wanted:
                stored = {r.digest: r for r in await conn.execute(select(*_COLUMNS).where(
                    manifests.c.repository_id == select(repositories.c.id).where(repositories.c.name == name)
                    .scalar_subquery(), manifests.c.digest.in_(wanted)))}
    out: shapes.ManifestDetail = {"repository": name, "digest": row.digest, "mediaType": row.media_type,
                                  "size": int(row.size), "image": None, "manifests": None}
    if row.media_type not in INDEX_TYPES:
        out["image"] = await configs.image_detail(c.storage, row.media_type, bytes(row.payload))
        return out
    children: list[shapes.ManifestChild] = []
    for i, e in enumerate(entries):
        child = stored.get(e["digest"]) if i < MAX_CHILDREN else None
        size = e.get("size")
        children.append({"digest": e["digest"], "mediaType": str(e.get("mediaType") or ""),
                         "size": size if isinstance(size, int) and not isinstance(size, bool) else 0,
                         "platform": _entry_platform(e),
                         "image": None if child is None or child.media_type in INDEX_TYPES else
                         await configs.image_detail(c.storage, child.media_type, bytes(child.payload))})
    out["manifests"] = children
    return out

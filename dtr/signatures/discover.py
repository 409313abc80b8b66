"""Everything in a repository that refers to one image: its OCI 1.1 referrers (manifests whose
``subject`` is the image) and the manifests of cosign's tags for it (``sha256-<hex>.sig``,
``.att``, ``.sbom``), each once, referrers first, in push order; at most ``MAX_ARTIFACTS``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.signatures.kinds import Kind, classify, cosign_tag, parse_cosign_tag

#: The most artifacts considered for one image (verification reads a blob or two for each).
MAX_ARTIFACTS = 200

_FIND = text("""
(SELECT m.id, m.digest, m.media_type, m.artifact_type, m.annotations, m.payload, m.subject_digest AS subject,
        NULL AS tag
 FROM manifests m
 WHERE m.repository_id = (SELECT id FROM repositories WHERE name = :name)
   AND m.subject_digest = ANY(CAST(:digests AS text[]))
 ORDER BY m.id LIMIT :limit)
UNION ALL
(SELECT m.id, m.digest, m.media_type, m.artifact_type, m.annotations, m.payload, NULL AS subject, t.name AS tag
 FROM tags t JOIN manifests m ON m.id = t.manifest_id
 WHERE t.repository_id = (SELECT id FROM repositories WHERE name = :name) AND t.name = ANY(CAST(:tags AS text[]))
 ORDER BY t.name)
""")


@dataclasses.dataclass(frozen=True)
class Artifact:
    """A manifest referring to the image: how it was found (``tag``: the cosign tag, else None for
    a referrer), what it is, and its stored body."""

    digest: str
    media_type: str
    artifact_type: str | None
    annotations: dict[str, str] | None
    payload: bytes
    tag: str | None
    kind: Kind

    @property
    def found_by(self) -> str:
        return f"tag {self.tag}" if self.tag else "referrers"


def _kind(row: Any) -> Kind:
    parsed = parse_cosign_tag(row.tag) if row.tag else None
    return classify(row.artifact_type, bytes(row.payload), parsed[1] if parsed else None)


async def artifacts(conn: AsyncConnection, repository: str, digest: str) -> list[Artifact]:
    """The artifacts referring to ``digest`` in ``repository`` (none for an unknown repository)."""
    return (await artifacts_of(conn, repository, [digest])).get(digest, [])


async def artifacts_of(conn: AsyncConnection, repository: str, digests: Sequence[str]) -> dict[str, list[Artifact]]:
    """The artifacts referring to each of ``digests`` in ``repository``, in one query (images
    without any are absent); at most ``MAX_ARTIFACTS`` referrers per image asked for."""
    wanted = sorted(set(digests))
    tags = [t for d in wanted for t in (cosign_tag(d, s) for s in ("sig", "att", "sbom")) if t is not None]
    rows = (await conn.execute(_FIND, {"name": repository, "digests": wanted, "tags": tags,
                                       "limit": MAX_ARTIFACTS * max(len(wanted), 1)})).all()
    seen: set[tuple[str, str]] = set()
    out: dict[str, list[Artifact]] = {}
    for r in rows:
        parsed = parse_cosign_tag(r.tag) if r.tag else None
        subject = parsed[0] if parsed else r.subject
        if subject is None or r.digest == subject or (subject, r.digest) in seen:
            continue
        found = out.setdefault(subject, [])
        if len(found) < MAX_ARTIFACTS:
            seen.add((subject, r.digest))
            found.append(Artifact(r.digest, r.media_type, r.artifact_type, r.annotations, bytes(r.payload), r.tag,
                                  _kind(r)))
    return out

"""Evaluating promotion policies and promoting: the ``promote`` job, and the outbox subscriber that
queues it.

When: ``promote_on_events`` (an outbox subscriber) queues a ``promote`` job, in the transaction
that moves its cursor, for each tag pushed or moved in a repository with an enabled policy
(every policy of the repository, on the tag), and for each ``scan_completed`` of an image of such
a repository with a policy that reads scans (those policies, on the tags naming the image, directly
or through an index). ``POST .../promotionPolicies/{id}/run`` queues one for a policy on every tag.

How: a promotion is the registry's own use cases, no byte copied: each blob of the image is linked
into the target (``RegistryService.mount`` from the source), each child manifest of an index put
by digest, then the manifest put under the rendered tag with the ``promoted`` event recorded in
the put's transaction (``put_manifest(..., also=...)``). A target tag already naming the image is
left alone (no event). The image's artifacts (``dtr.signatures.discover``: referrers by digest,
cosign's ``sha256-<hex>.sig/.att/.sbom`` tags under their tag) go with it, each the target lacks,
also when the image was promoted before (a signature often comes later). The policy keeps its last
promotion, or its last error.

Loops: a promoted image's path (the repositories it came through, from each ``promoted`` event's
``path``) goes with it. A policy never promotes into a repository on the path, nor into its own
repository, and never beyond ``MAX_DEPTH`` hops: a cycle of policies (A to B, B to A) promotes
once and stops, whatever triggers the evaluations (pushes, scans, runs).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dtr.jobs.context import JobContext
from dtr.jobs.service import JobService
from dtr.promotion import rules
from dtr.registry import events
from dtr.registry.errors import RegistryError
from dtr.registry.events import SYSTEM, Event, Handler
from dtr.registry.manifests import parse_manifest
from dtr.registry.service import RegistryService
from dtr.scanning import licenses
from dtr.scanning.results import COMPLETED, counts, in_repository, scan_states, tags_of
from dtr.scanning.service import ScanTargetError, images_of
from dtr.signatures.discover import artifacts_of

Log = Callable[[str], None]
#: The most hops an image is promoted through (the first push's repository not counted).
MAX_DEPTH = 8
#: How deep an index may nest indexes.
MAX_NESTING = 4

_POLICIES = text("""
SELECT p.id, p.rules, p.tag_template, p.enabled, t.name AS target FROM promotion_policies p
JOIN repositories r ON r.id = p.repository_id JOIN repositories t ON t.id = p.target_repository_id
WHERE r.name = :repo AND (CAST(:policy AS uuid) IS NULL AND p.enabled OR p.id = CAST(:policy AS uuid))
ORDER BY p.created_at, p.id
""")
_TAGS = text("SELECT t.name, m.digest FROM tags t JOIN manifests m ON m.id = t.manifest_id "
             "WHERE t.repository_id = (SELECT id FROM repositories WHERE name = :repo) "
             "AND (CAST(:tag AS text) IS NULL OR t.name = :tag) ORDER BY t.name")
_REPOSITORY_ID = text("SELECT id FROM repositories WHERE name = :repo")
#: The path of the image a tag names, when a promotion put it there (the newest such).
_LINEAGE = text("SELECT detail FROM registry_events WHERE repository = :repo AND type = :type AND tag = :tag "
                "AND digest = :digest ORDER BY id DESC LIMIT 1")
_PACKAGES = text("SELECT DISTINCT p.name, p.license FROM scan_image_packages ip "
                 "JOIN scan_packages p ON p.id = ip.package_id WHERE ip.image_digest = ANY(CAST(:digests AS text[]))")
_PROMOTED = text("UPDATE promotion_policies SET last_promoted_at = now(), last_source_tag = :source, "
                 "last_target_tag = :target, last_error = NULL, last_error_at = NULL WHERE id = :id")
_FAILED = text("UPDATE promotion_policies SET last_error = :error, last_error_at = now() WHERE id = :id")


@dataclasses.dataclass(frozen=True)
class StoredPolicy:
    id: uuid.UUID
    rules: tuple[rules.Rule, ...]
    tag_template: str
    target: str

    @property
    def needs_scan(self) -> bool:
        return any(r.field in rules.SCAN_FIELDS for r in self.rules)


async def image_facts(conn: AsyncConnection, repository: str, tag: str, digest: str, scans: bool) -> rules.Facts:
    """What the rules see of ``repository:tag`` (manifest ``digest``); its scan only when ``scans``.
    An artifact, or an image any of whose platforms has no completed scan, is unscanned."""
    if not scans:
        return rules.Facts(tag)
    try:
        images = await images_of(conn, repository, digest)
    except ScanTargetError:
        return rules.Facts(tag)
    states = await scan_states(conn, images)
    if any(d not in states or states[d].status != COMPLETED for d in images):
        return rules.Facts(tag)
    found = await counts(conn, images, in_repository(repository))
    tally = {b: sum(getattr(found[d], b) for d in images if d in found) for b in ("critical", "major", "minor")}
    rows = (await conn.execute(_PACKAGES, {"digests": images})).all()
    names = frozenset(r.name for r in rows)
    declared = (licenses.parse(r.license) for r in rows if r.license)
    return rules.Facts(tag, True, tally, names, frozenset(lic.expression or lic.declared for lic in declared))


async def path_of(conn: AsyncConnection, repository: str, tag: str, digest: str) -> list[str]:
    """The repositories the image ``repository:tag`` came through by promotion ([] if pushed there)."""
    detail = (await conn.execute(_LINEAGE, {"repo": repository, "type": events.PROMOTED, "tag": tag,
                                            "digest": digest})).scalar()
    path = detail.get("path") if isinstance(detail, dict) else None
    return [str(p) for p in path] if isinstance(path, list) else []


class PromotionError(Exception):
    """A promotion could not be made; the message is the policy's ``lastError``."""


async def copy_image(registry: RegistryService, source: str, target: str, digest: str, tag: str | None,
                     also: Sequence[Event] = (), nesting: int = 0) -> None:
    """Put manifest ``digest`` of ``source`` into ``target`` (at ``tag``, or by digest), its blobs
    linked and an index's children put first; ``also`` recorded with the last put."""
    if nesting > MAX_NESTING:
        raise PromotionError(f"{digest}: indexes nested deeper than {MAX_NESTING}")
    stored = await registry.get_manifest(source, digest)
    parsed = parse_manifest(stored.payload, stored.media_type)
    for child in parsed.manifests:
        await copy_image(registry, source, target, child, None, (), nesting + 1)
    for blob in parsed.blobs:
        if not await registry.mount(target, blob, source, None, SYSTEM):
            raise PromotionError(f"blob {blob} of {digest} is not in {source}")
    await registry.put_manifest(target, tag or digest, stored.payload, stored.media_type, SYSTEM, also)


async def copy_artifacts(engine: AsyncEngine, registry: RegistryService, source: str, target: str,
                         digest: str) -> int:
    """Copy the artifacts of image ``digest`` that ``target`` lacks from ``source``; how many."""
    async with engine.connect() as conn:
        found = (await artifacts_of(conn, source, [digest])).get(digest, [])
    copied = 0
    for artifact in found:
        if artifact.tag is not None:
            if await _current(engine, target, artifact.tag) == artifact.digest:
                continue
        elif await _has_manifest(registry, target, artifact.digest):
            continue
        await copy_image(registry, source, target, artifact.digest, artifact.tag)
        copied += 1
    return copied


async def _has_manifest(registry: RegistryService, repository: str, digest: str) -> bool:
    try:
        await registry.get_manifest(repository, digest)
    except RegistryError:
        return False
    return True


async def _current(engine: AsyncEngine, repository: str, tag: str) -> str | None:
    async with engine.connect() as conn:
        row = (await conn.execute(_TAGS, {"repo": repository, "tag": tag})).first()
    return None if row is None else str(row.digest)


async def promote(engine: AsyncEngine, registry: RegistryService, source: str, policy: StoredPolicy, tag: str,
                  digest: str, path: Sequence[str], log: Log) -> str | None:
    """Promote ``source:tag`` (``digest``, which came through ``path``) by ``policy`` if it meets
    the rules and the loop guard allows; the target tag, or None when nothing was promoted. A
    failure is recorded on the policy (and logged), not raised."""
    if policy.target == source or policy.target in path:
        log(f"{source}:{tag}: not promoted to {policy.target} by policy {policy.id}: it came from there")
        return None
    if len(path) >= MAX_DEPTH:
        log(f"{source}:{tag}: not promoted by policy {policy.id}: {len(path)} promotions deep already")
        return None
    async with engine.connect() as conn:
        facts = await image_facts(conn, source, tag, digest, policy.needs_scan)
    if not all(r.holds(facts) for r in policy.rules):
        return None
    try:
        target_tag = rules.render(policy.tag_template, tag, dt.datetime.now(dt.UTC))
        if await _current(engine, policy.target, target_tag) == digest:
            if copied := await copy_artifacts(engine, registry, source, policy.target, digest):
                log(f"{source}:{tag}: {copied} new artifact(s) copied to {policy.target}")
            return None  # promoted already: no event, no change to the tag
        event = Event(events.PROMOTED, policy.target, target_tag, digest,
                      {"policy": str(policy.id), "source": source, "sourceTag": tag, "path": [*path, source]})
        await copy_image(registry, source, policy.target, digest, target_tag, [event])
        if copied := await copy_artifacts(engine, registry, source, policy.target, digest):
            log(f"{source}:{tag}: {copied} artifact(s) copied to {policy.target} with it")
    except (rules.PolicyError, PromotionError, RegistryError) as e:
        reason = e.message if isinstance(e, RegistryError) else str(e)
        log(f"{source}:{tag}: promoting to {policy.target} by policy {policy.id} failed: {reason}")
        async with engine.begin() as conn:
            await conn.execute(_FAILED, {"id": policy.id, "error": f"{source}:{tag}: {reason}"[:2000]})
        return None
    async with engine.begin() as conn:
        await conn.execute(_PROMOTED, {"id": policy.id, "source": tag, "target": target_tag})
    log(f"promoted {source}:{tag} ({digest}) to {policy.target}:{target_tag} by policy {policy.id}")
    return target_tag


async def load_policies(conn: AsyncConnection, repository: str, policy: uuid.UUID | None) -> list[StoredPolicy]:
    """The repository's enabled policies, or only ``policy`` (enabled or not)."""
    rows = await conn.execute(_POLICIES, {"repo": repository, "policy": policy})
    return [StoredPolicy(r.id, rules.stored_rules(r.rules), r.tag_template, r.target) for r in rows]


async def evaluate(engine: AsyncEngine, registry: RegistryService, repository: str, *, tag: str | None = None,
                   digest: str | None = None, policy: uuid.UUID | None = None, log: Log) -> list[str]:
    """Evaluate the repository's policies (or ``policy``) on ``tag``, on the tags naming image
    ``digest`` (then only the policies that read scans), or on every tag; the promotions made
    (``target:tag``)."""
    async with engine.connect() as conn:
        found = await load_policies(conn, repository, policy)
        if digest is not None:
            found = [p for p in found if p.needs_scan]
        if not found:
            return []
        if digest is not None:
            rid = (await conn.execute(_REPOSITORY_ID, {"repo": repository})).scalar()
            named = (await tags_of(conn, rid, [digest]))[digest] if rid is not None else []
            every = {r.name: str(r.digest) for r in await conn.execute(_TAGS, {"repo": repository, "tag": None})}
            todo = [(t, every[t]) for t in named if t in every]
        else:
            todo = [(r.name, str(r.digest)) for r in await conn.execute(_TAGS, {"repo": repository, "tag": tag})]
        paths = {t: await path_of(conn, repository, t, d) for t, d in todo}
    made = []
    for t, d in todo:
        for p in found:
            if (target_tag := await promote(engine, registry, repository, p, t, d, paths[t], log)) is not None:
                made.append(f"{p.target}:{target_tag}")
    return made


# -- the job and its trigger ---------------------------------------------------------------------


async def run(ctx: JobContext) -> dict[str, Any]:
    """The ``promote`` job: evaluate as its parameters say (``evaluate``)."""
    p = ctx.parameters
    registry = RegistryService(ctx.engine, ctx.storage)
    made = await evaluate(ctx.engine, registry, p["repository"], tag=p.get("tag"), digest=p.get("digest"),
                          policy=uuid.UUID(p["policy"]) if p.get("policy") else None, log=ctx.log)
    ctx.log(f"{len(made)} promotions")
    return {"promoted": made}


async def queue_promotion(jobs: JobService, conn: AsyncConnection, params: dict[str, Any]) -> dict[str, Any]:
    """Queue a ``promote`` job in ``conn``'s transaction (one waiting per parameters)."""
    key = "promote:" + hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
    return dict(await jobs.queue("promote", params, dedupe_key=key, conn=conn))


_PUSHES = frozenset({events.TAG_PUSHED, events.TAG_MOVED})
#: Of the named repositories, those with an enabled policy, and whether one reads scans.
_WITH_POLICIES = text("""
SELECT r.name, bool_or(EXISTS (SELECT 1 FROM jsonb_array_elements(p.rules) x WHERE x->>'field' <> 'tag')) AS scans
FROM repositories r JOIN promotion_policies p ON p.repository_id = r.id
WHERE r.name = ANY(CAST(:repos AS text[])) AND p.enabled GROUP BY r.name
""")


def promote_on_events(jobs: JobService) -> Handler:
    """The outbox subscriber queueing ``promote`` jobs after pushes and completed scans in
    repositories with enabled policies (see the module docstring)."""

    async def handle(conn: AsyncConnection, batch: Sequence[Event]) -> None:
        wanted = [e for e in batch if (e.type in _PUSHES and e.tag) or (e.type == events.SCAN_COMPLETED and e.digest)]
        if not wanted:
            return
        repos = sorted({e.repository for e in wanted})
        have = {r.name: bool(r.scans) for r in await conn.execute(_WITH_POLICIES, {"repos": repos})}
        for e in wanted:
            if e.repository not in have:
                continue
            if e.type in _PUSHES:
                await queue_promotion(jobs, conn, {"repository": e.repository, "tag": e.tag})
            elif have[e.repository]:
                await queue_promotion(jobs, conn, {"repository": e.repository, "digest": e.digest})

    return handle

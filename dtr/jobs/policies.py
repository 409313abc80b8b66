"""A repository's pruning policies and tag limit: their SQL and their use cases (site admins).

What a policy means, and how the ``prune`` job applies it, is in ``dtr.jobs.pruning``. Each use
case takes a ``Caller`` and a repository name (``namespace/name``); a change runs in one
transaction, may queue a ``prune`` job of the repository in it (``evaluate_now``), and is
audited once committed. Client mistakes are ``APIError``s.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.api.errors import APIError, codes
from dtr.jobs import pruning, shapes
from dtr.jobs.caller import Caller
from dtr.jobs.models import PruningPolicy, RepositoryPruning
from dtr.jobs.service import JobService
from dtr.registry.changes import set_immutable_tags
from dtr.times import iso

policies = cast(Table, PruningPolicy.__table__)
repository_pruning = cast(Table, RepositoryPruning.__table__)

#: A repository's tag limit and immutability (``immutable_tags`` is the registry's; it has no
#: read function for it).
_SETTINGS = text("SELECT s.tag_limit, r.immutable_tags AS immutable FROM repositories r "
                 "LEFT JOIN repository_pruning s ON s.repository_id = r.id WHERE r.id = :r")


def policy_json(r: Any) -> shapes.PruningPolicy:
    return {"id": str(r.id), "enabled": r.enabled, "rules": r.rules, "keepNewest": r.keep_newest}


def parse_policy(raw: Any) -> pruning.Policy:
    """A policy from the API's JSON; APIError INVALID_PRUNING_POLICY."""
    try:
        return pruning.Policy.parse(raw)
    except pruning.PolicyError as e:
        raise APIError(codes.INVALID_PRUNING_POLICY, str(e)) from None


def policy_id(raw: str) -> uuid.UUID:
    """A policy id from its text; APIError NO_SUCH_PRUNING_POLICY if it cannot be one."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise APIError(codes.NO_SUCH_PRUNING_POLICY) from None


@dataclasses.dataclass(frozen=True)
class Settings:
    """A repository's tag limit (None: none) and DTR's immutableTags."""

    tag_limit: int | None = None
    immutable_tags: bool = False

    def json(self) -> shapes.PruningSettings:
        return {"tagLimit": self.tag_limit, "immutableTags": self.immutable_tags}


async def _settings(conn: AsyncConnection, rid: int) -> Settings:
    row = (await conn.execute(_SETTINGS, {"r": rid})).one()
    return Settings(row.tag_limit, row.immutable)


def _values(p: pruning.Policy) -> dict[str, Any]:
    return {"enabled": p.enabled, "keep_newest": p.keep_newest, "rules": [r.json() for r in p.rules]}


async def queue_prune(jobs: JobService, conn: AsyncConnection, repository: str) -> None:
    """Queue the repository's ``prune`` job in ``conn``'s transaction (one waiting per repository)."""
    await jobs.queue("prune", {"repository": repository}, dedupe_key=f"prune:{repository}", conn=conn)


# -- use cases ----------------------------------------------------------------------------------


async def list_policies(caller: Caller, repository: str) -> list[shapes.PruningPolicy]:
    """The repository's policies, oldest first."""
    caller.admin()
    async with caller.engine.connect() as conn:
        rid = await caller.repository_id(conn, repository)
        rows = await conn.execute(select(policies).where(policies.c.repository_id == rid)
                                  .order_by(policies.c.created_at, policies.c.id))
        return [policy_json(r) for r in rows]


async def create_policy(caller: Caller, repository: str, policy: pruning.Policy, *,
                        evaluate_now: bool = False) -> shapes.PruningPolicy:
    caller.admin()
    async with caller.engine.begin() as conn:
        rid = await caller.repository_id(conn, repository)
        row = (await conn.execute(insert(policies).values(id=uuid.uuid4(), repository_id=rid, **_values(policy))
                                  .returning(*policies.c))).one()
        if evaluate_now:
            await queue_prune(caller.jobs, conn, repository)
    await caller.changed("pruning_policy_create", "repository", repository, {"policy": str(row.id)})
    return policy_json(row)


async def get_policy(caller: Caller, repository: str, pid: uuid.UUID) -> shapes.PruningPolicy:
    caller.admin()
    async with caller.engine.connect() as conn:
        rid = await caller.repository_id(conn, repository)
        row = (await conn.execute(select(policies).where(policies.c.id == pid, policies.c.repository_id == rid))
               ).first()
    if row is None:
        raise APIError(codes.NO_SUCH_PRUNING_POLICY)
    return policy_json(row)


async def update_policy(caller: Caller, repository: str, pid: uuid.UUID, policy: pruning.Policy, *,
                        evaluate_now: bool = False) -> shapes.PruningPolicy:
    """Replace policy ``pid`` of the repository."""
    caller.admin()
    async with caller.engine.begin() as conn:
        rid = await caller.repository_id(conn, repository)
        row = (await conn.execute(update(policies).where(policies.c.id == pid, policies.c.repository_id == rid)
                                  .values(**_values(policy)).returning(*policies.c))).first()
        if row is None:
            raise APIError(codes.NO_SUCH_PRUNING_POLICY)
        if evaluate_now:
            await queue_prune(caller.jobs, conn, repository)
    await caller.changed("pruning_policy_update", "repository", repository, {"policy": str(pid)})
    return policy_json(row)


async def delete_policy(caller: Caller, repository: str, pid: uuid.UUID) -> None:
    caller.admin()
    async with caller.engine.begin() as conn:
        rid = await caller.repository_id(conn, repository)
        res = await conn.execute(delete(policies).where(policies.c.id == pid, policies.c.repository_id == rid))
        if res.rowcount == 0:
            raise APIError(codes.NO_SUCH_PRUNING_POLICY)
    await caller.changed("pruning_policy_delete", "repository", repository, {"policy": str(pid)})


async def would_prune(caller: Caller, repository: str, policy: pruning.Policy | None = None) -> shapes.WouldPrune:
    """What would be pruned now: by ``policy`` (evaluated as if enabled, without the tag limit),
    or by the repository's own policies and tag limit. Prunes nothing."""
    caller.admin()
    async with caller.engine.connect() as conn:
        rid = await caller.repository_id(conn, repository)
        settings = await _settings(conn, rid)
        tags, own, now = await pruning.load(conn, rid, settings.tag_limit, every_tag=policy is not None)
    immutable = settings.immutable_tags
    if policy is not None:
        verdict = pruning.evaluate(tags, [dataclasses.replace(policy, enabled=True)], None, immutable, now)
    else:
        verdict = pruning.evaluate(tags, own, settings.tag_limit, immutable, now)
    pushed = {t.name: t.pushed_at for t in tags}
    return {"immutableTags": immutable, "tags": [
        {"name": n, "reason": why, "lastUpdatedAt": iso(pushed[n])}
        for n, why in sorted(verdict.items())]}


async def get_settings(caller: Caller, repository: str) -> Settings:
    caller.admin()
    async with caller.engine.connect() as conn:
        return await _settings(conn, await caller.repository_id(conn, repository))


async def put_settings(caller: Caller, repository: str, settings: Settings, *,
                       evaluate_now: bool = False) -> Settings:
    """Set the repository's tag limit and immutability (through the registry's write function)."""
    caller.admin()
    async with caller.engine.begin() as conn:
        rid = await caller.repository_id(conn, repository)
        before = await _settings(conn, rid)
        limit = {"tag_limit": settings.tag_limit}
        await conn.execute(pg_insert(repository_pruning).values(repository_id=rid, **limit)
                           .on_conflict_do_update(index_elements=[repository_pruning.c.repository_id], set_=limit))
        if settings.immutable_tags != before.immutable_tags:
            await set_immutable_tags(conn, rid, repository, settings.immutable_tags, caller.actor)
        if evaluate_now:
            await queue_prune(caller.jobs, conn, repository)
    await caller.changed("repo_pruning_update", "repository", repository, dict(settings.json()))
    return settings

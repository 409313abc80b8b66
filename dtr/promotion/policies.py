"""The promotion policies' use cases: list, create, read, replace, delete and run a source
repository's policies.

Access is the access decision's (``dtr.auth.repoaccess.check_repository``): every use case needs
admin access to the source repository (one the caller may not read is answered as missing); a
policy's target must exist and the caller needs read-write access to it when creating or
replacing the policy (an unreadable target is answered as missing: INVALID_PROMOTION_POLICY).
Changes are audited once committed. Client mistakes are ``APIError``s.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.api.errors import APIError, codes
from dtr.auth import caller
from dtr.auth.access import Action
from dtr.auth.repoaccess import check_repository
from dtr.auth.service import AuthService
from dtr.jobs.service import JobService
from dtr.promotion import rules, shapes
from dtr.promotion.models import PromotionPolicy
from dtr.promotion.promote import queue_promotion
from dtr.registry.models import Repository

policies = cast(Table, PromotionPolicy.__table__)
repositories = cast(Table, Repository.__table__)


@dataclasses.dataclass(frozen=True)
class Caller(caller.Caller):
    """With the auth service (None: authentication is off) and the job queue."""

    auth: AuthService | None
    jobs: JobService


def parse_policy(raw: Any) -> rules.Policy:
    """A policy from the API's JSON; APIError INVALID_PROMOTION_POLICY."""
    try:
        return rules.Policy.parse(raw)
    except rules.PolicyError as e:
        raise APIError(codes.INVALID_PROMOTION_POLICY, str(e)) from None


def policy_id(raw: str) -> uuid.UUID:
    """A policy id from its text; APIError NO_SUCH_PROMOTION_POLICY if it cannot be one."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise APIError(codes.NO_SUCH_PROMOTION_POLICY) from None


def _iso(t: dt.datetime | None) -> str | None:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if t else None


def policy_json(r: Any, source: str, target: str) -> shapes.PromotionPolicy:
    return {"id": str(r.id), "sourceRepository": source, "targetRepository": target, "tagTemplate": r.tag_template,
            "enabled": r.enabled, "rules": r.rules, "createdAt": _iso(r.created_at), "updatedAt": _iso(r.updated_at),
            "lastPromotedAt": _iso(r.last_promoted_at), "lastSourceTag": r.last_source_tag,
            "lastTargetTag": r.last_target_tag, "lastError": r.last_error, "lastErrorAt": _iso(r.last_error_at)}


async def _repository_id(conn: AsyncConnection, name: str) -> int | None:
    return (await conn.execute(select(repositories.c.id).where(repositories.c.name == name))).scalar()


async def _source(c: Caller, conn: AsyncConnection, repository: str) -> int:
    """The source repository's id, if it exists and the caller is its admin."""
    c.user()
    rid = await _repository_id(conn, repository)
    if rid is None:
        raise APIError(codes.NO_SUCH_REPOSITORY, f"no repository named {repository[:300]!r}")
    await check_repository(c, conn, repository, Action.ADMIN)
    return int(rid)


async def _target(c: Caller, conn: AsyncConnection, policy: rules.Policy, source: str) -> int:
    """The target repository's id, if it exists, is not the source and the caller may push to it."""
    if policy.target == source:
        raise APIError(codes.INVALID_PROMOTION_POLICY, "targetRepository: a policy cannot promote into its own "
                                                       "repository")
    missing = APIError(codes.INVALID_PROMOTION_POLICY, f"targetRepository: no repository named {policy.target!r}")
    rid = await _repository_id(conn, policy.target)
    if rid is None:
        raise missing
    try:
        await check_repository(c, conn, policy.target, Action.PUSH)
    except APIError as e:
        if e.code is codes.NO_SUCH_REPOSITORY:
            raise missing from None
        raise
    return int(rid)


def _values(c: Caller, p: rules.Policy, target_id: int) -> dict[str, Any]:
    return {"enabled": p.enabled, "rules": [r.json() for r in p.rules], "tag_template": p.tag_template,
            "target_repository_id": target_id, "updated_by": c.principal.name or ""}


_WITH_TARGET = (select(policies, repositories.c.name.label("target"))
                .join(repositories, repositories.c.id == policies.c.target_repository_id))


async def list_policies(c: Caller, repository: str) -> shapes.PolicyList:
    """The repository's policies, oldest first."""
    async with c.engine.connect() as conn:
        rid = await _source(c, conn, repository)
        rows = await conn.execute(_WITH_TARGET.where(policies.c.repository_id == rid)
                                  .order_by(policies.c.created_at, policies.c.id))
        return [policy_json(r, repository, r.target) for r in rows]


async def create_policy(c: Caller, repository: str, policy: rules.Policy) -> shapes.PromotionPolicy:
    async with c.engine.begin() as conn:
        rid = await _source(c, conn, repository)
        target = await _target(c, conn, policy, repository)
        row = (await conn.execute(insert(policies).values(id=uuid.uuid4(), repository_id=rid,
                                                          **_values(c, policy, target)).returning(*policies.c))).one()
    await c.changed("promotion_policy_create", "repository", repository,
                    {"policy": str(row.id), "target": policy.target})
    return policy_json(row, repository, policy.target)


async def get_policy(c: Caller, repository: str, pid: uuid.UUID) -> shapes.PromotionPolicy:
    async with c.engine.connect() as conn:
        rid = await _source(c, conn, repository)
        row = (await conn.execute(_WITH_TARGET.where(policies.c.id == pid, policies.c.repository_id == rid))).first()
    if row is None:
        raise APIError(codes.NO_SUCH_PROMOTION_POLICY)
    return policy_json(row, repository, row.target)


async def update_policy(c: Caller, repository: str, pid: uuid.UUID, policy: rules.Policy) -> shapes.PromotionPolicy:
    """Replace policy ``pid`` of the repository (its last promotion kept)."""
    async with c.engine.begin() as conn:
        rid = await _source(c, conn, repository)
        target = await _target(c, conn, policy, repository)
        row = (await conn.execute(update(policies).where(policies.c.id == pid, policies.c.repository_id == rid)
                                  .values(**_values(c, policy, target), updated_at=func.now())
                                  .returning(*policies.c))).first()
        if row is None:
            raise APIError(codes.NO_SUCH_PROMOTION_POLICY)
    await c.changed("promotion_policy_update", "repository", repository, {"policy": str(pid), "target": policy.target})
    return policy_json(row, repository, policy.target)


async def delete_policy(c: Caller, repository: str, pid: uuid.UUID) -> None:
    async with c.engine.begin() as conn:
        rid = await _source(c, conn, repository)
        res = await conn.execute(delete(policies).where(policies.c.id == pid, policies.c.repository_id == rid))
        if res.rowcount == 0:
            raise APIError(codes.NO_SUCH_PROMOTION_POLICY)
    await c.changed("promotion_policy_delete", "repository", repository, {"policy": str(pid)})


async def run_policy(c: Caller, repository: str, pid: uuid.UUID) -> shapes.RunStarted:
    """Queue the evaluation of policy ``pid`` (enabled or not) against every tag of the repository."""
    async with c.engine.begin() as conn:
        rid = await _source(c, conn, repository)
        found = (await conn.execute(select(policies.c.id).where(policies.c.id == pid,
                                                                policies.c.repository_id == rid))).first()
        if found is None:
            raise APIError(codes.NO_SUCH_PROMOTION_POLICY)
        job = await queue_promotion(c.jobs, conn, {"repository": repository, "policy": str(pid)})
    await c.changed("promotion_policy_run", "repository", repository, {"policy": str(pid), "job": job["id"]})
    return {"jobID": str(job["id"])}

"""Mirroring policies: what they say (``Policy``), how they are stored (credentials sealed), and
the use cases of ``/api/v0`` (repository admins: list, create, read, replace, delete, run now).

A policy's ``rules`` are the pruning policies' tag rules (``dtr.jobs.pruning``, field ``tag``):
a tag is mirrored when it matches every rule (no rules: every tag). A push policy's
``tagTemplate`` names the remote tag, ``%n`` standing for the local tag's name (``%n``,
``prod-%n``, ``%n-mirror``; ``%%`` is a ``%``). Credentials are sealed under
``dtr.trust.sealing`` bound to the policy's id, and answered only as ``hasPassword``/``hasToken``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid
from typing import Any, cast

from sqlalchemy import Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dtr.api.errors import APIError, codes
from dtr.auth.access import Action
from dtr.jobs import pruning
from dtr.jobs import shapes as job_shapes
from dtr.jobs.service import JobService
from dtr.mirroring import shapes
from dtr.mirroring.models import MirroringPolicy
from dtr.mirroring.remote import Credentials, normalize_endpoint, ssl_context
from dtr.registry.models import Repository
from dtr.registry.names import TAG_RE, is_name
from dtr.schedule import Schedule, ScheduleError
from dtr.signatures import access
from dtr.trust.sealing import Sealer

policies = cast(Table, MirroringPolicy.__table__)
repositories = cast(Table, Repository.__table__)

PUSH, POLL = "push", "poll"
#: Job actions of each direction.
ACTIONS = {PUSH: "push_mirror", POLL: "poll_mirror"}
SUCCESS, FAILED, RETRYING = "SUCCESS", "FAILED", "RETRYING"


@dataclasses.dataclass(frozen=True)
class Caller(access.Caller):
    """With the job queue (``run`` queues the policy's job) and the sealer of credentials."""

    jobs: JobService
    sealer: Sealer


@dataclasses.dataclass(frozen=True)
class Policy:
    """A validated policy (``secret`` in the clear: never logged, never answered)."""

    direction: str
    remote_host: str
    remote_repository: str
    enabled: bool = True
    rules: tuple[pruning.Rule, ...] = ()
    tag_template: str | None = None
    schedule: str | None = None
    remote_ca: str | None = None
    #: None: keep the stored credentials (an update without remoteCredentials).
    credentials: tuple[str | None, str | None, str | None] | None = None  # (username, kind, secret)

    def matches(self, tag: str) -> bool:
        now = dt.datetime.now(dt.UTC)
        info = pruning.TagInfo(tag, now, None)
        return all(r.matches(info, now) for r in self.rules)

    def remote_tag(self, tag: str) -> str:
        return render_template(self.tag_template or "%n", tag)


def _invalid(message: str) -> APIError:
    return APIError(codes.INVALID_MIRRORING_POLICY, message)


def render_template(template: str, tag: str) -> str:
    """``template`` with ``%n`` replaced by ``tag`` and ``%%`` by ``%``."""
    return re.sub(r"%[n%]", lambda m: tag if m.group() == "%n" else "%", template)


def parse(direction: str, spec: shapes.PushPolicySpec | shapes.PollPolicySpec) -> Policy:
    """A policy from its request body; APIError INVALID_MIRRORING_POLICY saying what is wrong."""
    try:
        host = normalize_endpoint(spec.remote_host)
    except ValueError as e:
        raise _invalid(f"remoteHost: {e}") from None
    if not is_name(spec.remote_repository):
        raise _invalid("remoteRepository: expected a repository name (namespace/name, lower case)")
    try:
        ssl_context(spec.remote_ca)
    except ValueError as e:
        raise _invalid(f"remoteCA: {e}") from None
    if spec.remote_ca and host.startswith("http://"):
        raise _invalid("remoteCA: the remote host is plain http://")
    rules = []
    for i, raw in enumerate(spec.rules):
        if raw.field != "tag":
            raise _invalid(f"rules[{i}].field: mirroring rules match the tag only")
        try:
            rules.append(pruning.Rule.parse(raw.model_dump(), f"rules[{i}]"))
        except pruning.PolicyError as e:
            raise _invalid(str(e)) from None
    template = schedule = None
    if isinstance(spec, shapes.PushPolicySpec):
        template = spec.tag_template
        if re.search(r"%[^n%]|%$", template) or not TAG_RE.fullmatch(render_template(template, "a")):
            raise _invalid("tagTemplate: expected a tag, %n standing for the local tag's name (%% for %)")
    else:
        schedule = spec.schedule
        if schedule is not None:
            try:
                Schedule.parse(schedule)
            except ScheduleError as e:
                raise _invalid(f"schedule: {e}") from None
    creds = None
    if (c := spec.remote_credentials) is not None:
        if c.password is not None and c.token is not None:
            raise _invalid("remoteCredentials: a password or a token, not both")
        if c.password is not None and c.username is None:
            raise _invalid("remoteCredentials: a password needs a username")
        kind = "password" if c.password is not None else "token" if c.token is not None else None
        creds = (c.username, kind, c.password if c.password is not None else c.token)
    return Policy(direction, host, spec.remote_repository, spec.enabled, tuple(rules), template, schedule,
                  spec.remote_ca or None, creds)


def policy_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise APIError(codes.NO_SUCH_MIRRORING_POLICY) from None


def _context(pid: uuid.UUID) -> bytes:
    return f"mirroring-policy:{pid}".encode()


def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat().replace("+00:00", "Z") if t is not None else None


def policy_json(r: Any, repository: str) -> shapes.MirroringPolicy:
    status: shapes.LastStatus | None = None
    if r.last_status is not None:
        status = {"code": r.last_status, "detail": r.last_error or "", "at": _iso(r.last_run_at),
                  "job": str(r.last_job_id) if r.last_job_id else None}
    return {"id": str(r.id), "direction": r.direction, "repository": repository, "remoteHost": r.remote_host,
            "remoteRepository": r.remote_repository,
            "remoteCredentials": {"username": r.username, "hasPassword": r.secret_kind == "password",
                                  "hasToken": r.secret_kind == "token"},
            "remoteCA": r.remote_ca, "enabled": r.enabled, "rules": r.rules, "tagTemplate": r.tag_template,
            "schedule": r.schedule, "lastStatus": status}


def _values(c: Caller, pid: uuid.UUID, p: Policy) -> dict[str, Any]:
    values: dict[str, Any] = {
        "remote_host": p.remote_host, "remote_repository": p.remote_repository, "remote_ca": p.remote_ca,
        "enabled": p.enabled, "rules": [r.json() for r in p.rules], "tag_template": p.tag_template,
        "schedule": p.schedule}
    if p.credentials is not None:
        username, kind, secret = p.credentials
        values.update(username=username, secret_kind=kind,
                      secret=c.sealer.seal(secret.encode(), _context(pid)) if secret is not None else None)
    return values


# -- loading for the jobs -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Stored:
    """A stored policy as its job runs it: where it is, the policy, and its credentials unsealed."""

    id: uuid.UUID
    repository: str
    policy: Policy
    credentials: Credentials
    #: Pushes before this are not the policy's to mirror (their events may be delivered after it).
    created_at: dt.datetime


_LOAD = (select(policies, repositories.c.name.label("repository"))
         .join(repositories, repositories.c.id == policies.c.repository_id))


def _stored(r: Any, sealer: Sealer | None) -> Stored:
    """The policy of row ``r``; its credentials unsealed with ``sealer`` (None: left out)."""
    secret = sealer.unseal(r.secret, _context(r.id)).decode() if r.secret is not None and sealer else None
    rules = tuple(pruning.Rule.parse(raw) for raw in r.rules)
    p = Policy(r.direction, r.remote_host, r.remote_repository, r.enabled, rules, r.tag_template, r.schedule,
               r.remote_ca)
    return Stored(r.id, r.repository, p, Credentials(r.username, secret), r.created_at)


async def load(conn: AsyncConnection, sealer: Sealer, pid: uuid.UUID) -> Stored | None:
    row = (await conn.execute(_LOAD.where(policies.c.id == pid))).first()
    return None if row is None else _stored(row, sealer)


async def load_enabled(conn: AsyncConnection, sealer: Sealer | None, direction: str,
                       repositories_: list[str] | None = None) -> list[Stored]:
    """The enabled policies of ``direction`` (of the named repositories only, if given)."""
    q = _LOAD.where(policies.c.direction == direction, policies.c.enabled)
    if repositories_ is not None:
        q = q.where(repositories.c.name.in_(repositories_))
    return [_stored(r, sealer) for r in await conn.execute(q.order_by(policies.c.created_at, policies.c.id))]


async def set_status(conn: AsyncConnection, pid: uuid.UUID, code: str, detail: str,
                     job: uuid.UUID | None) -> None:
    await conn.execute(update(policies).where(policies.c.id == pid).values(
        last_status=code, last_error=detail[:4000], last_run_at=dt.datetime.now(dt.UTC), last_job_id=job))


async def last_runs(engine: AsyncEngine, direction: str) -> dict[uuid.UUID, dt.datetime | None]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(policies.c.id, policies.c.last_run_at).where(
            policies.c.direction == direction, policies.c.enabled))
        return {r.id: r.last_run_at for r in rows}


# -- use cases ------------------------------------------------------------------------------------


async def _open(c: Caller, conn: AsyncConnection, namespace: str, repo: str) -> tuple[str, int]:
    name = await access.open_repository(c, conn, namespace, repo, Action.ADMIN)
    rid = (await conn.execute(select(repositories.c.id).where(repositories.c.name == name))).scalar_one()
    return name, int(rid)


async def list_policies(c: Caller, direction: str, namespace: str, repo: str) -> shapes.PolicyList:
    async with c.engine.connect() as conn:
        name, rid = await _open(c, conn, namespace, repo)
        rows = await conn.execute(select(policies).where(policies.c.repository_id == rid,
                                                         policies.c.direction == direction)
                                  .order_by(policies.c.created_at, policies.c.id))
        return [policy_json(r, name) for r in rows]


async def create_policy(c: Caller, namespace: str, repo: str, p: Policy) -> shapes.MirroringPolicy:
    pid = uuid.uuid4()
    async with c.engine.begin() as conn:
        name, rid = await _open(c, conn, namespace, repo)
        values = _values(c, pid, p)
        row = (await conn.execute(policies.insert().values(id=pid, repository_id=rid, direction=p.direction,
                                                           **values).returning(*policies.c))).one()
    await c.changed(f"{p.direction}_mirroring_policy_create", "repository", name, {"policy": str(pid)})
    return policy_json(row, name)


async def get_policy(c: Caller, direction: str, namespace: str, repo: str, pid: uuid.UUID) -> shapes.MirroringPolicy:
    async with c.engine.connect() as conn:
        name, rid = await _open(c, conn, namespace, repo)
        row = (await conn.execute(select(policies).where(policies.c.id == pid, policies.c.repository_id == rid,
                                                         policies.c.direction == direction))).first()
    if row is None:
        raise APIError(codes.NO_SUCH_MIRRORING_POLICY)
    return policy_json(row, name)


async def update_policy(c: Caller, namespace: str, repo: str, pid: uuid.UUID, p: Policy) -> shapes.MirroringPolicy:
    """Replace the policy (its stored credentials kept when ``p`` has none)."""
    async with c.engine.begin() as conn:
        name, rid = await _open(c, conn, namespace, repo)
        row = (await conn.execute(update(policies).where(
            policies.c.id == pid, policies.c.repository_id == rid, policies.c.direction == p.direction)
            .values(**_values(c, pid, p), updated_at=dt.datetime.now(dt.UTC)).returning(*policies.c))).first()
        if row is None:
            raise APIError(codes.NO_SUCH_MIRRORING_POLICY)
    await c.changed(f"{p.direction}_mirroring_policy_update", "repository", name, {"policy": str(pid)})
    return policy_json(row, name)


async def delete_policy(c: Caller, direction: str, namespace: str, repo: str, pid: uuid.UUID) -> None:
    async with c.engine.begin() as conn:
        name, rid = await _open(c, conn, namespace, repo)
        res = await conn.execute(delete(policies).where(policies.c.id == pid, policies.c.repository_id == rid,
                                                        policies.c.direction == direction))
        if res.rowcount == 0:
            raise APIError(codes.NO_SUCH_MIRRORING_POLICY)
    await c.changed(f"{direction}_mirroring_policy_delete", "repository", name, {"policy": str(pid)})


async def run_policy(c: Caller, direction: str, namespace: str, repo: str, pid: uuid.UUID) -> job_shapes.Job:
    """Queue the policy's job now (push: every matching tag; poll: a poll), even when disabled."""
    await get_policy(c, direction, namespace, repo, pid)
    job = await c.jobs.queue(ACTIONS[direction], {"policy": str(pid)}, dedupe_key=f"{ACTIONS[direction]}:{pid}")
    await c.changed(f"{direction}_mirroring_policy_run", "repository", f"{namespace}/{repo}",
                    {"policy": str(pid), "job": job["id"]})
    return job

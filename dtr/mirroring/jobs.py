"""Mirroring's job actions and the outbox subscriber that starts push mirroring.

- ``push_mirror {policy, tag?}``: push the local ``tag`` (without one: every tag the policy
  matches) to the policy's remote. ``push_on_push`` queues one per enabled matching policy of each
  tag pushed or moved (one waiting per policy and tag), in the transaction moving its cursor.
- ``poll_mirror {policy?}``: with a policy, poll it; without one (the schedule's tick, by default
  ``mirroring.poll_tick``, every 15 minutes: the ``poll_mirror`` cron), queue a poll of each enabled poll policy that is
  due (its own ``schedule`` fired since its last run; no schedule: every tick).

A run ends with the policy's ``lastStatus`` and an outbox event (``dtr.registry.events``:
PUSH_MIRRORED / POLL_MIRRORED, or, when the last attempt failed, PUSH_MIRROR_FAILED /
POLL_MIRROR_FAILED) in one transaction. A failed attempt with attempts left says RETRYING.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.jobs import actions
from dtr.jobs.context import JobContext, JobFailed, JobStopped
from dtr.jobs.params import ParameterError, only
from dtr.jobs.service import JobService
from dtr.mirroring import policies as p
from dtr.mirroring.poll import Poller
from dtr.mirroring.push import MissingBlob, Pusher
from dtr.mirroring.remote import Remote, RemoteError
from dtr.mirroring.uploads import UploadBook
from dtr.registry import events
from dtr.registry.errors import RegistryError
from dtr.registry.events import SYSTEM, Event, Handler
from dtr.registry.service import RegistryService
from dtr.schedule import Schedule, ScheduleError
from dtr.trust.sealing import Sealer, SealingError

_PUSHES = frozenset({events.TAG_PUSHED, events.TAG_MOVED})
_EVENTS = {p.PUSH: (events.PUSH_MIRRORED, events.PUSH_MIRROR_FAILED),
           p.POLL: (events.POLL_MIRRORED, events.POLL_MIRROR_FAILED)}


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    only(params, {"policy", "tag"})
    try:
        params["policy"] = str(uuid.UUID(str(params["policy"])))
    except KeyError:
        pass
    except ValueError:
        raise ParameterError("policy: expected a mirroring policy id") from None
    tag = params.get("tag")
    if tag is not None and (not isinstance(tag, str) or not 0 < len(tag) <= 128):
        raise ParameterError("tag: expected a tag name")
    return params


def _check_push(params: dict[str, Any]) -> dict[str, Any]:
    params = check_params(params)
    if "policy" not in params:
        raise ParameterError("policy: required")
    return params


def _remote(stored: p.Stored, **kw: Any) -> Remote:
    return Remote(stored.policy.remote_host, stored.credentials, stored.policy.remote_ca, **kw)


def _where(stored: p.Stored) -> str:
    return f"{urllib.parse.urlsplit(stored.policy.remote_host).netloc}/{stored.policy.remote_repository}"


async def _load(ctx: JobContext) -> p.Stored | None:
    try:
        async with ctx.engine.connect() as conn:
            return await p.load(conn, Sealer.from_config(ctx.config), uuid.UUID(ctx.parameters["policy"]))
    except SealingError as e:
        raise JobFailed(f"the policy's credentials do not open: {e}") from None


async def _finish(ctx: JobContext, stored: p.Stored, done: Sequence[tuple[str, str]], error: str | None) -> None:
    """The run's status and event, in one transaction (no event for a poll that fetched nothing,
    nor for a failed attempt that will be retried)."""
    ok, failed = _EVENTS[stored.policy.direction]
    last = error is None or ctx.attempt >= ctx.max_attempts
    code = p.SUCCESS if error is None else p.FAILED if last else p.RETRYING
    detail = error if error is not None else "tags: " + ", ".join(t for t, _ in done) if done else "nothing changed"
    async with ctx.engine.begin() as conn:
        await p.set_status(conn, stored.id, code, detail, ctx.job_id)
        if last and (error is not None or done or stored.policy.direction == p.PUSH):
            single = done[0] if len(done) == 1 else (None, None)
            info: dict[str, Any] = {"policy": str(stored.id), "remote": _where(stored), "tags": [t for t, _ in done]}
            if error is not None:
                info["error"] = error
            await events.record(conn, SYSTEM, [Event(failed if error else ok, stored.repository, single[0],
                                                     single[1], info)])


Run = Callable[[], Awaitable[tuple[list[tuple[str, str]], dict[str, Any]]]]


async def _guarded(ctx: JobContext, stored: p.Stored, run: Run) -> dict[str, Any]:
    """Run ``run()`` (returning the (tag, digest) pairs done and a result), recording the outcome."""
    try:
        done, result = await run()
    except (RemoteError, RegistryError, MissingBlob, OSError) as e:
        await _finish(ctx, stored, [], str(e)[:2000])
        raise
    except JobStopped:
        raise
    except Exception as e:
        await _finish(ctx, stored, [], f"{type(e).__name__}: {e}"[:2000])
        raise
    await _finish(ctx, stored, done, None)
    return result


async def push_mirror(ctx: JobContext) -> dict[str, Any]:
    stored = await _load(ctx)
    tag = ctx.parameters.get("tag")
    if stored is None or stored.policy.direction != p.PUSH:
        ctx.log("the policy is gone: nothing to do")
        return {"skipped": "no such policy"}
    if tag is not None and (not stored.policy.enabled or not stored.policy.matches(tag)):
        ctx.log(f"the policy no longer mirrors {tag}: nothing to do")
        return {"skipped": "not mirrored"}
    registry = RegistryService(ctx.engine, ctx.storage)
    async with ctx.engine.connect() as conn:
        mount_from = await _mount_sources(conn, stored)

    async def run() -> tuple[list[tuple[str, str]], dict[str, Any]]:
        tags = [tag] if tag is not None else [t for t in (await registry.list_tags(stored.repository, None, None))[0]
                                              if stored.policy.matches(t)]
        done = []
        async with _remote(stored, chunk_size=ctx.config.mirroring.chunk_size,
                           monolithic_max=ctx.config.mirroring.monolithic_max) as remote:
            pusher = Pusher(remote, registry, stored.repository, stored.policy.remote_repository, mount_from, ctx.log,
                            UploadBook(ctx.engine, stored.id))
            for i, t in enumerate(tags):
                ctx.check_stop()
                ctx.progress(i, len(tags), f"pushing {t}")
                try:
                    digest = await pusher.push_tag(t, stored.policy.remote_tag(t))
                except RegistryError as e:
                    if e.code.code != "MANIFEST_UNKNOWN":
                        raise
                    ctx.log(f"{t}: no longer in {stored.repository}, skipped")
                    continue
                done.append((t, digest))
        s = pusher.stats
        ctx.log(f"{s.blobs_sent} blob(s) uploaded ({remote.sent} bytes, {remote.resumed} resumption(s)), "
                f"{s.blobs_present} already there, {s.blobs_mounted} mounted; {s.manifests_sent} manifest(s) put")
        return done, {"tags": [t for t, _ in done], "remoteTags": [stored.policy.remote_tag(t) for t, _ in done],
                      "bytes": remote.sent, "resumed": remote.resumed, **vars(s)}

    return await _guarded(ctx, stored, run)


async def _mount_sources(conn: AsyncConnection, stored: p.Stored) -> list[str]:
    """Other remote repositories this remote host's push policies mirror to, ones that last
    succeeded first: candidates to mount blobs from."""
    q = (select(p.policies.c.remote_repository).where(
        p.policies.c.direction == p.PUSH, p.policies.c.remote_host == stored.policy.remote_host,
        p.policies.c.remote_repository != stored.policy.remote_repository, p.policies.c.id != stored.id)
        .order_by((p.policies.c.last_status == p.SUCCESS).desc(), p.policies.c.remote_repository))
    return list(dict.fromkeys((await conn.execute(q)).scalars()))


async def poll_mirror(ctx: JobContext) -> dict[str, Any]:
    if "policy" not in ctx.parameters:
        return await _tick(ctx)
    stored = await _load(ctx)
    if stored is None or stored.policy.direction != p.POLL:
        ctx.log("the policy is gone: nothing to do")
        return {"skipped": "no such policy"}
    registry = RegistryService(ctx.engine, ctx.storage)

    async def run() -> tuple[list[tuple[str, str]], dict[str, Any]]:
        async with _remote(stored) as remote:
            poller = Poller(remote, registry, stored.repository, stored.policy.remote_repository,
                            stored.policy.matches, ctx.log, ctx.check_stop)
            done = await poller.poll()
        return done, {"tags": [t for t, _ in done], "blobsFetched": poller.blobs_fetched,
                      "artifactsFetched": poller.artifacts_fetched}

    return await _guarded(ctx, stored, run)


async def _tick(ctx: JobContext) -> dict[str, Any]:
    """Queue a poll of each enabled poll policy that is due."""
    now = dt.datetime.now(dt.UTC)
    jobs = JobService(ctx.engine)
    queued = []
    async with ctx.engine.begin() as conn:
        rows = await conn.execute(select(p.policies.c.id, p.policies.c.schedule, p.policies.c.last_run_at).where(
            p.policies.c.direction == p.POLL, p.policies.c.enabled))
        for r in rows.all():
            if r.schedule and r.last_run_at is not None:
                try:
                    if Schedule.parse(r.schedule).next_after(r.last_run_at) > now:
                        continue
                except ScheduleError:
                    continue
            await jobs.queue("poll_mirror", {"policy": str(r.id)}, dedupe_key=f"poll_mirror:{r.id}", conn=conn)
            queued.append(str(r.id))
    ctx.log(f"queued {len(queued)} poll(s)")
    return {"queued": queued}


def push_on_push(jobs: JobService) -> Handler:
    """The outbox subscriber queueing a ``push_mirror`` job for each enabled push policy matching
    a tag pushed or moved (one waiting per policy and tag)."""

    async def handle(conn: AsyncConnection, batch: Sequence[Event]) -> None:
        pushes = [e for e in batch if e.type in _PUSHES and e.tag]
        if not pushes:
            return
        found = await p.load_enabled(conn, None, p.PUSH, sorted({e.repository for e in pushes}))
        for stored in found:
            # A push older than the policy is not its to mirror, even when delivered after it.
            pushed = dict.fromkeys((e.repository, e.tag) for e in pushes if e.at is None or e.at >= stored.created_at)
            for repo, tag in pushed:
                if repo == stored.repository and tag is not None and stored.policy.matches(tag):
                    await jobs.queue("push_mirror", {"policy": str(stored.id), "tag": tag},
                                     dedupe_key=f"push_mirror:{stored.id}:{tag}", conn=conn)

    return handle


_ACTIONS = {
    "push_mirror": actions.Action(push_mirror, _check_push, "push a tag (or every tag) to a push mirror's remote"),
    "poll_mirror": actions.Action(poll_mirror, check_params, "fetch a poll mirror's changed tags from its remote "
                                  "(without a policy: queue the polls that are due)",
                                  default_schedule=lambda cfg: cfg.mirroring.poll_tick),
}


def register_actions() -> None:
    """Make mirroring's actions known to the job system (idempotent)."""
    for name, action in _ACTIONS.items():
        actions.register(name, action)

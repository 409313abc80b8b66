"""The job queue's use cases, whatever the front end: jobs, their logs, schedules and workers.

Each takes a ``Caller`` and checks it is a site admin; a change runs in one transaction
(``JobService``) and is audited once committed. Client mistakes are ``APIError``s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

from dtr.api.errors import APIError, codes
from dtr.jobs import actions, shapes
from dtr.jobs.caller import Caller
from dtr.jobs.params import ParameterError
from dtr.jobs.service import STATUSES, JobService, NotFound, ended
from dtr.schedule import ScheduleError

#: Seconds between looks at a followed job that has nothing new.
FOLLOW_POLL = 0.5

#: What following a job yields.
FollowEvent = shapes.JobLogLine | shapes.JobProgress | shapes.JobEnded


@dataclasses.dataclass(frozen=True)
class JobOptions:
    """How a job (or each job a schedule queues) runs; None takes the action's or config's default."""

    retries: int | None = None
    deadline: float | None = None
    stop_timeout: float | None = None


def job_id(raw: str) -> uuid.UUID:
    """A job id from its text; APIError NO_SUCH_JOB if it cannot be one."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise APIError(codes.NO_SUCH_JOB) from None


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def _page_start(job: shapes.Job) -> str:
    """The opaque pageStart of the page that begins with ``job``: its creation time and id."""
    created = dt.datetime.fromisoformat(job["createdAt"] or "")
    return f"{(created - _EPOCH) // _MICROSECOND}_{job['id']}"


def _parse_page_start(raw: str) -> tuple[dt.datetime, uuid.UUID]:
    micros, _, jid = raw.partition("_")
    try:
        return _EPOCH + int(micros) * _MICROSECOND, uuid.UUID(jid)
    except (ValueError, OverflowError):
        raise APIError(codes.INVALID_PARAMETER, "pageStart: not the X-Next-Page-Start of a page of jobs") from None


# -- jobs -------------------------------------------------------------------------------------


async def list_jobs(caller: Caller, *, action: str | None = None, status: str | None = None,
                    worker: str | None = None, start: str | None = None,
                    size: int = 100) -> tuple[list[shapes.Job], str | None]:
    """One page of jobs, newest first, from ``start`` (a pageStart this returned) on, and the
    pageStart of the next page (None on the last). ``status`` is a comma-separated list of
    statuses; an unknown status or action is APIError INVALID_PARAMETER."""
    caller.admin()
    if status and not set(status.split(",")) <= set(STATUSES):
        raise APIError(codes.INVALID_PARAMETER, f"status: allowed: {', '.join(STATUSES)}")
    if action and action not in actions.actions():
        raise APIError(codes.INVALID_PARAMETER, f"action: allowed: {', '.join(sorted(actions.actions()))}")
    rows = await caller.jobs.list_jobs(action=action, status=status, worker=worker, limit=size + 1,
                                       start=_parse_page_start(start) if start else None)
    return rows[:size], _page_start(rows[size]) if len(rows) > size else None


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """A job as ``start_job`` takes it: an action, its parameters and how it runs."""

    action: str
    parameters: Any = None
    options: JobOptions = dataclasses.field(default_factory=JobOptions)


async def start_job(caller: Caller, spec: JobSpec) -> shapes.Job:
    """Queue a job; APIError INVALID_JOB for an unknown action or bad parameters."""
    caller.admin()
    o = spec.options
    try:
        job = await caller.jobs.queue(spec.action, spec.parameters, retries=o.retries, deadline=o.deadline,
                                      stop_timeout=o.stop_timeout)
    except ParameterError as e:
        raise APIError(codes.INVALID_JOB, str(e)) from None
    await caller.changed("job_start", "job", job["id"], {"action": spec.action})
    return job


async def _job(jobs: JobService, job_id: uuid.UUID) -> shapes.Job:
    try:
        return await jobs.get(job_id)
    except NotFound:
        raise APIError(codes.NO_SUCH_JOB) from None


async def get_job(caller: Caller, job_id: uuid.UUID) -> shapes.Job:
    caller.admin()
    return await _job(caller.jobs, job_id)


async def cancel_job(caller: Caller, job_id: uuid.UUID) -> shapes.Job:
    """Cancel a waiting job now, or ask a running one's worker to stop it."""
    caller.admin()
    try:
        job = await caller.jobs.cancel(job_id)
    except NotFound:
        raise APIError(codes.NO_SUCH_JOB) from None
    await caller.changed("job_cancel", "job", job["id"], {"action": job["action"]})
    return job


async def job_logs(caller: Caller, job_id: uuid.UUID, after: int = 0, limit: int = 1000) -> list[shapes.JobLogLine]:
    """Up to ``limit`` log lines ``{lineNum, time, data}`` after line ``after``."""
    caller.admin()
    try:
        return await caller.jobs.logs(job_id, after, limit)
    except NotFound:
        raise APIError(codes.NO_SUCH_JOB) from None


async def follow_job(caller: Caller, job_id: uuid.UUID, after: int = 0) -> AsyncIterator[FollowEvent]:
    """The job's log as it grows: its lines, ``{"progress"}`` when that changes, and a last
    ``{"job"}`` once it has ended. Checks (caller, job) happen here, before the first item."""
    caller.admin()
    return _follow(caller.jobs, await _job(caller.jobs, job_id), after)


async def _follow(jobs: JobService, job: shapes.Job, after: int) -> AsyncIterator[FollowEvent]:
    job_id, progress = uuid.UUID(job["id"]), None
    while True:
        lines = await jobs.logs(job_id, after)
        for line in lines:
            yield line
            after = line["lineNum"]
        if lines:
            continue
        if job["progress"] != progress:
            progress = job["progress"]
            yield {"progress": progress}
        if ended(job):
            for line in await jobs.logs(job_id, after):  # lines written together with the final status
                yield line
            yield {"job": job}
            return
        await asyncio.sleep(FOLLOW_POLL)
        job = await jobs.get(job_id)


# -- schedules and workers --------------------------------------------------------------------


async def list_crons(caller: Caller) -> list[shapes.Cron]:
    caller.admin()
    return await caller.jobs.crons()


async def get_cron(caller: Caller, action: str) -> shapes.Cron:
    caller.admin()
    try:
        return await caller.jobs.cron(action)
    except NotFound:
        raise APIError(codes.NO_SUCH_CRON, "no schedule for that action") from None


@dataclasses.dataclass(frozen=True)
class CronSpec:
    """A schedule as ``put_cron`` takes it (six cron fields, seconds first, or ``@every 15m``...)."""

    schedule: str
    parameters: Any = None
    enabled: bool = True
    options: JobOptions = dataclasses.field(default_factory=JobOptions)


async def put_cron(caller: Caller, action: str, spec: CronSpec) -> shapes.Cron:
    """Create or replace the schedule of ``action``; APIError INVALID_CRON for a bad schedule,
    action or parameters."""
    caller.admin()
    o = spec.options
    try:
        cron = await caller.jobs.put_cron(action, spec.schedule, spec.parameters, enabled=spec.enabled,
                                          retries=o.retries, deadline=o.deadline, stop_timeout=o.stop_timeout)
    except (ParameterError, ScheduleError) as e:
        raise APIError(codes.INVALID_CRON, str(e)) from None
    await caller.changed("cron_set", "cron", action, {"schedule": spec.schedule, "enabled": spec.enabled})
    return cron


async def delete_cron(caller: Caller, action: str) -> None:
    caller.admin()
    try:
        await caller.jobs.delete_cron(action)
    except NotFound:
        raise APIError(codes.NO_SUCH_CRON, "no schedule for that action") from None
    await caller.changed("cron_delete", "cron", action)


async def list_workers(caller: Caller) -> list[shapes.Worker]:
    """Workers seen in the last hour, with their capacity, heartbeat expiration and running jobs."""
    caller.admin()
    return await caller.jobs.workers()

"""The job queue's use cases, whatever the front end: jobs, their logs, schedules and workers.

Each takes a ``Caller`` and checks it is a site admin; a change runs in one transaction
(``JobService``) and is audited once committed. Client mistakes are ``APIError``s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

from dtr.api.errors import APIError, codes
from dtr.errors import ErrorCode
from dtr.jobs import actions
from dtr.jobs.caller import Caller
from dtr.jobs.params import ParameterError
from dtr.jobs.schedule import ScheduleError
from dtr.jobs.service import STATUSES, JobService, NotFound, ended

#: Seconds between looks at a followed job that has nothing new.
FOLLOW_POLL = 0.5


@dataclasses.dataclass(frozen=True)
class JobOptions:
    """How a job (or each job a schedule queues) runs; None takes the action's or config's default."""

    retries: int | None = None
    deadline: float | None = None
    stop_timeout: float | None = None

    #: Their names in the API's JSON.
    KEYS: ClassVar[frozenset[str]] = frozenset({"retries", "deadline", "stopTimeout"})

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> JobOptions:
        """From the API's ``retries``, ``deadline`` and ``stopTimeout``; APIError INVALID_JOB."""
        retries = body.get("retries")
        if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int)
                                    or not 0 <= retries <= 100):
            raise APIError(codes.INVALID_JOB, "retries: expected an integer from 0 to 100")
        return cls(retries, _seconds(body, "deadline"), _seconds(body, "stopTimeout"))


def _seconds(body: Mapping[str, Any], name: str) -> float | None:
    v = body.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
        raise APIError(codes.INVALID_JOB, f"{name}: expected a positive number of seconds")
    return float(v)


def job_id(raw: str) -> uuid.UUID:
    """A job id from its text; APIError NO_SUCH_JOB if it cannot be one."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise APIError(codes.NO_SUCH_JOB) from None


def _unknown_key(body: Mapping[str, Any], allowed: set[str] | frozenset[str], code: ErrorCode) -> None:
    unknown = set(body) - allowed
    if unknown:
        raise APIError(code, f"unknown key {sorted(unknown)[0]!r}")


# -- jobs -------------------------------------------------------------------------------------


async def list_jobs(caller: Caller, *, action: str | None = None, status: str | None = None,
                    worker: str | None = None, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """Jobs, newest first; ``status`` is a comma-separated list of statuses."""
    caller.admin()
    if status and not set(status.split(",")) <= set(STATUSES):
        raise APIError(codes.INVALID_PARAMETER, f"status: allowed: {', '.join(STATUSES)}")
    return await caller.jobs.list_jobs(action=action, status=status, worker=worker, limit=limit, offset=offset)


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """A job as ``start_job`` takes it: an action, its parameters and how it runs."""

    action: str
    parameters: Any = None
    options: JobOptions = dataclasses.field(default_factory=JobOptions)

    @classmethod
    def parse(cls, body: Any) -> JobSpec:
        """From the API's ``{"action", "parameters", "retries", "deadline", "stopTimeout"}``;
        APIError INVALID_JOB."""
        if not isinstance(body, dict):
            raise APIError(codes.INVALID_JOB, "expected an object with action and parameters")
        _unknown_key(body, {"action", "parameters"} | JobOptions.KEYS, codes.INVALID_JOB)
        action = body.get("action")
        if not isinstance(action, str):
            raise APIError(codes.INVALID_JOB, f"action: required; allowed: {', '.join(sorted(actions.actions()))}")
        return cls(action, body.get("parameters"), JobOptions.parse(body))


async def start_job(caller: Caller, spec: JobSpec) -> dict[str, Any]:
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


async def _job(jobs: JobService, job_id: uuid.UUID) -> dict[str, Any]:
    try:
        return await jobs.get(job_id)
    except NotFound:
        raise APIError(codes.NO_SUCH_JOB) from None


async def get_job(caller: Caller, job_id: uuid.UUID) -> dict[str, Any]:
    caller.admin()
    return await _job(caller.jobs, job_id)


async def cancel_job(caller: Caller, job_id: uuid.UUID) -> dict[str, Any]:
    """Cancel a waiting job now, or ask a running one's worker to stop it."""
    caller.admin()
    try:
        job = await caller.jobs.cancel(job_id)
    except NotFound:
        raise APIError(codes.NO_SUCH_JOB) from None
    await caller.changed("job_cancel", "job", job["id"], {"action": job["action"]})
    return job


async def job_logs(caller: Caller, job_id: uuid.UUID, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
    """Up to ``limit`` log lines ``{lineNum, time, data}`` after line ``after``."""
    caller.admin()
    try:
        return await caller.jobs.logs(job_id, after, limit)
    except NotFound:
        raise APIError(codes.NO_SUCH_JOB) from None


async def follow_job(caller: Caller, job_id: uuid.UUID, after: int = 0) -> AsyncIterator[dict[str, Any]]:
    """The job's log as it grows: its lines, ``{"progress"}`` when that changes, and a last
    ``{"job"}`` once it has ended. Checks (caller, job) happen here, before the first item."""
    caller.admin()
    return _follow(caller.jobs, await _job(caller.jobs, job_id), after)


async def _follow(jobs: JobService, job: dict[str, Any], after: int) -> AsyncIterator[dict[str, Any]]:
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


async def list_crons(caller: Caller) -> list[dict[str, Any]]:
    caller.admin()
    return await caller.jobs.crons()


async def get_cron(caller: Caller, action: str) -> dict[str, Any]:
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

    @classmethod
    def parse(cls, body: Any) -> CronSpec:
        """From the API's ``{"schedule", "parameters", "enabled", "retries", "deadline",
        "stopTimeout"}`` (``action`` is allowed, and ignored); APIError INVALID_CRON, or
        INVALID_JOB for the job options."""
        if not isinstance(body, dict) or not isinstance(body.get("schedule"), str):
            raise APIError(codes.INVALID_CRON, "expected an object with schedule (six fields, seconds first)")
        _unknown_key(body, {"schedule", "parameters", "enabled", "action"} | JobOptions.KEYS, codes.INVALID_CRON)
        enabled = body.get("enabled", True)
        if not isinstance(enabled, bool):
            raise APIError(codes.INVALID_CRON, "enabled: expected true or false")
        return cls(body["schedule"], body.get("parameters"), enabled, JobOptions.parse(body))


async def put_cron(caller: Caller, action: str, spec: CronSpec) -> dict[str, Any]:
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


async def list_workers(caller: Caller) -> list[dict[str, Any]]:
    """Workers seen in the last hour, with their capacity, heartbeat expiration and running jobs."""
    caller.admin()
    return await caller.jobs.workers()

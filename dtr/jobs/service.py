"""The job queue's database operations: queue, list, cancel, logs, schedules, workers.

Used by the use cases (``dtr.jobs.admin``, which authorize and audit), the CLI and the worker;
every state change is one SQL statement (or one transaction), so concurrent replicas never see a
half-made change.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, or_, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dtr.jobs import actions, shapes
from dtr.jobs.models import Cron, Job, JobLog, Worker
from dtr.schedule import Schedule
from dtr.times import iso

jobs = cast(Table, Job.__table__)
job_logs = cast(Table, JobLog.__table__)
workers = cast(Table, Worker.__table__)
crons = cast(Table, Cron.__table__)

STATUSES = ("waiting", "running", "done", "error", "cancel_request", "cancel", "worker_dead")
#: Statuses a job never leaves (worker_dead only once its attempts are used up).
FINAL = ("done", "error", "cancel")
ACTIVE = ("waiting", "running", "cancel_request", "worker_dead")


class NotFound(Exception):
    pass


def ended(job: Mapping[str, Any]) -> bool:
    """The job (as ``job_json`` shows it) will not run again: final, or dead with no attempt left."""
    return job["status"] in FINAL or (job["status"] == "worker_dead" and job["attempt"] > job["retries"])




def job_json(r: Row[Any] | Any) -> shapes.Job:
    """A job as the API shows it (DTR's field names)."""
    return {
        "id": str(r.id), "action": r.action, "parameters": r.parameters, "status": r.status,
        "workerID": r.worker_id or "", "attempt": r.attempt, "retries": max(r.max_attempts - 1, 0),
        "runAfter": iso(r.run_after), "deadline": r.deadline, "stopTimeout": r.stop_timeout,
        "progress": r.progress, "result": r.result, "error": r.error, "cron": r.cron_action,
        "scheduledAt": iso(r.scheduled_at), "createdAt": iso(r.created_at),
        "startTime": iso(r.started_at), "endTime": iso(r.ended_at),
    }


def cron_json(r: Row[Any] | Any) -> shapes.Cron:
    return {
        "action": r.action, "schedule": r.schedule, "parameters": r.parameters, "enabled": r.enabled,
        "retries": max(r.max_attempts - 1, 0), "deadline": r.deadline, "stopTimeout": r.stop_timeout,
        "nextRun": iso(r.next_run), "lastJobID": str(r.last_job_id) if r.last_job_id else None,
    }


#: The predicate of the partial unique index ``uq_jobs_dedupe_waiting``, as a literal: Postgres
#: infers the index for ON CONFLICT only from the same expression, never from bound parameters
#: (which SQLAlchemy 2.1 renders for ``status == "waiting"``).
_DEDUPE_WAITING = text("status = 'waiting' AND dedupe_key IS NOT NULL")
#: Every job worker LISTENs here (``JobWorker``): a job queued for now is claimed at once, not at
#: the next poll. The notification goes out when the queuing transaction commits (none on rollback).
CHANNEL = "dtr_jobs"


class JobService:
    def __init__(self, engine: AsyncEngine, default_stop_timeout: float = 30.0, worker_timeout: float = 30.0) -> None:
        self.engine = engine
        self.default_stop_timeout = default_stop_timeout
        self.worker_timeout = worker_timeout

    # -- jobs -----------------------------------------------------------------------------

    async def queue(self, action: str, parameters: Any = None, *, retries: int | None = None,
                    deadline: float | None = None, stop_timeout: float | None = None,
                    dedupe_key: str | None = None, conn: AsyncConnection | None = None,
                    cron_action: str | None = None, scheduled_at: dt.datetime | None = None) -> shapes.Job:
        """Queue a job (ParameterError for a bad action or parameters); with ``dedupe_key``, an
        equal job already waiting is returned instead of a new one. Without ``scheduled_at``, the
        workers are woken when the transaction commits (``CHANNEL``)."""
        params = actions.check(action, parameters)
        spec = actions.actions()[action]
        max_attempts = spec.max_attempts if retries is None else retries + 1
        values = dict(id=uuid.uuid4(), action=action, parameters=params, max_attempts=max_attempts,
                      deadline=deadline, stop_timeout=stop_timeout or self.default_stop_timeout,
                      dedupe_key=dedupe_key, cron_action=cron_action, scheduled_at=scheduled_at)
        stmt: Any = pg_insert(jobs).values(**values)
        if dedupe_key is not None:
            stmt = stmt.on_conflict_do_nothing(index_elements=[jobs.c.dedupe_key],
                                               index_where=_DEDUPE_WAITING)
        # The INSERT itself notifies the workers, only of a row it inserts: no round-trip more.
        wake = () if scheduled_at else (func.pg_notify(CHANNEL, jobs.c.action),)
        stmt = stmt.returning(*jobs.c, *wake)
        if conn is not None:
            return await self._insert(conn, stmt, dedupe_key)
        async with self.engine.begin() as c:
            return await self._insert(c, stmt, dedupe_key)

    async def _insert(self, conn: AsyncConnection, stmt: Any, dedupe_key: str | None) -> shapes.Job:
        while True:
            row = (await conn.execute(stmt)).first()
            if row is None:  # an equal job is waiting already
                row = (await conn.execute(select(jobs).where(jobs.c.dedupe_key == dedupe_key,
                                                             jobs.c.status == "waiting"))).first()
            if row is not None:  # else it was claimed in between: insert again
                return job_json(row)

    async def get(self, job_id: uuid.UUID) -> shapes.Job:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).first()
        if row is None:
            raise NotFound(str(job_id))
        return job_json(row)

    async def list_jobs(self, *, action: str | None = None, status: str | None = None, worker: str | None = None,
                        limit: int = 100, start: tuple[dt.datetime, uuid.UUID] | None = None) -> list[shapes.Job]:
        """Up to ``limit`` jobs, newest first (by ``createdAt``, then id), from the job ``start``
        (its ``(createdAt, id)``) on; ``status`` is a comma-separated list."""
        q = select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit)
        if start is not None:
            q = q.where(tuple_(jobs.c.created_at, jobs.c.id) <= tuple_(*start))
        if action:
            q = q.where(jobs.c.action == action)
        if status:
            q = q.where(jobs.c.status.in_(status.split(",")))
        if worker:
            q = q.where(jobs.c.worker_id == worker)
        async with self.engine.connect() as conn:
            return [job_json(r) for r in await conn.execute(q)]

    async def cancel(self, job_id: uuid.UUID) -> shapes.Job:
        """Waiting jobs become ``cancel`` now; running ones ``cancel_request`` (their worker stops them);
        a job that has ended is answered as it is (a repeated cancel is no error)."""
        async with self.engine.begin() as conn:
            await lock_job(conn, job_id)
            row = (await conn.execute(select(jobs.c.status).where(jobs.c.id == job_id).with_for_update())).first()
            if row is None:
                raise NotFound(str(job_id))
            if row.status in ("waiting", "worker_dead"):
                await conn.execute(update(jobs).where(jobs.c.id == job_id)
                                   .values(status="cancel", ended_at=func.now(), dedupe_key=None))
                await append_log(conn, job_id, "cancelled before it ran")
            elif row.status == "running":
                await conn.execute(update(jobs).where(jobs.c.id == job_id).values(status="cancel_request"))
                await append_log(conn, job_id, "cancel requested")
            out = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).one()
        return job_json(out)

    async def logs(self, job_id: uuid.UUID, after: int = 0, limit: int = 1000) -> list[shapes.JobLogLine]:
        q = (select(job_logs.c.line, job_logs.c.time, job_logs.c.data)
             .where(job_logs.c.job_id == job_id, job_logs.c.line > after).order_by(job_logs.c.line).limit(limit))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
            if not rows and (await conn.execute(select(jobs.c.id).where(jobs.c.id == job_id))).first() is None:
                raise NotFound(str(job_id))
        return [{"lineNum": r.line, "time": iso(r.time), "data": r.data} for r in rows]

    # -- schedules ------------------------------------------------------------------------

    async def crons(self) -> list[shapes.Cron]:
        async with self.engine.connect() as conn:
            return [cron_json(r) for r in await conn.execute(select(crons).order_by(crons.c.action))]

    async def cron(self, action: str) -> shapes.Cron:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(crons).where(crons.c.action == action))).first()
        if row is None:
            raise NotFound(action)
        return cron_json(row)

    async def put_cron(self, action: str, schedule: str, parameters: Any = None, *, enabled: bool = True,
                       retries: int | None = None, deadline: float | None = None,
                       stop_timeout: float | None = None) -> shapes.Cron:
        """Create or replace the schedule for ``action`` (ScheduleError / ParameterError on bad input)."""
        params = actions.check(action, parameters)
        sched = Schedule.parse(schedule)
        max_attempts = actions.actions()[action].max_attempts if retries is None else retries + 1
        async with self.engine.begin() as conn:
            now = (await conn.execute(select(func.now()))).scalar_one()
            values = dict(schedule=schedule, parameters=params, enabled=enabled, max_attempts=max_attempts,
                          deadline=deadline, stop_timeout=stop_timeout or self.default_stop_timeout,
                          next_run=sched.next_after(now))
            row = (await conn.execute(
                pg_insert(crons).values(action=action, **values)
                .on_conflict_do_update(index_elements=[crons.c.action], set_=values).returning(*crons.c)
            )).one()
        return cron_json(row)

    async def delete_cron(self, action: str) -> None:
        async with self.engine.begin() as conn:
            if (await conn.execute(delete(crons).where(crons.c.action == action))).rowcount == 0:
                raise NotFound(action)

    async def seed_crons(self, defaults: dict[str, str]) -> None:
        """Create the default schedules that do not exist yet (an admin's changes are kept)."""
        async with self.engine.begin() as conn:
            now = (await conn.execute(select(func.now()))).scalar_one()
            for action, schedule in defaults.items():
                await conn.execute(pg_insert(crons).values(
                    action=action, schedule=schedule, parameters={}, max_attempts=1,
                    stop_timeout=self.default_stop_timeout, next_run=Schedule.parse(schedule).next_after(now),
                ).on_conflict_do_nothing())

    # -- workers --------------------------------------------------------------------------

    async def workers(self) -> list[shapes.Worker]:
        running = (select(jobs.c.worker_id, func.count().label("n"))
                   .where(jobs.c.status.in_(("running", "cancel_request"))).group_by(jobs.c.worker_id).subquery())
        q = (select(workers, func.coalesce(running.c.n, 0).label("running"))
             .select_from(workers.outerjoin(running, running.c.worker_id == workers.c.id))
             .where(or_(workers.c.status == "running",
                        workers.c.heartbeat_at > func.now() - dt.timedelta(hours=1)))
             .order_by(workers.c.started_at))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        return [{
            "id": r.id, "status": r.status, "host": r.host, "pid": r.pid, "capacityMap": r.capacity,
            "runningJobs": r.running, "startTime": iso(r.started_at), "heartbeat": iso(r.heartbeat_at),
            "heartbeatExpiration": iso(r.heartbeat_at + dt.timedelta(seconds=self.worker_timeout)),
        } for r in rows]


#: The two-key form of advisory locks, with this class, keeps job locks apart from dtr.registry.locks' keys.
_JOB_LOCK = text("SELECT pg_advisory_xact_lock(1785684514, hashtext(:id))")


async def lock_job(conn: AsyncConnection, job_id: uuid.UUID) -> None:
    """Take the job's lock until the transaction ends.

    The order rule that keeps job writers free of deadlocks: a transaction that writes a job's
    row (status, progress) and its log takes this lock first, before any row lock on the job
    (``FOR UPDATE``, ``UPDATE``); several jobs' locks are taken in ``str(job_id)`` order. The
    claim (``UPDATE ... WHERE id IN (... SKIP LOCKED)``) is the one exception: it writes no log,
    skips rows others hold and waits on no advisory lock, so it cannot close a cycle."""
    await conn.execute(_JOB_LOCK, {"id": str(job_id)})


async def insert_log_lines(conn: AsyncConnection, job_id: uuid.UUID, lines: Sequence[tuple[dt.datetime, str]]) -> None:
    """Append lines to a job's log, numbered on from its last line.

    Every writer (the job's worker, the API, another worker) goes through here, holding the
    job's lock (``lock_job``, taken first by the caller's transaction): that makes the numbering
    gapless and committed in order, so a follower reading ``line > last seen`` never skips a line."""
    if not lines:
        return
    last = (await conn.execute(select(func.coalesce(func.max(job_logs.c.line), 0))
                               .where(job_logs.c.job_id == job_id))).scalar_one()
    await conn.execute(insert(job_logs), [{"job_id": job_id, "line": last + i, "time": t, "data": d}
                                          for i, (t, d) in enumerate(lines, 1)])


async def append_log(conn: AsyncConnection, job_id: uuid.UUID, message: str) -> None:
    """One log line written outside the job's own context (by the API or another worker)."""
    await insert_log_lines(conn, job_id, [(dt.datetime.now(dt.UTC), message)])

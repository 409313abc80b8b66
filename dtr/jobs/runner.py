"""The job worker every dtr process runs.

- Claiming: ``UPDATE jobs ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED LIMIT n)``, per
  action, up to this worker's free capacity for it. A row is claimed by one transaction only,
  so no job runs on two workers at once. Each ``poll_interval``, and at once when woken: a job
  queued anywhere in the cluster (``JobService.queue``) notifies ``dtr_jobs`` on commit, which
  every worker LISTENs to (a webhook delivery, a mirror push goes out without waiting a poll).
- Liveness: the worker heartbeats its ``job_workers`` row. Any worker finding another silent for
  ``worker_timeout`` marks it dead and its running jobs ``worker_dead``; those are claimable
  again while attempts remain (the same job id, its log continued). A worker that cannot renew
  its own heartbeat within ``worker_timeout`` (or finds itself marked dead) stops its jobs at
  once, so it never runs a job that another worker took over (a lease, fenced by time).
- Ending: a handler's return is ``done``; an exception retries after a backoff
  (``retry_backoff * 2**(attempt-1)``) while attempts remain, else ``error`` (``JobFailed``:
  ``error`` at once, with its message). A cancel request,
  a passed deadline or shutdown sets ``ctx.stopping``; after ``stop_timeout`` the task is cut
  off. Jobs stopped by shutdown go back to ``waiting`` for another worker.
- Every final write is conditional on ``worker_id = me``: a worker declared dead writes nothing.
- Schedules: ``SELECT ... FROM job_crons WHERE next_run <= now() FOR UPDATE SKIP LOCKED``, then
  the job insert and the ``next_run`` advance commit together: each due time fires once across
  the cluster (a replica that loses the race skips the locked row or re-reads the advanced one).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from sqlalchemy import and_, delete, func, insert, not_, or_, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.config import Config
from dtr.db.errors import DatabaseUnavailable
from dtr.db.listen import Notifications
from dtr.jobs import actions
from dtr.jobs.context import JobContext, JobFailed, JobStopped
from dtr.jobs.params import ParameterError
from dtr.jobs.service import CHANNEL, FINAL, JobService, append_log, crons, insert_log_lines, jobs, lock_job, workers
from dtr.keys import CONFIG, DATABASE, JOB_WORKER, NOTIFICATIONS, STORAGE
from dtr.ops.metrics import job_ended
from dtr.schedule import Schedule, ScheduleError
from dtr.storage.base import StorageDriver

log = logging.getLogger("dtr.jobs")

#: Schedules created at first start; admins change them through /api/v0/crons.
DEFAULT_CRONS = {
    "upload_cleanup": "0 17 * * * *",
    "prune": "0 */15 * * * *",
    "usage": "0 */10 * * * *",
}


def default_crons(config: Config) -> dict[str, str]:
    """``DEFAULT_CRONS``, and the default schedules other domains' actions give under ``config``."""
    added = {name: a.default_schedule(config) for name, a in actions.actions().items() if a.default_schedule}
    return {**DEFAULT_CRONS, **{name: schedule for name, schedule in added.items() if schedule}}


FLUSH_INTERVAL = 0.5
#: Tries at writing a job's end before giving up (backing off up to 5 s between them).
FINISH_ATTEMPTS = 6
HOUSEKEEPING_INTERVAL = 600.0


@dataclasses.dataclass
class _Running:
    ctx: JobContext
    task: asyncio.Task[dict[str, Any] | None]
    stop_timeout: float
    supervisor: asyncio.Task[None] | None = None
    cutoff: asyncio.TimerHandle | None = None
    started: float = dataclasses.field(default_factory=time.monotonic)


#: Jobs marked running on a worker that is no longer running (dead or stopped).
_ORPHAN = and_(jobs.c.status.in_(("running", "cancel_request")),
               not_(jobs.c.worker_id.in_(select(workers.c.id).where(workers.c.status == "running"))))

#: Jobs a worker may claim now: waiting, or left by a dead worker with attempts to spare.
_CLAIMABLE = and_(jobs.c.run_after <= func.now(),
                  or_(jobs.c.status == "waiting",
                      and_(jobs.c.status == "worker_dead", jobs.c.attempt < jobs.c.max_attempts)))
_READY_ACTIONS = select(jobs.c.action).distinct().where(_CLAIMABLE)


class JobWorker:
    """Runs jobs for one process; ``start``/``stop`` from the app's cleanup context."""

    def __init__(self, engine: AsyncEngine, storage: StorageDriver, config: Config,
                 notifications: Notifications | None = None) -> None:
        """``notifications``: where to listen for jobs queued (``JobService.queue``) and claim them
        at once (subscribed by ``start``, before they run); without it, only at each poll."""
        self.engine, self.storage, self.config, self.notifications = engine, storage, config, notifications
        self.cfg = config.jobs
        self.id = uuid.uuid4().hex[:12]
        self.capacity = {f.name: getattr(self.cfg.capacity, f.name) for f in dataclasses.fields(self.cfg.capacity)}
        self.service = JobService(engine, self.cfg.stop_timeout, self.cfg.worker_timeout)
        self._running: dict[uuid.UUID, _Running] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._last_heartbeat_ok = time.monotonic()
        self._wake = asyncio.Event()
        #: Held while job log lines taken from jobs are written (``_flush``, ``_finish``): a
        #: job's end is committed only after the lines flushed before it, so a job read as ended
        #: has its whole log.
        self._writing_logs = asyncio.Lock()
        #: Worker ids this process gave up (its lease lapsed); their jobs were stopped here.
        self._retired: list[str] = []

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await self._register()
        await self.service.seed_crons(default_crons(self.config))
        self._tasks = [asyncio.create_task(self._loop(), name="jobs-loop"),
                       asyncio.create_task(self._flush_loop(), name="jobs-flush"),
                       asyncio.create_task(self._heartbeat_loop(), name="jobs-heartbeat")]
        if self.notifications is not None:  # woken by each job queued (and on each connection: some may be missed)
            self.notifications.subscribe(CHANNEL, lambda _: self._wake.set(), connected=self._wake.set)
        log.info("job worker started", extra={"worker": self.id, "capacity": self.capacity})

    async def stop(self) -> None:
        """Stop claiming, ask running jobs to stop, cut them off after their stop timeout (at most
        the config's ``jobs.stop_timeout``: a job's own cannot hold the process), requeue them."""
        self._closing = True
        for r in list(self._running.values()):
            self._stop_job(r, "shutdown")
        sups = [r.supervisor for r in self._running.values() if r.supervisor]
        if sups:
            await asyncio.gather(*sups, return_exceptions=True)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            async with self.engine.begin() as conn:
                await conn.execute(update(workers).where(workers.c.id == self.id).values(status="stopped"))
        log.info("job worker stopped", extra={"worker": self.id})

    async def _register(self) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(insert(workers).values(id=self.id, host=socket.gethostname(), pid=os.getpid(),
                                                      capacity=self.capacity, status="running"))
        self._last_heartbeat_ok = time.monotonic()

    # -- loops ----------------------------------------------------------------------------

    async def _loop(self) -> None:
        last_housekeeping = last_reap = 0.0
        while True:
            try:
                # A worker is dead once silent for worker_timeout: looking for the dead once per
                # heartbeat_interval is soon enough (each poll did, ten times an idle server's queries).
                if time.monotonic() - last_reap >= self.cfg.heartbeat_interval:
                    last_reap = time.monotonic()
                    await self._reap_dead_workers()
                await self._fire_crons()
                await self._check_cancel_requests()
                if not self._closing and not self._retired:
                    await self._claim()
                if time.monotonic() - last_housekeeping > HOUSEKEEPING_INTERVAL:
                    last_housekeeping = time.monotonic()
                    await self._housekeeping()
            except asyncio.CancelledError:
                raise
            except DatabaseUnavailable as e:
                log.warning("job worker: %s; retrying", e.message, extra={"worker": self.id})
            except Exception:
                log.exception("job worker loop failed; retrying")
            # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancel that comes as
            # the wake is set (the loop would run on after ``stop`` cancelled it).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.cfg.poll_interval):
                    await self._wake.wait()
            self._wake.clear()

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.heartbeat_interval)
            try:
                if self._retired:
                    await self._rejoin()
                    continue
                async with self.engine.begin() as conn:
                    alive = (await conn.execute(
                        update(workers).where(workers.c.id == self.id, workers.c.status == "running")
                        .values(heartbeat_at=func.now()).returning(workers.c.id))).first()
                if alive is None:
                    log.error("this worker was declared dead by another; stopping its jobs and re-joining",
                              extra={"worker": self.id})
                    self._retire()
                else:
                    self._last_heartbeat_ok = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("heartbeat failed: %s", e, extra={"worker": self.id})
            # The lease: past the timeout others may take our jobs over, so stop them first.
            if not self._retired and \
                    time.monotonic() - self._last_heartbeat_ok > self.cfg.worker_timeout - self.cfg.heartbeat_interval:
                log.error("cannot renew this worker's heartbeat; stopping its jobs", extra={"worker": self.id})
                self._retire()

    def _retire(self) -> None:
        """Stop our jobs and give up this worker id; until ``_rejoin`` succeeds nothing is claimed."""
        self._fence()
        self._retired.append(self.id)
        self.id = uuid.uuid4().hex[:12]

    async def _rejoin(self) -> None:
        """Declare the retired ids dead (their jobs are then picked up again) and register anew."""
        async with self.engine.begin() as conn:
            await conn.execute(update(workers).where(workers.c.id.in_(self._retired), workers.c.status == "running")
                               .values(status="dead"))
        await self._register()
        log.warning("worker re-joined as %s", self.id, extra={"retired": list(self._retired)})
        self._retired.clear()
        self._wake.set()

    def _fence(self) -> None:
        for r in list(self._running.values()):
            if r.ctx.stop_reason != "lost":
                r.ctx.stop_reason = "lost"
                r.ctx.stopping.set()
                r.task.cancel()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            try:
                async with self._writing_logs:
                    await self._flush(list(self._running.values()))
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("writing job logs failed: %s", e)

    async def _flush(self, running: list[_Running]) -> None:
        batch: dict[uuid.UUID, list[tuple[dt.datetime, str]]] = {}
        progress: list[tuple[uuid.UUID, dict[str, Any]]] = []
        for r in running:
            lines, prog = r.ctx.take_pending()
            if lines:
                batch[r.ctx.job_id] = lines
            if prog is not None:
                progress.append((r.ctx.job_id, prog))
        if not batch and not progress:
            return
        try:
            async with self.engine.begin() as conn:
                for job_id in sorted(set(batch) | {j for j, _ in progress}, key=str):
                    await lock_job(conn, job_id)
                for job_id, job_lines in batch.items():
                    await insert_log_lines(conn, job_id, job_lines)
                for job_id, prog in progress:
                    await conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.worker_id == self.id)
                                       .values(progress=prog))
        except Exception:
            # Not written: give it back to the jobs so the next flush (or their end) writes it.
            prog_of = dict(progress)
            for r in running:
                r.ctx.put_back(batch.get(r.ctx.job_id, []), prog_of.get(r.ctx.job_id))
            raise

    # -- claiming and running -------------------------------------------------------------

    def _free(self) -> dict[str, int]:
        used: dict[str, int] = {}
        for r in self._running.values():
            used[r.ctx.action] = used.get(r.ctx.action, 0) + 1
        return {a: n - used.get(a, 0) for a, n in self.capacity.items() if n - used.get(a, 0) > 0}

    async def _claim(self) -> None:
        free_slots = self._free()
        if not free_slots:
            return
        # One cheap query says which actions have work; most polls end here.
        async with self.engine.connect() as conn:
            ready = set((await conn.execute(_READY_ACTIONS)).scalars())
        for action, free in free_slots.items():
            if action not in ready:
                continue
            pick = (select(jobs.c.id).where(jobs.c.action == action, _CLAIMABLE)
                    .order_by(jobs.c.run_after, jobs.c.created_at).limit(free)
                    .with_for_update(skip_locked=True))
            # Only under a live identity: a worker declared dead claims nothing until it re-joins.
            me_alive = select(workers.c.id).where(workers.c.id == self.id, workers.c.status == "running").exists()
            async with self.engine.begin() as conn:
                rows = (await conn.execute(
                    update(jobs).where(jobs.c.id.in_(pick.scalar_subquery()), me_alive)
                    .values(status="running", worker_id=self.id, attempt=jobs.c.attempt + 1,
                            started_at=func.now(), ended_at=None, dedupe_key=None, error=None)
                    .returning(jobs))).all()
            for row in rows:
                self._launch(row)

    def _launch(self, row: Any) -> None:
        ctx = JobContext(job_id=row.id, action=row.action, parameters=row.parameters or {}, attempt=row.attempt,
                         max_attempts=row.max_attempts, worker_id=self.id, engine=self.engine,
                         storage=self.storage, config=self.config)
        ctx.log(f"{row.action} job {row.id}: attempt {row.attempt} of {row.max_attempts} on worker {self.id}")
        handler = actions.actions()[row.action].handler
        task: asyncio.Task[dict[str, Any] | None] = asyncio.create_task(handler(ctx), name=f"job-{row.id}")
        r = _Running(ctx, task, row.stop_timeout)
        self._running[row.id] = r
        if row.deadline:
            asyncio.get_running_loop().call_later(row.deadline, self._stop_job, r, "deadline", row.deadline)
        r.supervisor = asyncio.create_task(self._supervise(r, row.deadline))

    def _stop_job(self, r: _Running, reason: str, deadline: float | None = None) -> None:
        if r.task.done() or r.ctx.stop_reason is not None:
            return
        r.ctx.stop_reason = reason
        r.ctx.stopping.set()
        if reason == "cancel":
            r.ctx.log("cancel requested: stopping")
        elif reason == "deadline":
            r.ctx.log(f"deadline of {deadline:g}s passed: stopping")
        elif reason == "shutdown":
            r.ctx.log("this dtr process is stopping: handing the job back")
        else:
            r.ctx.log(reason)
        timeout = min(r.stop_timeout, self.cfg.stop_timeout) if reason == "shutdown" else r.stop_timeout
        r.cutoff = asyncio.get_running_loop().call_later(timeout, r.task.cancel)

    async def _supervise(self, r: _Running, deadline: float | None) -> None:
        ctx = r.ctx
        result: dict[str, Any] | None = None
        error: BaseException | None = None
        try:
            result = await r.task
        except asyncio.CancelledError:
            if ctx.stop_reason is None:  # our own task cancelled: the process is going away
                ctx.stop_reason = "shutdown"
            else:
                ctx.log(f"did not stop within {r.stop_timeout:g}s: cut off")
        except JobStopped:
            pass
        except Exception as e:
            error = e
        finally:
            if r.cutoff:
                r.cutoff.cancel()
        try:
            async with self._writing_logs:
                await self._finish(r, result, error, deadline)
        except Exception:
            log.exception("recording the end of job %s failed", ctx.job_id)
        finally:
            self._running.pop(ctx.job_id, None)
            self._wake.set()

    async def _finish(self, r: _Running, result: dict[str, Any] | None, error: BaseException | None,
                      deadline: float | None) -> None:
        ctx = r.ctx
        reason = ctx.stop_reason
        if reason == "lost":
            log.warning("job %s abandoned: this worker lost its lease", ctx.job_id)
            return
        values: dict[str, Any]
        if error is None and reason is None:
            values = {"status": "done", "result": result}
            ctx.log("done")
        elif error is not None and reason is None:
            msg = str(error) if isinstance(error, JobFailed) else f"{type(error).__name__}: {error}"
            if ctx.attempt < ctx.max_attempts and not isinstance(error, JobFailed):
                delay = min(self.cfg.retry_backoff * 2 ** (ctx.attempt - 1), self.cfg.retry_backoff_max)
                ctx.log(f"failed: {msg}; retrying in {delay:g}s")
                values = {"status": "waiting", "error": msg, "worker_id": None,
                          "run_after": func.now() + dt.timedelta(seconds=delay)}
            else:
                ctx.log(f"failed: {msg}")
                values = {"status": "error", "error": msg}
            log.warning("job %s (%s) failed: %s", ctx.job_id, ctx.action, msg)
        elif reason == "cancel":
            values = {"status": "cancel", "result": result}
            ctx.log("cancelled")
        elif reason == "deadline":
            values = {"status": "error", "error": f"deadline of {deadline:g}s exceeded"}
            ctx.log("stopped: deadline exceeded")
        else:  # shutdown: another worker starts it again, not counted as an attempt
            values = {"status": "waiting", "worker_id": None, "attempt": jobs.c.attempt - 1}
            ctx.log("handed back to the queue")
        job_ended(ctx.action, time.monotonic() - r.started, error is not None or reason == "deadline")
        if values["status"] in FINAL:
            values["ended_at"] = func.now()
        lines, progress = ctx.take_pending()
        if progress is not None:
            values["progress"] = progress
        # A lost final write would leave the job "running" on a live worker for good, so a
        # transient failure (a deadlock victim, a dropped connection) is retried.
        for attempt in range(1, FINISH_ATTEMPTS + 1):
            try:
                async with self.engine.begin() as conn:
                    await lock_job(conn, ctx.job_id)
                    res = await conn.execute(
                        update(jobs).where(jobs.c.id == ctx.job_id, jobs.c.worker_id == self.id,
                                           jobs.c.status.in_(("running", "cancel_request")))
                        .values(**values))
                    if res.rowcount and lines:
                        await insert_log_lines(conn, ctx.job_id, lines)
                return
            except (DBAPIError, OSError) as e:
                if attempt == FINISH_ATTEMPTS:
                    raise
                log.warning("recording the end of job %s failed (%s); retrying", ctx.job_id, e)
                await asyncio.sleep(min(0.2 * 2 ** attempt, 5.0))

    async def _check_cancel_requests(self) -> None:
        if not self._running:
            return
        async with self.engine.connect() as conn:
            ids = list((await conn.execute(select(jobs.c.id).where(
                jobs.c.worker_id == self.id, jobs.c.status == "cancel_request"))).scalars())
        for job_id in ids:
            r = self._running.get(job_id)
            if r is not None:
                self._stop_job(r, "cancel")

    # -- the cluster ----------------------------------------------------------------------

    async def _reap_dead_workers(self) -> None:
        """Mark silent workers dead and their running jobs ``worker_dead`` (cancel requests: ``cancel``)."""
        timeout = dt.timedelta(seconds=self.cfg.worker_timeout)
        async with self.engine.begin() as conn:
            dead = list((await conn.execute(
                update(workers).where(workers.c.status == "running", workers.c.heartbeat_at < func.now() - timeout)
                .values(status="dead").returning(workers.c.id))).scalars())
            orphan_ids = list((await conn.execute(select(jobs.c.id).where(_ORPHAN))).scalars())
        for job_id in orphan_ids:
            async with self.engine.begin() as conn:
                await lock_job(conn, job_id)  # before the row lock: the order rule of lock_job
                j = (await conn.execute(
                    select(jobs.c.id, jobs.c.status, jobs.c.worker_id, jobs.c.attempt, jobs.c.max_attempts)
                    .where(jobs.c.id == job_id, _ORPHAN).with_for_update(skip_locked=True))).first()
                if j is None:
                    continue
                if j.status == "cancel_request":
                    await conn.execute(update(jobs).where(jobs.c.id == j.id)
                                       .values(status="cancel", ended_at=func.now()))
                    await append_log(conn, j.id, f"worker {j.worker_id} died; the job is cancelled")
                    continue
                again = j.attempt < j.max_attempts
                await conn.execute(update(jobs).where(jobs.c.id == j.id).values(
                    status="worker_dead", ended_at=None if again else func.now(), run_after=func.now()))
                await append_log(conn, j.id, f"worker {j.worker_id} stopped heartbeating: worker_dead"
                                 + ("; another worker picks the job up" if again else "; no attempts left"))
        if dead:
            log.warning("workers stopped heartbeating: %s", ", ".join(dead))

    async def _fire_crons(self) -> None:
        async with self.engine.begin() as conn:
            due = (await conn.execute(select(crons, func.now().label("db_now"))
                                      .where(crons.c.enabled, crons.c.next_run <= func.now())
                                      .with_for_update(skip_locked=True))).all()
            for c in due:
                try:
                    nxt = Schedule.parse(c.schedule).next_after(c.db_now)
                    job = await self.service.queue(
                        c.action, c.parameters, retries=c.max_attempts - 1, deadline=c.deadline,
                        stop_timeout=c.stop_timeout, conn=conn, cron_action=c.action, scheduled_at=c.next_run)
                except (ScheduleError, ParameterError) as e:
                    log.error("schedule for %s is invalid and disabled: %s", c.action, e)
                    await conn.execute(update(crons).where(crons.c.action == c.action).values(enabled=False))
                    continue
                await conn.execute(update(crons).where(crons.c.action == c.action)
                                   .values(next_run=nxt, last_job_id=uuid.UUID(job["id"])))
        if due:
            self._wake.set()

    async def _housekeeping(self) -> None:
        """Delete finished jobs (their logs cascade) past the retention, and long-dead worker rows."""
        keep = dt.timedelta(seconds=self.cfg.job_retention)
        async with self.engine.begin() as conn:
            if not (await conn.execute(text("SELECT pg_try_advisory_xact_lock(hashtext('dtr-jobs-housekeeping'))"))
                    ).scalar():
                return
            await conn.execute(delete(jobs).where(jobs.c.status.in_(FINAL), jobs.c.ended_at < func.now() - keep))
            await conn.execute(delete(workers).where(workers.c.status != "running",
                                                     workers.c.heartbeat_at < func.now() - keep))


@contextlib.asynccontextmanager
async def jobs_running(app: web.Application) -> AsyncIterator[None]:
    """This process's worker, unless ``jobs.worker`` is false."""
    cfg = app[CONFIG]
    engine = app[DATABASE].engine
    worker = JobWorker(engine, app[STORAGE], cfg, app[NOTIFICATIONS]) if cfg.jobs.worker else None
    app[JOB_WORKER] = worker
    if worker is not None:
        await worker.start()
    try:
        yield
    finally:
        if worker is not None:
            await worker.stop()

"""``dtr jobs list|run|cancel|logs`` and ``dtr gc``: the job queue from the admin's shell.

The commands talk to the database named in the config (as ``dtr users`` does), not to the
HTTP API: an admin on the box has the config, needs no token, and the running cluster's
workers pick the job up from the same queue whichever replica is up. ``dtr gc`` queues a GC
job, follows its log with a progress bar and exits when it ends (0 when done). When no running
dtr process runs that action (no worker with a fresh heartbeat and capacity for it), or with
``--local``, the command runs the job itself (a job worker for that action only, for as long as
it follows the job), so it never waits for a worker that is not there. A job id may be given by
a unique prefix (``dtr jobs logs 3fa8``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TextIO

import yaml

from dtr.config import Config, load_config
from dtr.errors import UsageError
from dtr.progress import ProgressBar

POLL = 0.5
#: Log lines read at a time; a full page is followed at once by the next (no POLL wait).
LOG_PAGE = 1000
#: How long a job may wait before the CLI says no worker seems able to run it.
IDLE_WARNING = 15.0


async def _with_service(cfg: Config, work: Callable[[Any], Awaitable[int]]) -> int:
    from dtr.db.engine import Database
    from dtr.jobs.service import JobService

    db = await Database.open(cfg)
    try:
        return await work(JobService(db.engine, cfg.jobs.stop_timeout, cfg.jobs.worker_timeout))
    finally:
        await db.close()


def _run(args: argparse.Namespace, work: Callable[[Any], Awaitable[int]]) -> int:
    return asyncio.run(_with_service(load_config(args.config), work))


_ID_PREFIX = re.compile(r"[0-9a-fA-F-]{1,36}")


async def _job_id(service: Any, raw: str) -> uuid.UUID | None:
    """The id of the one job whose id is or starts with ``raw`` (dashes optional); None, with the
    reason on stderr, when no job or several do. UsageError if ``raw`` cannot start an id."""
    from sqlalchemy import Text, cast, func, select

    from dtr.jobs.models import Job

    if not _ID_PREFIX.fullmatch(raw):
        raise UsageError(f"{raw!r} is not a job id (or the start of one)")
    try:
        return uuid.UUID(raw)
    except ValueError:
        pass
    prefix = raw.replace("-", "").lower()
    async with service.engine.connect() as conn:
        found = list((await conn.execute(select(Job.id).where(
            func.replace(cast(Job.id, Text), "-", "").startswith(prefix, autoescape=True)).limit(2))).scalars())
    if len(found) == 1:
        return uuid.UUID(str(found[0]))
    print(f"dtr: no job id starts with {raw}" if not found else
          f"dtr: several jobs' ids start with {raw}; give more of the id", file=sys.stderr)
    return None


def _statuses(text: str) -> str:
    """``--status``: comma-separated statuses, each one the API knows."""
    from dtr.jobs.service import STATUSES

    unknown = [s for s in text.split(",") if s not in STATUSES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown status {unknown[0]!r}; allowed: {', '.join(STATUSES)}")
    return text


def _limit(text: str) -> int:
    """``--limit``: 1 to 1000, as the API takes it."""
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"expected an integer from 1 to 1000, got {text!r}")
    return int(text)


async def follow(service: Any, job_id: uuid.UUID, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Print the job's log as it grows, with a progress bar, until it ends; 0 if it ended done."""
    from dtr.jobs.service import ended

    bar = ProgressBar(err)
    after = 0
    waiting_since = time.monotonic()
    warned = False
    while True:
        job = await service.get(job_id)
        lines = await service.logs(job_id, after, LOG_PAGE)
        if lines:
            bar.clear()
            for line in lines:
                out.write(line["data"] + "\n")
                after = line["lineNum"]
            out.flush()
        if ended(job) and not lines:
            bar.clear()
            summary = f"job {job['id']} ({job['action']}): {job['status']}"
            if job.get("error"):
                summary += f": {job['error']}"
            err.write(summary + "\n")
            if job.get("result"):
                out.write(json.dumps(job["result"], indent=2) + "\n")
            return 0 if job["status"] == "done" else 1
        bar.show(job.get("progress"))
        if job["status"] == "waiting" and not warned and time.monotonic() - waiting_since > IDLE_WARNING:
            workers = [w for w in await service.workers()
                       if w["status"] == "running" and w["capacityMap"].get(job["action"], 0) > 0]
            if not workers:
                bar.clear()
                err.write(f"no running dtr process runs {job['action']} jobs; the job stays queued until one does\n")
            warned = True
        if job["status"] != "waiting":
            waiting_since = time.monotonic()
        if len(lines) < LOG_PAGE:
            await asyncio.sleep(POLL)


def _print_jobs(jobs: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(jobs, indent=2))
        return
    print(f"{'ID':36}  {'ACTION':14}  {'STATUS':14}  {'TRY':>3}  {'WORKER':12}  CREATED")
    for j in jobs:
        print(f"{j['id']:36}  {j['action']:14}  {j['status']:14}  {j['attempt']:>3}  {j['workerID'] or '-':12}  "
              f"{j['createdAt']}")


def cmd_list(args: argparse.Namespace) -> int:
    async def work(service: Any) -> int:
        _print_jobs(await service.list_jobs(action=args.action, status=args.status, limit=args.limit), args.json)
        return 0

    return _run(args, work)


def _parameters(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"parameters are KEY=VALUE, got {pair!r}")
        params[key] = yaml.safe_load(value) if value else ""
    return params


async def _live_worker(service: Any, action: str) -> bool:
    """Whether a running dtr process with a fresh heartbeat runs ``action`` jobs."""
    now = dt.datetime.now(dt.UTC)
    return any(w["status"] == "running" and w["capacityMap"].get(action, 0) > 0
               and dt.datetime.fromisoformat(w["heartbeatExpiration"]) > now for w in await service.workers())


@contextlib.asynccontextmanager
async def _local_worker(cfg: Config, service: Any, action: str) -> AsyncIterator[None]:
    """A job worker in this command, for ``action`` jobs only, for the life of the block."""
    from dtr.jobs.runner import JobWorker
    from dtr.storage.factory import create_driver

    storage = create_driver(cfg.storage_config)
    worker = JobWorker(service.engine, storage, cfg)
    worker.capacity = {action: max(1, worker.capacity.get(action, 0))}
    try:
        await worker.start()
        yield
    finally:
        await worker.stop()
        await storage.close()


async def _queue_and_follow(cfg: Config, service: Any, action: str, params: dict[str, Any],
                            args: argparse.Namespace) -> int:
    """Queue the job; follow it to its end, running it here when ``--local`` or when no running
    dtr process would (without following, only say so)."""
    from dtr.jobs.params import ParameterError

    try:
        job = await service.queue(action, params, retries=getattr(args, "retries", None),
                                  deadline=getattr(args, "deadline", None))
    except ParameterError as e:
        print(f"dtr: {e}", file=sys.stderr)
        return 2
    print(f"queued {action} job {job['id']}", file=sys.stderr)
    local = args.local or not await _live_worker(service, action)
    if not (args.follow or args.local):
        if local:
            print(f"no running dtr process runs {action} jobs; the job stays queued until one does "
                  "(follow it to run it here)", file=sys.stderr)
        print(job["id"])
        return 0
    try:
        if not local:
            return await follow(service, uuid.UUID(job["id"]))
        if not args.local:
            print(f"no running dtr process runs {action} jobs: running it here", file=sys.stderr)
        async with _local_worker(cfg, service, action):
            return await follow(service, uuid.UUID(job["id"]))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(f"\nstopped following; the job goes on (dtr jobs cancel {job['id']} stops it)", file=sys.stderr)
        return 130


def _queue(args: argparse.Namespace, action: str, params: dict[str, Any]) -> int:
    cfg = load_config(args.config)
    return asyncio.run(_with_service(cfg, lambda service: _queue_and_follow(cfg, service, action, params, args)))


def cmd_run(args: argparse.Namespace) -> int:
    return _queue(args, args.action, _parameters(args.parameters))


def cmd_gc(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"dry_run": args.dry_run}
    if args.grace_period is not None:
        params["grace_period"] = args.grace_period
    return _queue(args, "gc", params)


def cmd_cancel(args: argparse.Namespace) -> int:
    from dtr.jobs.service import ended

    async def work(service: Any) -> int:
        job_id = await _job_id(service, args.id)
        if job_id is None:
            return 1
        job = await service.get(job_id)
        if ended(job):
            print(f"dtr: job {job['id']} has ended ({job['status']}); nothing to cancel", file=sys.stderr)
            return 1
        job = await service.cancel(job_id)
        print(f"job {job['id']}: {job['status']}")
        return 0

    return _run(args, work)


def cmd_logs(args: argparse.Namespace) -> int:
    from dtr.jobs.service import NotFound

    async def work(service: Any) -> int:
        job_id = await _job_id(service, args.id)
        if job_id is None:
            return 1
        try:
            if args.follow:
                return await follow(service, job_id)
            after = 0
            while lines := await service.logs(job_id, after):
                for line in lines:
                    print(line["data"])
                after = lines[-1]["lineNum"]
            return 0
        except NotFound:
            print(f"dtr: no job {args.id}", file=sys.stderr)
            return 1

    try:
        return _run(args, work)
    except KeyboardInterrupt:
        return 130


_LOCAL_HELP = "run the job in this command (the default when no running dtr process runs it)"


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser,
                 group: Callable[[str, str], argparse._SubParsersAction[argparse.ArgumentParser]]) -> None:
    """Add ``jobs`` and ``gc`` to the ``dtr`` command (``group(name, help)`` makes a command group)."""
    from dtr.jobs.actions import actions
    from dtr.jobs.service import STATUSES

    jobs = group("jobs", "the job queue (on the configured database)")
    job_id = argparse.ArgumentParser(add_help=False)
    job_id.add_argument("id", help="the job's id, or a unique start of it")
    p = jobs.add_parser("list", help="recent jobs, newest first", parents=[common])
    p.add_argument("--action", choices=sorted(actions()), help="only jobs of this action")
    p.add_argument("--status", type=_statuses,
                   help=f"only jobs in these statuses (comma-separated: {','.join(STATUSES)})")
    p.add_argument("--limit", type=_limit, default=50, help="at most this many jobs, 1 to 1000 (default: 50)")
    p.add_argument("--json", action="store_true", help="print JSON as the API shows jobs")
    p.set_defaults(func=cmd_list)
    p = jobs.add_parser("run", help="queue a job (KEY=VALUE parameters)", parents=[common])
    p.add_argument("action", choices=sorted(actions()), help="what the job does")
    p.add_argument("parameters", nargs="*", metavar="KEY=VALUE", help="the action's parameters (values as YAML)")
    p.add_argument("--retries", type=int, help="retries after a failed attempt (default: the action's)")
    p.add_argument("--deadline", type=float, help="seconds an attempt may run")
    p.add_argument("--follow", "-f", action="store_true", help="print its log until it ends")
    p.add_argument("--local", action="store_true", help=_LOCAL_HELP)
    p.set_defaults(func=cmd_run)
    p = jobs.add_parser("cancel", help="cancel a waiting or running job", parents=[common, job_id])
    p.set_defaults(func=cmd_cancel)
    p = jobs.add_parser("logs", help="print a job's log", parents=[common, job_id])
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
    p.set_defaults(func=cmd_logs)
    p = sub.add_parser("gc", help="garbage-collect unneeded blobs and manifests (online)", parents=[common])
    p.add_argument("--dry-run", action="store_true", help="report what would be freed; delete nothing")
    p.add_argument("--grace-period", metavar="DURATION",
                   help="only collect what is older than this (e.g. 24h; default: jobs.gc_grace_period)")
    p.add_argument("--no-follow", dest="follow", action="store_false", help="queue the job and exit")
    p.add_argument("--local", action="store_true", help=_LOCAL_HELP)
    p.set_defaults(func=cmd_gc)

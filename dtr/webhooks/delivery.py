"""From the outbox to the receivers.

- ``queue_deliveries`` is the outbox subscriber: for a batch of events it finds the active
  webhooks they match (one query; none when no event maps to a DTR type), writes one delivery
  per (event, webhook) with its body, and queues the ``webhook_deliver`` job (one waiting at a
  time), all in the transaction that moves its cursor. A push only writes its outbox row: no
  receiver, slow or dead, is ever on its path.
- The ``webhook_deliver`` job sends due deliveries, ``webhooks.concurrency`` at once, claiming
  each (``FOR UPDATE SKIP LOCKED``) under a lease (the attempt is counted first: a sender that
  dies mid-attempt leaves the delivery to be tried again once the lease ends). A 2xx answer is
  ``succeeded``; anything else is retried after ``retry_backoff * 2**(attempt-1)`` (at most
  ``retry_backoff_max``) until ``max_attempts``, then ``failed``. Each attempt's status code,
  error and duration are stored on the delivery. The job lasts while deliveries are pending
  (sleeping until the next is due) and deletes finished ones older than
  ``webhooks.delivery_retention``; a schedule runs it every 10 minutes as a safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, insert, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dtr.config import Config
from dtr.config.schema import WebhooksConfig
from dtr.jobs import actions
from dtr.jobs.context import JobContext
from dtr.jobs.params import only
from dtr.jobs.service import JobService
from dtr.registry.events import Event, Handler
from dtr.storage.base import StorageDriver
from dtr.trust.sealing import Sealer, SealingError
from dtr.webhooks import payloads
from dtr.webhooks.models import WebhookDelivery
from dtr.webhooks.sending import Outcome, Sender

deliveries = cast(Table, WebhookDelivery.__table__)

ACTION = "webhook_deliver"
#: How often a running job looks for new deliveries.
POLL = 1.0
#: A claimed attempt's lease beyond the timeout.
_LEASE_MARGIN = 30.0

_MATCH = text("SELECT id, type, key FROM webhooks WHERE NOT inactive AND type = ANY(CAST(:types AS text[])) "
              "AND key = ANY(CAST(:keys AS text[]))")


def secret_context(webhook_id: Any) -> bytes:
    """What a webhook's sealed secret is bound to."""
    return f"webhook:{webhook_id}".encode()


async def queue_send(jobs: JobService, conn: AsyncConnection) -> None:
    """Queue the ``webhook_deliver`` job in ``conn``'s transaction (one waiting at a time)."""
    await jobs.queue(ACTION, {}, dedupe_key=ACTION, conn=conn)


def _keys(kind: str, e: Event) -> tuple[str, ...]:
    """The webhook keys an event of DTR type ``kind`` matches: its repository and namespace."""
    if kind in payloads.SITE_TYPES:
        return ("",)
    return (e.repository, e.repository.partition("/")[0])


def queue_deliveries(jobs: JobService, storage: StorageDriver) -> Handler:
    """The outbox subscriber writing the deliveries of each event (see the module docstring)."""

    async def handle(conn: AsyncConnection, batch: Sequence[Event]) -> None:
        mapped = [(payloads.FROM_OUTBOX[e.type], e) for e in batch if e.type in payloads.FROM_OUTBOX]
        if not mapped:
            return
        types = sorted({k for k, _ in mapped})
        keys = sorted({key for k, e in mapped for key in _keys(k, e)})
        hooks: dict[tuple[str, str], list[Any]] = defaultdict(list)
        for h in await conn.execute(_MATCH, {"types": types, "keys": keys}):
            hooks[(h.type, h.key)].append(h.id)
        if not hooks:
            return
        matched = [(k, e, [w for key in dict.fromkeys(_keys(k, e)) for w in hooks.get((k, key), [])])
                   for k, e in mapped]
        matched = [m for m in matched if m[2]]
        found = await payloads.platforms(conn, storage, ((e.repository, e.digest) for k, e, _ in matched
                                                         if payloads.wants_platform(k) and e.digest))
        rows: list[dict[str, Any]] = []
        for kind, e, ids in matched:
            body = payloads.body(kind, e, found.get((e.repository, e.digest or ""), ("", "")))
            rows.extend({"webhook_id": w, "event_type": kind, "event_id": e.id, "body": body} for w in ids)
        if rows:
            await conn.execute(insert(deliveries), rows)
            await queue_send(jobs, conn)

    return handle


# -- sending --------------------------------------------------------------------------------------

_GIVE_UP = text("UPDATE webhook_deliveries SET status = 'failed', "
                "last_error = coalesce(last_error, 'no outcome recorded (the sender stopped)') "
                "WHERE status = 'pending' AND attempts >= :max AND next_attempt_at <= now()")
_CLAIM = text("""
UPDATE webhook_deliveries d SET attempts = d.attempts + 1, last_attempt_at = now(),
    next_attempt_at = now() + make_interval(secs => :lease)
FROM webhooks w
WHERE w.id = d.webhook_id AND d.id IN (
    SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= now() AND attempts < :max
    ORDER BY next_attempt_at, id LIMIT :n FOR UPDATE SKIP LOCKED)
RETURNING d.id, d.webhook_id, d.event_type, d.body, d.attempts, w.endpoint, w.tls_cert, w.secret, w.inactive
""")
_RECORD = text("""
UPDATE webhook_deliveries SET status = :status, last_status_code = :code, last_error = :error,
    duration_ms = :ms, next_attempt_at = now() + make_interval(secs => :delay)
WHERE id = :id
""")
_SUCCEEDED = text("UPDATE webhooks SET last_successful_at = now() WHERE id = :id")
_NEXT_DUE = text("SELECT extract(epoch FROM min(next_attempt_at) - now()) FROM webhook_deliveries "
                 "WHERE status = 'pending'")
_FORGET = text("DELETE FROM webhook_deliveries WHERE status <> 'pending' "
               "AND created_at < now() - make_interval(secs => :keep)")


def backoff(cfg: WebhooksConfig, attempt: int) -> float:
    """Seconds before the attempt after ``attempt`` (1-based)."""
    return float(min(cfg.retry_backoff * 2 ** (attempt - 1), cfg.retry_backoff_max))


async def _claim(engine: AsyncEngine, cfg: WebhooksConfig, n: int) -> list[Any]:
    async with engine.begin() as conn:
        await conn.execute(_GIVE_UP, {"max": cfg.max_attempts})
        return list((await conn.execute(_CLAIM, {"lease": cfg.timeout + _LEASE_MARGIN, "max": cfg.max_attempts,
                                                 "n": n})).all())


async def record(engine: AsyncEngine, cfg: WebhooksConfig, d: Any, outcome: Outcome, final: bool = False) -> str:
    """Store an attempt's outcome for the claimed delivery ``d`` (``final``: a failure no retry
    mends); its new status."""
    if outcome.ok:
        status, delay = "succeeded", 0.0
    elif final or d.attempts >= cfg.max_attempts:
        status, delay = "failed", 0.0
    else:
        status, delay = "pending", backoff(cfg, d.attempts)
    async with engine.begin() as conn:
        await conn.execute(_RECORD, {"status": status, "code": outcome.status, "error": outcome.error,
                                     "ms": outcome.duration_ms, "delay": delay, "id": d.id})
        if outcome.ok:
            await conn.execute(_SUCCEEDED, {"id": d.webhook_id})
    return status


async def _attempt(ctx: JobContext, sender: Sender, sealer: Sealer, d: Any) -> str:
    cfg = ctx.config.webhooks
    final = True
    if d.inactive:
        outcome = Outcome(None, "the webhook is inactive", 0)
    else:
        try:
            secret = sealer.unseal(bytes(d.secret), secret_context(d.webhook_id))
        except SealingError as e:
            outcome = Outcome(None, f"the webhook's secret does not open: {e}", 0)
        else:
            outcome = await sender.send(d.endpoint, bytes(d.body), d.event_type, str(d.id), secret, d.tls_cert)
            final = False
    status = await record(ctx.engine, cfg, d, outcome, final)
    ctx.log(f"delivery {d.id} ({d.event_type}) of webhook {d.webhook_id}, attempt {d.attempts}: "
            f"{outcome.status or '-'} {outcome.error or 'ok'} in {outcome.duration_ms} ms -> {status}")
    return status


async def deliver(ctx: JobContext) -> dict[str, Any]:
    """The ``webhook_deliver`` job: send until no delivery is pending (or the job is stopped)."""
    cfg = ctx.config.webhooks
    sealer = Sealer.from_config(ctx.config)
    counts: dict[str, int] = defaultdict(int)
    running: set[asyncio.Task[str]] = set()
    async with Sender(cfg) as sender:
        try:
            while not ctx.stopping.is_set():
                free = cfg.concurrency - len(running)
                claimed = await _claim(ctx.engine, cfg, free) if free else []
                running.update(asyncio.create_task(_attempt(ctx, sender, sealer, d)) for d in claimed)
                if not running:
                    async with ctx.engine.connect() as conn:
                        due = (await conn.execute(_NEXT_DUE)).scalar()
                    if due is None:
                        break
                    with contextlib.suppress(TimeoutError):  # not wait_for: it can lose a cancel (3.11)
                        async with asyncio.timeout(min(max(float(due), 0.0), POLL)):
                            await ctx.stopping.wait()
                    continue
                done, running = await asyncio.wait(running, timeout=POLL, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    counts[t.result()] += 1
            if running:  # stopping: let the attempts under way end (each within the timeout)
                for t in (await asyncio.wait(running))[0]:
                    counts[t.result()] += 1
                running = set()
        finally:
            for t in running:
                t.cancel()
    ctx.check_stop()
    async with ctx.engine.begin() as conn:
        await conn.execute(_FORGET, {"keep": cfg.delivery_retention})
    ctx.log(f"no delivery pending: {dict(counts) or 'nothing sent'}")
    return dict(counts)


def _check(params: dict[str, Any]) -> dict[str, Any]:
    only(params, set())
    return params


def _schedule(config: Config) -> str:
    """A run every 10 minutes picks up what a stopped sender left pending."""
    return "0 */10 * * * *"


def register_actions() -> None:
    """Make ``webhook_deliver`` known to the job system (idempotent)."""
    actions.register(ACTION, _ACTION)


_ACTION = actions.Action(deliver, _check, "send the webhooks' pending deliveries", default_schedule=_schedule)

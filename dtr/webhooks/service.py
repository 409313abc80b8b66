"""The webhooks use cases: create, list, read, change, delete, test; a webhook's deliveries and
their redelivery.

Access: a webhook is managed by the admins of its key: the repository's (``ns/repo``), the
namespace's (``ns``: site admins, the user namespace's owner, the organisation's owners, teams
granted admin on the whole namespace), site admins for SCANNER_UPDATE_COMPLETED (no key).
Making one needs its repository or namespace to exist; managing one does not (a site admin can
remove the webhooks of a deleted repository). A list shows only the webhooks the caller may
manage. Changes are audited once committed. The secret is sealed at rest and answered only by
the create, once.
"""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.api.errors import APIError, codes
from dtr.auth.access import Action
from dtr.auth.repoaccess import check_repository, may_admin_namespace
from dtr.config import Config
from dtr.jobs.service import JobService
from dtr.signatures import access
from dtr.trust.sealing import Sealer
from dtr.webhooks import payloads
from dtr.webhooks import shapes as s
from dtr.webhooks.delivery import deliveries, queue_send, secret_context
from dtr.webhooks.models import Webhook
from dtr.webhooks.sending import EndpointRefused, Sender, check_endpoint, networks, ssl_context

webhooks = cast(Table, Webhook.__table__)
iso = payloads.rfc3339


@dataclasses.dataclass(frozen=True)
class Caller(access.Caller):
    """With the job queue (redeliveries queue the sender) and the config (secrets' sealing key,
    the deny list, the timeout)."""

    jobs: JobService
    config: Config


def webhook_json(r: Any) -> s.Webhook:
    return {"id": str(r.id), "type": r.type, "key": r.key, "endpoint": r.endpoint, "tlsCert": r.tls_cert or "",
            "httpSecretSet": bool(r.secret), "inactive": r.inactive, "author": r.author,
            "createdAt": str(iso(r.created_at)), "lastSuccessfulAt": iso(r.last_successful_at)}


def delivery_json(r: Any) -> s.Delivery:
    return {"id": int(r.id), "webhookId": str(r.webhook_id), "eventType": r.event_type, "eventId": r.event_id,
            "status": r.status, "attempts": r.attempts, "lastStatusCode": r.last_status_code,
            "lastError": r.last_error, "durationMs": r.duration_ms, "createdAt": str(iso(r.created_at)),
            "lastAttemptAt": iso(r.last_attempt_at),
            "nextAttemptAt": iso(r.next_attempt_at) if r.status == "pending" else None,
            "redeliveryOf": r.redelivery_of}


def _id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise APIError(codes.NOT_FOUND, "no such webhook") from None


def _object_type(key: str) -> str:
    return "site" if key == "" else "repository" if "/" in key else "namespace"


async def _check_key(c: Caller, conn: AsyncConnection, key: str, creating: bool) -> None:
    """Return if the caller may manage webhooks of ``key`` (making one: that it exists too)."""
    c.user()
    if key == "":
        c.admin()
    elif "/" in key:
        namespace, _, repo = key.partition("/")
        if creating:
            await access.open_repository(c, conn, namespace, repo, Action.ADMIN)
        else:
            await check_repository(c, conn, key, Action.ADMIN)
    elif creating:
        await access.open_namespace(c, conn, key, change=True)
    elif not await may_admin_namespace(c, conn, key):
        raise APIError(codes.FORBIDDEN, f"this needs admin access to the namespace {key}")


def _check_target(c: Caller, endpoint: str, tls_cert: str | None) -> None:
    try:
        check_endpoint(endpoint, networks(c.config.webhooks))
        ssl_context(tls_cert)
    except EndpointRefused as e:
        raise APIError(codes.INVALID_PARAMETER, str(e)) from None


async def _open(c: Caller, conn: AsyncConnection, raw_id: str, lock: bool = False) -> Any:
    q = select(webhooks).where(webhooks.c.id == _id(raw_id))
    row = (await conn.execute(q.with_for_update() if lock else q)).first()
    if row is None:
        raise APIError(codes.NOT_FOUND, "no such webhook")
    await _check_key(c, conn, row.key, creating=False)
    return row


async def create_webhook(c: Caller, body: s.NewWebhook) -> s.CreatedWebhook:
    """Make a webhook; its secret (``httpSecret``, generated when not given) is answered once."""
    key = body.key.strip("/")
    if body.type in payloads.SITE_TYPES and key:
        raise APIError(codes.INVALID_PARAMETER, f"key: {body.type} webhooks have no key (they are the site's)")
    if body.type not in payloads.SITE_TYPES and not key:
        raise APIError(codes.INVALID_PARAMETER, "key: required (namespace/repository or namespace)")
    _check_target(c, body.endpoint, body.tls_cert)
    secret = body.http_secret or secrets.token_hex(32)
    hook_id = uuid.uuid4()
    sealed = Sealer.from_config(c.config).seal(secret.encode(), secret_context(hook_id))
    async with c.engine.begin() as conn:
        await _check_key(c, conn, key, creating=True)
        row = (await conn.execute(insert(webhooks).values(
            id=hook_id, type=body.type, key=key, endpoint=body.endpoint, tls_cert=body.tls_cert or None,
            secret=sealed, author=c.principal.name or "").returning(*webhooks.c))).one()
    await c.changed("webhook_create", _object_type(key), key, {"id": str(hook_id), "type": body.type})
    return {**webhook_json(row), "httpSecret": secret}


async def list_webhooks(c: Caller, query: s.WebhooksQuery) -> tuple[list[s.Webhook], str | None]:
    """The webhooks the caller may manage (of ``key``, of ``type``), by id, from ``pageStart``."""
    c.user()
    q = select(webhooks).order_by(webhooks.c.id)
    if query.key is not None:
        q = q.where(webhooks.c.key == query.key.strip("/"))
    if query.type is not None:
        q = q.where(webhooks.c.type == query.type)
    if query.page_start:
        try:
            q = q.where(webhooks.c.id >= uuid.UUID(query.page_start))
        except ValueError:
            raise APIError(codes.INVALID_PARAMETER, "pageStart: not a webhook id") from None
    found: list[s.Webhook] = []
    allowed: dict[str, bool] = {}
    async with c.engine.connect() as conn:
        for r in await conn.execute(q):
            if r.key not in allowed:
                try:
                    await _check_key(c, conn, r.key, creating=False)
                    allowed[r.key] = True
                except APIError:
                    allowed[r.key] = False
            if allowed[r.key]:
                found.append(webhook_json(r))
                if len(found) > query.page_size:
                    return found[:query.page_size], found[-1]["id"]
    return found, None


async def get_webhook(c: Caller, raw_id: str) -> s.Webhook:
    async with c.engine.connect() as conn:
        return webhook_json(await _open(c, conn, raw_id))


async def change_webhook(c: Caller, raw_id: str, body: s.WebhookChange) -> s.Webhook:
    """Change the endpoint, the CA, the secret, or (de)activate; what is absent stays."""
    values: dict[str, Any] = {}
    async with c.engine.begin() as conn:
        row = await _open(c, conn, raw_id, lock=True)
        if body.endpoint is not None:
            values["endpoint"] = body.endpoint
        if body.tls_cert is not None:
            values["tls_cert"] = body.tls_cert or None
        if body.inactive is not None:
            values["inactive"] = body.inactive
        if body.http_secret is not None:
            values["secret"] = Sealer.from_config(c.config).seal(body.http_secret.encode(), secret_context(row.id))
        _check_target(c, values.get("endpoint", row.endpoint), values.get("tls_cert", row.tls_cert))
        if values:
            row = (await conn.execute(update(webhooks).where(webhooks.c.id == row.id).values(**values)
                                      .returning(*webhooks.c))).one()
    if values:
        await c.changed("webhook_update", _object_type(row.key), row.key,
                        {"id": str(row.id), "changed": sorted(body.model_fields_set)})
    return webhook_json(row)


async def delete_webhook(c: Caller, raw_id: str) -> None:
    """Remove a webhook and its deliveries (pending ones are not sent)."""
    async with c.engine.begin() as conn:
        row = await _open(c, conn, raw_id, lock=True)
        await conn.execute(delete(webhooks).where(webhooks.c.id == row.id))
    await c.changed("webhook_delete", _object_type(row.key), row.key, {"id": str(row.id), "type": row.type})


async def test_webhook(c: Caller, body: s.WebhookTest) -> s.TestResult:
    """Send a sample payload of ``type`` to ``endpoint`` now (one attempt); the receiver's answer."""
    c.user()
    _check_target(c, body.endpoint, body.tls_cert)
    payload = payloads.body(body.type, payloads.sample(body.type))
    secret = body.http_secret.encode() if body.http_secret else None
    async with Sender(c.config.webhooks) as sender:
        out = await sender.send(body.endpoint, payload, body.type, "test", secret, body.tls_cert or None)
    return {"statusCode": out.status, "error": out.error, "durationMs": out.duration_ms}


async def list_deliveries(c: Caller, raw_id: str, start: str | None, size: int) -> tuple[list[s.Delivery], str | None]:
    """A webhook's deliveries, newest first, from the delivery ``start``."""
    async with c.engine.connect() as conn:
        row = await _open(c, conn, raw_id)
        q = select(deliveries).where(deliveries.c.webhook_id == row.id).order_by(deliveries.c.id.desc())
        if start:
            if not start.isdigit():
                raise APIError(codes.INVALID_PARAMETER, "pageStart: not a delivery id")
            q = q.where(deliveries.c.id <= int(start))
        rows = (await conn.execute(q.limit(size + 1))).all()
    found = [delivery_json(r) for r in rows]
    return found[:size], str(found[size]["id"]) if len(found) > size else None


async def redeliver(c: Caller, raw_id: str, raw_delivery: str) -> s.Delivery:
    """Send a delivery's body again, as a new delivery (queued now)."""
    async with c.engine.begin() as conn:
        row = await _open(c, conn, raw_id)
        old = None
        if raw_delivery.isdigit() and len(raw_delivery) < 19:
            old = (await conn.execute(select(deliveries).where(deliveries.c.id == int(raw_delivery),
                                                               deliveries.c.webhook_id == row.id))).first()
        if old is None:
            raise APIError(codes.NOT_FOUND, "no such delivery of this webhook")
        new = (await conn.execute(insert(deliveries).values(
            webhook_id=row.id, event_type=old.event_type, event_id=old.event_id, body=old.body,
            redelivery_of=old.id).returning(*deliveries.c))).one()
        await queue_send(c.jobs, conn)
    await c.changed("webhook_redeliver", _object_type(row.key), row.key, {"id": str(row.id), "delivery": old.id})
    return delivery_json(new)

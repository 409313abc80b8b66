"""``/api/v0/webhooks``: webhooks, their test, their deliveries (``service``)."""

from __future__ import annotations

from aiohttp import web

from dtr.api.errors import codes
from dtr.api.operations import Paged, PageQuery, add_all, operation
from dtr.auth.api import principal
from dtr.jobs.service import JobService
from dtr.keys import AUTH, CONFIG, DATABASE
from dtr.webhooks import service
from dtr.webhooks import shapes as s


def _caller(request: web.Request) -> service.Caller:
    cfg = request.config_dict[CONFIG]
    engine = request.config_dict[DATABASE].engine
    return service.Caller(engine, principal(request), request.remote or "", request.config_dict[AUTH],
                          JobService(engine, cfg.jobs.stop_timeout, cfg.jobs.worker_timeout), cfg)


#: What opening a webhook may answer (its key's access check).
_OPEN = (codes.NOT_FOUND, codes.FORBIDDEN, codes.NO_SUCH_REPOSITORY)


@operation(codes.FORBIDDEN, codes.NO_SUCH_REPOSITORY, codes.NO_SUCH_NAMESPACE, status=201)
async def create_webhook(request: web.Request, body: s.NewWebhook) -> s.CreatedWebhook:
    """Make a webhook of ``type`` on ``key`` (a repository or a namespace it admins;
    SCANNER_UPDATE_COMPLETED: site admins, no key). The answer shows its ``httpSecret`` (generated
    when not given) this once."""
    return await service.create_webhook(_caller(request), body)


@operation(codes.INVALID_PARAMETER)
async def list_webhooks(request: web.Request, query: s.WebhooksQuery) -> Paged[s.WebhookList]:
    """The webhooks the caller may manage; filters ``key`` and ``type``."""
    found, nxt = await service.list_webhooks(_caller(request), query)
    return Paged({"webhooks": found}, nxt)


@operation(*_OPEN)
async def get_webhook(request: web.Request, id: str) -> s.Webhook:
    """A webhook."""
    return await service.get_webhook(_caller(request), id)


@operation(*_OPEN)
async def change_webhook(request: web.Request, id: str, body: s.WebhookChange) -> s.Webhook:
    """Change a webhook's ``endpoint``, ``tlsCert``, ``httpSecret`` or ``inactive``."""
    return await service.change_webhook(_caller(request), id, body)


@operation(*_OPEN)
async def delete_webhook(request: web.Request, id: str) -> None:
    """Remove a webhook and its deliveries."""
    await service.delete_webhook(_caller(request), id)


@operation()
async def test_webhook(request: web.Request, body: s.WebhookTest) -> s.TestResult:
    """Send a sample payload of ``type`` to ``endpoint`` now (one attempt, no retry) and answer
    how the receiver answered."""
    return await service.test_webhook(_caller(request), body)


@operation(*_OPEN, codes.INVALID_PARAMETER)
async def list_deliveries(request: web.Request, id: str, query: PageQuery) -> Paged[s.DeliveryList]:
    """A webhook's deliveries, newest first: status, attempts, the last attempt's outcome."""
    found, nxt = await service.list_deliveries(_caller(request), id, query.page_start, query.page_size)
    return Paged({"deliveries": found}, nxt)


@operation(*_OPEN, status=202)
async def redeliver(request: web.Request, id: str, delivery: str) -> s.Delivery:
    """Send a delivery's payload again (a new delivery, queued now)."""
    return await service.redeliver(_caller(request), id, delivery)


def register(app: web.Application) -> None:
    """The webhooks routes of /api/v0."""
    add_all(app.router, (
        ("POST", "/webhooks", create_webhook),
        ("GET", "/webhooks", list_webhooks),
        ("POST", "/webhooks/test", test_webhook),
        ("GET", "/webhooks/{id}", get_webhook),
        ("PATCH", "/webhooks/{id}", change_webhook),
        ("DELETE", "/webhooks/{id}", delete_webhook),
        ("GET", "/webhooks/{id}/deliveries", list_deliveries),
        ("POST", "/webhooks/{id}/deliveries/{delivery}/redeliver", redeliver),
    ))

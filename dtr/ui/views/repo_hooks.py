"""The Webhooks tab of a repository (its admins): its webhooks (list, create, delete) and one
webhook's deliveries with redelivery. The same use cases as ``/api/v0/webhooks``
(``dtr.webhooks.service``), which check admin access to the repository themselves. A webhook's
secret is never shown: the page says only whether one is set.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from dtr.api.errors import APIError, codes
from dtr.jobs.service import JobService
from dtr.keys import AUTH, CONFIG, DATABASE
from dtr.ui.render import render
from dtr.ui.security import visitor
from dtr.ui.views.common import Form, redirect, refused, repo_url, with_query
from dtr.ui.views.repo_tabs import names, open_tab, tab_handler
from dtr.webhooks import payloads, service
from dtr.webhooks import shapes as s

#: The types a repository's webhook may have.
TYPES = tuple(t for t in payloads.TYPES if t not in payloads.SITE_TYPES)
DELIVERIES_PAGE = 50


def hooks_caller(request: web.Request) -> service.Caller:
    """The visitor as the webhooks use cases take it."""
    cfg = request.config_dict[CONFIG]
    engine = request.config_dict[DATABASE].engine
    return service.Caller(engine, visitor(request).principal, request.remote or "", request.config_dict[AUTH],
                          JobService(engine, cfg.jobs.stop_timeout, cfg.jobs.worker_timeout), cfg)


def _full(request: web.Request) -> str:
    ns, name = names(request)
    return f"{ns}/{name}"


async def _show(request: web.Request, form: Form, status: int = 200) -> web.StreamResponse:
    ctx = await open_tab(request, "webhooks", "Webhooks", admin=True)
    try:
        query = s.WebhooksQuery.model_validate({"key": _full(request), "pageSize": 1000})
        hooks, _ = await service.list_webhooks(hooks_caller(request), query)
    except APIError as e:
        return refused(request, e)
    return render(request, "repository_webhooks.html", {
        **ctx, "hooks": hooks, "types": TYPES, **form.context(), "done": request.query.get("done", "")[:200]}, status)


@tab_handler
async def page(request: web.Request) -> web.StreamResponse:
    return await _show(request, Form({"type": payloads.TAG_PUSH}))


@tab_handler
async def create(request: web.Request) -> web.StreamResponse:
    """Make a webhook of the repository; the secret typed (or generated) is not shown again."""
    form = await Form.read(request, "type", "endpoint", "secret")
    kind = form.choice("type", "Event", TYPES)
    endpoint = form.text("endpoint", "URL", required=True, max_length=2048)
    secret = form.values.get("secret", "")
    form.values["secret"] = ""  # never echoed
    if len(secret) > 256:
        form.errors["secret"] = "Secret is at most 256 characters"
    if not form.errors:
        body: dict[str, str] = {"type": kind, "key": _full(request), "endpoint": endpoint}
        if secret:
            body["httpSecret"] = secret
        try:
            await service.create_webhook(hooks_caller(request), s.NewWebhook.model_validate(body))
        except ValidationError as e:
            form.errors["endpoint"] = e.errors()[0]["msg"]
        except APIError as e:
            if e.code != codes.INVALID_PARAMETER:
                return refused(request, e)
            form.errors["endpoint"] = e.message
        else:
            return redirect(with_query(repo_url(_full(request), "/webhooks"), done=f"Webhook {kind} created"))
    return await _show(request, form, 400)


async def _own_hook(request: web.Request) -> s.Webhook:
    """The webhook of the path, if it is this repository's (404 otherwise: a webhook is reached
    through its own repository's page)."""
    hook = await service.get_webhook(hooks_caller(request), request.match_info["id"])
    if hook["key"] != _full(request):
        raise APIError(codes.NOT_FOUND, "no such webhook")
    return hook


@tab_handler
async def delete(request: web.Request) -> web.StreamResponse:
    try:
        hook = await _own_hook(request)
        await service.delete_webhook(hooks_caller(request), hook["id"])
    except APIError as e:
        return refused(request, e)
    return redirect(with_query(repo_url(_full(request), "/webhooks"), done="Webhook deleted"))


@tab_handler
async def deliveries(request: web.Request) -> web.StreamResponse:
    """One webhook's deliveries, newest first, paged."""
    ctx = await open_tab(request, "webhooks", "Webhook deliveries", admin=True)
    start = request.query.get("start", "")[:19] or None
    try:
        hook = await _own_hook(request)
        found, nxt = await service.list_deliveries(hooks_caller(request), hook["id"], start, DELIVERIES_PAGE)
    except APIError as e:
        return refused(request, e)
    here = repo_url(_full(request), f"/webhooks/{hook['id']}")
    return render(request, "repository_webhook.html", {
        **ctx, "hook": hook, "deliveries": found, "start": start, "here": here,
        "next_url": with_query(here, start=nxt) if nxt else None,
        "done": request.query.get("done", "")[:200]})


@tab_handler
async def redeliver(request: web.Request) -> web.StreamResponse:
    try:
        hook = await _own_hook(request)
        new = await service.redeliver(hooks_caller(request), hook["id"], request.match_info["delivery"])
    except APIError as e:
        return refused(request, e)
    return redirect(with_query(repo_url(_full(request), f"/webhooks/{hook['id']}"),
                               done=f"Delivery {request.match_info['delivery']} queued again as {new['id']}"))


def register(app: web.Application) -> None:
    base = "/repositories/{ns}/{repo}/webhooks"
    app.router.add_get(base, page)
    app.router.add_post(base, create)
    app.router.add_post(base + "/{id}/delete", delete)
    app.router.add_get(base + "/{id}", deliveries)
    app.router.add_post(base + "/{id}/deliveries/{delivery}/redeliver", redeliver)

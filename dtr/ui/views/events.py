"""Events: the registry's activity stream (``/ui/events``, what ``GET /api/v0/activity`` shows:
site admins) and one repository's (its Events tab, whoever may read it; ``GET
/api/v0/repositories/NS/REPO/events``), filtered by type, actor and time range (a GET form),
newest first, paged by event id. The same use cases (``dtr.activity.service``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from dtr.activity import service as svc
from dtr.activity.views import TYPES
from dtr.api.errors import APIError
from dtr.ui.render import render
from dtr.ui.views.common import refused, repo_caller, repo_url, signed_in, with_query
from dtr.ui.views.repo_tabs import names, open_tab, tab_handler

PAGE = 50


def _time(raw: str) -> dt.datetime:
    """A time of the form (``datetime-local``, or ISO 8601), UTC when it names no zone."""
    t = dt.datetime.fromisoformat(raw)
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _filters(request: web.Request) -> tuple[svc.EventFilter, int | None, dict[str, str], dict[str, str]]:
    """(filter, page start, the form's values, errors by field) from the query string."""
    q = request.query
    form = {k: q.get(k, "")[:255].strip() for k in ("type", "actor", "after", "before")}
    errors: dict[str, str] = {}
    if form["type"] and form["type"] not in TYPES:
        errors["type"] = "Type must be one of the listed types"
    times: dict[str, dt.datetime | None] = {"after": None, "before": None}
    for name in times:
        if form[name]:
            try:
                times[name] = _time(form[name])
            except ValueError:
                errors[name] = "expected a date and time like 2026-01-31T12:00"
    raw_start = q.get("start", "")
    start = int(raw_start) if raw_start.isascii() and raw_start.isdigit() and len(raw_start) <= 18 else None
    f = svc.EventFilter(types=(form["type"],) if form["type"] and not errors.get("type") else (),
                        actor=form["actor"] or None, after=times["after"], before=times["before"])
    return f, start, form, errors


def _context(rows: list[Any], request: web.Request, form: dict[str, str], errors: dict[str, str],
             start: int | None) -> dict[str, Any]:
    nxt = str(rows[PAGE].id) if len(rows) > PAGE else None
    return {"events": [svc.event_json(r) for r in rows[:PAGE]], "types": (("", "any type"), *TYPES), "form": form,
            "errors": errors, "start": start, "first_url": with_query(request.path, **form),
            "next_url": with_query(request.path, **form, start=nxt) if nxt else None}


@signed_in
async def registry_events(request: web.Request) -> web.StreamResponse:
    """Every repository's events (site admins, as the API's activity stream)."""
    f, start, form, errors = _filters(request)
    rows: list[Any] = []
    c = repo_caller(request)
    try:
        c.admin()
        if not errors:
            rows = await svc.registry_activity(c, f, start, PAGE)
    except APIError as e:
        if e.status == 403:
            e = APIError(e.code, "the registry's events are for site admins; each repository's Events tab "
                                 "shows its own")
        return refused(request, e)
    return render(request, "events.html", {"title": "Events", "repo": None, "action": "/ui/events",
                                           **_context(rows, request, form, errors, start)},
                  400 if errors else 200)


@tab_handler
async def repository_events(request: web.Request) -> web.StreamResponse:
    """One repository's events (whoever may read it)."""
    ctx = await open_tab(request, "events", "Events")
    ns, name = names(request)
    f, start, form, errors = _filters(request)
    rows: list[Any] = []
    if not errors:
        try:
            rows = await svc.repository_activity(repo_caller(request), ns, name, f, start, PAGE)
        except APIError as e:
            return refused(request, e)
    return render(request, "events.html", {**ctx, **_context(rows, request, form, errors, start),
                                           "action": repo_url(ctx["repo"].name, "/events")},
                  400 if errors else 200)


def register(app: web.Application) -> None:
    app.router.add_get("/events", registry_events)
    app.router.add_get("/repositories/{ns}/{repo}/events", repository_events)

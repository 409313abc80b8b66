"""``/api/v0``: the activity stream (``dtr.activity.service``)."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from dtr.activity import service as svc
from dtr.api.errors import APIError, codes
from dtr.api.operations import Paged, PageQuery, Time, add_all, operation
from dtr.auth.api import principal
from dtr.keys import AUTH, DATABASE
from dtr.registry import events
from dtr.signatures.access import Caller

#: The event types, as the outbox names them (``dtr.registry.events``).
TYPES = (events.TAG_PUSHED, events.TAG_MOVED, events.TAG_DELETED, events.MANIFEST_PUSHED, events.MANIFEST_DELETED,
         events.BLOB_UNLINKED, events.REPOSITORY_CREATED, events.REPOSITORY_DELETED, events.SCAN_COMPLETED,
         events.SCAN_FAILED, events.VULNDB_UPDATED, events.PROMOTED, events.PUSH_MIRRORED,
         events.PUSH_MIRROR_FAILED, events.POLL_MIRRORED, events.POLL_MIRROR_FAILED)


class ActivityQuery(PageQuery):
    type: str | None = Field(None, max_length=512, description="event types, comma-separated (any of them): "
                             + ", ".join(TYPES))
    actor: str | None = Field(None, max_length=255, description="the account that made the change "
                              "(empty for dtr's own changes)")
    published_after: Time | None = None
    published_before: Time | None = None


class RegistryActivityQuery(ActivityQuery):
    repository: str | None = Field(None, max_length=255, description="one repository's (namespace/repo)")


def _caller(request: web.Request) -> Caller:
    return Caller(request.config_dict[DATABASE].engine, principal(request), request.remote or "",
                  request.config_dict[AUTH])


def _filter(query: ActivityQuery, repository: str | None = None) -> tuple[svc.EventFilter, int | None]:
    types = tuple(t for t in (query.type or "").split(",") if t)
    if unknown := sorted(set(types) - set(TYPES)):
        raise APIError(codes.INVALID_PARAMETER, f"unknown event type {unknown[0][:64]!r}; one of {', '.join(TYPES)}")
    start = query.page_start
    if start is not None and not (start.isascii() and start.isdigit() and len(start) <= 19):
        raise APIError(codes.INVALID_PARAMETER, "pageStart must be an event id")
    f = svc.EventFilter(types=types, actor=query.actor, repository=repository, after=query.published_after,
                        before=query.published_before)
    return f, int(start) if start else None


def _paged(rows: list[object], size: int) -> Paged[svc.ActivityList]:
    nxt = str(rows[size].id) if len(rows) > size else None  # type: ignore[attr-defined]
    return Paged({"events": [svc.event_json(r) for r in rows[:size]]}, nxt)


@operation(codes.INVALID_PARAMETER)
async def registry_activity(request: web.Request, query: RegistryActivityQuery) -> Paged[svc.ActivityList]:
    """Every repository's events, newest first: pushes, deletes, repositories created and
    deleted, scans, vulnerability database updates, promotions, mirroring (site admins).
    Logins and permission changes are in the audit log (``/events``)."""
    f, start = _filter(query, query.repository)
    return _paged(await svc.registry_activity(_caller(request), f, start, query.page_size), query.page_size)


@operation(codes.INVALID_PARAMETER, codes.NO_SUCH_REPOSITORY)
async def repository_activity(request: web.Request, namespace: str, repo: str,
                              query: ActivityQuery) -> Paged[svc.ActivityList]:
    """The repository's events, newest first (whoever may pull from it)."""
    f, start = _filter(query)
    rows = await svc.repository_activity(_caller(request), namespace, repo, f, start, query.page_size)
    return _paged(rows, query.page_size)


def register(app: web.Application) -> None:
    """The activity routes of /api/v0."""
    add_all(app.router, (
        ("GET", "/activity", registry_activity),
        ("GET", "/repositories/{namespace}/{repo}/events", repository_activity),
    ))

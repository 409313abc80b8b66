"""Reading /api/v0 requests and writing their JSON answers: the helpers every domain's views share.

Lists page with ``pageStart``/``pageSize`` and answer ``X-Next-Page-Start`` when there is more.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from dtr.api.errors import APIError, codes

MAX_PAGE = 1000
DEFAULT_PAGE = 100


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, or a 400 INVALID_JSON."""
    try:
        return await request.json()
    except (ValueError, UnicodeDecodeError) as e:
        raise APIError(codes.INVALID_JSON, f"the request body is not valid JSON: {e}") from None


async def read_object(request: web.Request, optional: bool = False) -> dict[str, Any]:
    """The request body as a JSON object (``{}`` for no body when ``optional``), or a 400 INVALID_JSON."""
    if optional and not request.can_read_body:
        return {}
    body = await read_json(request)
    if not isinstance(body, dict):
        raise APIError(codes.INVALID_JSON, "the request body must be a JSON object")
    return body


def string(body: dict[str, Any], key: str, default: str | None = None, limit: int = 1000) -> str | None:
    """``body[key]`` as a string of at most ``limit`` characters (``default`` when absent)."""
    value = body.get(key, default)
    if value is None:
        return None
    if not isinstance(value, str):
        raise APIError(codes.INVALID_PARAMETER, f"{key} must be a string")
    if len(value) > limit:
        raise APIError(codes.INVALID_PARAMETER, f"{key} must be at most {limit} characters")
    return value


def boolean(body: dict[str, Any], key: str, default: bool | None = None) -> bool | None:
    """``body[key]`` as true or false (``default`` when absent)."""
    value = body.get(key, default)
    if value is not None and not isinstance(value, bool):
        raise APIError(codes.INVALID_PARAMETER, f"{key} must be true or false")
    return value


def timestamp(raw: str | None, key: str) -> dt.datetime | None:
    """An ISO 8601 time (UTC when it names no zone), None for none."""
    if not raw:
        return None
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise APIError(codes.INVALID_PARAMETER, f"{key} must be an ISO 8601 time") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def query_int(request: web.Request, name: str, default: int, lo: int = 0, hi: int = 10_000) -> int:
    """The query parameter ``name`` as an integer from ``lo`` to ``hi`` (``default`` when absent)."""
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise APIError(codes.INVALID_PARAMETER, f"{name} must be an integer from {lo} to {hi}")
    return int(raw)


def page(request: web.Request) -> tuple[str | None, int]:
    """``(pageStart or None, pageSize)`` from the query."""
    return request.query.get("pageStart") or None, query_int(request, "pageSize", DEFAULT_PAGE, 1, MAX_PAGE)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status, content_type="application/json",
                        headers=headers)


def paged(key: str, rows: list[Any], size: int, render: Callable[[Any], Any],
          next_key: Callable[[Any], Any]) -> web.Response:
    """One page of ``rows`` (fetched with one more than ``size`` to tell whether there is more)."""
    headers = {"X-Next-Page-Start": str(next_key(rows[size]))} if len(rows) > size else None
    return json_response({key: [render(r) for r in rows[:size]]}, headers=headers)

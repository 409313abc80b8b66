"""The /api/v0 JSON answer (``dtr.api.operations`` renders every operation's result with it)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dtr import text


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """``data`` as JSON; never NaN or Infinity (``ValueError``: what a strict parser would reject is
    never written)."""
    return web.Response(body=text.dumps(data), status=status, content_type="application/json", headers=headers)

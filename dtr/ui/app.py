"""Wiring the UI into dtr's application: ``/`` and the UI application at ``/ui/`` (its pages,
static files, templates, security middleware), and the session store resource."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from dtr.keys import CONFIG, DATABASE, UI_SESSIONS
from dtr.ui.render import NAV, error_page, setup_templates
from dtr.ui.security import ui_middleware
from dtr.ui.sessions import SessionStore
from dtr.ui.static import StaticFiles
from dtr.ui.views import GROUPS
from dtr.ui.views import NAV as PAGES
from dtr.ui.views.entry import root

STATIC_PREFIX = "/ui/static"


async def _sessions(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG].ui
    app[UI_SESSIONS] = SessionStore(app[DATABASE].engine, cfg.session_idle, cfg.session_max)
    yield


def setup_ui(app: web.Application) -> None:
    """Serve the UI from ``app`` (call after the database resource is registered); nothing when
    ``ui.enabled`` is false (``/`` stays a 404)."""
    if not app[CONFIG].ui.enabled:
        return
    app.cleanup_ctx.append(_sessions)
    app.router.add_get("/", root)
    ui = web.Application(middlewares=[ui_middleware(error_page, STATIC_PREFIX)])
    static = StaticFiles(STATIC_PREFIX)
    setup_templates(ui, static)
    ui[NAV] = PAGES
    ui.router.add_get("/static/{digest}/{name}", static.handle)
    for group in GROUPS:
        group.register(ui)
    app.add_subapp("/ui/", ui)

"""Wiring auth into the application: the ``AuthService`` resource and the token endpoint."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from dtr.keys import AUTH, CONFIG, DATABASE

log = logging.getLogger("dtr.auth")

async def _auth_resource(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    if not cfg.auth.enabled:
        log.warning("AUTHENTICATION IS OFF (auth.enabled: false): anyone who reaches this server may push, "
                    "pull and delete anything; for tests only")
        app[AUTH] = None
        yield
        return
    from dtr.auth.service import AuthService

    auth = AuthService(cfg, app[DATABASE].engine)
    await auth.bootstrap_admin()
    app[AUTH] = auth
    yield


def setup_auth(app: web.Application) -> None:
    """Call after the database resource is registered: it needs ``DATABASE``."""
    from dtr.auth.views import add_routes

    app.cleanup_ctx.append(_auth_resource)
    add_routes(app)

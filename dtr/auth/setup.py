"""Wiring auth into the application: the ``AuthService`` resource with the cluster's token signing
key, the first admin's password (checked when the app is built, before anything opens) and the
token endpoint."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.auth.passwords import PasswordPolicyError, check_policy
from dtr.config import AuthConfig, ConfigError
from dtr.keys import AUTH, CONFIG, DATABASE

log = logging.getLogger("dtr.auth")

#: Gives the token signing key every replica shares: ``(engine, data_dir) -> key``.
SigningKey = Callable[[AsyncEngine, Path], Awaitable[ec.EllipticCurvePrivateKey]]


def first_admin_password(cfg: AuthConfig) -> str | None:
    """``admin_password``, or the content of ``admin_password_file`` (stripped), or None for a
    random one; ConfigError (one line) if the file cannot be read or the password breaks the policy."""
    password, key = cfg.admin_password, "auth.admin_password"
    if password is None and cfg.admin_password_file:
        key = "auth.admin_password_file"
        try:
            password = Path(cfg.admin_password_file).read_text().strip()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{key}: cannot read {cfg.admin_password_file}: "
                              f"{getattr(e, 'strerror', None) or e}") from None
    if not password:
        return None
    try:
        check_policy(password, cfg.admin_username, cfg.min_password_length)
    except PasswordPolicyError as e:
        raise ConfigError(f"{key}: {e} (auth.min_password_length is {cfg.min_password_length})") from None
    return password


def _auth_resource(password: str | None, signing_key: SigningKey
                   ) -> Callable[[web.Application], AsyncIterator[None]]:
    async def resource(app: web.Application) -> AsyncIterator[None]:
        cfg = app[CONFIG]
        if not cfg.auth.enabled:
            log.warning("AUTHENTICATION IS OFF (auth.enabled: false): anyone who reaches this server may push, "
                        "pull and delete anything; for tests only")
            app[AUTH] = None
            yield
            return
        from dtr.auth.service import AuthService

        engine = app[DATABASE].engine
        auth = AuthService(cfg, engine, await signing_key(engine, cfg.data_path))
        await auth.bootstrap_admin(password)
        app[AUTH] = auth
        yield

    return resource


def setup_auth(app: web.Application, signing_key: SigningKey) -> None:
    """Call after the database resource is registered: it needs ``DATABASE``; ``signing_key`` is
    asked for the token signing key when auth is on. ConfigError if the first admin's password is
    unreadable or breaks the password policy."""
    from dtr.auth.views import add_routes

    auth = app[CONFIG].auth
    app.cleanup_ctx.append(_auth_resource(first_admin_password(auth) if auth.enabled else None, signing_key))
    add_routes(app)

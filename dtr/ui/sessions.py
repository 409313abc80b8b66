"""Browser sessions in Postgres (``ui_sessions``): any replica serves any session.

A session is a random secret in an ``HttpOnly`` cookie; the database keeps only its SHA-256, so
a copy of the table (or a backup) opens no session. It ends after ``idle`` seconds without a
request, ``max_age`` seconds after its login, at logout, and with its account (deleted, or
deactivated: the account must be active at every request). ``seen_at`` is refreshed at most once
a minute (a quarter of ``idle`` when that is shorter), so a busy page costs one read, not a
write, per request.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import secrets
from typing import cast

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.auth.access import Principal
from dtr.auth.models import Account
from dtr.ui.models import UiSession

ui_sessions = cast(Table, UiSession.__table__)
accounts = cast(Table, Account.__table__)

#: ``seen_at`` is written when older than this (seconds), or a quarter of the idle time if shorter.
TOUCH_INTERVAL = 60.0


def _key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class Session:
    principal: Principal
    #: The token every state-changing request of this session carries (form field or header).
    csrf: str


class SessionStore:
    def __init__(self, engine: AsyncEngine, idle: float, max_age: float) -> None:
        self.engine, self.idle, self.max_age = engine, dt.timedelta(seconds=idle), dt.timedelta(seconds=max_age)
        self.touch = min(TOUCH_INTERVAL, idle / 4)

    async def open(self, principal: Principal, client_addr: str) -> tuple[str, Session]:
        """A new session for ``principal`` (an authenticated user): (the cookie's secret, the session).
        Expired sessions are swept at the same time."""
        secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = dt.datetime.now(dt.UTC)
        async with self.engine.begin() as conn:
            await conn.execute(delete(ui_sessions).where(
                (ui_sessions.c.seen_at < now - self.idle) | (ui_sessions.c.created_at < now - self.max_age)))
            await conn.execute(insert(ui_sessions).values(id=_key(secret), account_id=principal.id, csrf=csrf,
                                                          client_addr=client_addr[:64]))
        return secret, Session(principal, csrf)

    async def find(self, secret: str) -> Session | None:
        """The live session of ``secret`` (its account active), else None."""
        if not secret or len(secret) > 128:
            return None
        key = _key(secret)
        q = (select(ui_sessions.c.csrf, ui_sessions.c.created_at, ui_sessions.c.seen_at, accounts.c.id,
                    accounts.c.name, accounts.c.is_admin, accounts.c.is_active)
             .join(accounts, accounts.c.id == ui_sessions.c.account_id).where(ui_sessions.c.id == key))
        async with self.engine.connect() as conn:
            row = (await conn.execute(q)).first()
        now = dt.datetime.now(dt.UTC)
        if row is None or not row.is_active or row.seen_at < now - self.idle or row.created_at < now - self.max_age:
            return None
        if (now - row.seen_at).total_seconds() >= self.touch:
            async with self.engine.begin() as conn:
                await conn.execute(update(ui_sessions).where(ui_sessions.c.id == key).values(seen_at=now))
        return Session(Principal(name=row.name, id=row.id, is_admin=row.is_admin, is_active=True), row.csrf)

    async def close(self, secret: str) -> None:
        """End the session of ``secret`` (logout); nothing if there is none."""
        async with self.engine.begin() as conn:
            await conn.execute(delete(ui_sessions).where(ui_sessions.c.id == _key(secret)))

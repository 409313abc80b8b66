"""The database being away, told apart from a statement's own faults.

``DatabaseUnavailable`` is what dtr raises when Postgres cannot be reached now (connection refused
or lost, the server starting up or shutting down, no primary among several hosts, no answer
within ``database.connect_timeout`` / ``statement_timeout``, no pooled connection free within
``database.pool_timeout``): the engine turns such errors into it at connect
and at execute (``dtr.db.engine``). It is a 503 with ``Retry-After``, so every API answers it as
unavailable in its own error shape (``/api/v0``'s error middleware renders any HTTP error; the root
app's ``dtr.app.unavailable`` renders it for ``/v2`` and ``/auth``); never a 500.
"""

from __future__ import annotations

import asyncpg
from aiohttp import web
from asyncpg.exceptions._base import TargetServerAttributeNotMatched
from sqlalchemy.exc import DBAPIError

#: Seconds clients are told to wait before trying again.
RETRY_AFTER = 5


class DatabaseUnavailable(web.HTTPServiceUnavailable):
    """Postgres cannot be reached now; ``message`` says why in words a person reads."""

    def __init__(self, reason: str) -> None:
        self.message = f"database unavailable: {reason}"
        super().__init__(text=self.message, headers={"Retry-After": str(RETRY_AFTER)})

    def __str__(self) -> str:
        return self.message


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the errors behind it (SQLAlchemy's ``orig``, ``__cause__``, ``__context__``)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo += [e.__context__, e.__cause__, getattr(e, "orig", None)]
    return seen


def unavailable_reason(exc: BaseException) -> str | None:
    """Why ``exc`` means the database is away ("connection refused", ...), or None when it is a
    fault of the statement or of dtr (those stay 500s)."""
    if isinstance(exc, DatabaseUnavailable):
        return exc.message.removeprefix("database unavailable: ")
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, (ConnectionRefusedError, FileNotFoundError)):
            return "connection refused"
        if isinstance(e, asyncpg.CannotConnectNowError):
            return "the database is starting up"
        if isinstance(e, (asyncpg.AdminShutdownError, asyncpg.CrashShutdownError)):
            return "the database is shutting down"
        if isinstance(e, asyncpg.TooManyConnectionsError):
            return "too many connections"
        if isinstance(e, TargetServerAttributeNotMatched):
            return "no server that takes writes (a standby not promoted yet?)"
        if isinstance(e, asyncpg.QueryCanceledError):
            return "a statement ran past database.statement_timeout"
        if isinstance(e, TimeoutError):
            return "the database did not answer in time"
        if isinstance(e, (asyncpg.ConnectionDoesNotExistError, ConnectionError, asyncpg.PostgresConnectionError)):
            return "connection lost"
        if isinstance(e, DBAPIError) and e.connection_invalidated:
            return "connection lost"
        if isinstance(e, OSError):
            return f"cannot connect ({type(e).__name__}: {e})"[:200]
    return None


"""Which namespaces cache an upstream registry, and how to reach it (``pull_through_caches``).

The use cases (site admins): read, set and remove a namespace's cache setting. The namespace
must exist as an organisation or a user (dtr's accounts model has no bare namespaces: create the
organisation first). The password is sealed at rest (``dtr.trust.sealing``, bound to the
namespace) and never answered: answers say ``hasPassword``. ``ConfigCache`` keeps every setting
in memory, re-read at most once a second (as ``dtr.signatures.policy.PolicyCache``), so a pull
in a namespace that caches nothing costs no database round-trip.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlsplit

from cryptography import x509
from sqlalchemy import Table, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from typing_extensions import TypedDict

from dtr.api.errors import APIError, codes
from dtr.auth.caller import Caller
from dtr.auth.models import Account
from dtr.db.refreshed import Refreshed
from dtr.pullcache.models import PullThroughCache
from dtr.registry.names import is_name
from dtr.trust.sealing import Sealer

log = logging.getLogger("dtr.pullcache")

caches = cast(Table, PullThroughCache.__table__)
accounts = cast(Table, Account.__table__)

DEFAULT_TAG_TTL = 300


def _context(namespace: str) -> bytes:
    return f"pullcache:{namespace}".encode()


@dataclasses.dataclass(frozen=True)
class CacheConfig:
    """A namespace's cache setting, the password unsealed (kept out of ``repr``)."""

    namespace: str
    upstream: str
    upstream_namespace: str
    username: str
    password: str | None = dataclasses.field(repr=False)
    ca: str
    tag_ttl: int
    updated_at: dt.datetime


class CacheSetting(TypedDict):
    namespace: str
    upstream: str
    upstreamNamespace: str
    username: str
    hasPassword: bool
    ca: str
    tagTTL: int
    updatedBy: str
    updatedAt: str


@dataclasses.dataclass(frozen=True)
class Change:
    """A new setting; ``password`` None keeps the stored one, "" removes it."""

    upstream: str
    upstream_namespace: str = ""
    username: str = ""
    password: str | None = None
    ca: str = ""
    tag_ttl: int = DEFAULT_TAG_TTL


def check_upstream(url: str) -> str:
    """``url`` as stored: ``http(s)://host[:port]``, nothing else (INVALID_PARAMETER)."""
    try:
        u = urlsplit(url.strip())
        port = u.port
    except ValueError:
        raise APIError(codes.INVALID_PARAMETER, "upstream: not a URL") from None
    if u.scheme not in ("http", "https") or not u.hostname or u.username or u.password \
            or u.path not in ("", "/") or u.query or u.fragment:
        raise APIError(codes.INVALID_PARAMETER, "upstream must be https://host[:port] (or http://), "
                                                "without a path, query or credentials")
    return f"{u.scheme}://{u.hostname if ':' not in u.hostname else f'[{u.hostname}]'}" + \
        (f":{port}" if port else "")


def _check(change: Change) -> None:
    if change.upstream_namespace and not is_name(change.upstream_namespace):
        raise APIError(codes.INVALID_PARAMETER, "upstreamNamespace must be a repository name prefix "
                                                "(lowercase components separated by /), or empty")
    if change.ca:
        try:
            x509.load_pem_x509_certificates(change.ca.encode())
        except ValueError:
            raise APIError(codes.INVALID_PARAMETER, "ca must be PEM certificates") from None


def _answer(r: Any) -> CacheSetting:
    return {"namespace": r.namespace, "upstream": r.upstream, "upstreamNamespace": r.upstream_namespace,
            "username": r.username, "hasPassword": r.password_sealed is not None, "ca": r.ca, "tagTTL": r.tag_ttl,
            "updatedBy": r.updated_by,
            "updatedAt": r.updated_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")}


async def _namespace(conn: AsyncConnection, namespace: str) -> None:
    if (await conn.execute(select(accounts.c.id).where(accounts.c.name == namespace))).first() is None:
        raise APIError(codes.NO_SUCH_NAMESPACE, f"no namespace named {namespace[:64]!r}: create the organisation "
                                                "(or user) first")


async def _row(conn: AsyncConnection, namespace: str) -> Any:
    return (await conn.execute(select(caches).where(caches.c.namespace == namespace))).first()


async def get_setting(c: Caller, namespace: str) -> CacheSetting:
    """The namespace's cache setting (NO_SUCH_NAMESPACE, or NOT_FOUND when it caches nothing)."""
    c.admin()
    async with c.engine.connect() as conn:
        await _namespace(conn, namespace)
        row = await _row(conn, namespace)
    if row is None:
        raise APIError(codes.NOT_FOUND, f"namespace {namespace} is not a pull-through cache")
    return _answer(row)


async def set_setting(c: Caller, sealer: Callable[[], Sealer], namespace: str, change: Change) -> CacheSetting:
    """Make the namespace a cache of ``change.upstream`` (or change its setting); audited."""
    c.admin()
    upstream = check_upstream(change.upstream)
    _check(change)
    values: dict[str, Any] = {
        "upstream": upstream, "upstream_namespace": change.upstream_namespace, "username": change.username,
        "ca": change.ca, "tag_ttl": change.tag_ttl, "updated_by": c.principal.name or ""}
    if change.password is not None:
        values["password_sealed"] = sealer().seal(change.password.encode(), _context(namespace)) \
            if change.password else None
    async with c.engine.begin() as conn:
        await _namespace(conn, namespace)
        await conn.execute(pg_insert(caches).values(namespace=namespace, **values).on_conflict_do_update(
            index_elements=[caches.c.namespace], set_={**values, "updated_at": func.now()}))
        row = await _row(conn, namespace)
    found = _answer(row)
    await c.changed("pull_through_cache", "namespace", namespace,
                    {k: v for k, v in found.items() if k not in ("namespace", "ca", "updatedAt")})
    return found


async def remove_setting(c: Caller, namespace: str) -> None:
    """The namespace caches nothing any more (what it cached stays, as ordinary repositories)."""
    c.admin()
    async with c.engine.begin() as conn:
        await _namespace(conn, namespace)
        if (await conn.execute(delete(caches).where(caches.c.namespace == namespace))).rowcount == 0:
            raise APIError(codes.NOT_FOUND, f"namespace {namespace} is not a pull-through cache")
    await c.changed("pull_through_cache_removed", "namespace", namespace)


class ConfigCache:
    """Every namespace's cache setting, re-read from the database at most every ``ttl`` seconds
    (while the database is unavailable, the last read is kept: ``Refreshed``)."""

    def __init__(self, engine: AsyncEngine, sealer: Callable[[], Sealer], ttl: float = 1.0) -> None:
        self.engine, self.sealer = engine, sealer
        self._configs: Refreshed[dict[str, CacheConfig]] = Refreshed(self._read, ttl)

    async def get(self, namespace: str) -> CacheConfig | None:
        """The setting of ``namespace``, None when it caches nothing."""
        return (await self._configs.get()).get(namespace)

    async def _read(self) -> dict[str, CacheConfig]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(caches))).all()
        configs: dict[str, CacheConfig] = {}
        before = self._configs.last() or {}
        for r in rows:
            old = before.get(r.namespace)
            if old is not None and old.updated_at == r.updated_at:
                configs[r.namespace] = old  # unchanged: no unsealing again
                continue
            password = None
            if r.password_sealed is not None:
                password = self.sealer().unseal(bytes(r.password_sealed), _context(r.namespace)).decode()
            configs[r.namespace] = CacheConfig(r.namespace, r.upstream, r.upstream_namespace, r.username,
                                               password, r.ca, r.tag_ttl, r.updated_at)
        return configs

    def forget(self) -> None:
        """Re-read on the next request (after a change through this process)."""
        self._configs.forget()

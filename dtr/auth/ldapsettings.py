"""The directory (LDAP) settings in effect.

Settings saved by a site admin (``/api/v0/meta/ldap``, the web UI's LDAP page) are one row of the
``settings`` table (key ``ldap``; the bind password sealed with ``dtr.trust.sealing``, never stored
in clear). When that row exists it overrides ``auth.ldap`` of the configuration file, which stays
the default. Saved settings without a password of their own use the configuration file's bind
password (``bind_password`` or ``bind_password_file``), if any.

``effective`` is the one way to read them (logins, the ``ldap_sync`` job, the admin page and API);
``LDAPSettings`` caches it for ``TTL`` seconds per process, so a change saved on one replica is in
effect on every other within about a second (at once on the replica that saved it).
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import time
from typing import Any, Literal, cast

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.auth.models import Setting
from dtr.config import Config, LDAPConfig
from dtr.trust.sealing import Sealer, SealingError

log = logging.getLogger("dtr.ldap")

settings_table = cast(Table, Setting.__table__)

#: The ``settings`` row holding the saved directory settings.
KEY = "ldap"
#: Saved settings are re-read at most this often (seconds).
TTL = 1.0
_CONTEXT = b"dtr ldap bind password"
_SECRET = ("bind_password", "bind_password_file")
#: Where the settings in effect come from.
Source = Literal["stored", "file", "none"]


@dataclasses.dataclass(frozen=True)
class Effective:
    """The directory in effect (None: none), where it comes from (``stored``, ``file`` or ``none``),
    and whether its service account has a password (never the password)."""

    config: LDAPConfig | None
    source: Source

    @property
    def password_set(self) -> bool:
        return self.config is not None and bool(self.config.bind_password or self.config.bind_password_file)


async def _stored(engine: AsyncEngine) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        value = (await conn.execute(select(settings_table.c.value).where(settings_table.c.key == KEY))).scalar()
    return value if isinstance(value, dict) else None


def _from_stored(value: dict[str, Any], cfg: Config) -> LDAPConfig:
    """The saved settings as a configuration; their password unsealed, else the file's."""
    known = {f.name for f in dataclasses.fields(LDAPConfig)} - set(_SECRET)
    ldap = LDAPConfig(**{k: v for k, v in value["settings"].items() if k in known})
    sealed = value.get("sealed_bind_password")
    if sealed:
        try:
            password = Sealer.from_config(cfg).unseal(base64.b64decode(sealed), _CONTEXT).decode()
        except (SealingError, ValueError) as e:
            log.error("the saved LDAP bind password does not open: %s", e)
            return ldap
        return dataclasses.replace(ldap, bind_password=password)
    file = cfg.auth.ldap
    if file is not None:
        return dataclasses.replace(ldap, bind_password=file.bind_password, bind_password_file=file.bind_password_file)
    return ldap


async def effective(engine: AsyncEngine, cfg: Config) -> Effective:
    """The directory settings in effect: the saved ones, else the configuration file's."""
    value = await _stored(engine)
    if value is not None:
        return Effective(_from_stored(value, cfg), "stored")
    return Effective(cfg.auth.ldap, "file" if cfg.auth.ldap is not None else "none")


async def save(engine: AsyncEngine, cfg: Config, ldap: LDAPConfig, bind_password: str | None) -> None:
    """Save ``ldap`` (checked by the caller) as the settings in effect; ``bind_password`` None keeps
    the saved password (if any), a string replaces it, sealed."""
    settings = {k: v for k, v in dataclasses.asdict(ldap).items() if k not in _SECRET}
    async with engine.begin() as conn:
        old = (await conn.execute(select(settings_table.c.value).where(settings_table.c.key == KEY)
                                  .with_for_update())).scalar()
        sealed = old.get("sealed_bind_password") if isinstance(old, dict) else None
        if bind_password is not None:
            blob = Sealer.from_config(cfg).seal(bind_password.encode(), _CONTEXT)
            sealed = base64.b64encode(blob).decode()
        value = {"settings": settings, "sealed_bind_password": sealed}
        stmt = pg_insert(settings_table).values(key=KEY, value=value)
        await conn.execute(stmt.on_conflict_do_update(index_elements=[settings_table.c.key], set_={"value": value}))


async def clear(engine: AsyncEngine) -> bool:
    """Drop the saved settings (the configuration file's are in effect again); whether there were any."""
    async with engine.begin() as conn:
        res = await conn.execute(delete(settings_table).where(settings_table.c.key == KEY))
    return bool(res.rowcount)


class LDAPSettings:
    """``effective`` cached for ``TTL`` seconds (one per process, on the ``AuthService``)."""

    def __init__(self, cfg: Config, engine: AsyncEngine) -> None:
        self.cfg, self.engine = cfg, engine
        self._cached: tuple[float, Effective] | None = None

    async def get(self) -> Effective:
        now = time.monotonic()
        if self._cached is not None and self._cached[0] > now:
            return self._cached[1]
        found = await effective(self.engine, self.cfg)
        self._cached = (now + TTL, found)
        return found

    def forget(self) -> None:
        """Re-read at the next use (after a change made here)."""
        self._cached = None

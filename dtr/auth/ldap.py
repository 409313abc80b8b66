"""LDAP / Active Directory: logins against the directory and the directory -> dtr sync.

ldap3 is synchronous: every call runs in a worker thread. A search binds as the service account
(``bind_dn``); a login finds the user's entry, then binds as that DN with the given password.
``ldaps://`` and StartTLS verify the server against ``ca_file`` (or the system store).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
from pathlib import Path
from typing import Any

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars

from dtr.config import LDAPConfig

log = logging.getLogger("dtr.ldap")


class DirectoryError(Exception):
    """The directory cannot be reached or searched; the message says why (never a password)."""


@dataclasses.dataclass(frozen=True)
class DirectoryUser:
    username: str
    dn: str
    full_name: str
    email: str


def _first(entry: dict[str, Any], attr: str) -> str:
    value = entry.get(attr)
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value or "")


def _close(conn: ldap3.Connection) -> None:
    with contextlib.suppress(LDAPException, OSError):
        conn.unbind()


class Directory:
    def __init__(self, cfg: LDAPConfig) -> None:
        self.cfg = cfg
        self._bind_password = cfg.bind_password
        if cfg.bind_password_file:
            self._bind_password = Path(cfg.bind_password_file).read_text().strip()
        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED if cfg.verify_tls else ssl.CERT_NONE,
                        ca_certs_file=cfg.ca_file, version=ssl.PROTOCOL_TLS_CLIENT)
        self._server = ldap3.Server(cfg.url, use_ssl=cfg.url.startswith("ldaps://"), tls=tls,
                                    connect_timeout=max(1, int(cfg.timeout)), get_info=ldap3.NONE)

    # -- connections --------------------------------------------------------------------------

    def _bind(self, dn: str, password: str | None) -> ldap3.Connection | None:
        """A connection bound as ``dn`` (anonymous when empty), or None if the directory says no."""
        conn = ldap3.Connection(self._server, user=dn or None, password=password if dn else None,
                                auto_bind=ldap3.AUTO_BIND_NONE, receive_timeout=max(1, int(self.cfg.timeout)),
                                raise_exceptions=False, read_only=True)
        try:
            conn.open()
            if self.cfg.start_tls and not conn.start_tls():
                raise DirectoryError(f"StartTLS with {self.cfg.url} failed: {conn.result.get('description')}")
            if conn.bind():
                return conn
        except (LDAPException, OSError) as e:
            _close(conn)
            raise DirectoryError(f"cannot talk to {self.cfg.url}: {type(e).__name__}: {e}") from None
        _close(conn)
        return None

    def _service(self) -> ldap3.Connection:
        conn = self._bind(self.cfg.bind_dn, self._bind_password)
        if conn is None:
            raise DirectoryError(f"the service account {self.cfg.bind_dn or '(anonymous)'} cannot bind to "
                                 f"{self.cfg.url}: check auth.ldap.bind_dn and its password")
        return conn

    def _search(self, conn: ldap3.Connection, base: str, flt: str, attrs: list[str],
                scope: Any = ldap3.SUBTREE) -> list[dict[str, Any]]:
        entries = conn.extend.standard.paged_search(base, flt, search_scope=scope, attributes=attrs,
                                                    paged_size=500, generator=False)
        if conn.result.get("result") not in (0, None):
            raise DirectoryError(f"search in {base} failed: {conn.result.get('description')}")
        return [{"dn": e["dn"], **e["attributes"]} for e in entries if e.get("type") == "searchResEntry"]

    def _user(self, entry: dict[str, Any]) -> DirectoryUser | None:
        name = _first(entry, self.cfg.username_attr).lower()
        if not name:
            return None
        return DirectoryUser(name, entry["dn"], _first(entry, self.cfg.fullname_attr),
                             _first(entry, self.cfg.email_attr))

    @property
    def _attrs(self) -> list[str]:
        return [self.cfg.username_attr, self.cfg.fullname_attr, self.cfg.email_attr]

    # -- operations (blocking; the async wrappers run them in threads) -------------------------

    def login_blocking(self, username: str, password: str) -> DirectoryUser | None:
        if not password:
            return None  # an empty password is an anonymous bind that "succeeds"
        conn = self._service()
        try:
            flt = f"(&{self.cfg.user_filter}({self.cfg.username_attr}={escape_filter_chars(username)}))"
            found = [u for u in map(self._user, self._search(conn, self.cfg.user_search_base, flt, self._attrs))
                     if u is not None]
        finally:
            conn.unbind()
        if len(found) != 1:
            return None
        user_conn = self._bind(found[0].dn, password)
        if user_conn is None:
            return None
        user_conn.unbind()
        return found[0]

    def users_blocking(self, extra_filter: str = "") -> list[DirectoryUser]:
        conn = self._service()
        try:
            flt = f"(&{self.cfg.user_filter}{extra_filter})" if extra_filter else self.cfg.user_filter
            return [u for u in map(self._user, self._search(conn, self.cfg.user_search_base, flt, self._attrs))
                    if u is not None]
        finally:
            conn.unbind()

    def group_member_dns_blocking(self, group_dn: str, member_attr: str) -> set[str]:
        conn = self._service()
        try:
            entries = self._search(conn, group_dn, "(objectClass=*)", [member_attr], ldap3.BASE)
        finally:
            conn.unbind()
        out: set[str] = set()
        for entry in entries:
            values = entry.get(member_attr) or []
            out.update(str(v).lower() for v in (values if isinstance(values, list) else [values]))
        return out

    async def login(self, username: str, password: str) -> DirectoryUser | None:
        """The directory user if ``password`` binds as them; None if not; DirectoryError if unreachable."""
        try:
            return await asyncio.to_thread(self.login_blocking, username, password)
        except DirectoryError as e:
            log.warning("LDAP login unavailable: %s", e)
        except Exception as e:  # a directory problem must fail the login, not the server
            log.warning("LDAP login failed: %s", type(e).__name__)
        return None

    async def users(self, extra_filter: str = "") -> list[DirectoryUser]:
        return await asyncio.to_thread(self.users_blocking, extra_filter)

    async def group_member_dns(self, group_dn: str, member_attr: str) -> set[str]:
        return await asyncio.to_thread(self.group_member_dns_blocking, group_dn, member_attr)

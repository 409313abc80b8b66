"""Directory (LDAP) settings saved through ``/api/v0/meta/ldap`` on servers whose configuration
file has no LDAP: read back without the password, an update keeping the saved password, bad
values refused, non-admins refused, real slapd logins on the saving replica and on another one
sharing the database, and the saved settings dropped (no directory again)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from tests.auth.client import Client
from tests.auth.constants import ADMIN_AUTH, PASSWORD, auth_config
from tests.auth.slapd import PEOPLE, SERVICE_DN, SERVICE_PW, Slapd, person
from tests.auth.test_ldap import slapd  # noqa: F401  (the fixture)
from tests.servers import DtrProcess


def _settings(server: Slapd, **extra: Any) -> dict[str, Any]:
    return {"url": server.url, "bindDn": SERVICE_DN, "bindPassword": SERVICE_PW, "userSearchBase": PEOPLE,
            "userFilter": "(objectClass=inetOrgPerson)", **extra}


def _person(server: Slapd) -> tuple[str, str]:
    name = f"s{uuid.uuid4().hex[:8]}"
    server.add(person(name, f"Person {name}", f"Ldap-{name}"))
    return name, f"Ldap-{name}"


async def _stored(url: str) -> str:
    """The saved settings' row, as stored."""
    u = make_url(url)
    conn = await asyncpg.connect(host=u.query["host"], port=u.port, user=u.username, database=u.database)
    try:
        return str(await conn.fetchval("SELECT value::text FROM settings WHERE key = 'ldap'"))
    finally:
        await conn.close()


def _logs_in(c: Client, who: tuple[str, str], within: float = 30) -> bool:
    """Whether ``who`` gets a token before ``within`` seconds pass (a replica re-reads the settings)."""
    deadline = time.monotonic() + within
    while True:
        status = c.token([], who).status
        if status == 200 or time.monotonic() > deadline:
            return status == 200
        time.sleep(0.2)


def test_saved_settings_are_checked_read_back_without_the_password_and_used(
        slapd: Slapd, dtr_factory: Callable[..., DtrProcess], tmp_path: Path) -> None:  # noqa: F811
    shared = {**auth_config(), "trust": {"sealing_key_file": str(tmp_path / "sealing.key")}}
    proc = dtr_factory(shared)
    c = Client(proc.url)
    first = _person(slapd)
    assert c.api("GET", "/meta/ldap", ADMIN_AUTH, expect=200).json() == {
        "source": "none", "bindPasswordSet": False, **dict.fromkeys(
            ("url", "userSearchBase", "startTls", "caFile", "verifyTls", "bindDn", "userFilter",
             "usernameAttr", "fullnameAttr", "emailAttr", "timeout"))}
    assert c.token([], first).status == 401  # no directory yet

    # Site admins only.
    user = f"u{uuid.uuid4().hex[:8]}"
    c.api("POST", "/accounts", ADMIN_AUTH, {"name": user, "password": PASSWORD}, expect=201)
    for method, body in (("GET", None), ("PUT", _settings(slapd)), ("DELETE", None)):
        r = c.api(method, "/meta/ldap", (user, PASSWORD), body)
        assert r.status == 403 and r.error_code == "FORBIDDEN", (method, r.body)

    # Values that cannot work are refused, naming the field; nothing is saved.
    for bad, field in ((_settings(slapd, url="http://ldap.example"), "url"),
                       (_settings(slapd, url=slapd.url.replace("ldap://", "ldaps://"), startTls=True), "startTls"),
                       (_settings(slapd, userSearchBase=""), "userSearchBase")):
        r = c.api("PUT", "/meta/ldap", ADMIN_AUTH, bad)
        assert r.status == 400 and r.error_code == "INVALID_PARAMETER", r.body
        assert r.error_message.startswith(f"{field}:"), r.error_message
    for bad in (_settings(slapd, timeout=-1), _settings(slapd, startTls="yes"), {**_settings(slapd), "x": 1}):
        r = c.api("PUT", "/meta/ldap", ADMIN_AUTH, bad)
        assert r.status == 400 and r.error_code == "INVALID_PARAMETER", r.body
    assert c.api("GET", "/meta/ldap", ADMIN_AUTH, expect=200).json()["source"] == "none"

    saved = c.api("PUT", "/meta/ldap", ADMIN_AUTH, _settings(slapd), expect=200)
    assert SERVICE_PW not in saved.body.decode()
    found = c.api("GET", "/meta/ldap", ADMIN_AUTH, expect=200).json()
    assert found["source"] == "stored" and found["bindPasswordSet"] is True and "bindPassword" not in found
    assert found["url"] == slapd.url and found["userSearchBase"] == PEOPLE and found["bindDn"] == SERVICE_DN
    assert c.token([], first).status == 200  # at once on the replica that saved them
    me = c.api("GET", "/accounts/me", first, expect=200).json()
    assert me["isImported"] is True and me["email"] == f"{first[0]}@example.org"

    # Sealed at rest, never in the audit log.
    row = asyncio.run(_stored(proc.config["database"]["url"]))
    assert SERVICE_PW not in row and "sealed_bind_password" in row
    assert SERVICE_PW not in c.api("GET", "/events?pageSize=100", ADMIN_AUTH, expect=200).body.decode()

    # Another replica sharing the database (and the sealing key) uses them too.
    other = DtrProcess(tmp_path / "other", proc.config["database"]["url"], shared).start()
    try:
        assert _logs_in(Client(other.url), _person(slapd))
    finally:
        other.stop()

    # An update without a password keeps the saved one; a wrong one takes effect at once.
    changed = _settings(slapd, fullnameAttr="sn")
    del changed["bindPassword"]
    r = c.api("PUT", "/meta/ldap", ADMIN_AUTH, changed, expect=200).json()
    assert r["bindPasswordSet"] is True and r["fullnameAttr"] == "sn"
    assert c.token([], _person(slapd)).status == 200
    c.api("PUT", "/meta/ldap", ADMIN_AUTH, _settings(slapd, bindPassword="wrong-password"), expect=200)
    assert c.token([], _person(slapd)).status == 401

    # Dropped: the configuration file's settings (none here) are in effect again.
    assert c.api("DELETE", "/meta/ldap", ADMIN_AUTH, expect=200).json()["source"] == "none"
    assert c.token([], _person(slapd)).status == 401

"""``http.trusted_proxies``: X-Forwarded-For/-Proto/-Host count only from a trusted TCP peer."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from typing import Any

import aiohttp
import asyncpg
import pytest
from sqlalchemy.engine import make_url

from dtr.config import ConfigError, load_config
from dtr.ops.proxies import client_of
from tests.auth.client import basic
from tests.auth.constants import ADMIN, ADMIN_PASSWORD, auth_config
from tests.clients.engines import access_log
from tests.servers import DtrProcess

FORWARDED = {"X-Forwarded-For": "198.51.100.9, 203.0.113.7", "X-Forwarded-Proto": "https",
             "X-Forwarded-Host": "registry.example.com"}


async def _login_addresses(proc: DtrProcess) -> list[str]:
    """The client addresses of the login audit records (written in the background: waited for)."""
    u = make_url(proc.config["database"]["url"])
    conn = await asyncpg.connect(host=u.query["host"], port=u.port, user=u.username, database=u.database)
    try:
        for _ in range(100):
            rows = await conn.fetch("SELECT client_addr FROM audit_events WHERE type = 'login' ORDER BY id")
            if rows:
                break
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    return [r["client_addr"] for r in rows]


async def _seen(http: aiohttp.ClientSession, proc: DtrProcess) -> tuple[str, str, list[str]]:
    """(the /v2 challenge, the access log's remote of that request, login audit addresses) for a
    request and a login that both carry the forwarded headers."""
    async with http.get(f"{proc.url}/v2/", headers={**FORWARDED, "X-Request-Id": "fwd-v2"}) as r:
        assert r.status == 401
        challenge = r.headers["WWW-Authenticate"]
    login = {**FORWARDED, "Authorization": basic(ADMIN, ADMIN_PASSWORD)}
    async with http.get(f"{proc.url}/auth/token", params={"service": "dtr-lb"}, headers=login) as r:
        assert r.status == 200, await r.text()
    remote = next(rec["remote"] for rec in access_log(proc.log_path, proc.url) if rec["request_id"] == "fwd-v2")
    return challenge, remote, await _login_addresses(proc)


def _proxied(trusted: list[str], **http_extra: Any) -> dict[str, Any]:
    return {**auth_config(service="dtr-lb"), "http": {"trusted_proxies": trusted, **http_extra}}


async def test_a_trusted_proxy_names_the_client_scheme_and_host(
    dtr_factory: Callable[..., DtrProcess], http: aiohttp.ClientSession
) -> None:
    proc = dtr_factory(_proxied(["10.0.0.0/8", "127.0.0.1"]))
    challenge, remote, logins = await _seen(http, proc)
    assert 'realm="https://registry.example.com/auth/token"' in challenge
    assert remote == "203.0.113.7"  # the rightmost untrusted hop: the leftmost is the client's own claim
    assert logins == ["203.0.113.7"]


async def test_external_url_keeps_the_realm_behind_a_trusted_proxy(
    dtr_factory: Callable[..., DtrProcess], http: aiohttp.ClientSession
) -> None:
    proc = dtr_factory(_proxied(["127.0.0.0/8"], external_url="https://dtr.example.org"))
    challenge, remote, _ = await _seen(http, proc)
    assert 'realm="https://dtr.example.org/auth/token"' in challenge
    assert remote == "203.0.113.7"


async def test_an_untrusted_peer_s_forwarded_headers_are_ignored(
    dtr_factory: Callable[..., DtrProcess], http: aiohttp.ClientSession
) -> None:
    proc = dtr_factory(_proxied(["10.0.0.0/8"]))
    challenge, remote, logins = await _seen(http, proc)
    assert f'realm="{proc.url}/auth/token"' in challenge
    assert remote == "127.0.0.1"
    assert logins == ["127.0.0.1"]


def test_the_client_is_the_rightmost_untrusted_hop() -> None:
    nets = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128")]
    assert client_of("192.0.2.1", ["203.0.113.7"], nets) is None  # the peer is no proxy of ours
    assert client_of("10.1.1.1", [], nets) == "10.1.1.1"
    assert client_of("10.1.1.1", ["6.6.6.6", "203.0.113.7", "10.2.2.2"], nets) == "203.0.113.7"
    assert client_of("::ffff:10.1.1.1", ["203.0.113.7"], nets) == "203.0.113.7"  # IPv4-mapped peer
    assert client_of("::1", ["[2001:db8::5]"], nets) == "2001:db8::5"
    assert client_of("10.1.1.1", ["203.0.113.7", "not-an-address"], nets) == "10.1.1.1"
    assert client_of("10.1.1.1", ["10.3.3.3", "10.2.2.2"], nets) == "10.3.3.3"  # all trusted: the farthest


def test_trusted_proxies_must_be_networks(tmp_path: Any) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("http: {trusted_proxies: [10.0.0.0/8, 'lb.example.com']}\n")
    with pytest.raises(ConfigError, match=r"http.trusted_proxies: 'lb.example.com' is not an address"):
        load_config(path, environ={})
    path.write_text("http: {trusted_proxies: [10.0.0.0/8, '::1']}\n")
    assert load_config(path, environ={}).http.trusted_proxies == ("10.0.0.0/8", "::1")

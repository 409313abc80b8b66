"""Accounts around the API: the first admin, the CLI, the password policy, brute-force slow-down,
token expiry, audit events, and no secret in the server log."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.auth.client import Client
from tests.auth.constants import ADMIN_AUTH, PASSWORD, auth_config
from tests.cluster.keys import signing_key
from tests.servers import ROOT, DtrProcess


def _events_once(c: Client, query: str, count: int, within: float = 20) -> list[dict[str, Any]]:
    """The events at ``query`` once there are ``count`` of them (they are written off the request path)."""
    deadline = time.monotonic() + within
    while True:
        events: list[dict[str, Any]] = c.api("GET", query, ADMIN_AUTH, expect=200).json()["events"]
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.1)


def dtr_cli(proc: DtrProcess, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dtr", *args, "--config", str(proc.config_path)], input=stdin,
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_first_admin_gets_a_random_password_printed_once(dtr_factory: Callable[..., DtrProcess]) -> None:
    proc = dtr_factory({"auth": {"enabled": True}})
    m = re.search(r"the first site admin is 'admin' with password (\S+)", proc.log_path.read_text())
    assert m, proc.log_tail()
    c = Client(proc.url)
    assert c.api("GET", "/accounts/me", ("admin", m.group(1))).json()["isAdmin"] is True
    proc.stop()
    proc.start()
    assert proc.log_path.read_text().count("the first site admin is") == 1


def test_first_admin_password_from_a_file(dtr_factory: Callable[..., DtrProcess], tmp_path: Path) -> None:
    secret = tmp_path / "admin-password"
    secret.write_text("From-a-file-123\n")
    proc = dtr_factory({"auth": {"enabled": True, "admin_username": "root", "admin_password_file": str(secret)}})
    assert "the first site admin is" not in proc.log_path.read_text()
    assert Client(proc.url).api("GET", "/accounts/me", ("root", "From-a-file-123")).status == 200


def test_cli_creates_users_and_resets_passwords(dtr_factory: Callable[..., DtrProcess]) -> None:
    proc = dtr_factory(auth_config())
    c = Client(proc.url)
    p = dtr_cli(proc, "users", "create", "carol", "--password-stdin", "--admin", stdin="Car0l-password\n")
    assert p.returncode == 0, p.stderr
    me = c.api("GET", "/accounts/me", ("carol", "Car0l-password"), expect=200).json()
    assert me["isAdmin"] is True
    p = dtr_cli(proc, "users", "create", "carol", "--password-stdin", stdin="Car0l-password\n")
    assert p.returncode == 1 and "taken" in p.stderr
    p = dtr_cli(proc, "users", "create", "dave", "--password-stdin", stdin="short\n")
    assert p.returncode == 1 and "at least 8 characters" in p.stderr
    p = dtr_cli(proc, "users", "reset-password", "carol", "--password-stdin", stdin="N3w-carol-pass\n")
    assert p.returncode == 0, p.stderr
    assert c.api("GET", "/accounts/me", ("carol", "Car0l-password")).status == 401
    assert c.api("GET", "/accounts/me", ("carol", "N3w-carol-pass")).status == 200
    p = dtr_cli(proc, "users", "reset-password", "nobody", "--password-stdin", stdin="N3w-carol-pass\n")
    assert p.returncode == 1 and "no account named" in p.stderr


def test_password_policy_on_the_api(client: Client) -> None:
    for bad, why in (("short", "at least 8"), ("aaaaaaaaaaaa", "4 different"), ("policyuser", "differ")):
        r = client.api("POST", "/accounts", ADMIN_AUTH, {"name": "policyuser", "password": bad})
        assert r.status == 400 and r.error_code == "INVALID_PASSWORD" and why in r.error_message


def test_repeated_failures_are_slowed_down(dtr_factory: Callable[..., DtrProcess]) -> None:
    proc = dtr_factory(auth_config(failed_login_threshold=3, failed_login_address_threshold=8, lockout_base=60))
    c = Client(proc.url)
    for name in ("victim", "bystander"):
        c.api("POST", "/accounts", ADMIN_AUTH, {"name": name, "password": PASSWORD}, expect=201)
    for _ in range(3):
        assert c.token([], ("victim", "guess-guess")).status == 401
    r = c.token([], ("victim", PASSWORD))
    assert r.status == 429 and int(r.headers["Retry-After"]) > 0 and "too many failed logins" in r.error_message
    r = c.api("GET", "/accounts/me", ("victim", PASSWORD))
    assert r.status == 429 and r.error_code == "TOOMANYREQUESTS" and int(r.headers["Retry-After"]) > 0
    assert c.token([], ("bystander", PASSWORD)).status == 200
    events = _events_once(c, "/events?type=login_failed&pageSize=100", 3)
    assert [e["actor"] for e in events] == ["victim"] * 3
    assert all(e["clientAddress"] == "127.0.0.1" for e in events)
    # Per client address: failures spread over many names lock the address out too.
    for i in range(5):
        assert c.token([], (f"ghost{i}", "guess-guess")).status == 401
    assert c.token([], ("bystander", PASSWORD)).status == 429


def test_failures_count_across_replicas(dtr_factory: Callable[..., DtrProcess], tmp_path: Path) -> None:
    """Guesses spread over two replicas of one database are throttled as if sent to one."""
    extra = auth_config(failed_login_threshold=4, failed_login_address_threshold=1000, lockout_base=60)
    a = dtr_factory(extra)
    b = DtrProcess(tmp_path / "replica", a.config["database"]["url"], extra).start()
    try:
        ca, cb = Client(a.url), Client(b.url)
        ca.api("POST", "/accounts", ADMIN_AUTH, {"name": "spread", "password": PASSWORD}, expect=201)
        for c in (ca, cb, ca, cb):
            assert c.token([], ("spread", "guess-guess")).status == 401
        for c in (ca, cb):
            r = c.token([], ("spread", PASSWORD))
            assert r.status == 429 and "too many failed logins" in r.error_message, (r.status, r.error_message)
            assert 50 < int(r.headers["Retry-After"]) <= 61
    finally:
        b.stop()


def _signing_key(proc: DtrProcess) -> ec.EllipticCurvePrivateKey:
    return signing_key(proc.config["database"]["url"])


def test_expired_and_foreign_tokens(client: Client, auth_dtr: DtrProcess) -> None:
    kid = jwt.get_unverified_header(client.bearer([], ADMIN_AUTH))["kid"]
    now = int(time.time())
    claims = {"iss": "dtr", "sub": "admin", "aud": auth_dtr.host, "iat": now - 600, "nbf": now - 600,
              "exp": now - 60, "access": [{"type": "registry", "name": "catalog", "actions": ["*"]}]}
    expired = jwt.encode(claims, _signing_key(auth_dtr), "ES256", headers={"kid": kid})
    r = client.request("GET", "/v2/_catalog", bearer=expired)
    assert r.status == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    valid = jwt.encode({**claims, "exp": now + 60}, _signing_key(auth_dtr), "ES256", headers={"kid": kid})
    assert client.request("GET", "/v2/_catalog", bearer=valid).status == 200
    foreign = jwt.encode({**claims, "exp": now + 60}, ec.generate_private_key(ec.SECP256R1()), "ES256",
                         headers={"kid": kid})
    assert client.request("GET", "/v2/_catalog", bearer=foreign).status == 401
    other_service = jwt.encode({**claims, "exp": now + 60, "aud": "elsewhere"}, _signing_key(auth_dtr), "ES256",
                               headers={"kid": kid})
    assert client.request("GET", "/v2/_catalog", bearer=other_service).status == 401


def test_audit_events_record_changes_pushes_and_logins(client: Client, world: object) -> None:
    from tests.auth.world import World, push_image

    assert isinstance(world, World)
    owner = world.users["owner"]
    assert owner is not None
    name = f"audited-{uuid.uuid4().hex[:6]}"
    client.api("POST", f"/repositories/{world.org}", owner, {"name": name}, expect=201)
    client.api("PUT", f"/repositories/{world.org}/{name}/teamAccess/t-ro", owner, {"accessLevel": "read-only"},
               expect=200)
    digest = push_image(client, f"{world.org}/{name}", "v1", owner)
    token = client.bearer([f"repository:{world.org}/{name}:delete"], owner)
    assert client.request("DELETE", f"/v2/{world.org}/{name}/manifests/{digest}", bearer=token).status == 202
    client.api("DELETE", f"/repositories/{world.org}/{name}", owner, expect=204)
    full = f"{world.org}/{name}"
    events = _events_once(client, f"/events?object={full}&pageSize=50", 5)
    types = [e["type"] for e in reversed(events)]
    assert types == ["repo_create", "repo_team_access_set", "push", "delete_manifest", "repo_delete"], types
    assert {e["actor"] for e in events} == {owner[0]}
    assert events[0]["clientAddress"] == "127.0.0.1" and events[0]["createdAt"].endswith("Z")
    logins = client.api("GET", f"/events?type=login&actor={owner[0]}&pageSize=1", ADMIN_AUTH, expect=200)
    assert logins.json()["events"] and "X-Next-Page-Start" in logins.headers
    nxt = logins.headers["X-Next-Page-Start"]
    page2 = client.api("GET", f"/events?type=login&actor={owner[0]}&pageSize=1&pageStart={nxt}", ADMIN_AUTH)
    assert page2.json()["events"][0]["id"] == int(nxt)
    assert client.api("GET", "/events", owner).status == 403
    assert client.api("GET", "/events?publishedAfter=not-a-time", ADMIN_AUTH).status == 400


def test_openapi_document_lists_the_api(client: Client) -> None:
    doc = client.api("GET", "/docs.json", expect=200).json()
    assert doc["openapi"].startswith("3.")
    for path in ("/api/v0/accounts", "/api/v0/repositories/{namespace}/{repo}/teamAccess/{team}",
                 "/api/v0/repositoryNamespaces/{namespace}/teamAccess", "/api/v0/meta/settings",
                 "/api/v0/api_tokens", "/api/v0/events"):
        assert path in doc["paths"], path
    assert "post" in doc["paths"]["/api/v0/accounts"]


def test_no_secret_ever_reaches_the_log(dtr_factory: Callable[..., DtrProcess]) -> None:
    proc = dtr_factory({**auth_config(), "log": {"level": "debug"}})
    c = Client(proc.url)
    secrets = ["Adm1n-pass-word", PASSWORD, "wr0ng-Password"]
    c.api("POST", "/accounts", ADMIN_AUTH, {"name": "leaky", "password": PASSWORD}, expect=201)
    c.api("POST", "/accounts", ADMIN_AUTH, {"name": "weak", "password": "x"})
    c.token(["repository:leaky/x:pull"], ("leaky", PASSWORD), offline_token="true")
    c.token([], ("leaky", "wr0ng-Password"))
    r = c.request("POST", "/auth/token", form={"grant_type": "password", "username": "leaky", "password": PASSWORD,
                                               "access_type": "offline", "service": proc.host})
    refresh, access = r.json()["refresh_token"], r.json()["access_token"]
    c.request("POST", "/auth/token", form={"grant_type": "refresh_token", "refresh_token": refresh})
    c.request("POST", "/auth/token", form={"grant_type": "password", "username": "leaky", "password": "wr0ng-Password"})
    pat = c.api("POST", "/api_tokens", ("leaky", PASSWORD), {"tokenLabel": "x"}, expect=201).json()["token"]
    c.api("GET", "/accounts/me", ("leaky", pat), expect=200)
    c.request("GET", "/v2/", bearer=access)
    c.api("POST", "/accounts/leaky/changePassword", ("leaky", PASSWORD),
          {"oldPassword": "wr0ng-Password", "newPassword": "Chang3d-password"})
    p = dtr_cli(proc, "users", "create", "clicreated", "--password-stdin", stdin="Cl1-password\n")
    assert p.returncode == 0
    secrets += [refresh, access, pat, "Cl1-password", "Chang3d-password"]
    proc.stop()
    log = proc.log_path.read_text()
    assert '"path": "/auth/token"' in log  # the requests are in the log, their secrets are not
    for secret in secrets:
        assert secret not in log, f"a secret ({secret[:6]}...) is in the server log"
    for line in log.splitlines():
        if line.startswith("{"):
            assert "Authorization" not in json.loads(line).get("msg", "")


@pytest.mark.parametrize("bad", ["Basic !!!", "Digest abc", "Basic " + "YWJj"])
def test_malformed_authorization_is_401_not_500(client: Client, bad: str) -> None:
    r = client.request("GET", "/api/v0/accounts/me", headers={"Authorization": bad})
    assert r.status == 401 and r.error_code == "UNAUTHORIZED"
    r = client.request("GET", "/auth/token", headers={"Authorization": bad})
    assert r.status == 401

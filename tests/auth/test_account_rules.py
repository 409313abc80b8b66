"""The accounts rules through /api/v0: the last site admin stays, the first admin's password obeys
the policy, personal access tokens neither make tokens nor change passwords, token expiry in the
future, e-mail addresses, LDAP sync needs LDAP, usage before the first count, readable durations,
and changePassword's oldPassword."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import uuid
from collections.abc import Callable

import pytest

from tests.auth.client import Client
from tests.auth.constants import ADMIN, ADMIN_AUTH, PASSWORD, auth_config
from tests.servers import ROOT, DtrProcess


def _user(client: Client, admin: bool = False) -> tuple[str, str]:
    name = f"u{uuid.uuid4().hex[:10]}"
    client.api("POST", "/accounts", ADMIN_AUTH, {"name": name, "password": PASSWORD, "isAdmin": admin}, expect=201)
    return name, PASSWORD


def test_the_last_active_site_admin_stays(dtr_factory: Callable[..., DtrProcess]) -> None:
    c = Client(dtr_factory(auth_config()).url)
    last = "{} is the last active site admin: make another user admin first"
    for change in ({"isAdmin": False}, {"isActive": False}):
        r = c.api("PATCH", f"/accounts/{ADMIN}", ADMIN_AUTH, change)
        assert (r.status, r.error_code, r.error_message) == (409, "CONFLICT", last.format(ADMIN))
    # With a second admin, either may step down; then the other is the last.
    alice = _user(c, admin=True)
    c.api("PATCH", f"/accounts/{ADMIN}", alice, {"isAdmin": False}, expect=200)
    r = c.api("PATCH", f"/accounts/{alice[0]}", alice, {"isActive": False})
    assert r.status == 409 and r.error_message == last.format(alice[0])
    assert c.api("GET", "/accounts?filter=admins", alice, expect=200).json()["accounts"][0]["name"] == alice[0]
    # An inactive admin does not count: deactivating the other admin leaves alice the last one.
    c.api("PATCH", f"/accounts/{ADMIN}", alice, {"isAdmin": True}, expect=200)
    c.api("PATCH", f"/accounts/{ADMIN}", alice, {"isActive": False}, expect=200)
    assert c.api("PATCH", f"/accounts/{alice[0]}", alice, {"isAdmin": False}).status == 409
    c.api("DELETE", f"/accounts/{ADMIN}", alice, expect=204)


def _refused(proc: DtrProcess) -> str:
    """The one line (besides JSON log lines) ``dtr serve`` refuses to start with, exiting 2."""
    p = subprocess.run([sys.executable, "-m", "dtr", "serve", "--config", str(proc.config_path)],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    lines = [line for line in p.stderr.splitlines() if not line.startswith("{")]
    assert p.returncode == 2 and len(lines) == 1, p.stderr
    return lines[0]


@pytest.mark.parametrize(("auth", "why"), [
    ({"admin_password": "short"}, "the password must be at least 8 characters long"),
    ({"admin_password": "Long-enough-1", "min_password_length": 20}, "at least 20 characters"),
    ({"admin_password": "aaaaaaaaaaaa"}, "at least 4 different characters"),
    ({"admin_username": "root", "admin_password": "Root"}, "at least 8"),
])
def test_the_first_admins_password_obeys_the_policy(dtr_factory: Callable[..., DtrProcess],
                                                    auth: dict[str, object], why: str) -> None:
    message = _refused(dtr_factory({"auth": {"enabled": True, **auth}}, start=False))
    assert message.startswith("dtr: configuration error: auth.admin_password: ") and why in message, message


def test_the_first_admins_password_file_obeys_the_policy(dtr_factory: Callable[..., DtrProcess],
                                                         tmp_path_factory: pytest.TempPathFactory) -> None:
    secret = tmp_path_factory.mktemp("secret") / "admin-password"
    secret.write_text("weak\n")
    # (A missing file is the start-up checks' one line and exit 1: tests/test_startup.py.)
    message = _refused(dtr_factory({"auth": {"enabled": True, "admin_password_file": str(secret)}}, start=False))
    assert message.startswith("dtr: configuration error: auth.admin_password_file: ") and "at least 8" in message


def test_access_tokens_neither_make_tokens_nor_change_passwords(client: Client) -> None:
    owner = _user(client)
    pat = client.api("POST", "/api_tokens", owner, {"tokenLabel": "ci"}, expect=201).json()["token"]
    with_pat = (owner[0], pat)
    assert client.api("GET", "/accounts/me", with_pat, expect=200).json()["name"] == owner[0]
    change = {"oldPassword": PASSWORD, "newPassword": "N3w-pass-word"}
    for auth in (with_pat, (ADMIN, client.api("POST", "/api_tokens", ADMIN_AUTH, {}, expect=201).json()["token"])):
        r = client.api("POST", "/api_tokens", auth, {"tokenLabel": "more"})
        assert r.status == 403 and r.error_code == "FORBIDDEN"
        assert r.error_message == ("a personal access token may not be used for creating access tokens: "
                                   "authenticate with your password")
        r = client.api("POST", f"/accounts/{owner[0]}/changePassword", auth, change)
        assert r.status == 403 and "may not be used for changing passwords" in r.error_message
    # A bearer token (session) obtained with the access token, or refreshed from one, is no better ...
    for bearer in (client.bearer([], with_pat), _refreshed(client, with_pat)):
        r = client.request("POST", "/api/v0/api_tokens", bearer=bearer, body={"tokenLabel": "more"})
        assert r.status == 403 and "personal access token" in r.error_message
        r = client.request("POST", f"/api/v0/accounts/{owner[0]}/changePassword", bearer=bearer, body=change)
        assert r.status == 403
        assert client.request("GET", "/api/v0/api_tokens", bearer=bearer).status == 200  # reading is fine
    # ... than one obtained with the password, which may.
    for bearer in (client.bearer([], owner), _refreshed(client, owner)):
        r = client.request("POST", "/api/v0/api_tokens", bearer=bearer, body={"tokenLabel": "session"})
        assert r.status == 201, r.body
    client.api("POST", f"/accounts/{owner[0]}/changePassword", owner, change, expect=200)


def _refreshed(client: Client, auth: tuple[str, str]) -> str:
    """An access token from a refresh token obtained with ``auth``."""
    refresh = client.token([], auth, offline_token="true").json()["refresh_token"]
    r = client.request("POST", "/auth/token", form={"grant_type": "refresh_token", "refresh_token": refresh})
    assert r.status == 200, r.body
    return str(r.json()["access_token"])


def test_expiry_in_the_past_is_refused(client: Client) -> None:
    owner = _user(client)
    for past in ("2000-01-01T00:00:00Z", (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)).isoformat()):
        r = client.api("POST", "/api_tokens", owner, {"tokenLabel": "old", "expiresAt": past})
        assert (r.status, r.error_code, r.error_message) == (400, "INVALID_PARAMETER", "expiresAt is in the past")
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    client.api("POST", "/api_tokens", owner, {"tokenLabel": "new", "expiresAt": future}, expect=201)


@pytest.mark.parametrize("bad", ["no-at-sign", "two@@example.com", "a@b@example.com", "@example.com",
                                 "name@localhost", "name@.example.com", "name@example..com", "na me@example.com",
                                 "name@example.com\n", "name@exam\tple.com", "x" * 243 + "@example.com"])
def test_email_addresses_are_checked(client: Client, bad: str) -> None:
    r = client.api("POST", "/accounts", ADMIN_AUTH, {"name": f"m{uuid.uuid4().hex[:8]}", "password": PASSWORD,
                                                     "email": bad})
    assert r.status == 400 and r.error_code == "INVALID_PARAMETER" and r.error_message.startswith("email: "), r.body
    owner = _user(client)
    r = client.api("PATCH", f"/accounts/{owner[0]}", owner, {"email": bad})
    assert r.status == 400 and r.error_code == "INVALID_PARAMETER" and "email" in r.error_message


def test_good_email_addresses_and_clearing(client: Client) -> None:
    owner = _user(client)
    for good in ("dev@example.com", "first.last+tag@sub.example.org", "ünï@exämple.de", ""):
        assert client.api("PATCH", f"/accounts/{owner[0]}", owner, {"email": good}, expect=200).json()["email"] == good


def test_member_sync_needs_ldap(client: Client) -> None:
    org = f"o{uuid.uuid4().hex[:8]}"
    client.api("POST", "/accounts", ADMIN_AUTH, {"name": org, "isOrg": True}, expect=201)
    client.api("POST", f"/accounts/{org}/teams", ADMIN_AUTH, {"name": "devs"}, expect=201)
    path = f"/accounts/{org}/teams/devs/memberSyncConfig"
    r = client.api("PUT", path, ADMIN_AUTH, {"enableSync": True, "groupDN": "cn=devs,dc=example,dc=org"})
    assert r.status == 400 and r.error_code == "INVALID_OPERATION"
    assert r.error_message.startswith("LDAP is not configured: ")
    for blank in ({"groupDN": "  "}, {"selectGroupMembers": False, "searchFilter": " "}):
        r = client.api("PUT", path, ADMIN_AUTH, {"enableSync": True, **blank})
        assert r.status == 400 and r.error_code == "INVALID_PARAMETER", r.body
        assert ("groupDN" if "groupDN" in blank else "searchFilter") in r.error_message
    assert client.api("PUT", path, ADMIN_AUTH, {"enableSync": False}, expect=200).json()["enableSync"] is False


def test_usage_before_the_first_count(client: Client) -> None:
    owner = _user(client)
    client.api("POST", f"/repositories/{owner[0]}", owner, {"name": "app"}, expect=201)
    zero = {"bytes": 0, "uniqueBytes": 0, "blobs": 0, "manifests": 0}
    for path, name in ((f"/usage/repositories/{owner[0]}/app", f"{owner[0]}/app"),
                       (f"/usage/namespaces/{owner[0]}", owner[0])):
        body = client.api("GET", path, ADMIN_AUTH, expect=200).json()
        assert {k: body[k] for k in zero} == zero and body["name"] == name and "updatedAt" in body
    r = client.api("GET", f"/usage/repositories/{owner[0]}/nothing", ADMIN_AUTH)
    assert r.status == 404 and r.error_code == "NO_SUCH_REPOSITORY"
    r = client.api("GET", "/usage/namespaces/nobody-at-all", ADMIN_AUTH)
    assert r.status == 404 and r.error_code == "NO_SUCH_NAMESPACE"


def test_durations_read_well(dtr_factory: Callable[..., DtrProcess]) -> None:
    from dtr.auth.throttle import duration

    assert [duration(s) for s in (0.2, 1, 2, 59.5, 60, 61, 120, 599.9, 3600, 5400, 7200)] == [
        "1 second", "1 second", "2 seconds", "1 minute", "1 minute", "61 seconds", "2 minutes", "10 minutes",
        "1 hour", "90 minutes", "2 hours"]
    c = Client(dtr_factory(auth_config(failed_login_threshold=1, lockout_base=600, lockout_max=600)).url)
    owner = _user(c)
    assert c.token([], (owner[0], "guess-guess")).status == 401
    r = c.api("GET", "/accounts/me", owner)
    assert r.status == 429 and r.error_message == "too many failed logins; try again in 10 minutes"


def test_change_password_needs_the_old_one(client: Client) -> None:
    owner = _user(client)
    r = client.api("POST", f"/accounts/{owner[0]}/changePassword", owner, {"newPassword": "N3w-pass-word"})
    assert (r.status, r.error_code, r.error_message) == (400, "INVALID_PARAMETER", "oldPassword is required")
    r = client.api("POST", f"/accounts/{owner[0]}/changePassword", owner,
                   {"oldPassword": "wr0ng-Password", "newPassword": "N3w-pass-word"})
    assert (r.status, r.error_code, r.error_message) == (403, "FORBIDDEN", "oldPassword is wrong")
    client.api("POST", f"/accounts/{owner[0]}/changePassword", ADMIN_AUTH, {"newPassword": "N3w-pass-word"},
               expect=200)  # site admins need none for others

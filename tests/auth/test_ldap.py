"""LDAP against a real slapd: login through the directory (plain, StartTLS, LDAPS), attribute
mapping, and ``dtr ldap sync`` (group and filter teams, departed users deactivated, never deleted)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.auth.client import Client
from tests.auth.constants import ADMIN_AUTH, auth_config
from tests.auth.slapd import GROUPS, INSTALL, PEOPLE, SERVICE_DN, SERVICE_PW, Slapd, group, person
from tests.auth.test_accounts import dtr_cli
from tests.servers import DtrProcess, require_binary


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    binary = require_binary("slapd", INSTALL)
    require_binary("ldapadd", INSTALL)
    server = Slapd(tmp_path_factory.mktemp("slapd"), binary).start()
    try:
        yield server
    finally:
        server.stop()


def ldap_config(server: Slapd, **extra: Any) -> dict[str, Any]:
    ldap = {"url": server.url, "bind_dn": SERVICE_DN, "bind_password": SERVICE_PW,
            "user_search_base": PEOPLE, "user_filter": "(objectClass=inetOrgPerson)", **extra}
    return auth_config(ldap=ldap)


def _people(server: Slapd, n: int) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    names = [f"p{tag}{i}" for i in range(n)]
    server.add("".join(person(name, f"Person {name.title()}", f"Ldap-{name}") for name in names))
    return names


@pytest.mark.parametrize("mode", ["plain", "starttls", "ldaps"])
def test_login_through_the_directory(slapd: Slapd, dtr_factory: Callable[..., DtrProcess], mode: str) -> None:
    extra: dict[str, Any] = {}
    if mode == "starttls":
        extra = {"start_tls": True, "ca_file": str(slapd.ca)}
    elif mode == "ldaps":
        extra = {"url": slapd.ldaps_url, "ca_file": str(slapd.ca)}
    proc = dtr_factory(ldap_config(slapd, **extra))
    c = Client(proc.url)
    (name,) = _people(slapd, 1)
    assert c.token([], (name, "wrong-password")).status == 401
    r = c.token([], (name, f"Ldap-{name}"))
    assert r.status == 200, r.body
    me = c.api("GET", "/accounts/me", (name, f"Ldap-{name}"), expect=200).json()
    assert me["isImported"] is True and me["fullName"] == f"Person {name.title()}"
    assert me["email"] == f"{name}@example.org"
    # The local admin still logs in with the local password; directory users cannot set one here.
    assert c.token([], ADMIN_AUTH).status == 200
    r = c.api("POST", f"/accounts/{name}/changePassword", ADMIN_AUTH, {"newPassword": "Local-passw0rd"})
    assert r.status == 400 and "directory" in r.error_message


def test_unverifiable_directory_certificate_fails_closed(slapd: Slapd, dtr_factory: Callable[..., DtrProcess]
                                                         ) -> None:
    proc = dtr_factory(ldap_config(slapd, start_tls=True))  # the test CA is not in the system store
    (name,) = _people(slapd, 1)
    r = Client(proc.url).token([], (name, f"Ldap-{name}"))
    assert r.status == 401
    assert "StartTLS" in proc.log_path.read_text()


def test_sync_teams_and_deactivate_departed_users(slapd: Slapd, dtr_factory: Callable[..., DtrProcess]) -> None:
    proc = dtr_factory(ldap_config(slapd))
    c = Client(proc.url)
    a, b, d = _people(slapd, 3)
    gname = f"devs-{uuid.uuid4().hex[:6]}"
    slapd.add(group(gname, [a, b]))
    org = "ldaporg"
    c.api("POST", "/accounts", ADMIN_AUTH, {"name": org, "isOrg": True}, expect=201)
    for team in ("devs", "filtered"):
        c.api("POST", f"/accounts/{org}/teams", ADMIN_AUTH, {"name": team}, expect=201)
    c.api("PUT", f"/accounts/{org}/teams/devs/memberSyncConfig", ADMIN_AUTH,
          {"enableSync": True, "selectGroupMembers": True, "groupDN": f"cn={gname},{GROUPS}"}, expect=200)
    c.api("PUT", f"/accounts/{org}/teams/filtered/memberSyncConfig", ADMIN_AUTH,
          {"enableSync": True, "selectGroupMembers": False, "searchFilter": f"(uid={d})"}, expect=200)
    c.api("POST", f"/repositories/{org}", ADMIN_AUTH, {"name": "app"}, expect=201)
    c.api("PUT", f"/repositories/{org}/app/teamAccess/devs", ADMIN_AUTH, {"accessLevel": "read-write"}, expect=200)
    p = dtr_cli(proc, "ldap", "sync")
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert {a, b, d} <= set(report["created"])
    assert report["teams"][f"{org}/devs"]["added"] == sorted([a, b])
    assert report["teams"][f"{org}/filtered"]["added"] == [d]

    def members(team: str) -> set[str]:
        r = c.api("GET", f"/accounts/{org}/teams/{team}/members", ADMIN_AUTH, expect=200)
        return {m["member"]["name"] for m in r.json()["members"]}

    assert members("devs") == {a, b} and members("filtered") == {d}
    # A synced member gets the team's grant on the registry.
    claims = c.token([f"repository:{org}/app:pull,push"], (a, f"Ldap-{a}")).json()["token"]
    assert c.request("POST", f"/v2/{org}/app/blobs/uploads/", bearer=claims).status == 202
    # b leaves the group, a leaves the directory.
    slapd.modify(f"dn: cn={gname},{GROUPS}\nchangetype: modify\ndelete: member\nmember: uid={b},{PEOPLE}\n")
    slapd.delete(f"uid={a},{PEOPLE}")
    p = dtr_cli(proc, "ldap", "sync")
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert a in report["deactivated"]
    assert members("devs") == set()
    account = c.api("GET", f"/accounts/{a}", ADMIN_AUTH, expect=200).json()
    assert account["isActive"] is False  # deactivated, never deleted
    assert c.token([], (a, f"Ldap-{a}")).status == 401
    events = c.api("GET", "/events?type=ldap_sync", ADMIN_AUTH, expect=200).json()["events"]
    assert len(events) == 2


def test_sync_reports_an_unreachable_directory(dtr_factory: Callable[..., DtrProcess]) -> None:
    from tests.servers import free_port

    proc = dtr_factory(auth_config(ldap={"url": f"ldap://127.0.0.1:{free_port()}", "user_search_base": PEOPLE,
                                         "timeout": 2}))
    p = dtr_cli(proc, "ldap", "sync")
    assert p.returncode == 1 and "LDAP sync failed" in p.stderr and "cannot talk to" in p.stderr


def test_sync_never_deactivates_the_last_active_site_admin(slapd: Slapd,
                                                           dtr_factory: Callable[..., DtrProcess]) -> None:
    proc = dtr_factory(ldap_config(slapd))
    c = Client(proc.url)
    (boss,) = _people(slapd, 1)
    assert dtr_cli(proc, "ldap", "sync").returncode == 0
    c.api("PATCH", f"/accounts/{boss}", ADMIN_AUTH, {"isAdmin": True}, expect=200)
    c.api("PATCH", "/accounts/admin", (boss, f"Ldap-{boss}"), {"isAdmin": False}, expect=200)
    slapd.delete(f"uid={boss},{PEOPLE}")  # the only site admin leaves the directory
    p = dtr_cli(proc, "ldap", "sync")
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["kept"] == [boss] and boss not in report["deactivated"]
    assert c.api("GET", f"/accounts/{boss}", ADMIN_AUTH, expect=200).json()["isActive"] is True

"""Tokens for GUN scopes and the trust routes' access against a dtr with auth on: a GUN
(``repository:127.0.0.1:5000/ns/app:pull,push``) is decided on its repository and granted under
the whole GUN; pull is read-only, push read-write, ``*`` admin. Deleting a repository through
the API deletes its trust data."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.auth.client import Client, Response
from tests.auth.constants import ADMIN_AUTH, auth_config
from tests.auth.world import World, build_world
from tests.servers import DtrProcess, create_database
from tests.trust.tufclient import Repo, multipart


@pytest.fixture(scope="module")
def server(pg_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DtrProcess]:
    proc = DtrProcess(tmp_path_factory.mktemp("dtr-trust-auth"), create_database(pg_uri),
                      auth_config(failed_login_address_threshold=100000))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(server: DtrProcess) -> Client:
    return Client(server.url)


@pytest.fixture(scope="module")
def world(client: Client) -> World:
    return build_world(client)


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def granted(client: Client, scope: str, who: tuple[str, str] | None) -> dict[str, list[str]]:
    return {a["name"]: a["actions"] for a in claims(client.bearer([scope], who))["access"]}


def error(r: Response) -> dict[str, Any]:
    return dict(r.json()["errors"][0])


@pytest.mark.parametrize(("role", "app", "pub"), [
    ("anonymous", [], ["pull"]), ("outsider", [], ["pull"]), ("inactive", [], []), ("ro", ["pull"], ["pull"]),
    ("rw", ["pull", "push"], ["pull"]), ("nsrw", ["pull", "push"], ["pull", "push"]),
    ("adm", ["*", "pull", "push"], ["pull"]), ("owner", ["*", "pull", "push"], ["*", "pull", "push"]),
    ("admin", ["*", "pull", "push"], ["*", "pull", "push"]),
])
def test_gun_scopes_are_granted_by_the_repository_level(client: Client, server: DtrProcess, world: World,
                                                         role: str, app: list[str], pub: list[str]) -> None:
    who = world.users[role]
    if role == "inactive":
        assert client.token([f"repository:{server.host}/{world.app}:pull"], who).status == 401
        return
    for repo, expected in ((world.app, app), (world.pub, pub)):
        gun = f"{server.host}/{repo}"
        assert granted(client, f"repository:{gun}:pull,push,*", who) == {gun: expected}
        # A GUN whose host is no account's, without a port, is a GUN too.
        other = f"dtr.example.com/{repo}"
        assert granted(client, f"repository:{other}:pull,push,*", who) == {other: expected}


def test_registry_scopes_are_unchanged(client: Client, world: World) -> None:
    assert granted(client, f"repository:{world.app}:pull,push,delete,*", world.users["rw"]) == {
        world.app: ["*", "delete", "pull", "push"]}
    assert granted(client, f"repository:{world.app}:pull,push,*", world.users["ro"]) == {world.app: ["pull"]}


def test_an_anonymous_request_gets_notarys_challenge(client: Client, server: DtrProcess, world: World) -> None:
    gun = f"{server.host}/{world.app}"
    realm, service = f"{server.url}/auth/token", server.host
    for method, path, actions, action in (("GET", "tuf/root.json", "pull", "pull"),
                                          ("GET", "tuf/timestamp.key", "pull,push", "push"),
                                          ("POST", "tuf/", "pull,push", "push"),
                                          ("DELETE", "tuf/", "*", "*"),
                                          ("POST", "tuf/snapshot.key", "*", "*"),
                                          ("GET", "changefeed?records=1", "pull", "pull")):
        r = client.request(method, f"/v2/{gun}/_trust/{path}")
        assert r.status == 401, (method, path, r.body)
        assert r.headers["WWW-Authenticate"] == \
            f'Bearer realm="{realm}",service="{service}",scope="repository:{gun}:{actions}"'
        assert error(r)["code"] == "UNAUTHORIZED"
        assert error(r)["detail"] == [{"Type": "repository", "Name": gun, "Action": action}]


def _publish(client: Client, token: str, gun: str, files: dict[str, bytes]) -> Response:
    body, ctype = multipart(files)
    return client.request("POST", f"/v2/{gun}/_trust/tuf/", bearer=token, data=body,
                          headers={"Content-Type": ctype})


def _new_repo(client: Client, gun: str, who: tuple[str, str] | None) -> Repo:
    token = client.bearer([f"repository:{gun}:pull,push"], who)
    repo = Repo(gun)
    for role in ("timestamp", "snapshot"):
        r = client.request("GET", f"/v2/{gun}/_trust/tuf/{role}.key", bearer=token)
        assert r.status == 200, r.body
        repo.server_keys[role] = r.json()
    r = _publish(client, token, gun, {"root": repo.root(), "targets": repo.targets_file()})
    assert (r.status, r.body) == (200, b""), r.body
    return repo


def test_each_level_does_what_it_may(client: Client, server: DtrProcess, world: World) -> None:
    gun = f"{server.host}/{world.app}"
    repo = _new_repo(client, gun, world.users["rw"])
    ro = client.bearer([f"repository:{gun}:pull,push,*"], world.users["ro"])
    assert client.request("GET", f"/v2/{gun}/_trust/tuf/root.json", bearer=ro).status == 200
    for method, path in (("GET", "tuf/timestamp.key"), ("POST", "tuf/"), ("DELETE", "tuf/")):
        r = client.request(method, f"/v2/{gun}/_trust/{path}", bearer=ro)
        assert r.status == 403 and error(r)["code"] == "DENIED", (method, path, r.body)
    rw = client.bearer([f"repository:{gun}:pull,push,*"], world.users["rw"])
    repo.add_target("v2", b"two")
    assert _publish(client, rw, gun, {"targets": repo.targets_file()}).status == 200
    for method, path in (("DELETE", "tuf/"), ("POST", "tuf/snapshot.key")):
        r = client.request(method, f"/v2/{gun}/_trust/{path}", bearer=rw)
        assert r.status == 403 and "admin" in error(r)["message"], (method, path, r.body)
    # A token lacking a scope its user has: the challenge, then the better token works.
    adm_pull = client.bearer([f"repository:{gun}:pull"], world.users["adm"])
    r = client.request("DELETE", f"/v2/{gun}/_trust/tuf/", bearer=adm_pull)
    assert r.status == 401 and 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    adm = client.bearer([f"repository:{gun}:*"], world.users["adm"])
    assert client.request("POST", f"/v2/{gun}/_trust/tuf/snapshot.key", bearer=adm).status == 200
    r = client.request("DELETE", f"/v2/{gun}/_trust/tuf/", bearer=adm)
    assert (r.status, r.body) == (200, b"")
    assert client.request("GET", f"/v2/{gun}/_trust/tuf/root.json", bearer=ro).status == 404
    admin = client.bearer(["registry:catalog:*"], ADMIN_AUTH)
    r = client.request("GET", "/v2/_trust/changefeed?records=-1", bearer=admin)
    assert r.status == 200 and r.json()["records"][0]["Category"] == "deletion", r.body
    assert client.request("GET", "/v2/_trust/changefeed?records=1", bearer=ro).status == 403


def test_deleting_a_repository_deletes_its_trust_data(client: Client, server: DtrProcess, world: World) -> None:
    owner = world.users["owner"]
    client.api("POST", f"/repositories/{world.org}", owner, {"name": "doomed", "visibility": "public"}, expect=201)
    gun = f"{server.host}/{world.org}/doomed"
    _new_repo(client, gun, owner)
    client.api("DELETE", f"/repositories/{world.org}/doomed", owner, expect=204)
    admin = client.bearer([f"repository:{gun}:pull", "registry:catalog:*"], ADMIN_AUTH)
    assert client.request("GET", f"/v2/{gun}/_trust/tuf/root.json", bearer=admin).status == 404
    r = client.request("GET", f"/v2/{gun}/_trust/changefeed?records=0", bearer=admin)
    assert [c["Category"] for c in r.json()["records"]] == ["update", "deletion"]

"""Every role x every action on /v2/ and /api/v0 against a running dtr with auth on.

Allowed actions answer their success status; denied ones 401 (anonymous or bad credentials),
403 (authenticated without the access) or 404 (may not even see the repository).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from tests.auth.client import Client, Response
from tests.auth.constants import ADMIN_AUTH
from tests.auth.world import ROLES, World

DENIED = (401, 403, 404)
ZERO = "sha256:" + "0" * 64


def _token(client: Client, scope: str, who: tuple[str, str] | None) -> str | None:
    r = client.token([scope], who)
    if r.status != 200:
        assert r.status == 401, r.body  # bad or inactive credentials
        return None
    return str(r.json()["token"])


def _v2(client: Client, who: tuple[str, str] | None, method: str, path: str, scope: str) -> Response:
    token = _token(client, scope, who)
    if token is None:
        return Response(401, {}, b"")
    return client.request(method, "/v2/" + path, bearer=token)


def v2_pull(c: Client, w: World, who: tuple[str, str] | None) -> Response:
    return _v2(c, who, "GET", f"{w.app}/manifests/v1", f"repository:{w.app}:pull")


def v2_pull_public(c: Client, w: World, who: tuple[str, str] | None) -> Response:
    return _v2(c, who, "GET", f"{w.pub}/manifests/v1", f"repository:{w.pub}:pull")


def v2_tags(c: Client, w: World, who: tuple[str, str] | None) -> Response:
    return _v2(c, who, "GET", f"{w.app}/tags/list", f"repository:{w.app}:pull")


def v2_push(c: Client, w: World, who: tuple[str, str] | None) -> Response:
    return _v2(c, who, "POST", f"{w.app}/blobs/uploads/", f"repository:{w.app}:pull,push")


def v2_delete(c: Client, w: World, who: tuple[str, str] | None) -> Response:
    r = _v2(c, who, "DELETE", f"{w.app}/manifests/{ZERO}", f"repository:{w.app}:delete")
    return Response(202, r.headers, r.body) if r.status == 404 and r.error_code == "MANIFEST_UNKNOWN" else r


def v2_catalog(c: Client, w: World, who: tuple[str, str] | None) -> Response:
    return _v2(c, who, "GET", "_catalog", "registry:catalog:*")


def api_get(c: Client, w: World, who: tuple[str, str] | None) -> Response:
    return c.api("GET", f"/repositories/{w.app}", who)


def api_patch(c: Client, w: World, who: tuple[str, str] | None) -> Response:
    return c.api("PATCH", f"/repositories/{w.app}", who, {"shortDescription": f"by {who[0] if who else '-'}"})


def api_team_access(c: Client, w: World, who: tuple[str, str] | None) -> Response:
    return c.api("PUT", f"/repositories/{w.app}/teamAccess/t-ro", who, {"accessLevel": "read-only"})


def api_list_team_access(c: Client, w: World, who: tuple[str, str] | None) -> Response:
    return c.api("GET", f"/repositories/{w.app}/teamAccess", who)


def api_create(c: Client, w: World, who: tuple[str, str] | None) -> Response:
    return c.api("POST", f"/repositories/{w.org}", who, {"name": f"new-{uuid.uuid4().hex[:8]}"})


def api_delete(c: Client, w: World, who: tuple[str, str] | None) -> Response:
    name = f"doomed-{uuid.uuid4().hex[:8]}"
    c.api("POST", f"/repositories/{w.org}", ADMIN_AUTH, {"name": name}, expect=201)
    for team, level in (("t-ro", "read-only"), ("t-rw", "read-write"), ("t-adm", "admin")):
        c.api("PUT", f"/repositories/{w.org}/{name}/teamAccess/{team}", ADMIN_AUTH, {"accessLevel": level},
              expect=200)
    return c.api("DELETE", f"/repositories/{w.org}/{name}", who)


def api_ns_access(c: Client, w: World, who: tuple[str, str] | None) -> Response:
    return c.api("PUT", f"/repositoryNamespaces/{w.org}/teamAccess/t-ns", who, {"accessLevel": "read-write"})


def api_create_team(c: Client, w: World, who: tuple[str, str] | None) -> Response:
    return c.api("POST", f"/accounts/{w.org}/teams", who, {"name": f"t{uuid.uuid4().hex[:8]}"})


def api_settings(c: Client, w: World, who: tuple[str, str] | None) -> Response:
    return c.api("POST", "/meta/settings", who, {"createRepositoryOnPush": False})


def api_create_user(c: Client, w: World, who: tuple[str, str] | None) -> Response:
    return c.api("POST", "/accounts", who, {"name": f"x{uuid.uuid4().hex[:8]}", "password": "Some-pass-1"})


def api_events(c: Client, w: World, who: tuple[str, str] | None) -> Response:
    return c.api("GET", "/events?pageSize=1", who)


ACTIONS: dict[str, tuple[Callable[[Client, World, tuple[str, str] | None], Response], int]] = {
    "v2 pull": (v2_pull, 200), "v2 pull public": (v2_pull_public, 200), "v2 tags": (v2_tags, 200),
    "v2 push": (v2_push, 202), "v2 delete": (v2_delete, 202), "v2 catalog": (v2_catalog, 200),
    "api get": (api_get, 200), "api patch": (api_patch, 200), "api list teamAccess": (api_list_team_access, 200),
    "api set teamAccess": (api_team_access, 200), "api create repo": (api_create, 201),
    "api delete repo": (api_delete, 204), "api namespace access": (api_ns_access, 200),
    "api create team": (api_create_team, 201), "api settings": (api_settings, 200),
    "api create user": (api_create_user, 201), "api events": (api_events, 200),
}

PULL = {"v2 pull", "v2 pull public", "v2 tags", "api get"}
WRITE = PULL | {"v2 push", "v2 delete"}
REPO_ADMIN = WRITE | {"api patch", "api list teamAccess", "api set teamAccess", "api delete repo"}
ORG_OWNER = REPO_ADMIN | {"api create repo", "api namespace access", "api create team"}
EXPECTED: dict[str, set[str]] = {
    "anonymous": {"v2 pull public"},
    "outsider": {"v2 pull public"},
    "inactive": set(),
    "ro": PULL,
    "rw": WRITE,
    "adm": REPO_ADMIN,
    "nsrw": WRITE | {"api create repo"},
    "owner": ORG_OWNER,
    "admin": set(ACTIONS),
}


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(client: Client, world: World, role: str) -> None:
    who = world.users[role]
    problems = []
    for action, (do, ok_status) in ACTIONS.items():
        r = do(client, world, who)
        allowed = action in EXPECTED[role]
        if allowed and r.status != ok_status:
            problems.append(f"{action}: expected {ok_status}, got {r.status} {r.body[:200]!r}")
        if not allowed and r.status not in DENIED:
            problems.append(f"{action}: expected a denial, got {r.status} {r.body[:200]!r}")
        if not allowed and r.status == 403:
            assert r.error_message, f"{action}: a 403 must say why"
    assert not problems, f"role {role}:\n" + "\n".join(problems)


def test_denied_push_says_why(client: Client, world: World) -> None:
    ro = world.users["ro"]
    r = v2_push(client, world, ro)
    assert r.status == 403 and r.error_code == "DENIED"
    assert r.error_message == f"user {ro[0]} has read-only access to {world.app}; push needs read-write"


def test_create_repository_on_push(client: Client, world: World) -> None:
    rw = world.users["rw"]
    nsrw = world.users["nsrw"]
    assert rw is not None and nsrw is not None
    own = f"{rw[0]}/auto-{uuid.uuid4().hex[:6]}"
    r = _v2(client, rw, "POST", f"{own}/blobs/uploads/", f"repository:{own}:pull,push")
    assert r.status == 403 and "createRepositoryOnPush is off" in r.error_message
    client.api("POST", "/meta/settings", ADMIN_AUTH, {"createRepositoryOnPush": True}, expect=200)
    try:
        assert _v2(client, rw, "POST", f"{own}/blobs/uploads/", f"repository:{own}:pull,push").status == 202
        in_org = f"{world.org}/auto-{uuid.uuid4().hex[:6]}"
        # A repository grant does not let one create in the organisation; a namespace grant does.
        r = _v2(client, rw, "POST", f"{in_org}/blobs/uploads/", f"repository:{in_org}:pull,push")
        assert r.status == 403 and "may not create repositories" in r.error_message
        assert _v2(client, nsrw, "POST", f"{in_org}/blobs/uploads/", f"repository:{in_org}:pull,push").status == 202
        other = f"{nsrw[0]}/x"
        r = _v2(client, rw, "POST", f"{other}/blobs/uploads/", f"repository:{other}:pull,push")
        assert r.status == 403
    finally:
        client.api("POST", "/meta/settings", ADMIN_AUTH, {"createRepositoryOnPush": False}, expect=200)


def test_cross_repository_mount_needs_pull_on_the_source(client: Client, world: World) -> None:
    rw = world.users["rw"]
    assert rw is not None
    target = f"{rw[0]}/mnt"
    client.api("POST", f"/repositories/{rw[0]}", rw, {"name": "mnt"}, expect=201)
    manifest = client.request("GET", f"/v2/{world.app}/manifests/v1",
                              bearer=client.bearer([f"repository:{world.app}:pull"], ADMIN_AUTH)).json()
    layer = manifest["layers"][0]["digest"]
    # Without pull on the source in the token, for a user who may pull it: the challenge for both.
    token = client.bearer([f"repository:{target}:pull,push"], rw)
    r = client.request("POST", f"/v2/{target}/blobs/uploads/?mount={layer}&from={world.app}", bearer=token)
    assert r.status == 401
    assert f'scope="repository:{target}:pull,push repository:{world.app}:pull"' in r.headers["WWW-Authenticate"]
    token = client.bearer([f"repository:{target}:pull,push", f"repository:{world.app}:pull"], rw)
    r = client.request("POST", f"/v2/{target}/blobs/uploads/?mount={layer}&from={world.app}", bearer=token)
    assert r.status == 201
    outsider = world.users["outsider"]
    assert outsider is not None
    client.api("POST", f"/repositories/{outsider[0]}", outsider, {"name": "mnt"}, expect=201)
    target = f"{outsider[0]}/mnt"
    token = client.bearer([f"repository:{target}:pull,push", f"repository:{world.app}:pull"], outsider)
    r = client.request("POST", f"/v2/{target}/blobs/uploads/?mount={layer}&from={world.app}", bearer=token)
    assert r.status == 202
    r = client.request("POST", f"/v2/{target}/blobs/uploads/?mount={layer}", bearer=token)
    assert r.status == 202


def test_upload_status_needs_pull_and_cancel_needs_push(client: Client, world: World) -> None:
    rw, ro = world.users["rw"], world.users["ro"]
    r = _v2(client, rw, "POST", f"{world.app}/blobs/uploads/", f"repository:{world.app}:pull,push")
    location = r.headers["Location"]
    pull_only = client.bearer([f"repository:{world.app}:pull"], ro)
    assert client.request("GET", location, bearer=pull_only).status == 204
    r = client.request("DELETE", location, bearer=pull_only)
    assert r.status == 403
    assert r.error_message == f"user {ro[0]} has read-only access to {world.app}; push needs read-write"
    push = client.bearer([f"repository:{world.app}:pull,push"], rw)
    assert client.request("GET", location, bearer=push).status == 204
    assert client.request("DELETE", location, bearer=push).status == 204


def test_repository_listing_shows_only_what_one_may_see(client: Client, world: World) -> None:
    def names(who: tuple[str, str] | None) -> set[str]:
        r = client.api("GET", f"/repositories/{world.org}?pageSize=1000", who, expect=200)
        return {x["name"] for x in r.json()["repositories"]}

    assert names(None) == {"pub"}
    assert names(world.users["outsider"]) == {"pub"}
    assert {"app", "pub"} <= names(world.users["ro"])
    assert {"app", "pub"} <= names(world.users["owner"])


def test_paging(client: Client, world: World) -> None:
    owner = world.users["owner"]
    assert owner is not None
    for i in range(5):
        client.api("POST", f"/repositories/{world.org}", owner, {"name": f"page-{i}"}, expect=201)
    seen: list[str] = []
    start = ""
    while True:
        r = client.api("GET", f"/repositories/{world.org}?pageSize=2&pageStart={start}", owner, expect=200)
        seen += [x["name"] for x in r.json()["repositories"]]
        assert len(r.json()["repositories"]) <= 2
        if "X-Next-Page-Start" not in r.headers:
            break
        start = r.headers["X-Next-Page-Start"]
    assert seen == sorted(seen) and len(seen) == len(set(seen))
    assert {f"page-{i}" for i in range(5)} <= set(seen)
    r = client.api("GET", "/accounts?pageSize=3&filter=users", ADMIN_AUTH, expect=200)
    assert len(r.json()["accounts"]) == 3 and "X-Next-Page-Start" in r.headers
    assert client.api("GET", "/accounts?pageSize=0", ADMIN_AUTH).status == 400


def test_other_domains_under_api_v0_require_a_site_admin(client: Client, world: World) -> None:
    assert client.api("GET", "/jobs").status == 401
    assert client.api("GET", "/jobs", world.users["owner"]).status == 403
    assert client.api("GET", "/jobs", ADMIN_AUTH).status == 200

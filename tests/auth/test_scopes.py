"""The /v2 token check against a running dtr with auth on: paths outside the route table, the
``insufficient_scope`` challenge versus a true 403, and cross-repository mounts.
"""

from __future__ import annotations

import hashlib
import re
import uuid

import pytest

from tests.auth.client import Client, Response
from tests.auth.constants import ADMIN_AUTH
from tests.auth.world import World

OUTSIDE = ["foo/bar", "acme/app/nonsense/x", "acme/app/manifests", "acme/app/tags/other", "_catalog/x",
           "acme/app/blobs/uploads/a/b", "acme/app/referrers", "acme/app/manifests/a/b"]


def _scopes(r: Response) -> list[str]:
    m = re.search(r'scope="([^"]*)"', r.headers.get("WWW-Authenticate", ""))
    assert m, r.headers
    return m.group(1).split(" ")


def _insufficient(r: Response, *scopes: str) -> None:
    assert r.status == 401, (r.status, r.body[:300])
    assert r.error_code == "UNAUTHORIZED"
    assert 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    assert _scopes(r) == list(scopes)


def _follow(client: Client, r: Response, who: tuple[str, str] | None) -> str:
    """A token for exactly the scopes a challenge names, as a client following it asks."""
    return client.bearer(_scopes(r), who)


@pytest.mark.parametrize("path", OUTSIDE)
@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"])
def test_a_path_outside_the_table_is_404_for_everyone(client: Client, world: World, path: str,
                                                      method: str) -> None:
    anonymous = client.bearer([])
    admin = client.bearer(["registry:catalog:*", f"repository:{world.app}:*"], ADMIN_AUTH)
    for bearer in (None, anonymous, admin):
        r = client.request(method, f"/v2/{path}", bearer=bearer)
        assert r.status == 404, (method, path, r.status)
        assert "WWW-Authenticate" not in r.headers
        if method != "HEAD":
            assert r.error_code == "NAME_UNKNOWN" and r.error_message == "no such endpoint"


def test_a_wrong_method_is_405_before_any_token(client: Client, world: World) -> None:
    r = client.request("POST", f"/v2/{world.app}/manifests/v1")
    assert r.status == 405 and r.error_code == "UNSUPPORTED"
    assert set(r.headers["Allow"].split(", ")) == {"GET", "HEAD", "PUT", "DELETE"}
    r = client.request("DELETE", "/v2/_catalog")
    assert r.status == 405 and r.headers["Allow"] == "GET"


def test_base_takes_any_valid_token_and_challenges_without_one(client: Client) -> None:
    r = client.request("GET", "/v2/")
    assert r.status == 401 and "scope=" not in r.headers["WWW-Authenticate"]
    assert client.request("GET", "/v2/", bearer=client.bearer([])).status == 200


def test_a_token_lacking_a_scope_the_user_has_gets_the_challenge(client: Client, world: World) -> None:
    admin_pull = client.bearer([f"repository:{world.app}:pull"], ADMIN_AUTH)
    r = client.request("POST", f"/v2/{world.app}/blobs/uploads/", bearer=admin_pull)
    _insufficient(r, f"repository:{world.app}:pull,push")
    r = client.request("POST", f"/v2/{world.app}/blobs/uploads/", bearer=_follow(client, r, ADMIN_AUTH))
    assert r.status == 202
    location = r.headers["Location"]
    # The upload's status needs pull only (as the reference asks); writing to it needs push.
    assert client.request("GET", location, bearer=admin_pull).status == 204
    _insufficient(client.request("PATCH", location, bearer=admin_pull, data=b"x"),
                  f"repository:{world.app}:pull,push")
    _insufficient(client.request("DELETE", location, bearer=admin_pull), f"repository:{world.app}:pull,push")
    r = client.request("GET", "/v2/_catalog", bearer=admin_pull)
    _insufficient(r, "registry:catalog:*")
    assert client.request("GET", "/v2/_catalog", bearer=_follow(client, r, ADMIN_AUTH)).status == 200


def test_manifest_delete_with_a_push_token(client: Client, world: World) -> None:
    """pull,push does not cover delete: the challenge for a user who may delete, 403 otherwise."""
    rw, ro = world.users["rw"], world.users["ro"]
    assert rw is not None and ro is not None
    zero = "sha256:" + "0" * 64
    path = f"/v2/{world.app}/manifests/{zero}"
    r = client.request("DELETE", path, bearer=client.bearer([f"repository:{world.app}:pull,push"], rw))
    _insufficient(r, f"repository:{world.app}:delete")
    r = client.request("DELETE", path, bearer=_follow(client, r, rw))
    assert r.status == 404 and r.error_code == "MANIFEST_UNKNOWN"
    r = client.request("DELETE", path, bearer=client.bearer([f"repository:{world.app}:pull,push"], ro))
    assert r.status == 403 and r.error_code == "DENIED"
    assert r.error_message == f"user {ro[0]} has read-only access to {world.app}; delete needs read-write"
    assert "WWW-Authenticate" not in r.headers
    outsider = world.users["outsider"]
    r = client.request("GET", "/v2/_catalog", bearer=client.bearer(["registry:catalog:*"], outsider))
    assert r.status == 403 and r.error_message == "only site admins may list the catalog"


def test_bad_grammar_tags_are_unknown_to_fetch_with_auth_on(client: Client, world: World) -> None:
    token = client.bearer([f"repository:{world.app}:pull"], ADMIN_AUTH)
    for method in ("GET", "HEAD"):
        r = client.request(method, f"/v2/{world.app}/manifests/.INVALID_NAME", bearer=token)
        assert r.status == 404, (method, r.status)


def _layer_of(client: Client, repo: str) -> str:
    token = client.bearer([f"repository:{repo}:pull"], ADMIN_AUTH)
    return str(client.request("GET", f"/v2/{repo}/manifests/v1", bearer=token).json()["layers"][0]["digest"])


def test_the_mount_challenge_names_the_source_and_the_mount_happens(client: Client, world: World) -> None:
    rw = world.users["rw"]
    assert rw is not None
    name = f"mnt-{uuid.uuid4().hex[:6]}"
    client.api("POST", f"/repositories/{rw[0]}", rw, {"name": name}, expect=201)
    target = f"{rw[0]}/{name}"
    layer = _layer_of(client, world.app)
    path = f"/v2/{target}/blobs/uploads/?mount={layer}&from={world.app}"
    r = client.request("POST", path)
    assert r.status == 401
    assert _scopes(r) == [f"repository:{target}:pull,push", f"repository:{world.app}:pull"]
    # Docker's flow: one token for both scopes, as the challenge names them.
    r = client.request("POST", path, bearer=_follow(client, r, rw))
    assert r.status == 201, r.body
    assert r.headers["Location"] == f"/v2/{target}/blobs/{layer}"
    token = client.bearer([f"repository:{target}:pull"], rw)
    r = client.request("HEAD", f"/v2/{target}/blobs/{layer}", bearer=token)
    assert r.status == 200


def test_a_mount_without_from_takes_only_a_readable_source(client: Client, world: World) -> None:
    """Without ``from``, a repository the user may pull serves the mount; one the user may not
    read is never used, and the answer says nothing about it (a plain upload, as for no blob)."""
    outsider = world.users["outsider"]
    assert outsider is not None
    name = f"mnt-{uuid.uuid4().hex[:6]}"
    client.api("POST", f"/repositories/{outsider[0]}", outsider, {"name": name}, expect=201)
    target = f"{outsider[0]}/{name}"
    token = client.bearer([f"repository:{target}:pull,push"], outsider)
    private = _layer_of(client, world.app)  # only in the private repository
    r = client.request("POST", f"/v2/{target}/blobs/uploads/?mount={private}", bearer=token)
    assert r.status == 202 and "/blobs/uploads/" in r.headers["Location"]
    unknown = "sha256:" + hashlib.sha256(uuid.uuid4().bytes).hexdigest()
    r2 = client.request("POST", f"/v2/{target}/blobs/uploads/?mount={unknown}", bearer=token)
    assert r2.status == r.status and set(r2.headers) - {"Location", "Date", "X-Request-Id"} == \
        set(r.headers) - {"Location", "Date", "X-Request-Id"}
    public = _layer_of(client, world.pub)  # readable by everyone
    r = client.request("POST", f"/v2/{target}/blobs/uploads/?mount={public}", bearer=token)
    assert r.status == 201 and r.headers["Location"] == f"/v2/{target}/blobs/{public}"
    r = client.request("HEAD", f"/v2/{target}/blobs/{private}", bearer=token)
    assert r.status == 404

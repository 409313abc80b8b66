"""The images API with authentication on (the auth tests' dtr and world): who pushed a tag, who
may read and delete tags, and what the autocomplete shows whom (private repositories only to
their readers, accounts only to site admins)."""

from __future__ import annotations

import uuid

from tests.auth.client import Client
from tests.auth.constants import ADMIN_AUTH, PASSWORD
from tests.auth.world import World, push_image


def _user(world: World, role: str) -> tuple[str, str]:
    who = world.users[role]
    assert who is not None
    return who


def test_the_author_is_who_pushed_the_tag_last(client: Client, world: World) -> None:
    rw = _user(world, "rw")
    tag = f"a{uuid.uuid4().hex[:8]}"
    push_image(client, world.app, tag, ADMIN_AUTH)
    assert client.api("GET", f"/repositories/{world.app}/tags/{tag}", ADMIN_AUTH, expect=200).json()["author"] == \
        ADMIN_AUTH[0]
    push_image(client, world.app, tag, rw)  # moved by another user
    got = client.api("GET", f"/repositories/{world.app}/tags/{tag}", _user(world, "ro"), expect=200).json()
    assert got["author"] == rw[0] and got["platforms"][0]["architecture"] == "amd64"
    listed = client.api("GET", f"/repositories/{world.app}/tags?pageSize=1000", rw, expect=200).json()["tags"]
    assert {t["name"]: t["author"] for t in listed}[tag] == rw[0]


def test_who_may_read_and_delete_tags(client: Client, world: World) -> None:
    ro, rw, outsider = _user(world, "ro"), _user(world, "rw"), _user(world, "outsider")
    tag = f"d{uuid.uuid4().hex[:8]}"
    push_image(client, world.app, tag, ADMIN_AUTH)
    path = f"/repositories/{world.app}/tags/{tag}"
    for method in ("GET", "DELETE"):
        r = client.api(method, path, outsider)
        assert r.status == 404 and r.error_code == "NO_SUCH_REPOSITORY", r.body
        r = client.api(method, path, None)
        assert r.status == 401 and r.error_code == "UNAUTHORIZED", r.body
    assert client.api("GET", f"/repositories/{world.app}/manifests/{tag}", outsider).error_code == "NO_SUCH_REPOSITORY"
    client.api("GET", f"/repositories/{world.app}/manifests/{tag}", ro, expect=200)
    r = client.api("DELETE", path, ro)
    assert r.status == 403 and r.error_code == "FORBIDDEN", r.body
    client.api("DELETE", path, rw, expect=204)
    assert client.api("GET", path, ro).error_code == "NO_SUCH_TAG"
    # the public repository's tags are read by any user
    assert client.api("GET", f"/repositories/{world.pub}/tags", outsider, expect=200).json()["tags"]


def _search(client: Client, auth: tuple[str, str] | None, query: str, **more: str) -> dict:  # type: ignore[type-arg]
    qs = "".join(f"&{k}={v}" for k, v in {"limit": "100", **more}.items())
    return client.api("GET", f"/index/autocomplete?query={query}{qs}", auth, expect=200).json()  # type: ignore[no-any-return]


def _repos(found: dict) -> set[str]:  # type: ignore[type-arg]
    return {f"{r['namespace']}/{r['name']}" for r in found["repositoryResults"]}


def test_autocomplete_shows_what_the_caller_may_see(client: Client, world: World) -> None:
    org = world.org
    hidden = f"hid{uuid.uuid4().hex[:8]}"  # an organisation with a private repository only
    client.api("POST", "/accounts", ADMIN_AUTH, {"name": hidden, "isOrg": True}, expect=201)
    client.api("POST", f"/repositories/{hidden}", ADMIN_AUTH, {"name": "secret", "visibility": "private"}, expect=201)
    everything = _search(client, ADMIN_AUTH, org.upper())  # case-insensitive
    assert _repos(everything) == {world.app, world.pub}
    assert {n["name"] for n in everything["namespaceResults"]} == {org}
    assert everything["namespaceResults"][0]["isOrg"] is True
    assert {a["name"] for a in everything["accountResults"]} == {org}
    users = _search(client, ADMIN_AUTH, "ro")["accountResults"]
    assert _user(world, "ro")[0] in {a["name"] for a in users} and all(not a["isOrg"] for a in users if
                                                                        a["name"] == _user(world, "ro")[0])
    assert _repos(_search(client, ADMIN_AUTH, hidden)) == {f"{hidden}/secret"}

    for role, expected in (("ro", {world.app, world.pub}), ("outsider", {world.pub}), ("anonymous", {world.pub})):
        found = _search(client, world.users[role], org)
        assert _repos(found) == expected, role
        assert found["accountResults"] == [], role
        assert [n["name"] for n in found["namespaceResults"]] == [org], role
        assert _search(client, world.users[role], hidden) == \
            {"repositoryResults": [], "namespaceResults": [], "accountResults": []}, role
    # by the name without its namespace, and by the full name
    ro = _user(world, "ro")
    assert world.app in _repos(_search(client, ro, "app"))
    assert _repos(_search(client, ro, f"{org}/a")) == {world.app}
    assert _repos(_search(client, ro, f"{org}/")) == {world.app, world.pub}
    assert _search(client, ADMIN_AUTH, org, includeRepositories="false")["repositoryResults"] == []
    assert _search(client, ADMIN_AUTH, org, includeAccounts="false")["accountResults"] == []
    assert _repos(_search(client, ADMIN_AUTH, org, limit="1")) == {world.app}
    # wildcards are text
    for odd in ("%25", "_", "%5C", "", "%20"):
        assert _search(client, ADMIN_AUTH, odd)["repositoryResults"] == [], odd


def test_a_new_user_sees_only_public_repositories(client: Client, world: World) -> None:
    name = f"new{uuid.uuid4().hex[:8]}"
    client.api("POST", "/accounts", ADMIN_AUTH, {"name": name, "password": PASSWORD}, expect=201)
    assert _repos(_search(client, (name, PASSWORD), world.org)) == {world.pub}

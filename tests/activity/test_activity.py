"""The activity stream on /api/v0: a repository's events for its readers, every repository's for
site admins; filters by type, actor, repository and time; paging by event id; bad input 400."""

from __future__ import annotations

import datetime as dt
import uuid

from tests.auth.client import Client
from tests.auth.constants import ADMIN_AUTH
from tests.auth.world import World, push_image


def _events(client: Client, path: str, auth: tuple[str, str] | None, **query: str) -> tuple[list[dict], str | None]:  # type: ignore[type-arg]
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    r = client.api("GET", f"{path}?{qs}" if qs else path, auth, expect=200)
    return r.json()["events"], r.headers.get("X-Next-Page-Start")


def _new_repo(client: Client, org: str) -> str:
    name = f"ev{uuid.uuid4().hex[:10]}"
    client.api("POST", f"/repositories/{org}", ADMIN_AUTH, {"name": name, "visibility": "private"}, expect=201)
    return f"{org}/{name}"


def test_a_repository_events_in_order_with_actor_and_paging(client: Client, world: World) -> None:
    repo = _new_repo(client, world.org)
    digest = push_image(client, repo, "v1", ADMIN_AUTH)
    push_image(client, repo, "v2", ADMIN_AUTH)
    token = client.bearer([f"repository:{repo}:pull,push,delete"], ADMIN_AUTH)
    assert client.request("DELETE", f"/v2/{repo}/manifests/{digest}", bearer=token).status == 202

    events, nxt = _events(client, f"/repositories/{repo}/events", ADMIN_AUTH)
    assert nxt is None
    types = [e["type"] for e in events]
    assert types[-1] == "repository_created" and "tag_pushed" in types and types[0] == "manifest_deleted"
    assert [e["id"] for e in events] == sorted((e["id"] for e in events), reverse=True)
    pushed = [e for e in events if e["type"] == "tag_pushed"]
    assert {e["tag"] for e in pushed} == {"v1", "v2"}
    assert all(e["actor"] == ADMIN_AUTH[0] and e["repository"] == repo and e["clientAddress"] for e in pushed)
    assert events[0]["digest"] == digest and events[0]["detail"]["tags"] == ["v1"]

    page, nxt = _events(client, f"/repositories/{repo}/events", ADMIN_AUTH, pageSize="2")
    assert len(page) == 2 and nxt is not None
    rest, _ = _events(client, f"/repositories/{repo}/events", ADMIN_AUTH, pageSize="100", pageStart=nxt)
    assert page + rest == events

    only, _ = _events(client, f"/repositories/{repo}/events", ADMIN_AUTH, type="tag_pushed,manifest_deleted")
    assert {e["type"] for e in only} == {"tag_pushed", "manifest_deleted"} and len(only) == 3
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S")
    assert _events(client, f"/repositories/{repo}/events", ADMIN_AUTH, publishedAfter=later)[0] == []
    assert len(_events(client, f"/repositories/{repo}/events", ADMIN_AUTH, publishedBefore=later)[0]) == len(events)
    assert _events(client, f"/repositories/{repo}/events", ADMIN_AUTH, actor="nobody")[0] == []


def test_who_may_read_which_events(client: Client, world: World) -> None:
    push_image(client, world.app, f"t{uuid.uuid4().hex[:6]}", ADMIN_AUTH)
    ro, outsider = world.users["ro"], world.users["outsider"]
    assert _events(client, f"/repositories/{world.app}/events", ro)[0]  # a reader of the repository
    r = client.api("GET", f"/repositories/{world.app}/events", outsider)
    assert r.status in (403, 404), r.body  # a private repository the caller may not read
    assert client.api("GET", f"/repositories/{world.app}/events", None).status == 401
    assert client.api("GET", "/activity", ro).status == 403
    everything, _ = _events(client, "/activity", ADMIN_AUTH, repository=world.app, pageSize="5")
    assert everything and all(e["repository"] == world.app for e in everything)


def test_bad_queries_are_400(client: Client, world: World) -> None:
    for query in ("type=nonsense", "pageStart=abc", "pageStart=99999999999999999999", "pageSize=0",
                  "publishedAfter=yesterday"):
        r = client.api("GET", f"/activity?{query}", ADMIN_AUTH)
        assert r.status == 400, (query, r.body)
        assert r.json()["errors"][0]["code"] in ("INVALID_PARAMETER", "invalid"), r.body
    assert client.api("GET", "/repositories/nobody/nothing/events", ADMIN_AUTH).status == 404

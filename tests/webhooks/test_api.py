"""``/api/v0/webhooks``: who may do what, bad input, the answers' shapes (no secret)."""

from __future__ import annotations

from tests.webhooks.conftest import Receivers, World


async def test_who_may_manage_webhooks(world: World, receivers: Receivers) -> None:
    url = receivers.url("ok")
    body = {"type": "TAG_PUSH", "key": "acme/app", "endpoint": url}
    err = await world.call("POST", "/webhooks", "bob", body, expect=403)
    assert err["errors"][0]["code"] == "FORBIDDEN"
    await world.call("POST", "/webhooks", None, body, expect=401)
    mine = await world.hook("TAG_PUSH", "acme/app", url, who="alice")
    assert mine["author"] == "alice" and mine["key"] == "acme/app"
    site = await world.hook("SCANNER_UPDATE_COMPLETED", "", url)
    await world.call("POST", "/webhooks", "alice", {"type": "SCANNER_UPDATE_COMPLETED", "endpoint": url}, expect=403)
    # alice is admin of acme/app, not of the whole namespace
    await world.call("POST", "/webhooks", "alice", {**body, "key": "acme"}, expect=403)
    ns = await world.hook("REPO_CREATED", "acme", url)

    listed = await world.call("GET", "/webhooks", "alice")
    assert [h["id"] for h in listed["webhooks"]] == [mine["id"]]
    assert (await world.call("GET", "/webhooks", "bob"))["webhooks"] == []
    everything = await world.call("GET", "/webhooks")
    assert {h["id"] for h in everything["webhooks"]} == {mine["id"], site["id"], ns["id"]}
    assert all("httpSecret" not in h and h["httpSecretSet"] for h in everything["webhooks"])
    assert [h["id"] for h in (await world.call("GET", "/webhooks?key=acme"))["webhooks"]] == [ns["id"]]
    assert [h["id"] for h in (await world.call("GET", "/webhooks?type=SCANNER_UPDATE_COMPLETED"))["webhooks"]] == \
        [site["id"]]
    page = await world.call("GET", "/webhooks?pageSize=1")
    assert len(page["webhooks"]) == 1

    for method, path in (("GET", f"/webhooks/{mine['id']}"), ("DELETE", f"/webhooks/{mine['id']}"),
                         ("GET", f"/webhooks/{mine['id']}/deliveries"), ("GET", f"/webhooks/{site['id']}")):
        await world.call(method, path, "bob", expect=403)
    await world.call("PATCH", f"/webhooks/{mine['id']}", "bob", {"inactive": True}, expect=403)
    changed = await world.call("PATCH", f"/webhooks/{mine['id']}", "alice",
                               {"endpoint": receivers.url("other"), "httpSecret": "new-secret"})
    assert changed["endpoint"] == receivers.url("other") and "httpSecret" not in changed
    await world.call("DELETE", f"/webhooks/{mine['id']}", "alice", expect=204)
    await world.call("GET", f"/webhooks/{mine['id']}", "alice", expect=404)


async def test_bad_input(world: World, receivers: Receivers) -> None:
    url = receivers.url("ok")
    for body in ({"type": "NOPE", "key": "acme/app", "endpoint": url},
                 {"type": "TAG_PUSH", "key": "acme/app", "endpoint": "ftp://example.com/x"},
                 {"type": "TAG_PUSH", "key": "acme/app", "endpoint": "not a url"},
                 {"type": "TAG_PUSH", "key": "acme/app", "endpoint": "http://user:pw@example.com/"},
                 {"type": "TAG_PUSH", "endpoint": url},
                 {"type": "SCANNER_UPDATE_COMPLETED", "key": "acme", "endpoint": url},
                 {"type": "TAG_PUSH", "key": "acme/app", "endpoint": url, "tlsCert": "not a certificate"},
                 {"type": "TAG_PUSH", "key": "acme/app", "endpoint": url, "extra": 1},
                 {"type": "TAG_PUSH", "key": "acme/app", "endpoint": url, "httpSecret": ""}):
        err = await world.call("POST", "/webhooks", body=body, expect=400)
        assert err["errors"][0]["code"] == "INVALID_PARAMETER", body
    err = await world.call("POST", "/webhooks", body={"type": "TAG_PUSH", "key": "acme/nope", "endpoint": url},
                           expect=404)
    assert err["errors"][0]["code"] == "NO_SUCH_REPOSITORY"
    err = await world.call("POST", "/webhooks", body={"type": "TAG_PUSH", "key": "nobody", "endpoint": url},
                           expect=404)
    assert err["errors"][0]["code"] == "NO_SUCH_NAMESPACE"
    await world.call("GET", "/webhooks/not-an-id", expect=404)
    await world.call("GET", "/webhooks/00000000-0000-0000-0000-000000000000", expect=404)
    hook = await world.hook("TAG_PUSH", "acme/app", url)
    await world.call("PATCH", f"/webhooks/{hook['id']}", body={"endpoint": "gopher://x"}, expect=400)
    await world.call("PATCH", f"/webhooks/{hook['id']}", body={"endpoint": "http://169.254.169.254/"}, expect=400)
    await world.call("GET", f"/webhooks/{hook['id']}/deliveries?pageStart=x", expect=400)
    await world.call("POST", f"/webhooks/{hook['id']}/deliveries/x/redeliver", expect=404)
    await world.call("GET", "/webhooks?pageStart=nope", expect=400)

"""Webhook deliveries end to end on the in-process app: a real push over /v2 reaches real
receivers on 127.0.0.1, signed; failures are retried and logged; redelivery; the test delivery;
a dead endpoint never holds up a push; the deny list is checked on resolved addresses."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid
from typing import Any

import aiohttp

from dtr.config.schema import WebhooksConfig
from dtr.webhooks.sending import Sender
from tests.auth.client import basic
from tests.auth.constants import ADMIN_AUTH
from tests.oci import digest_of, dumps, push_image
from tests.webhooks.conftest import WAIT, Receivers, World


async def _push(w: World, repo: str, tag: str) -> str:
    """A small linux/arm64 image of unique content pushed as the site admin; its digest."""
    config = dumps({"architecture": "arm64", "variant": "v8", "os": "linux", "n": uuid.uuid4().hex,
                    "rootfs": {"type": "layers", "diff_ids": []}})
    async with aiohttp.ClientSession(headers=await w.bearer(repo)) as http:
        body = await push_image(http, w.base, repo, tag, config, [uuid.uuid4().bytes])
    return digest_of(body)


def _verify(secret: str, headers: dict[str, str], body: bytes) -> None:
    """What a receiver does: the signature over ``<timestamp>.<body>`` with the shared secret."""
    mac = hmac.new(secret.encode(), headers["X-Dtr-Timestamp"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Dtr-Signature"], f"sha256={mac}")


async def test_a_push_delivers_a_signed_tag_push(world: World, receivers: Receivers) -> None:
    repo_hook = await world.hook("TAG_PUSH", "acme/app", receivers.url("ok"))
    await world.hook("TAG_PUSH", "acme", receivers.url("ns"), httpSecret="shared-secret")
    other = await world.hook("TAG_DELETE", "acme/app", receivers.url("other"))
    assert len(repo_hook["httpSecret"]) >= 32 and repo_hook["httpSecretSet"] is True
    digest = await _push(world, "acme/app", "v1")

    [got] = await receivers.wait_for("ok")
    _verify(repo_hook["httpSecret"], got.headers, got.body)
    assert got.headers["Content-Type"] == "application/json" and got.headers["X-Dtr-Event"] == "TAG_PUSH"
    doc = json.loads(got.body)
    assert doc["type"] == "TAG_PUSH" and doc["location"] == "/repositories/acme/app/tags/v1"
    assert doc["createdAt"].endswith("Z")
    c = doc["contents"]
    assert (c["namespace"], c["repository"], c["tag"], c["digest"]) == ("acme", "app", "v1", digest)
    assert (c["imageName"], c["os"], c["architecture"], c["author"]) == ("acme/app:v1", "linux", "arm64/v8", "admin")
    [ns_got] = await receivers.wait_for("ns")
    _verify("shared-secret", ns_got.headers, ns_got.body)
    assert json.loads(ns_got.body)["contents"]["digest"] == digest

    [d] = await world.settled(repo_hook)
    assert (d["status"], d["attempts"], d["lastStatusCode"], d["eventType"]) == ("succeeded", 1, 200, "TAG_PUSH")
    assert d["lastError"] is None and d["durationMs"] >= 0 and got.headers["X-Dtr-Delivery"] == str(d["id"])
    hook = await world.call("GET", f"/webhooks/{repo_hook['id']}")
    assert hook["lastSuccessfulAt"] is not None and "httpSecret" not in hook
    assert await world.deliveries(other) == [] and receivers.of("other") == []


async def test_failures_are_retried_and_logged_and_never_hold_a_push(world: World, receivers: Receivers) -> None:
    flaky = await world.hook("TAG_PUSH", "acme/app", receivers.url("flaky"))
    hang = await world.hook("TAG_PUSH", "acme/app", receivers.url("hang"))
    closer = await world.hook("TAG_PUSH", "acme/app", receivers.closer)
    dead = await world.hook("TAG_PUSH", "acme/app", receivers.dead)
    failing = await world.hook("TAG_PUSH", "acme/app", receivers.url("fail"))
    await _push(world, "acme/app", "v1")  # returns: nothing waits for the receivers

    [d] = await world.settled(flaky)
    assert (d["status"], d["attempts"], d["lastStatusCode"]) == ("succeeded", 2, 200)
    [d] = await world.settled(hang)
    assert (d["status"], d["attempts"], d["lastStatusCode"]) == ("failed", 3, None)
    assert "no answer within 3s" in d["lastError"]
    for hook in (closer, dead):
        [d] = await world.settled(hook)
        assert (d["status"], d["attempts"], d["lastStatusCode"]) == ("failed", 3, None) and d["lastError"]
    [d] = await world.settled(failing)
    assert (d["status"], d["attempts"], d["lastStatusCode"]) == ("failed", 3, 500)
    assert d["lastError"] == "the receiver answered 500"
    assert len(receivers.of("fail")) == 3
    bodies = {g.body for g in receivers.of("fail")}
    assert len(bodies) == 1  # every attempt sends the same body


async def test_redeliver_and_inactive(world: World, receivers: Receivers) -> None:
    hook = await world.hook("TAG_PUSH", "acme/app", receivers.url("ok"))
    await _push(world, "acme/app", "v1")
    [first] = await world.settled(hook)
    again = await world.call("POST", f"/webhooks/{hook['id']}/deliveries/{first['id']}/redeliver", expect=202)
    assert again["redeliveryOf"] == first["id"] and again["status"] == "pending"
    got = await receivers.wait_for("ok", 2)
    assert got[0].body == got[1].body and got[1].headers["X-Dtr-Delivery"] == str(again["id"])
    _verify(hook["httpSecret"], got[1].headers, got[1].body)
    await world.call("POST", f"/webhooks/{hook['id']}/deliveries/999999/redeliver", expect=404)

    changed = await world.call("PATCH", f"/webhooks/{hook['id']}", body={"inactive": True})
    assert changed["inactive"] is True and "httpSecret" not in changed
    other = await world.hook("TAG_PUSH", "acme/app", receivers.url("after"))
    await _push(world, "acme/app", "v2")
    await world.settled(other)
    assert len(await world.deliveries(hook)) == 2  # nothing new for the inactive one


async def test_the_test_delivery(world: World, receivers: Receivers) -> None:
    body: dict[str, Any] = {"type": "TAG_PUSH", "endpoint": receivers.url("ok"), "httpSecret": "s3"}
    out = await world.call("POST", "/webhooks/test", body=body)
    assert out["statusCode"] == 200 and out["error"] is None
    [got] = receivers.of("ok")
    _verify("s3", got.headers, got.body)
    doc = json.loads(got.body)
    assert doc["type"] == "TAG_PUSH" and doc["contents"]["imageName"] == "test/test:latest"
    out = await world.call("POST", "/webhooks/test", body={"type": "SCANNER_UPDATE_COMPLETED",
                                                          "endpoint": receivers.url("fail")})
    assert out["statusCode"] == 500
    assert "X-Dtr-Signature" not in receivers.of("fail")[0].headers
    out = await world.call("POST", "/webhooks/test", body={"type": "PROMOTION", "endpoint": receivers.dead})
    assert out["statusCode"] is None and out["error"]


async def test_a_tls_endpoint_with_its_ca(world: World, receivers: Receivers, tls_receiver: tuple[str, str]) -> None:
    base, ca = tls_receiver
    body = {"type": "TAG_PUSH", "endpoint": f"{base}/tls", "tlsCert": ca}
    out = await world.call("POST", "/webhooks/test", body=body)
    assert out["statusCode"] == 200 and out["error"] is None
    out = await world.call("POST", "/webhooks/test", body={"type": "TAG_PUSH", "endpoint": f"{base}/tls"})
    assert out["statusCode"] is None and "certificate" in out["error"].lower()
    hook = await world.hook("TAG_PUSH", "acme/app", f"{base}/tls", tlsCert=ca)
    assert hook["tlsCert"] == ca
    await _push(world, "acme/app", "v1")
    [d] = await world.settled(hook)
    assert d["status"] == "succeeded"
    assert len(receivers.of("tls")) == 2


async def test_the_deny_list(world: World, receivers: Receivers) -> None:
    for endpoint in ("http://169.254.169.254/latest/meta-data", "http://[fd00:ec2::254]/",
                     "http://[::ffff:169.254.169.254]/", "https://169.254.1.1:8443/x"):
        for path, body in (("/webhooks", {"type": "TAG_PUSH", "key": "acme/app", "endpoint": endpoint}),
                           ("/webhooks/test", {"type": "TAG_PUSH", "endpoint": endpoint})):
            err = await world.call("POST", path, body=body, expect=400)
            assert err["errors"][0]["code"] == "INVALID_PARAMETER" and "denied" in err["errors"][0]["message"]
    # A name is checked on the addresses it resolves to, when sent.
    port = receivers.base.rsplit(":", 1)[1]
    async with Sender(WebhooksConfig(deny_networks=("127.0.0.0/8", "::1/128"))) as sender:
        out = await sender.send(f"http://localhost:{port}/ok", b"{}", "TAG_PUSH", "1", None, None)
    assert out.status is None and out.error and "denied" in out.error
    assert receivers.of("ok") == []


async def test_repository_and_delete_events(world: World, receivers: Receivers) -> None:
    created = await world.hook("REPO_CREATED", "acme", receivers.url("created"))
    tag_deleted = await world.hook("TAG_DELETE", "acme/app", receivers.url("tagdel"))
    manifest_deleted = await world.hook("MANIFEST_DELETE", "acme/app", receivers.url("mandel"))
    await world.call("POST", "/repositories/acme", body={"name": "new"}, expect=201)
    v1 = await _push(world, "acme/app", "v1")
    v2 = await _push(world, "acme/app", "v2")
    async with world.client.session.get(f"{world.base}/auth/token", headers={"Authorization": basic(*ADMIN_AUTH)},
                                        params={"scope": "repository:acme/app:delete"}) as r:
        assert r.status == 200, await r.text()
        bearer = {"Authorization": f"Bearer {(await r.json())['token']}"}
    async with aiohttp.ClientSession(headers=bearer) as http:
        for ref in ("v1", v2):
            async with http.delete(f"{world.base}/v2/acme/app/manifests/{ref}") as r:
                assert r.status == 202, await r.text()

    # (acme/app's creation may come too: the webhook matches events not yet handed out when it was made)
    async with asyncio.timeout(WAIT):
        while not (new := [d for d in map(json.loads, (g.body for g in receivers.of("created")))
                           if d["contents"]["repository"] == "new"]):
            await receivers.wait_for("created", len(receivers.of("created")) + 1)
    [doc] = new
    assert doc["type"] == "REPO_CREATED" and doc["location"] == "/repositories/acme/new"
    assert (doc["contents"]["namespace"], doc["contents"]["author"]) == ("acme", "admin")
    [got] = await receivers.wait_for("tagdel")
    contents = json.loads(got.body)["contents"]
    assert (contents["tag"], contents["digest"], contents["imageName"]) == ("v1", v1, "acme/app:v1")
    [got] = await receivers.wait_for("mandel")
    doc = json.loads(got.body)
    assert doc["type"] == "MANIFEST_DELETE" and doc["contents"]["digest"] == v2
    assert doc["contents"]["tags"] == ["v2"] and doc["location"] == f"/repositories/acme/app/manifests/{v2}"
    for hook in (created, tag_deleted, manifest_deleted):
        assert {d["status"] for d in await world.settled(hook)} == {"succeeded"}

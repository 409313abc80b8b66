"""The built-in Notary's HTTP API (``/v2/<gun>/_trust/``) against dtr's app with real Postgres,
driven by a TUF client making the files docker and the notary CLI make (tests.trust.tufclient):
the flows of the notes' "Multipart update" part, reads by checksum and version, server key
rotation, deletes, change feeds, hostile uploads, paths notary-server does not serve."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import uuid
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.trust.tufclient import Key, Repo, meta, multipart, signed_part, verify

Client = TestClient[web.Request, web.Application]


class Trust:
    """One GUN on the app under test."""

    def __init__(self, client: Client, name: str | None = None) -> None:
        self.client = client
        self.gun = f"{client.server.host}:{client.server.port}/{name or 'ns/' + uuid.uuid4().hex[:10]}"
        self.repo = Repo(self.gun)

    async def req(self, method: str, path: str, **kw: Any) -> tuple[int, dict[str, str], bytes]:
        async with self.client.request(method, path, **kw) as r:
            return r.status, dict(r.headers), await r.read()

    async def get(self, file: str, **kw: Any) -> tuple[int, dict[str, str], bytes]:
        return await self.req("GET", f"/v2/{self.gun}/_trust/tuf/{file}", **kw)

    async def ok(self, file: str) -> bytes:
        status, _, body = await self.get(file)
        assert status == 200, (file, body)
        return body

    async def post(self, files: dict[str, bytes], **mp: Any) -> tuple[int, bytes]:
        body, ctype = multipart(files, **mp)
        status, _, answer = await self.req("POST", f"/v2/{self.gun}/_trust/tuf/", data=body,
                                           headers={"Content-Type": ctype})
        return status, answer

    async def publish(self, files: dict[str, bytes]) -> None:
        status, body = await self.post(files)
        assert (status, body) == (200, b""), body

    async def fetch_keys(self) -> None:
        for role in ("timestamp", "snapshot"):
            self.repo.server_keys[role] = json.loads(await self.ok(f"{role}.key"))

    async def new_repo(self) -> None:
        """docker push with content trust to a new repository: root 404, keys, root + targets."""
        await self.fetch_keys()
        self.repo.add_target("v1", b"manifest one")
        await self.publish({"root": self.repo.root(), "targets": self.repo.targets_file()})


def error(body: bytes) -> dict[str, Any]:
    errors = json.loads(body)["errors"]
    assert len(errors) == 1
    return dict(errors[0])


async def check_consistent(t: Trust, server_snapshot: bool = True) -> dict[str, bytes]:
    """Every current file, with the snapshot's and timestamp's meta equal to the hashes of the
    bytes served and the server's signatures valid."""
    files = {r: await t.ok(f"{r}.json") for r in ("root", "targets", "snapshot", "timestamp")}
    snap = signed_part(files["snapshot"])
    for role in ("root", "targets"):
        assert snap["meta"][role] == meta(files[role]), role
    ts = signed_part(files["timestamp"])
    assert ts["meta"]["snapshot"] == meta(files["snapshot"])
    assert verify(files["timestamp"], t.repo.server_keys["timestamp"])
    if server_snapshot:
        assert verify(files["snapshot"], t.repo.server_keys["snapshot"])
    return files


async def test_new_repository_push_and_reads(app_client: Client) -> None:
    t = Trust(app_client)
    status, _, body = await t.get("root.json")
    assert status == 404 and error(body)["code"] == "METADATA_NOT_FOUND"
    # Before any root the server's keys are the same on every GET (notary-server made new ones).
    first = {r: await t.ok(f"{r}.key") for r in ("timestamp", "snapshot")}
    assert first == {r: await t.ok(f"{r}.key") for r in ("timestamp", "snapshot")}
    assert json.loads(first["timestamp"])["keyval"]["private"] is None
    await t.new_repo()
    files = await check_consistent(t)
    assert files["root"] == t.repo.sent["root"] and files["targets"] == t.repo.sent["targets"]
    assert signed_part(files["snapshot"])["version"] == signed_part(files["timestamp"])["version"] == 1
    assert signed_part(files["targets"])["targets"]["v1"]["length"] == len(b"manifest one")
    status, headers, _ = await t.get("targets.json")
    assert headers["Cache-Control"] == "public, max-age=300, must-revalidate"
    assert dt.datetime.strptime(headers["Last-Modified"], "%a, %d %b %Y %H:%M:%S GMT")
    # The keys listed in the root are the ones GET answers now.
    assert {r: await t.ok(f"{r}.key") for r in ("timestamp", "snapshot")} == first

    sha = hashlib.sha256(files["root"]).hexdigest()
    status, headers, body = await t.get(f"root.{sha}.json")
    assert (status, body) == (200, files["root"]) and headers["Cache-Control"] == "public, max-age=2592000"
    for missing in (f"root.{'0' * 64}.json", f"root.{hashlib.sha512(files['root']).hexdigest()}.json",
                    f"targets.{sha}.json", "2.root.json", "0.root.json"):
        status, _, body = await t.get(missing)
        assert status == 404 and error(body)["code"] == "METADATA_NOT_FOUND", missing
    assert await t.ok("1.root.json") == files["root"]
    assert await t.ok("1.timestamp.json") == files["timestamp"]


async def test_publish_with_server_snapshot_and_delegations(app_client: Client) -> None:
    t = Trust(app_client)
    await t.new_repo()
    before = await check_consistent(t)
    t.repo.add_target("v2", b"manifest two")
    releases = t.repo.delegate("targets/releases")
    assert releases.key_id
    t.repo.add_target("v2", b"manifest two", role="targets/releases")
    # The client's outer key order is not the server's: the snapshot hashes the bytes as sent.
    targets = t.repo.targets_file(signatures_first=True)
    await t.publish({"targets": targets, "targets/releases": t.repo.delegation_file("targets/releases")})
    files = await check_consistent(t)
    assert files["targets"] == targets and files["root"] == before["root"]
    snap = signed_part(files["snapshot"])
    assert snap["version"] == 2 and signed_part(files["timestamp"])["version"] == 2
    assert snap["meta"]["targets/releases"] == meta(await t.ok("targets/releases.json"))
    assert await t.ok("1.targets.json") == before["targets"]
    # The same version again is refused, and nothing changes.
    status, body = await t.post({"targets": t.repo.sent["targets"]})
    assert status == 400 and error(body)["code"] == "VERSION", body
    assert await t.ok("timestamp.json") == files["timestamp"]


async def test_client_snapshot_then_rotation_to_the_server(app_client: Client) -> None:
    """notary init -p (targets, snapshot, root; the client holds the snapshot key), a publish
    without a snapshot refused, then key rotate snapshot -r (POST snapshot.key, root v2)."""
    t = Trust(app_client)
    t.repo.server_keys["timestamp"] = json.loads(await t.ok("timestamp.key"))
    t.repo.snapshot_key = client_key = Key()
    root, targets = t.repo.root(), t.repo.targets_file()
    await t.publish({"targets": targets, "snapshot": t.repo.snapshot_file(), "root": root})
    assert await t.ok("snapshot.json") == t.repo.sent["snapshot"]
    t.repo.server_keys["snapshot"] = client_key.obj
    await check_consistent(t, server_snapshot=False)
    status, _, body = await t.get("snapshot.key")  # the root's snapshot key is the client's
    assert status == 404, body

    t.repo.add_target("v1", b"one")
    status, body = await t.post({"targets": t.repo.targets_file()})
    assert status == 400, body
    assert error(body)["code"] == "INVALID_UPDATE"
    assert error(body)["detail"]["Name"] == "ErrBadHierarchy"
    t.repo.versions["targets"] -= 1

    status, _, new_key = await t.req("POST", f"/v2/{t.gun}/_trust/tuf/snapshot.key")
    assert status == 200
    again = await t.req("POST", f"/v2/{t.gun}/_trust/tuf/snapshot.key")
    assert again[2] != new_key  # each rotation request makes a key; the root picks one
    t.repo.snapshot_key = None
    t.repo.server_keys["snapshot"] = json.loads(new_key)
    await t.publish({"root": t.repo.root()})
    files = await check_consistent(t)
    assert signed_part(files["snapshot"])["version"] == 2
    assert json.loads(await t.ok("snapshot.key")) == json.loads(new_key)
    await t.publish({"targets": t.repo.targets_file()})
    assert signed_part((await check_consistent(t))["snapshot"])["version"] == 3


async def test_delete_and_change_feeds(app_client: Client) -> None:
    a, b = Trust(app_client), Trust(app_client)
    await a.new_repo()
    await b.new_repo()
    a.repo.add_target("v2", b"two")
    await a.publish({"targets": a.repo.targets_file()})
    old_key = await a.ok("timestamp.key")
    status, _, body = await a.req("DELETE", f"/v2/{a.gun}/_trust/tuf/")
    assert (status, body) == (200, b"")
    status, _, _ = await a.get("root.json")
    assert status == 404
    assert await a.ok("timestamp.key") != old_key  # the keys went too

    async def feed(path: str, **q: str) -> list[dict[str, Any]]:
        status, _, body = await a.req("GET", path, params=q)
        assert status == 200, body
        doc = json.loads(body)
        assert doc["count"] == len(doc["records"] or [])
        return list(doc["records"] or [])

    mine = await feed(f"/v2/{a.gun}/_trust/changefeed", records="0")
    assert [(r["Category"], r["Version"], r["GUN"]) for r in mine] == [
        ("update", 1, a.gun), ("update", 2, a.gun), ("deletion", 0, a.gun)]
    assert mine[2]["SHA256"] == "" and all(isinstance(r["ID"], str) for r in mine)
    everything = await feed("/v2/_trust/changefeed", records="1000")
    ids = [int(r["ID"]) for r in everything if r["GUN"] in (a.gun, b.gun)]
    assert len(ids) == 4 and ids == sorted(ids)
    first, *_ = ids
    ours = [r for r in everything if r["GUN"] in (a.gun, b.gun)]
    assert [r["ID"] for r in await feed(f"/v2/{a.gun}/_trust/changefeed", records="2", change_id=str(first))] == \
        [r["ID"] for r in mine[1:3]]
    assert await feed(f"/v2/{a.gun}/_trust/changefeed", records="-1", change_id=mine[2]["ID"]) == [mine[1]]
    assert await feed(f"/v2/{a.gun}/_trust/changefeed", records="2", change_id="-1") == mine[1:]
    assert await feed(f"/v2/{a.gun}/_trust/changefeed", records="-1") == mine[2:]
    assert await feed(f"/v2/{b.gun}/_trust/changefeed", records="5") == [r for r in ours if r["GUN"] == b.gun]
    assert await feed(f"/v2/{a.gun}/_trust/changefeed", records="5", change_id=mine[2]["ID"]) == []
    for q in ({}, {"records": "x"}, {"records": "99999999999"}, {"records": "1", "change_id": "abc"},
              {"records": "1.5"}):
        status, _, body = await a.req("GET", f"/v2/{a.gun}/_trust/changefeed", params=q)
        assert status == 400 and error(body)["code"] == "INVALID_PARAMETERS", q
    status, _, body = await a.req("GET", "/v2/_trust/changefeed")
    assert status == 400 and error(body)["code"] == "INVALID_PARAMETERS"


async def test_the_feed_names_each_timestamp(app_client: Client) -> None:
    t = Trust(app_client)
    await t.new_repo()
    _, _, body = await t.req("GET", f"/v2/{t.gun}/_trust/changefeed", params={"records": "0"})
    (record,) = json.loads(body)["records"]
    assert record["SHA256"] == hashlib.sha256(await t.ok("timestamp.json")).hexdigest()


async def test_hostile_updates(app_client: Client) -> None:
    t = Trust(app_client)
    await t.fetch_keys()
    root, targets = t.repo.root(), t.repo.targets_file()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"files": {"root": root}, "filenames": {"root": ""}}, "NO_FILENAME"),
        ({"files": {"root": root, "bogus": targets}}, "INVALID_ROLE"),
        ({"files": {"root": root, "targets/../x": targets}}, "INVALID_ROLE"),
        ({"files": {"root": b"{not json", "targets": targets}}, "MALFORMED_JSON"),
        ({"files": {"root": root, "targets": b"x" * (16 * 1024 * 1024 + 1)}}, "MALFORMED_UPLOAD"),
    ]
    for kw, code in cases:
        status, body = await t.post(**kw)
        assert status == 400 and error(body)["code"] == code, (code, body[:300])
    url = f"/v2/{t.gun}/_trust/tuf/"
    for data, ctype in ((root, "application/json"), (b"--x\r\nbroken", "multipart/form-data; boundary=x"),
                        (b"", "multipart/form-data")):
        status, _, body = await t.req("POST", url, data=data, headers={"Content-Type": ctype})
        assert status == 400 and error(body)["code"] == "MALFORMED_UPLOAD", (ctype, body)
    status, _, _ = await t.get("root.json")
    assert status == 404  # nothing half-written
    # ".json" is stripped from file names
    status, body = await t.post({"root": root, "targets": targets}, filenames={"targets": "targets.json"})
    assert status == 200, body


async def test_paths_notary_does_not_serve(app_client: Client) -> None:
    t = Trust(app_client)
    await t.new_repo()
    g = t.gun
    for method, path in (("PUT", f"{g}/_trust/tuf/"), ("GET", f"{g}/_trust/tuf/"), ("GET", f"{g}/_trust/tuf/root.key"),
                         ("GET", f"{g}/_trust/bogus"), ("POST", f"{g}/_trust/changefeed"),
                         ("GET", f"{g}/_trust/tuf/nothing.json"), ("PATCH", f"{g}/_trust/tuf/root.json"),
                         ("DELETE", f"{g}/_trust/tuf/timestamp.key"), ("GET", "_trust/x"),
                         ("GET", "ns/app/_trust/tuf/root.json"), ("DELETE", "ns/app/_trust/tuf/"),
                         ("GET", "ns/app/_trust/tuf/timestamp.key")):
        status, _, body = await t.req(method, f"/v2/{path}")
        assert status == 404 and error(body)["code"] == "METADATA_NOT_FOUND", (method, path, body)
    body, ctype = multipart({"root": t.repo.sent["root"]})
    status, _, answer = await t.req("POST", "/v2/ns/app/_trust/tuf/", data=body, headers={"Content-Type": ctype})
    assert status == 400 and error(answer)["code"] == "INVALID_GUN"


@pytest.mark.parametrize("app_extra", [{"trust": {"notary": False}}])
async def test_notary_off_serves_no_trust_routes(app_client: Client) -> None:
    t = Trust(app_client)
    for file in ("timestamp.key", "root.json"):
        status, _, body = await t.get(file)
        assert status == 404 and error(body)["code"] == "NAME_UNKNOWN"


@pytest.mark.parametrize("app_extra", [{"trust": {"timestamp_expiry": 1}}])
async def test_an_expiring_timestamp_is_signed_again_on_get(app_client: Client) -> None:
    t = Trust(app_client)
    await t.new_repo()
    first = signed_part(await t.ok("1.timestamp.json"))
    expiry = dt.datetime.fromisoformat(first["expires"].replace("Z", "+00:00"))
    await asyncio.sleep((expiry - dt.datetime.now(dt.UTC)).total_seconds() + 0.1)  # let it expire
    asked = dt.datetime.now(dt.UTC)
    served = await t.ok("timestamp.json")
    ts = signed_part(served)
    assert ts["version"] >= 2
    assert dt.datetime.fromisoformat(ts["expires"].replace("Z", "+00:00")) > asked
    assert ts["meta"]["snapshot"] == meta(await t.ok("snapshot.json"))
    assert verify(served, t.repo.server_keys["timestamp"])
    _, _, body = await t.req("GET", f"/v2/{t.gun}/_trust/changefeed", params={"records": "0"})
    assert [r["Version"] for r in json.loads(body)["records"]][:2] == [1, 2]
    assert base64.b64decode(ts["meta"]["snapshot"]["hashes"]["sha256"])

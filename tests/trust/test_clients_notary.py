"""The real ``notary`` CLI (Debian's 0.7) against dtr's built-in Notary, and against notary-server
(which proves each flow): publish, list, rotating the snapshot key to the server and the root key,
delegations, deleting a repository's trust data, and the change feed read with the CLI's credentials."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tests.trust.conftest import TrustTarget
from tests.trust.notary_tools import TrustHTTP, delegation_keypair


def _file(tmp_path: Path, name: str) -> tuple[Path, tuple[str, int]]:
    path = tmp_path / name
    path.write_bytes(f"the content of {name}\n".encode())
    return path, (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size)


def _signed(http: TrustHTTP, gun: str, role: str) -> dict[str, Any]:
    status, body = http.json("GET", f"/v2/{gun}/_trust/tuf/{role}.json")
    assert status == 200, (status, body)
    signed: dict[str, Any] = body["signed"]
    return signed


def _feed(http: TrustHTTP, path: str) -> list[dict[str, Any]]:
    status, body = http.json("GET", path)
    assert status == 200, (status, body)
    assert body["count"] == len(body["records"])
    records: list[dict[str, Any]] = body["records"]
    return records


def test_publish_rotate_delegate_and_read_the_feed(trust_target: TrustTarget, notary_binary: str,
                                                   tmp_path: Path) -> None:
    gun = trust_target.repo()
    cli = trust_target.notary(notary_binary, tmp_path / "owner")
    reader = trust_target.notary(notary_binary, tmp_path / "reader")
    http = trust_target.http()
    v1, v1_meta = _file(tmp_path, "v1")
    cli.notary("init", gun, "-p")
    cli.notary("add", gun, "v1", str(v1), "-p")
    assert cli.list(gun) == {"v1": (*v1_meta, "targets")}
    assert reader.list(gun) == {"v1": (*v1_meta, "targets")}
    # notary init keeps the snapshot key with the client ...
    client_snapshot_keys = [k for k, role in cli.key_ids().items() if role == "snapshot"]
    assert _signed(http, gun, "root")["roles"]["snapshot"]["keyids"] == client_snapshot_keys
    status, raw_snapshot = http.json("GET", f"/v2/{gun}/_trust/tuf/snapshot.json")
    assert [s["keyid"] for s in raw_snapshot["signatures"]] == client_snapshot_keys

    # ... until it is rotated to the server, which then signs every snapshot.
    cli.notary("key", "rotate", gun, "snapshot", "-r")
    root = _signed(http, gun, "root")
    status, server_key = http.json("GET", f"/v2/{gun}/_trust/tuf/snapshot.key")
    assert status == 200
    server_key_id = hashlib.sha256(json.dumps(server_key, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert root["roles"]["snapshot"]["keyids"] == [server_key_id] != client_snapshot_keys
    assert root["version"] == 2
    v2, v2_meta = _file(tmp_path, "v2")
    cli.notary("add", gun, "v2", str(v2), "-p")
    assert reader.list(gun) == {"v1": (*v1_meta, "targets"), "v2": (*v2_meta, "targets")}
    status, raw_snapshot = http.json("GET", f"/v2/{gun}/_trust/tuf/snapshot.json")
    assert [s["keyid"] for s in raw_snapshot["signatures"]] == [server_key_id]

    # Root rotation: root v3 lists a new root key and is signed by the old and new ones; clients
    # holding the old root follow the chain, new ones trust it on first use.
    old_root_keys = root["roles"]["root"]["keyids"]
    cli.notary("key", "rotate", gun, "root", input="yes\n")
    rotated = _signed(http, gun, "root")
    assert rotated["version"] == 3 and rotated["roles"]["root"]["keyids"] != old_root_keys
    status, raw_root = http.json("GET", f"/v2/{gun}/_trust/tuf/root.json")
    assert {s["keyid"] for s in raw_root["signatures"]} >= {*old_root_keys, *rotated["roles"]["root"]["keyids"]}
    assert set(reader.list(gun)) == {"v1", "v2"}
    assert set(trust_target.notary(notary_binary, tmp_path / "fresh").list(gun)) == {"v1", "v2"}

    # A delegation, and a target signed by the delegate's key only.
    cert, key = delegation_keypair(tmp_path / "releaser", "releaser")
    cli.notary("delegation", "add", gun, "targets/releases", str(cert), "--all-paths", "-p")
    cli.notary("key", "import", str(key), "-r", "targets/releases", "-g", gun)
    v3, v3_meta = _file(tmp_path, "v3")
    cli.notary("add", gun, "v3", str(v3), "--roles", "targets/releases", "-p")
    assert reader.list(gun)["v3"] == (*v3_meta, "targets/releases")
    assert "targets/releases" in reader.notary("delegation", "list", gun).stdout
    assert _signed(http, gun, "targets/releases")["targets"]["v3"]["length"] == v3_meta[1]

    # The change feed: one update per published version of the timestamp, the last one the current.
    records = _feed(http, f"/v2/{gun}/_trust/changefeed?change_id=0&records=100")
    assert {r["GUN"] for r in records} == {gun} and {r["Category"] for r in records} == {"update"}
    versions = [r["Version"] for r in records]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    status, _, timestamp = http.request("GET", f"/v2/{gun}/_trust/tuf/timestamp.json")
    assert status == 200
    assert records[-1]["SHA256"] == hashlib.sha256(timestamp).hexdigest()
    assert records[-1]["Version"] == json.loads(timestamp)["signed"]["version"]
    ids = [int(r["ID"]) for r in records]
    assert _feed(http, f"/v2/{gun}/_trust/changefeed?change_id={ids[0]}&records=2") == records[1:3]
    newest = _feed(http, f"/v2/{gun}/_trust/changefeed?change_id=-1&records=-2")
    assert newest == records[-2:]
    everything = _feed(http, "/v2/_trust/changefeed?change_id=-1&records=-100")
    assert [r for r in everything if r["GUN"] == gun] == records[-100:]


def test_delete_remote(trust_target: TrustTarget, notary_binary: str, tmp_path: Path) -> None:
    gun = trust_target.repo()
    cli = trust_target.notary(notary_binary, tmp_path / "owner")
    http = trust_target.http()
    v1, _ = _file(tmp_path, "v1")
    cli.notary("init", gun, "-p")
    cli.notary("add", gun, "v1", str(v1), "-p")
    cli.notary("delete", gun, "--remote")
    fresh = trust_target.notary(notary_binary, tmp_path / "fresh").notary("list", gun, check=False)
    assert fresh.returncode != 0 and "does not have trust data" in fresh.stdout, fresh.stdout + fresh.stderr
    for role in ("root", "targets", "snapshot", "timestamp"):
        status, body = http.json("GET", f"/v2/{gun}/_trust/tuf/{role}.json")
        assert (status, body["errors"][0]["code"]) == (404, "METADATA_NOT_FOUND")
    records = _feed(http, f"/v2/{gun}/_trust/changefeed?change_id=0&records=100")
    assert [r["Category"] for r in records] == ["update", "update", "deletion"]
    assert (records[-1]["Version"], records[-1]["SHA256"]) == (0, "")
    everything = _feed(http, "/v2/_trust/changefeed?change_id=-1&records=-3")
    assert everything[-1] == records[-1]
    # The repository starts over: a new init publishes version 1 again.
    again = trust_target.notary(notary_binary, tmp_path / "again")
    again.notary("init", gun, "-p")
    assert _signed(http, gun, "root")["version"] == 1

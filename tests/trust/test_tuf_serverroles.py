"""Server-made snapshot and timestamp (meta over the exact stored bytes) and who signed which tag."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json

from dtr.trust.canonical import canonical
from dtr.trust.serverroles import SignedTarget, make_snapshot, make_timestamp, tag_targets
from dtr.trust.tufkeys import generate_server_key
from dtr.trust.validate import signed_expiry, signed_version, validate_update
from tests.trust.test_tuf_build import Key, Repo, delegation, ec_key

NOW = dt.datetime.now(dt.UTC)
EXPIRES = dt.datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)


def _b64(fn: str, raw: bytes) -> str:
    return base64.b64encode(hashlib.new(fn, raw).digest()).decode()


def test_snapshot_hashes_exact_bytes_and_validates_as_upload() -> None:
    server = generate_server_key()
    repo = Repo()
    repo.snapshot_key = Key(server.private)  # type: ignore[arg-type]
    root = repo.root()
    # another client's layout: pretty-printed, signatures first; notary-server would hash its re-serialisation
    targets = json.loads(repo.targets(tags={"v1": b"manifest"}))
    pretty = json.dumps({"signatures": targets["signatures"], "signed": targets["signed"]}, indent=2).encode()
    snap = make_snapshot(None, {"root": root, "targets": pretty}, server, 1, EXPIRES)
    doc = json.loads(snap)
    assert list(doc) == ["signed", "signatures"]
    assert snap.startswith(b'{"signed":' + canonical(doc["signed"]) + b',"signatures":[')
    assert doc["signed"]["_type"] == "Snapshot" and doc["signed"]["version"] == 1
    assert doc["signed"]["expires"] == "2030-05-06T07:08:09Z"
    assert doc["signed"]["meta"]["targets"] == {
        "hashes": {"sha256": _b64("sha256", pretty), "sha512": _b64("sha512", pretty)}, "length": len(pretty)}
    assert doc["signatures"][0]["keyid"] == server.public.key_id
    # the snapshot is what a client would upload: notary's rules accept it, root lists the server key
    got = validate_update(repo.gun, {}, {"root": root, "targets": pretty, "snapshot": snap},
                          server_holds_snapshot_key=False, now=NOW)
    assert got.snapshot_uploaded
    assert signed_version(snap) == 1 and signed_expiry(snap) == EXPIRES.replace(microsecond=0)


def test_snapshot_keeps_previous_entries_and_overrides_given() -> None:
    server = generate_server_key()
    first = make_snapshot(None, {"root": b"r1", "targets": b"t1", "targets/releases": b"d1", "timestamp": b"x"},
                          server, 1, EXPIRES)
    assert set(json.loads(first)["signed"]["meta"]) == {"root", "targets", "targets/releases"}
    second = make_snapshot(first, {"targets": b"t2"}, server, 2, EXPIRES)
    meta = json.loads(second)["signed"]["meta"]
    assert meta["targets"]["length"] == 2 and meta["targets"]["hashes"]["sha256"] == _b64("sha256", b"t2")
    assert meta["targets/releases"]["hashes"]["sha256"] == _b64("sha256", b"d1")
    assert make_snapshot(b"junk", {"root": b"r"}, server, 3, EXPIRES)


def test_timestamp_over_exact_snapshot() -> None:
    server = generate_server_key()
    snap = make_snapshot(None, {"root": b"r", "targets": b"t"}, server, 4, EXPIRES)
    ts = make_timestamp(snap, server, 7, EXPIRES)
    doc = json.loads(ts)
    assert doc["signed"] == {"_type": "Timestamp", "expires": "2030-05-06T07:08:09Z", "version": 7, "meta": {
        "snapshot": {"hashes": {"sha256": _b64("sha256", snap), "sha512": _b64("sha512", snap)},
                     "length": len(snap)}}}
    sig = doc["signatures"][0]
    assert server.public.verify(sig["method"], base64.b64decode(sig["sig"]), canonical(doc["signed"]))


def test_tag_targets_walks_delegations_within_paths() -> None:
    repo = Repo()
    a, b = Key(ec_key()), Key(ec_key())
    d = delegation([a], "targets/releases")
    d2 = delegation([b], "targets/qa", ["v"])
    d["keys"].update(d2["keys"])
    d["roles"] += d2["roles"]
    files = {
        "root": repo.root(),
        "targets": repo.targets(tags={"latest": b"m1", "v1": b"m2"}, delegations=d),
        "targets/releases": repo.targets(tags={"v1": b"m3"}, signer=a),
        "targets/qa": repo.targets(tags={"v2": b"m4", "x": b"m5"}, signer=b),
        "targets/orphan": repo.targets(tags={"v9": b"m6"}, signer=b),
    }
    got = tag_targets(files)
    digest = "sha256:" + hashlib.sha256(b"m2").hexdigest()
    assert SignedTarget("v1", digest, 2, "targets", (repo.targets_key.id,)) in got
    assert [(t.tag, t.role, t.key_ids) for t in got] == [
        ("latest", "targets", (repo.targets_key.id,)), ("v1", "targets", (repo.targets_key.id,)),
        ("v1", "targets/releases", (a.id,)), ("v2", "targets/qa", (b.id,))]
    assert tag_targets({"targets": b"junk"}) == []

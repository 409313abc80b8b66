"""Differential test against the real notary: Debian's notary CLI publishes through a recording proxy
to a real notary-server (memory storage, local trust service); every update it POSTs is also given
to ``validate_update`` with the server's state from just before, and crafted bad updates are sent to
both: same verdict, same code, same detail Name and message."""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.policy
import hashlib
import http.client
import http.server
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from dtr.trust import errors
from dtr.trust.serverroles import tag_targets
from dtr.trust.tufkeys import parse_key
from dtr.trust.validate import current_root_keys, validate_update
from tests.servers import free_port, require_binary, stop_processes
from tests.trust.test_tuf_build import Key, Repo, delegation, ec_key, make_cert, root_key

GUN = "127.0.0.1:5000/ns/app"
INSTALL = "apt-get install -y --no-install-recommends notary"


def _get(base: str, path: str) -> bytes | None:
    try:
        with urllib.request.urlopen(base + path, timeout=10) as r:
            return bytes(r.read())
    except urllib.error.URLError:  # an HTTP error status, or not listening yet
        return None


def server_state(base: str, gun: str, delegations: set[str]) -> dict[str, bytes]:
    """The GUN's current files on the real server."""
    found = {}
    for role in ("root", "targets", "snapshot", "timestamp", *sorted(delegations)):
        raw = _get(base, f"/v2/{gun}/_trust/tuf/{role}.json")
        if raw is not None:
            found[role] = raw
    return found


def holds_snapshot_key(base: str, gun: str) -> bool:
    """Whether the server holds the snapshot key its current root lists: notary-server's GET
    snapshot.key answers that key when it holds it (else it makes a new one, not listed)."""
    raw = _get(base, f"/v2/{gun}/_trust/tuf/snapshot.key")
    root = _get(base, f"/v2/{gun}/_trust/tuf/root.json")
    if raw is None or root is None:
        return False
    held = parse_key(json.loads(raw)).key_id
    return held in {k.key_id for k in current_root_keys(root, "snapshot")}


def parse_multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    msg = email.message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body,
                                   policy=email.policy.HTTP)
    return {str(p.get_filename()).removesuffix(".json"): p.get_payload(decode=True) for p in msg.iter_parts()}


class Recorder(http.server.ThreadingHTTPServer):
    """Forwards to notary-server; for each update POST records the server state before it, the parts,
    whether the server holds the snapshot key, and the server's answer."""

    def __init__(self, upstream: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.base = f"http://127.0.0.1:{upstream}"
        self.updates: list[dict[str, Any]] = []
        self.delegations: set[str] = set()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Recorder

    def log_message(self, *args: Any) -> None:
        pass

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        record: dict[str, Any] | None = None
        if self.command == "POST" and self.path.endswith("/_trust/tuf/"):
            gun = self.path.removeprefix("/v2/").removesuffix("/_trust/tuf/")
            uploaded = parse_multipart(self.headers["Content-Type"], body)
            current = server_state(self.server.base, gun, self.server.delegations)
            record = {"gun": gun, "current": current, "uploaded": uploaded}
        conn = http.client.HTTPConnection("127.0.0.1", self.server.upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if record is not None:
            # after the update: the root it leaves in place is the root the update is judged with
            record.update(status=resp.status, answer=data, holds=holds_snapshot_key(self.server.base, record["gun"]))
            self.server.updates.append(record)
            if resp.status == 200:
                self.server.delegations.update(r for r in record["uploaded"] if r.startswith("targets/"))
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_HEAD = _forward


@pytest.fixture(scope="module")
def recorder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorder]:
    server = require_binary("notary-server", INSTALL)
    require_binary("notary", INSTALL)
    d = tmp_path_factory.mktemp("notary-server")
    port = free_port()
    (d / "server.json").write_text(json.dumps({
        "server": {"http_addr": f"127.0.0.1:{port}"}, "logging": {"level": "info"},
        "trust_service": {"type": "local", "hostname": "", "port": "", "key_algorithm": "ecdsa"},
        "storage": {"backend": "memory"}}))
    with open(d / "server.log", "wb") as log:
        proc = subprocess.Popen([server, "-config", str(d / "server.json")], stdout=log, stderr=subprocess.STDOUT)
    rec: Recorder | None = None
    try:
        deadline = time.monotonic() + 30
        while _get(f"http://127.0.0.1:{port}", "/v2/") is None:
            assert proc.poll() is None and time.monotonic() < deadline, (d / "server.log").read_text()
            time.sleep(0.1)
        rec = Recorder(port)
        threading.Thread(target=rec.serve_forever, daemon=True).start()
        yield rec
    finally:
        if rec is not None:
            rec.shutdown()
            rec.server_close()
        stop_processes(proc)


def ours(update: dict[str, Any]) -> Any:
    return validate_update(update["gun"], update["current"], update["uploaded"],
                           server_holds_snapshot_key=update["holds"], now=dt.datetime.now(dt.UTC))


def assert_same_verdict(update: dict[str, Any]) -> None:
    """Our verdict on one recorded update equals notary-server's."""
    if update["status"] == 200:
        got = ours(update)
        assert got.files == {r: f for r, f in update["uploaded"].items() if r != "timestamp"}
        return
    theirs = json.loads(update["answer"])["errors"][0]
    with pytest.raises(errors.TrustError) as e:
        ours(update)
    assert e.value.code.name == theirs["code"], (e.value, theirs)
    if theirs["code"] == "INVALID_UPDATE":
        assert e.value.detail == theirs["detail"]


def post(rec: Recorder, gun: str, parts: dict[str, bytes]) -> dict[str, Any]:
    boundary = uuid.uuid4().hex
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{role}"\r\n'
                    f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
                    for role, data in parts.items()) + f"--{boundary}--\r\n".encode()
    req = urllib.request.Request(f"http://127.0.0.1:{rec.server_port}/v2/{gun}/_trust/tuf/", data=body,
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    n = len(rec.updates)
    with contextlib.suppress(urllib.error.HTTPError):
        urllib.request.urlopen(req, timeout=30).close()
    assert len(rec.updates) == n + 1
    return rec.updates[-1]


def test_notary_cli_updates_and_bad_updates_judged_like_notary_server(recorder: Recorder, tmp_path: Path) -> None:
    env = {**os.environ, **{f"NOTARY_{r}_PASSPHRASE": "pw" for r in ("ROOT", "TARGETS", "SNAPSHOT", "DELEGATION")}}
    trust = tmp_path / "trust"

    def notary(*args: str, stdin: str = "") -> str:
        cmd = ["notary", "-s", f"http://127.0.0.1:{recorder.server_port}", "-d", str(trust), *args]
        done = subprocess.run(cmd, env=env, input=stdin.encode(), capture_output=True, timeout=120)
        assert done.returncode == 0, done
        return done.stdout.decode()

    payload = tmp_path / "manifest.json"
    payload.write_bytes(b'{"schemaVersion":2}')
    private = ec_key()
    (tmp_path / "d.crt").write_bytes(make_cert(private, "releases").public_bytes(serialization.Encoding.PEM))
    (tmp_path / "d.key").write_bytes(private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    notary("init", GUN, "-p")                                   # root, targets, snapshot (client-side)
    notary("add", GUN, "v1", str(payload))
    notary("publish", GUN)                                      # targets, snapshot
    notary("delegation", "add", GUN, "targets/releases", str(tmp_path / "d.crt"), "--all-paths", "-p")
    notary("key", "import", str(tmp_path / "d.key"), "-r", "targets/releases")
    notary("add", GUN, "v2", str(payload), "--roles", "targets/releases", "-p")
    notary("key", "rotate", GUN, "snapshot", "-r")              # root v2 listing the server's snapshot key
    notary("add", GUN, "v3", str(payload), "-p")                # targets only, server snapshot
    notary("key", "rotate", GUN, "root", stdin="yes\n")         # root v3, signed by old and new root keys
    notary("add", GUN, "v4", str(payload), "-p")
    listing = notary("list", GUN)
    assert all(t in listing for t in ("v1", "v2", "v3", "v4"))

    cli = list(recorder.updates)
    assert [sorted(u["uploaded"]) for u in cli] == [
        ["root", "snapshot", "targets"], ["snapshot", "targets"], ["snapshot", "targets"],
        ["snapshot", "targets/releases"], ["root"], ["targets"], ["root"], ["targets"]]
    assert all(u["status"] == 200 for u in cli)
    assert [u["holds"] for u in cli] == [False] * 4 + [True] * 4
    for update in cli:
        assert_same_verdict(update)

    # the real files: tags, digests and signers read back
    state = server_state(recorder.base, GUN, {"targets/releases"})
    tags = {(t.tag, t.role): t for t in tag_targets(state)}
    assert set(tags) == {("v1", "targets"), ("v3", "targets"), ("v4", "targets"), ("v2", "targets/releases")}
    assert tags["v2", "targets/releases"].digest == "sha256:" + hashlib.sha256(payload.read_bytes()).hexdigest()
    assert tags["v2", "targets/releases"].size == len(payload.read_bytes())

    # crafted bad updates, judged by both
    first = cli[0]["uploaded"]
    tampered = cli[-1]["uploaded"]["targets"].replace(b'"v4"', b'"v5"')
    bad_updates = [
        {"targets": cli[1]["uploaded"]["targets"], "snapshot": cli[1]["uploaded"]["snapshot"]},  # old versions
        {"targets": tampered},                                                                  # bad signature
        {"root": first["root"]},                                                                # root v1 after v3
        {"targets/releases": cli[3]["uploaded"]["targets/releases"]},                           # old delegation
        {"targets/other": cli[3]["uploaded"]["targets/releases"]},                              # undeclared
    ]
    for parts in bad_updates:
        update = post(recorder, GUN, parts)
        assert update["status"] == 400, update["answer"]
        assert_same_verdict(update)
    # another GUN: this GUN's root (wrong CN), no root at all, client snapshot without the server's key
    for gun, parts in [("127.0.0.1:5000/ns/other", first), ("127.0.0.1:5000/ns/none", {"targets": first["targets"]}),
                       ("127.0.0.1:5000/ns/app", {"targets": tampered, "timestamp": tampered})]:
        update = post(recorder, gun, parts)
        assert update["status"] == 400, update["answer"]
        assert_same_verdict(update)
    # repositories made by dtr's test builders
    built = "127.0.0.1:5000/ns/built"
    repo = Repo(built)
    sha1 = Repo(built, root=root_key(built, sha1=True))
    two = Repo(built)
    two.root_keys.append(root_key(built))
    two.root_threshold = 2
    for parts in [
        {"root": repo.root(), "targets": repo.targets()},                                   # no snapshot, no key
        {"root": repo.root(expires="2020-01-02T03:04:05Z"), "targets": repo.targets()},
        {"root": repo.root(), "targets": repo.targets(expires="2021-05-06T07:08:09.5+02:00")},
        {"root": sha1.root(), "targets": sha1.targets()},
        {"root": two.root(signers=two.root_keys[:1]), "targets": two.targets()},
        {"root": repo.root(), "targets": repo.targets(delegations=delegation([Key(ec_key())], "targets/A"))},
        {"root": repo.root(), "targets/UP": repo.targets()},
        {"root": repo.root(), "targets": b"junk"},
    ]:
        update = post(recorder, built, parts)
        assert update["status"] == 400, update["answer"]
        assert_same_verdict(update)

"""dtr's built-in Notary and notary-server 0.7, side by side: the same requests to both, the same answers.

What must match: the status, the error code and the INVALID_UPDATE detail's ``Name`` of every update
(messages differ in wording), and the role versions stored afterwards (nothing half-written). The GUN is
the same on both (dtr's host:port as its host part: notary-server takes any). Where dtr differs on
purpose (``DTR_DIFFERS``: notary-server accepts a truncated body, stores what its own client would
never make) or notary-server panics (``PANICS``), the test states dtr's answer.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.servers import DtrProcess
from tests.trust.badupdates import CASES, Update, multipart, outcome, post, run_case, state
from tests.trust.conftest import TrustTarget, dtr_target, notary_target
from tests.trust.notary_tools import NotaryServer, TestCA, TrustHTTP, delegation_keypair

#: The role versions after the case's first update (docker's new repository) alone.
AS_CREATED = {"root": 1, "targets": 1, "snapshot": 1, "timestamp": 1, "targets/releases": None, "targets/a": None}

#: Cases where dtr answers otherwise than notary-server 0.7, on purpose: dtr's answer and state.
DTR_DIFFERS: dict[str, tuple[tuple[int, str | None, str | None], dict[str, int | None]]] = {
    # A body cut off inside its only part's headers: notary's multipart reader stops, and the
    # update of no files is "accepted" (a new snapshot and timestamp signed). dtr: that part has
    # no filename, notary's NO_FILENAME.
    "malformed multipart": ((400, "NO_FILENAME", None), AS_CREATED),
    # notary-server stores a delegation whose child's paths are outside its own; notary's client
    # refuses to make one ("invalid paths to add to role"), dtr refuses to store one.
    "delegation paths outside its parent's": ((400, "INVALID_UPDATE", "ErrBadTargets"),
                                              {**AS_CREATED, "targets": 2, "snapshot": 2, "timestamp": 2}),
    # A key type no client makes: notary-server keeps it as an opaque key (the targets role then
    # has no usable key: ErrBadTargets; beside a valid root certificate it is accepted); dtr refuses
    # the root that lists it.
    "unknown key type for targets": ((400, "INVALID_UPDATE", "ErrBadRoot"), dict.fromkeys(AS_CREATED)),
    "unknown key type beside the root certificate": ((400, "INVALID_UPDATE", "ErrBadRoot"),
                                                     dict.fromkeys(AS_CREATED)),
}

#: Multipart bodies that make notary-server panic (it drops the connection): dtr says 400.
PANICS: dict[str, Update] = {
    "empty body": ("multipart/form-data; boundary=xyz", b""),
    "no boundary in the body": ("multipart/form-data; boundary=xyz", b"garbage without a boundary"),
    "part never closed": ("multipart/form-data; boundary=xyz",
                          b'--xyz\r\nContent-Disposition: form-data; name="files"; filename="targets"\r\n\r\n{}'),
}


@pytest.fixture
def both(trust_dtr: DtrProcess, notary_server: NotaryServer, reference_registry: Any, test_ca: TestCA
         ) -> tuple[TrustTarget, TrustTarget]:
    return dtr_target(trust_dtr, test_ca), notary_target(notary_server, reference_registry, test_ca)


def _gun(dtr: TrustTarget) -> str:
    return f"{dtr.registry}/admin/side-{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize("name", list(CASES))
def test_updates_answered_alike(both: tuple[TrustTarget, TrustTarget], name: str) -> None:
    dtr, _ = both
    answers = {}
    for target in both:
        http, gun = target.http(), _gun(dtr)
        answers[target.name] = (run_case(http, gun, CASES[name]), state(http, gun))
    if name in DTR_DIFFERS:
        assert answers["notary"] != DTR_DIFFERS[name]  # still a difference
    assert answers["dtr"] == DTR_DIFFERS.get(name, answers["notary"])


@pytest.mark.parametrize("name", list(PANICS))
def test_bodies_notary_server_panics_on(both: tuple[TrustTarget, TrustTarget], name: str) -> None:
    dtr, _ = both
    http, gun = dtr.http(), _gun(dtr)
    run_case(http, gun, CASES["new repository"])
    before = state(http, gun)
    assert outcome(*post(http, gun, PANICS[name])) == (400, "MALFORMED_UPLOAD", None)
    assert state(http, gun) == before


def test_large_body_refused_cleanly(both: tuple[TrustTarget, TrustTarget]) -> None:
    """A 64 MiB part: dtr answers 4xx (not a 500, not a dropped connection) and stores nothing."""
    dtr, _ = both
    http, gun = dtr.http(), _gun(dtr)
    run_case(http, gun, CASES["new repository"])
    before = state(http, gun)
    content_type, body = multipart([("files", "targets", b'{"signed":"' + b"A" * (64 << 20) + b'"}')])
    status, _, answer = http.request("POST", f"/v2/{gun}/_trust/tuf/", body, {"Content-Type": content_type})
    assert 400 <= status < 500, (status, answer[:300])
    assert state(http, gun) == before


GETS = ["tuf/root.json", "tuf/1.root.json", "tuf/99.root.json", "tuf/0.root.json", "tuf/-1.root.json",
        "tuf/root.0123.json", "tuf/root." + "a" * 64 + ".json", "tuf/root.md5.json", "tuf/bogus.json",
        "tuf/targets/x.json", "tuf/root.key", "tuf/targets.key", "tuf/", "changefeed?records=abc",
        "changefeed?change_id=x&records=1", "changefeed", "changefeed?records=-2&change_id=-1"]


def test_reads_answered_alike(both: tuple[TrustTarget, TrustTarget]) -> None:
    dtr, _ = both
    answers: dict[str, list[tuple[str, int, str | None]]] = {}
    for target in both:
        http, gun = target.http(), _gun(dtr)
        run_case(http, gun, CASES["new repository"])
        rows = []
        for path in GETS:
            status, body = http.json("GET", f"/v2/{gun}/_trust/{path}")
            rows.append((path, status, body["errors"][0]["code"] if status != 200 else None))
        for method, path in [("POST", "tuf/root.key"), ("POST", "tuf/targets.key"), ("PUT", "tuf/"),
                             ("DELETE", "tuf/root.json"), ("POST", "tuf/root.json")]:
            status, body = http.json(method, f"/v2/{gun}/_trust/{path}", b"")
            rows.append((f"{method} {path}", status, body["errors"][0]["code"] if status != 200 else None))
        status, body = http.json("GET", "/v2/_trust/changefeed?records=x")
        rows.append(("global feed, bad records", status, body["errors"][0]["code"]))
        answers[target.name] = rows
    assert answers["dtr"] == answers["notary"]


def _client_flow(target: TrustTarget, gun: str, notary_binary: str, tmp_path: Path) -> dict[str, Any]:
    """The notary CLI's flow, and what the server kept: role versions and the change feed's shape."""
    cli = target.notary(notary_binary, tmp_path / target.name)
    content = tmp_path / "content"
    content.write_text("some content\n")
    cli.notary("init", gun, "-p")
    cli.notary("add", gun, "v1", str(content), "-p")
    cli.notary("key", "rotate", gun, "snapshot", "-r")
    cert, key = delegation_keypair(tmp_path / f"{target.name}-releaser", "releaser")
    cli.notary("delegation", "add", gun, "targets/releases", str(cert), "--all-paths", "-p")
    cli.notary("key", "import", str(key), "-r", "targets/releases", "-g", gun)
    cli.notary("add", gun, "v2", str(content), "--roles", "targets/releases", "-p")
    cli.notary("key", "rotate", gun, "root", input="yes\n")
    cli.notary("remove", gun, "v1", "-p")
    http: TrustHTTP = target.http()
    status, feed = http.json("GET", f"/v2/{gun}/_trust/changefeed?change_id=0&records=100")
    assert status == 200
    return {"versions": state(http, gun), "listed": cli.list(gun),
            "feed": [(r["Category"], r["Version"]) for r in feed["records"]],
            "digest": hashlib.sha256(content.read_bytes()).hexdigest()}


def test_notary_cli_flow_alike(both: tuple[TrustTarget, TrustTarget], notary_binary: str, tmp_path: Path) -> None:
    dtr, _ = both
    results = {target.name: _client_flow(target, _gun(dtr), notary_binary, tmp_path) for target in both}
    assert results["dtr"] == results["notary"]

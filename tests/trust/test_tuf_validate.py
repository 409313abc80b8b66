"""notary-server's update validation (``dtr.trust.validate``): every acceptance and rejection path
with real keys and certificates, checked for notary's code, detail Name and message."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from dtr.trust import errors
from dtr.trust.canonical import canonical
from dtr.trust.validate import current_root_keys, signed_expiry, signed_version, validate_update
from tests.trust.test_tuf_build import (
    GUN,
    Key,
    Repo,
    delegation,
    ec_key,
    expires,
    make_cert,
    root_key,
    rsa_key,
    signed_file,
)

NOW = dt.datetime.now(dt.UTC)


def run(current: dict[str, bytes], uploaded: dict[str, bytes], *, holds: bool = True,
        gun: str = GUN, **kw: Any) -> Any:
    return validate_update(gun, current, uploaded, server_holds_snapshot_key=holds, now=NOW, **kw)


def refused(fn: Callable[[], Any]) -> errors.TrustError:
    with pytest.raises(errors.TrustError) as e:
        fn()
    return e.value


def bad(fn: Callable[[], Any], name: str, msg: str) -> None:
    err = refused(fn)
    assert err.code is errors.INVALID_UPDATE, err
    assert err.detail["Name"] == name, err.detail
    assert msg in err.detail["Error"]["Msg"], err.detail


@pytest.fixture
def repo() -> Repo:
    return Repo()


def published(repo: Repo) -> dict[str, bytes]:
    """A repository as after ``notary init -p``: root, targets, snapshot v1."""
    root, targets = repo.root(), repo.targets(tags={"v1": b"manifest"})
    return {"root": root, "targets": targets, "snapshot": repo.snapshot({"root": root, "targets": targets})}


# --- accepted updates --------------------------------------------------------------------------

def test_notary_init_publish(repo: Repo) -> None:
    files = published(repo)
    got = run({}, files, holds=False)
    assert got.files == files and got.snapshot_uploaded
    assert got.versions == {"root": 1, "targets": 1, "snapshot": 1}


def test_docker_push_new_repo_server_snapshot(repo: Repo) -> None:
    up = {"root": repo.root(), "targets": repo.targets(tags={"latest": b"m"})}
    got = run({}, up, holds=True)
    assert got.files == up and not got.snapshot_uploaded


def test_publish_targets_only_and_timestamp_ignored(repo: Repo) -> None:
    current = published(repo)
    ts = signed_file({"_type": "Timestamp", "expires": expires(), "version": 9, "meta": {}}, repo.timestamp_key)
    got = run(current, {"targets": repo.targets(2, tags={"v2": b"x"}), "timestamp": ts})
    assert set(got.files) == {"targets"} and got.versions == {"targets": 2}


def test_signature_over_canonical_form_not_bytes(repo: Repo) -> None:
    """A file pretty-printed, keys reordered, non-ASCII escaped: signatures are over canonical(signed)."""
    signed = {"_type": "Targets", "expires": expires(), "version": 1, "delegations": {"keys": {}, "roles": []},
              "targets": {"é/\"tag\"\\": {"hashes": {"sha256": "AAAA"}, "length": 4}}}
    compact = json.loads(repo.targets())
    compact["signed"] = signed
    compact["signatures"] = [repo.targets_key.sign(canonical(signed))]
    pretty = json.dumps({"signatures": compact["signatures"], "signed": dict(reversed(signed.items()))},
                        indent=3, ensure_ascii=True).encode()
    assert b"\\u00e9" in pretty
    assert run({"root": repo.root()}, {"targets": pretty}).versions == {"targets": 1}


def test_root_v2_accepted_on_new_gun_like_notary(repo: Repo) -> None:
    assert run({}, {"root": repo.root(2), "targets": repo.targets()}).versions["root"] == 2


def test_wildcard_cn(repo: Repo) -> None:
    r = Repo(root=root_key("127.0.0.1:5000/ns/*"))
    run({}, {"root": r.root(), "targets": r.targets()})
    other = Repo(root=root_key("127.0.0.1:5000/other/*"))
    bad(lambda: run({}, {"root": other.root(), "targets": other.targets()}), errors.BAD_ROOT,
        "unable to retrieve valid leaf certificates")


def test_rsa_x509_root_with_pss_and_pkcs1v15() -> None:
    p = rsa_key()
    r = Repo(root=Key(p, cert=make_cert(p)))
    for method in ("rsapss", "rsapkcs1v15"):
        signed = r.root_signed()
        sig = r.root_keys[0].sign(canonical(signed), method)
        raw = json.dumps({"signed": signed, "signatures": [sig]}).encode()
        run({}, {"root": raw, "targets": r.targets()})


# --- root ---------------------------------------------------------------------------------------

def test_no_root_anywhere(repo: Repo) -> None:
    bad(lambda: run({}, {"targets": repo.targets()}), errors.VALIDATION,
        "no pre-existing root and no root provided in update.")


def test_root_only_on_new_gun_needs_targets(repo: Repo) -> None:
    bad(lambda: run({}, {"root": repo.root()}), errors.VALIDATION, "targets must be loaded first")


@pytest.mark.parametrize(("stored", "new"), [(None, 3), (None, 0), (2, 1), (2, 4)])
def test_root_version_jump(repo: Repo, stored: int | None, new: int) -> None:
    current = {} if stored is None else {"root": repo.root(stored)}
    cur = stored or 1
    bad(lambda: run(current, {"root": repo.root(new), "targets": repo.targets()}), errors.BAD_ROOT,
        f"Root modifications must increment the version. Current {cur}, new {new}")


def test_same_root_version_is_version_error(repo: Repo) -> None:
    current = published(repo)
    err = refused(lambda: run(current, {"root": current["root"]}))
    assert err.code is errors.VERSION and err.detail == {}


@pytest.mark.parametrize("make", [
    lambda: root_key("127.0.0.1:5000/ns/other"),
    lambda: root_key(sha1=True),
    lambda: root_key(ca=True),
    lambda: root_key(not_before=NOW - dt.timedelta(days=400), years=1),
    lambda: root_key(not_before=NOW + dt.timedelta(days=3)),
    lambda: (lambda p: Key(p, cert=make_cert(p, GUN)))(rsa_key(1024)),
    lambda: Key(ec_key()),
], ids=["wrong-cn", "sha1", "ca", "expired", "not-yet-valid", "rsa-1024", "bare-key"])
def test_root_certificate_rules(make: Callable[[], Key]) -> None:
    r = Repo(root=make())
    bad(lambda: run({}, {"root": r.root(), "targets": r.targets()}), errors.BAD_ROOT,
        "could not validate the path to a trusted root: unable to retrieve valid leaf certificates")


@pytest.mark.parametrize(("signers", "tamper"), [("none", False), ("other", False), ("own", True)])
def test_root_integrity(repo: Repo, signers: str, tamper: bool) -> None:
    keys = {"none": [], "other": [root_key()], "own": repo.root_keys}[signers]
    raw = signed_file(repo.root_signed(), *keys, tamper=tamper)
    bad(lambda: run({}, {"root": raw, "targets": repo.targets()}), errors.BAD_ROOT,
        "could not validate the path to a trusted root: failed to validate integrity of roots")


def test_root_threshold_two(repo: Repo) -> None:
    repo.root_keys.append(root_key())
    repo.root_threshold = 2
    run({}, {"root": repo.root(), "targets": repo.targets()})
    one = repo.root(signers=repo.root_keys[:1])
    bad(lambda: run({}, {"root": one, "targets": repo.targets()}), errors.BAD_ROOT, "failed to validate integrity")


def test_root_rotation(repo: Repo) -> None:
    current = published(repo)
    old = repo.root_keys[0]
    new = root_key()
    repo.root_keys = [new]
    both = repo.root(2, signers=[old, new])
    assert run(current, {"root": both}).versions == {"root": 2}
    bad(lambda: run(current, {"root": repo.root(2, signers=[new])}), errors.BAD_ROOT,
        "could not rotate trust to a new trusted root: failed to validate data with current trusted certificates")
    bad(lambda: run(current, {"root": repo.root(2, signers=[old])}), errors.BAD_ROOT,
        "failed to validate integrity of roots")
    # the next rotation trusts v2's key, not v1's
    current = {**current, "root": both}
    newer = root_key()
    repo.root_keys = [newer]
    run(current, {"root": repo.root(3, signers=[new, newer])})
    bad(lambda: run(current, {"root": repo.root(3, signers=[old, newer])}), errors.BAD_ROOT, "could not rotate")


def test_root_expired(repo: Repo) -> None:
    raw = repo.root(expires="2020-01-02T03:04:05Z")
    bad(lambda: run({}, {"root": raw, "targets": repo.targets()}), errors.BAD_ROOT,
        "root expired at Thu Jan 2 03:04:05 UTC 2020")


def _drop_role(s: dict[str, Any]) -> None:
    del s["roles"]["timestamp"]


@pytest.mark.parametrize(("change", "msg"), [
    (lambda s: s.update(_type="Targets"), "root type metadata invalid: expected type Root, not Targets"),
    (_drop_role, "root type metadata invalid: missing timestamp role specification"),
    (lambda s: s["roles"]["targets"].update(threshold=0), "invalid threshold specified for targets: 0"),
    (lambda s: s["roles"]["snapshot"]["keyids"].append("ab" * 32),
     f"key ID {'ab' * 32} specified in snapshot without corresponding key"),
    (lambda s: s["keys"].update({"cd" * 32: {"keytype": "dsa", "keyval": {"private": None, "public": "AAAA"}}}),
     "unknown key type 'dsa'"),
    (lambda s: s["keys"].update({"cd" * 32: Key(ec_key()).obj}), "does not match its key"),
])
def test_root_structure(repo: Repo, change: Callable[[dict[str, Any]], None], msg: str) -> None:
    signed = repo.root_signed()
    change(signed)
    bad(lambda: run({}, {"root": signed_file(signed, *repo.root_keys), "targets": repo.targets()}),
        errors.BAD_ROOT, msg)


# --- targets and delegations ----------------------------------------------------------------------

@pytest.mark.parametrize(("make", "msg"), [
    (lambda r: r.targets(signer=Key(ec_key())), "valid signatures did not meet threshold for targets"),
    (lambda r: signed_file({"_type": "Targets", "expires": expires(), "version": 1}), "tuf: data has no signatures"),
    (lambda r: r.targets(_type="Root"), "targets type metadata invalid: expected type Targets, not Root"),
    (lambda r: r.targets(0), "targets type metadata invalid: version cannot be less than one"),
    (lambda r: r.targets(expires="2021-05-06T07:08:09.123456789+02:00"),
     "targets expired at Thu May 6 07:08:09 +0200 2021"),
    (lambda r: r.targets(targets={"t": {"length": "4", "hashes": {}}}), "target t needs a length and base64 hashes"),
])
def test_targets_rejected(repo: Repo, make: Callable[[Repo], bytes], msg: str) -> None:
    bad(lambda: run({"root": repo.root()}, {"targets": make(repo)}), errors.BAD_TARGETS, msg)


def test_targets_threshold_two(repo: Repo) -> None:
    second = Key(ec_key(ec.SECP384R1()))
    signed = repo.root_signed()
    signed["keys"][second.id] = second.obj
    signed["roles"]["targets"] = {"keyids": [repo.targets_key.id, second.id], "threshold": 2}
    root = signed_file(signed, *repo.root_keys)
    tsigned = json.loads(repo.targets())["signed"]
    run({}, {"root": root, "targets": signed_file(tsigned, repo.targets_key, second)})
    bad(lambda: run({}, {"root": root, "targets": signed_file(tsigned, repo.targets_key, repo.targets_key)}),
        errors.BAD_TARGETS, "did not meet threshold for targets")


def test_delegation_accepted_with_stored_parent(repo: Repo) -> None:
    signer = Key(ec_key())
    current = published(repo)
    targets = repo.targets(2, delegations=delegation([signer]))
    rel = repo.targets(tags={"v1": b"m"}, role="targets/releases", signer=signer)
    assert run(current, {"targets": targets, "targets/releases": rel}).versions == {"targets": 2,
                                                                                   "targets/releases": 1}
    # docker trust sign: only the delegation, its parent read from the store
    assert run({**current, "targets": targets}, {"targets/releases": rel}).versions == {"targets/releases": 1}


def test_delegation_rejections(repo: Repo) -> None:
    signer = Key(ec_key())
    current = {**published(repo), "targets": repo.targets(2, delegations=delegation([signer]))}
    bad(lambda: run(current, {"targets/releases": repo.targets(signer=Key(ec_key()))}), errors.BAD_TARGETS,
        "valid signatures did not meet threshold for targets/releases")
    bad(lambda: run(current, {"targets/other": repo.targets(signer=signer)}), errors.BAD_TARGETS,
        "tuf: invalid role targets/other. delegation does not exist")
    bad(lambda: run(current, {"targets/releases/x": repo.targets(signer=signer)}), errors.BAD_TARGETS,
        "tuf: invalid role targets/releases/x. delegation does not exist")
    bad(lambda: run(current, {"targets/releases": repo.targets(signer=signer, expires="2001-01-01T00:00:00Z")}),
        errors.BAD_TARGETS, "targets/releases expired at")
    bad(lambda: run(current, {"targets/releases": repo.targets(0, signer=signer)}), errors.BAD_TARGETS,
        "targets/releases type metadata invalid: version cannot be less than one")


def test_delegation_without_any_targets(repo: Repo) -> None:
    bad(lambda: run({"root": repo.root()}, {"targets/releases": repo.targets()}), errors.BAD_TARGETS,
        "targets must be loaded first")


@pytest.mark.parametrize(("name", "msg"), [
    ("targets/Releases", "delegation role targets/Releases invalid"),
    ("targets/a/b", "delegation role targets/a/b invalid"),
    ("targets/a/", "delegation role targets/a/ invalid"),
    ("targets//a", "delegation role targets//a invalid"),
    ("targets/" + "a" * 250, "invalid"),
    ("snapshot", "delegation role snapshot invalid"),
])
def test_delegation_names(repo: Repo, name: str, msg: str) -> None:
    d = delegation([Key(ec_key())], name)
    bad(lambda: run({"root": repo.root()}, {"targets": repo.targets(delegations=d)}), errors.BAD_TARGETS, msg)


def test_delegation_threshold_and_keys(repo: Repo) -> None:
    a, b = Key(ec_key()), Key(ec_key())
    d = delegation([a, b], threshold=2)
    current = {"root": repo.root(), "targets": repo.targets(delegations=d)}
    rel = json.loads(repo.targets(role="targets/releases", signer=a))["signed"]
    run(current, {"targets/releases": signed_file(rel, a, b)})
    bad(lambda: run(current, {"targets/releases": signed_file(rel, a)}), errors.BAD_TARGETS, "did not meet threshold")
    d["roles"][0]["threshold"] = 0
    bad(lambda: run({"root": repo.root()}, {"targets": repo.targets(delegations=d)}), errors.BAD_TARGETS,
        "targets type metadata invalid: invalid threshold specified for targets/releases: 0")
    d["roles"][0].update(threshold=1, keyids=["ef" * 32])
    bad(lambda: run({"root": repo.root()}, {"targets": repo.targets(delegations=d)}), errors.BAD_TARGETS,
        f"key ID {'ef' * 32} specified in targets/releases without corresponding key")


def test_delegation_rsa_1024_certificate_key(repo: Repo) -> None:
    p = rsa_key(1024)
    weak = Key(p, cert=make_cert(p, "releases"))
    current = {"root": repo.root(), "targets": repo.targets(delegations=delegation([weak]))}
    bad(lambda: run(current, {"targets/releases": repo.targets(signer=weak)}), errors.BAD_TARGETS,
        "RSA bit length is too short")


def test_nested_delegation_paths(repo: Repo) -> None:
    a, b = Key(ec_key()), Key(ec_key())
    root = repo.root()
    targets = repo.targets(delegations=delegation([a], "targets/a", ["a/"]))
    inside = repo.targets(role="targets/a", signer=a, delegations=delegation([b], "targets/a/b", ["a/x"]))
    nested = repo.targets(role="targets/a/b", signer=b)
    got = run({"root": root}, {"targets/a/b": nested, "targets": targets, "targets/a": inside})
    assert set(got.files) == {"targets", "targets/a", "targets/a/b"}
    outside = repo.targets(role="targets/a", signer=a, delegations=delegation([b], "targets/a/b", ["b/", "a/"]))
    bad(lambda: run({"root": root, "targets": targets}, {"targets/a": outside}), errors.BAD_TARGETS,
        "targets/a type metadata invalid: delegation role targets/a/b has paths outside of targets/a's paths: b/")
    # the middle link missing from store and upload
    bad(lambda: run({"root": root, "targets": targets}, {"targets/a/b": nested}), errors.BAD_TARGETS,
        "tuf: invalid role targets/a/b. delegation does not exist")


@pytest.mark.parametrize("role", ["foo", "targets/UP", "targets/../root", "root/x", "", "targets/"])
def test_invalid_role_names(repo: Repo, role: str) -> None:
    err = refused(lambda: run({}, {"root": repo.root(), role: repo.targets()}))
    assert err.code is errors.INVALID_ROLE and err.detail == role


# --- snapshot -----------------------------------------------------------------------------------

def test_no_snapshot_and_no_server_key(repo: Repo) -> None:
    current = published(repo)
    err = refused(lambda: run(current, {"targets": repo.targets(2)}, holds=False))
    assert err.code is errors.INVALID_UPDATE
    assert err.detail == {"Name": "ErrBadHierarchy", "Error": {
        "Missing": "snapshot",
        "Msg": "no snapshot was included in update and server does not hold current snapshot key for repository"}}


def test_no_timestamp_key(repo: Repo) -> None:
    bad(lambda: run({}, published(repo), server_holds_timestamp_key=False), errors.BAD_ROOT,
        "no  timestamp keys exist on the server")


def test_snapshot_rejections(repo: Repo) -> None:
    root, targets = repo.root(), repo.targets()
    up = {"root": root, "targets": targets}
    cases: list[tuple[bytes, str]] = [
        (repo.snapshot(up, signer=Key(ec_key())), "valid signatures did not meet threshold for snapshot"),
        (repo.snapshot({"root": root, "targets": targets + b" "}), "sha256 checksum for targets did not match"),
        (repo.snapshot({"root": root}), "snapshot type metadata invalid: missing targets sha256 checksum information"),
        (repo.snapshot(up, _type="Timestamp"), "expected type Snapshot, not Timestamp"),
        (repo.snapshot(up, 0), "snapshot type metadata invalid: version cannot be less than one"),
        (repo.snapshot(up, expires="2002-02-02T02:02:02Z"), "snapshot expired at Sat Feb 2 02:02:02 UTC 2002"),
    ]
    for snap, msg in cases:
        bad(lambda snap=snap: run({}, {**up, "snapshot": snap}), errors.BAD_SNAPSHOT, msg)  # type: ignore[misc]
    broken = json.loads(repo.snapshot(up))["signed"]
    broken["meta"]["root"]["hashes"]["sha512"] = "AAAA"
    bad(lambda: run({}, {**up, "snapshot": signed_file(broken, repo.snapshot_key)}), errors.BAD_SNAPSHOT,
        "invalid root checksum information, sha512 checksum invalid")


def test_snapshot_must_cover_uploaded_delegation(repo: Repo) -> None:
    signer = Key(ec_key())
    current = {**published(repo), "targets": repo.targets(2, delegations=delegation([signer]))}
    rel = repo.targets(role="targets/releases", signer=signer)
    snap = repo.snapshot({"root": current["root"], "targets": current["targets"]}, 2)
    bad(lambda: run(current, {"targets/releases": rel, "snapshot": snap}), errors.BAD_SNAPSHOT,
        "no checksums for supported algorithms were provided for targets/releases")
    good = repo.snapshot({"root": current["root"], "targets": current["targets"], "targets/releases": rel}, 2)
    assert run(current, {"targets/releases": rel, "snapshot": good}).snapshot_uploaded
    stale = repo.snapshot({"root": current["root"], "targets": published(repo)["targets"],
                           "targets/releases": rel}, 2)
    bad(lambda: run(current, {"targets/releases": rel, "snapshot": stale}), errors.BAD_SNAPSHOT,
        "checksum for targets did not match")


# --- versions and malformed files -------------------------------------------------------------------

def test_versions_must_grow(repo: Repo) -> None:
    current = published(repo)
    t2 = repo.targets(2)
    for up in ({"targets": repo.targets(1)},
               {"targets": t2, "snapshot": repo.snapshot({"root": current["root"], "targets": t2}, 1)}):
        err = refused(lambda up=up: run(current, up))  # type: ignore[misc]
        assert err.code is errors.VERSION and err.detail == {}


@pytest.mark.parametrize("raw", [
    b"not json", b'{"signed": []}', b'{"signed": {"version": "1"}}', b'{"signed": {"version": 1.0}}',
    b'{"signed": {"expires": "tomorrow"}}', b'{"signed": {}, "signatures": [{"sig": "%%%"}]}',
    b'{"signed": {}, "signatures": {}}', b'{"signed": {"version": 1, "version": 2}}',
])
def test_malformed_json(repo: Repo, raw: bytes) -> None:
    err = refused(lambda: run({"root": repo.root()}, {"targets": raw}))
    assert err.code is errors.MALFORMED_JSON


def test_helpers(repo: Repo) -> None:
    root = repo.root(4)
    assert [k.key_id for k in current_root_keys(root, "snapshot")] == [repo.snapshot_key.id]
    assert [k.key_id for k in current_root_keys(root, "root")] == [repo.root_keys[0].id]
    assert current_root_keys(b"junk", "root") == []
    assert signed_version(root) == 4
    t = repo.targets(expires="2030-01-02T03:04:05.999999999Z")
    assert signed_expiry(t) == dt.datetime(2030, 1, 2, 3, 4, 5, 999999, tzinfo=dt.UTC)

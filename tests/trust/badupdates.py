"""Hand-made TUF updates for notary's POST /v2/<gun>/_trust/tuf/: valid ones, and every kind of bad one.

Written from the notes (../shared/notes/notary-protocol.md), independently of dtr.trust, so they test it
rather than mirror it: canonical JSON, key objects and IDs, ECDSA P-256 signatures (raw r||s over
SHA-256), the self-signed root certificate with CN = GUN, multipart bodies with one part per role.

``Repo`` holds one GUN's client keys and the server's snapshot/timestamp public keys and builds role
files; ``CASES`` are the bad (and a few good) updates, each a function of a fresh ``Repo``.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: A multipart part: (form field name, filename, bytes).
Part = tuple[str, str, bytes]


def canonical(obj: Any) -> bytes:
    """Canonical JSON as notary signs it: sorted keys, no whitespace, raw UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def expiry(days: float) -> str:
    """An RFC 3339 ``expires`` ``days`` from now (negative: in the past)."""
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def key_id(key_object: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(key_object)).hexdigest()


def key_object(keytype: str, public: str) -> dict[str, Any]:
    return {"keytype": keytype, "keyval": {"private": None, "public": public}}


class Key:
    """An ECDSA P-256 key: ``ecdsa`` (DER SPKI) or, with ``cn``, ``ecdsa-x509`` (a self-signed
    certificate as notary makes for root keys; ``ca`` and ``days`` bend it)."""

    def __init__(self, cn: str | None = None, *, ca: bool = False, days: float = 3650) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        if cn is None:
            der = self.private.public_key().public_bytes(serialization.Encoding.DER,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo)
            self.obj = key_object("ecdsa", base64.b64encode(der).decode())
            return
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        now = dt.datetime.now(dt.UTC)
        start = min(now, now + dt.timedelta(days=days)) - dt.timedelta(days=1)
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.private.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, key_cert_sign=ca,
                                         content_commitment=False, data_encipherment=False, key_agreement=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .sign(self.private, hashes.SHA256()))
        pem = cert.public_bytes(serialization.Encoding.PEM)
        self.obj = key_object("ecdsa-x509", base64.b64encode(pem).decode())

    @property
    def id(self) -> str:
        return key_id(self.obj)

    def sign(self, message: bytes) -> dict[str, str]:
        r, s = decode_dss_signature(self.private.sign(message, ec.ECDSA(hashes.SHA256())))
        raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return {"keyid": self.id, "method": "ecdsa", "sig": base64.b64encode(raw).decode()}


def signed_file(signed: dict[str, Any], signers: list[Key], *, message: bytes | None = None,
                body: bytes | None = None) -> bytes:
    """``{"signed":..., "signatures":[...]}``: signatures over ``message`` (default canonical(signed));
    ``body`` replaces the serialised ``signed`` part (non-canonical bytes on the wire)."""
    msg = canonical(signed) if message is None else message
    sigs = json.dumps([k.sign(msg) for k in signers]).encode()
    return b'{"signed":' + (canonical(signed) if body is None else body) + b',"signatures":' + sigs + b"}"


def meta(raw: bytes) -> dict[str, Any]:
    return {"hashes": {"sha256": base64.b64encode(hashlib.sha256(raw).digest()).decode(),
                       "sha512": base64.b64encode(hashlib.sha512(raw).digest()).decode()},
            "length": len(raw)}


def multipart(parts: list[Part]) -> tuple[str, bytes]:
    """(Content-Type, body) of a multipart/form-data update."""
    boundary = uuid.uuid4().hex
    out = b""
    for name, filename, data in parts:
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", out


def files(**roles: bytes) -> list[Part]:
    """Parts named as the clients name them (``targets__releases`` for ``targets/releases``)."""
    return [("files", role.replace("__", "/"), data) for role, data in roles.items()]


@dataclasses.dataclass
class Repo:
    """One GUN's client-held keys, and the public keys the server holds for snapshot and timestamp."""

    gun: str
    snapshot_key: dict[str, Any]
    timestamp_key: dict[str, Any]
    root_key: Key = dataclasses.field(init=False)
    targets_key: Key = dataclasses.field(default_factory=Key)

    def __post_init__(self) -> None:
        self.root_key = Key(self.gun)

    def root_signed(self, version: int = 1, days: float = 3650, root_key: Key | None = None) -> dict[str, Any]:
        rk = root_key or self.root_key
        keys = {rk.id: rk.obj, self.targets_key.id: self.targets_key.obj,
                key_id(self.snapshot_key): self.snapshot_key, key_id(self.timestamp_key): self.timestamp_key}
        roles = {"root": [rk.id], "targets": [self.targets_key.id], "snapshot": [key_id(self.snapshot_key)],
                 "timestamp": [key_id(self.timestamp_key)]}
        return {"_type": "Root", "consistent_snapshot": False, "expires": expiry(days), "version": version,
                "keys": keys, "roles": {r: {"keyids": ids, "threshold": 1} for r, ids in roles.items()}}

    def root(self, version: int = 1, days: float = 3650) -> bytes:
        return signed_file(self.root_signed(version, days), [self.root_key])

    def targets_signed(self, version: int = 1, days: float = 1095, tags: dict[str, bytes] | None = None,
                       delegations: dict[str, Any] | None = None, type_: str = "Targets") -> dict[str, Any]:
        targets = {tag: meta(content) for tag, content in (tags or {"v1": b"content of v1"}).items()}
        return {"_type": type_, "delegations": delegations or {"keys": {}, "roles": []},
                "expires": expiry(days), "targets": targets, "version": version}

    def targets(self, version: int = 1, **kw: Any) -> bytes:
        return signed_file(self.targets_signed(version, **kw), [self.targets_key])

    def new(self) -> list[Part]:
        """The first update, as docker push sends it: root and targets (snapshot left to the server)."""
        return files(root=self.root(), targets=self.targets())


def delegating(repo: Repo, key: Key, name: str = "targets/releases", paths: list[str] | None = None,
               version: int = 2) -> bytes:
    """targets v``version`` delegating ``name`` to ``key``."""
    delegations = {"keys": {key.id: key.obj},
                   "roles": [{"keyids": [key.id], "name": name, "paths": paths or [""], "threshold": 1}]}
    return repo.targets(version, delegations=delegations)


#: A case: (name, the updates before the one under test, the one under test). Each update is a list of
#: parts or raw (Content-Type, body).
Update = list[Part] | tuple[str, bytes]
Case = Callable[[Repo], tuple[list[Update], Update]]


def _bad_sig(r: Repo) -> tuple[list[Update], Update]:
    return [r.new()], files(targets=signed_file(r.targets_signed(2), [Key()]))


def _garbled_sig(r: Repo) -> tuple[list[Update], Update]:
    raw = json.loads(r.targets(2))
    raw["signatures"][0]["sig"] = base64.b64encode(b"\x01" * 64).decode()
    return [r.new()], files(targets=json.dumps(raw).encode())


def _unknown_key_type(r: Repo) -> tuple[list[Update], Update]:
    """The targets role's key listed (under its right ID) with a key type nobody knows."""
    signed = r.root_signed()
    odd = key_object("quantum-foam", r.targets_key.obj["keyval"]["public"])
    del signed["keys"][r.targets_key.id]
    signed["keys"][key_id(odd)] = odd
    signed["roles"]["targets"]["keyids"] = [key_id(odd)]
    return [], files(root=signed_file(signed, [r.root_key]), targets=r.targets())


def _unknown_root_key_type(r: Repo) -> tuple[list[Update], Update]:
    """A second root key of an unknown type beside the valid certificate."""
    signed = r.root_signed()
    odd = key_object("quantum-foam", base64.b64encode(b"\x00" * 32).decode())
    signed["keys"][key_id(odd)] = odd
    signed["roles"]["root"]["keyids"].append(key_id(odd))
    return [], files(root=signed_file(signed, [r.root_key]), targets=r.targets())


def _missing_role(r: Repo) -> tuple[list[Update], Update]:
    signed = r.root_signed()
    del signed["roles"]["snapshot"]
    return [], files(root=signed_file(signed, [r.root_key]), targets=r.targets())


def _zero_threshold(r: Repo) -> tuple[list[Update], Update]:
    signed = r.root_signed()
    signed["roles"]["targets"]["threshold"] = 0
    return [], files(root=signed_file(signed, [r.root_key]), targets=r.targets())


def _wrong_cn(r: Repo) -> tuple[list[Update], Update]:
    other = Key("127.0.0.1:1/somebody/else")
    return [], files(root=signed_file(r.root_signed(root_key=other), [other]), targets=r.targets())


def _ca_root_cert(r: Repo) -> tuple[list[Update], Update]:
    ca = Key(r.gun, ca=True)
    return [], files(root=signed_file(r.root_signed(root_key=ca), [ca]), targets=r.targets())


def _expired_cert(r: Repo) -> tuple[list[Update], Update]:
    old = Key(r.gun, days=-1)
    return [], files(root=signed_file(r.root_signed(root_key=old), [old]), targets=r.targets())


def _delegation_undeclared(r: Repo) -> tuple[list[Update], Update]:
    k = Key()
    return [r.new()], files(targets__releases=signed_file(r.targets_signed(1), [k]))


def _delegation_outside_parent(r: Repo) -> tuple[list[Update], Update]:
    a, b = Key(), Key()
    child = {"keys": {b.id: b.obj}, "roles": [{"keyids": [b.id], "name": "targets/a/b", "paths": ["bar/"],
                                               "threshold": 1}]}
    return ([r.new(), files(targets=delegating(r, a, "targets/a", ["foo/"]))],
            files(targets__a=signed_file(r.targets_signed(1, delegations=child), [a])))


def _delegation_bad_name(r: Repo) -> tuple[list[Update], Update]:
    return [r.new()], files(targets=delegating(r, Key(), "targets/../../root"))


def _huge_metadata(r: Repo) -> tuple[list[Update], Update]:
    tags = {f"tag-{i:06d}": f"content {i}".encode() for i in range(30000)}
    return [r.new()], files(targets=r.targets(2, tags=tags))


def _non_canonical_accepted(r: Repo) -> tuple[list[Update], Update]:
    signed = r.targets_signed(2)
    pretty = json.dumps(signed, indent=2, sort_keys=False, ensure_ascii=True).encode()
    return [r.new()], files(targets=signed_file(signed, [r.targets_key], body=pretty))


def _signed_over_pretty(r: Repo) -> tuple[list[Update], Update]:
    signed = r.targets_signed(2)
    return [r.new()], files(targets=signed_file(signed, [r.targets_key], message=json.dumps(signed).encode()))


def _float_version(r: Repo) -> tuple[list[Update], Update]:
    signed = r.targets_signed(2)
    body = canonical(signed).replace(b'"version":2', b'"version":2.5')
    return [r.new()], files(targets=signed_file(signed, [r.targets_key], body=body))


CASES: dict[str, Case] = {
    # accepted
    "new repository": lambda r: ([], r.new()),
    "targets v2": lambda r: ([r.new()], files(targets=r.targets(2))),
    "delegation added and published": lambda r: (
        [r.new(), files(targets=delegating(r, k := Key()))],
        files(targets__releases=signed_file(r.targets_signed(1), [k]))),
    "non-canonical signed part, signature over its canonical form": _non_canonical_accepted,
    "root rotated to v2 signed by old and new keys": lambda r: (
        [r.new()], files(root=signed_file(r.root_signed(2, root_key=(k := Key(r.gun))), [k, r.root_key]))),
    # refused
    "no root on a new repository": lambda r: ([], files(targets=r.targets())),
    "targets version not increased": lambda r: ([r.new()], files(targets=r.targets(1))),
    "root version skips one": lambda r: ([r.new()], files(root=r.root(3))),
    "targets signed by another key": _bad_sig,
    "garbled signature": _garbled_sig,
    "signature over non-canonical bytes": _signed_over_pretty,
    "expired targets": lambda r: ([r.new()], files(targets=r.targets(2, days=-1))),
    "expired root": lambda r: ([], files(root=r.root(days=-1), targets=r.targets())),
    "root certificate for another GUN": _wrong_cn,
    "root certificate is a CA": _ca_root_cert,
    "expired root certificate": _expired_cert,
    "root without a snapshot role": _missing_role,
    "threshold 0": _zero_threshold,
    "unknown key type for targets": _unknown_key_type,
    "unknown key type beside the root certificate": _unknown_root_key_type,
    "root rotated without the old key's signature": lambda r: (
        [r.new()], files(root=signed_file(r.root_signed(2, root_key=(k := Key(r.gun))), [k]))),
    "delegation not declared by its parent": _delegation_undeclared,
    "delegation paths outside its parent's": _delegation_outside_parent,
    "delegation with a path-like name": _delegation_bad_name,
    "wrong _type": lambda r: ([r.new()], files(targets=signed_file(r.targets_signed(2, type_="Root"),
                                                                   [r.targets_key]))),
    "invalid JSON": lambda r: ([r.new()], files(targets=b'{"signed": {"_type": "Targets",')),
    "float in signed": _float_version,
    "not an object": lambda r: ([r.new()], files(targets=b"[1, 2, 3]")),
    "unknown role": lambda r: ([r.new()], files(bogus=r.targets(2))),
    "timestamp uploaded": lambda r: ([r.new()], files(timestamp=r.targets(2))),
    "empty filename": lambda r: ([r.new()], files(**{"": r.targets(2)})),
    "malformed multipart": lambda r: ([r.new()], ("multipart/form-data; boundary=xyz",
                                                  b"--xyz\r\nContent-Disposition: form-da")),
    "not multipart": lambda r: ([r.new()], ("application/json", r.targets(2))),
    "huge metadata": _huge_metadata,
}


def post(http: Any, gun: str, update: Update) -> tuple[int, Any]:
    """POST one update through ``http`` (a ``TrustHTTP``): (status, parsed body)."""
    content_type, body = multipart(update) if isinstance(update, list) else update
    status: int
    status, answer = http.json("POST", f"/v2/{gun}/_trust/tuf/", body, {"Content-Type": content_type})
    return status, answer


def outcome(status: int, answer: Any) -> tuple[int, str | None, str | None]:
    """What must match between servers: status, error code and the detail's Name."""
    if status == 200 or not isinstance(answer, dict) or not answer.get("errors"):
        return status, None, None
    err = answer["errors"][0]
    detail = err.get("detail")
    return status, err.get("code"), detail.get("Name") if isinstance(detail, dict) else None


def run_case(http: Any, gun: str, case: Case) -> tuple[int, str | None, str | None]:
    """A fresh ``gun``'s server keys fetched, the case's earlier updates sent (each must be accepted),
    then its update: its outcome."""
    keys = {}
    for role in ("timestamp", "snapshot"):
        status, keys[role] = http.json("GET", f"/v2/{gun}/_trust/tuf/{role}.key")
        assert status == 200, (status, keys[role])
    repo = Repo(gun, keys["snapshot"], keys["timestamp"])
    before, update = case(repo)
    for earlier in before:
        status, answer = post(http, gun, earlier)
        assert status == 200, (status, answer)
    return outcome(*post(http, gun, update))


#: The roles whose versions show what an update changed.
STATE_ROLES = ("root", "targets", "snapshot", "timestamp", "targets/releases", "targets/a")


def state(http: Any, gun: str) -> dict[str, int | None]:
    """role -> its current version (None: 404), to compare what two servers stored."""
    out: dict[str, int | None] = {}
    for role in STATE_ROLES:
        status, body = http.json("GET", f"/v2/{gun}/_trust/tuf/{role}.json")
        assert status in (200, 404), (role, status, body)
        out[role] = body["signed"]["version"] if status == 200 else None
    return out

"""A small TUF client for the Notary server tests: real keys, the files docker and the notary CLI
make (root with a self-signed certificate key, targets, delegations, a client-held snapshot for
``notary init -p``), their multipart update, and checks of what the server answers."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dtr.trust.canonical import canonical
from dtr.trust.tufkeys import parse_key

EXPIRY = {"root": 3650, "targets": 1095, "snapshot": 1095}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def expires(days: int) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


class Key:
    """An ECDSA P-256 key as a TUF key object: ``ecdsa`` (SPKI), or ``ecdsa-x509`` with a
    self-signed certificate for ``cn`` (as notary makes root keys)."""

    def __init__(self, cn: str | None = None) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        if cn is None:
            self.keytype = "ecdsa"
            self.public = b64(self.private.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
        else:
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
            start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
            cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                    .public_key(self.private.public_key()).serial_number(x509.random_serial_number())
                    .not_valid_before(start).not_valid_after(start + dt.timedelta(days=3650))
                    .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                    .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False),
                                   critical=True)
                    .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
                    .sign(self.private, hashes.SHA256()))
            self.keytype = "ecdsa-x509"
            self.public = b64(cert.public_bytes(serialization.Encoding.PEM))
        self.obj = {"keytype": self.keytype, "keyval": {"private": None, "public": self.public}}
        self.key_id = hashlib.sha256(canonical(self.obj)).hexdigest()

    def sign(self, message: bytes) -> dict[str, str]:
        r, s = decode_dss_signature(self.private.sign(message, ec.ECDSA(hashes.SHA256())))
        return {"keyid": self.key_id, "method": "ecdsa", "sig": b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))}


def signed_file(signed: Mapping[str, Any], keys: list[Key], signatures_first: bool = False) -> bytes:
    """A role file as clients send it: ``{"signed":<canonical>,"signatures":[...]}`` (or, with
    ``signatures_first``, the outer keys the other way round: the same metadata, other bytes)."""
    body = canonical(dict(signed))
    sigs = json.dumps([k.sign(body) for k in keys], separators=(",", ":")).encode()
    if signatures_first:
        return b'{"signatures":' + sigs + b',"signed":' + body + b"}"
    return b'{"signed":' + body + b',"signatures":' + sigs + b"}"


def meta(data: bytes) -> dict[str, Any]:
    return {"hashes": {"sha256": b64(hashlib.sha256(data).digest()), "sha512": b64(hashlib.sha512(data).digest())},
            "length": len(data)}


def signed_part(data: bytes) -> dict[str, Any]:
    return dict(json.loads(data)["signed"])


def verify(data: bytes, key_obj: Mapping[str, Any]) -> bool:
    """Whether the file carries a valid signature by the key ``key_obj``."""
    key = parse_key(dict(key_obj))
    doc = json.loads(data)
    body = canonical(doc["signed"])
    return any(s["keyid"] == key.key_id and key.verify(s["method"], base64.b64decode(s["sig"]), body)
               for s in doc["signatures"])


class Repo:
    """One GUN's client side: root and targets keys (and a snapshot key for ``notary init -p``),
    the server's keys as fetched, targets and delegations, and the versions sent so far."""

    def __init__(self, gun: str) -> None:
        self.gun = gun
        self.root_key = Key(cn=gun)
        self.targets_key = Key()
        self.snapshot_key: Key | None = None
        self.server_keys: dict[str, dict[str, Any]] = {}
        self.targets: dict[str, dict[str, Any]] = {}
        self.delegations: dict[str, Key] = {}
        self.delegation_targets: dict[str, dict[str, dict[str, Any]]] = {}
        self.versions: dict[str, int] = {}
        self.sent: dict[str, bytes] = {}

    def _next(self, role: str) -> int:
        self.versions[role] = self.versions.get(role, 0) + 1
        return self.versions[role]

    def _role_key(self, role: str) -> dict[str, Any]:
        if role == "snapshot" and self.snapshot_key is not None:
            return self.snapshot_key.obj
        return self.server_keys[role]

    def root(self, old_root_key: Key | None = None) -> bytes:
        keys = {self.root_key.key_id: self.root_key.obj, self.targets_key.key_id: self.targets_key.obj}
        roles = {"root": [self.root_key.key_id], "targets": [self.targets_key.key_id]}
        for role in ("snapshot", "timestamp"):
            obj = self._role_key(role)
            kid = hashlib.sha256(canonical(obj)).hexdigest()
            keys[kid] = obj
            roles[role] = [kid]
        signed = {"_type": "Root", "consistent_snapshot": False, "expires": expires(EXPIRY["root"]), "keys": keys,
                  "roles": {r: {"keyids": ids, "threshold": 1} for r, ids in roles.items()},
                  "version": self._next("root")}
        signers = [self.root_key] + ([old_root_key] if old_root_key is not None else [])
        return self._keep("root", signed_file(signed, signers))

    def add_target(self, tag: str, content: bytes, role: str = "targets") -> None:
        entry = {"hashes": {"sha256": b64(hashlib.sha256(content).digest())}, "length": len(content)}
        (self.targets if role == "targets" else self.delegation_targets.setdefault(role, {}))[tag] = entry

    def delegate(self, role: str) -> Key:
        self.delegations[role] = Key()
        return self.delegations[role]

    def targets_file(self, signatures_first: bool = False) -> bytes:
        dkeys = {k.key_id: k.obj for k in self.delegations.values()}
        droles = [{"keyids": [k.key_id], "name": r, "paths": [""], "threshold": 1}
                  for r, k in sorted(self.delegations.items())]
        signed = {"_type": "Targets", "delegations": {"keys": dkeys, "roles": droles},
                  "expires": expires(EXPIRY["targets"]), "targets": self.targets, "version": self._next("targets")}
        return self._keep("targets", signed_file(signed, [self.targets_key], signatures_first))

    def delegation_file(self, role: str) -> bytes:
        signed = {"_type": "Targets", "delegations": {"keys": {}, "roles": []},
                  "expires": expires(EXPIRY["targets"]), "targets": self.delegation_targets.get(role, {}),
                  "version": self._next(role)}
        return self._keep(role, signed_file(signed, [self.delegations[role]]))

    def snapshot_file(self) -> bytes:
        """A client-made snapshot of the files sent so far (``notary init -p``)."""
        assert self.snapshot_key is not None
        listed = {r: meta(d) for r, d in self.sent.items() if r not in ("snapshot", "timestamp")}
        signed = {"_type": "Snapshot", "expires": expires(EXPIRY["snapshot"]), "meta": listed,
                  "version": self._next("snapshot")}
        return self._keep("snapshot", signed_file(signed, [self.snapshot_key]))

    def _keep(self, role: str, data: bytes) -> bytes:
        self.sent[role] = data
        return data


def multipart(files: Mapping[str, bytes], boundary: str | None = None,
              filenames: Mapping[str, str] | None = None) -> tuple[bytes, str]:
    """The body and Content-Type of an update as notary clients send it: parts named ``files``,
    each file's role as its filename (``filenames`` overrides one: ``{role: sent name}``)."""
    boundary = boundary or secrets.token_hex(16)
    out = bytearray()
    for role, data in files.items():
        name = (filenames or {}).get(role, role)
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"

"""An update's validation: notary-server's ``validateUpdate`` (``server/handlers/validation.go`` with
``tuf/builder.go`` and ``trustpinning.ValidateRoot``), its error codes and messages; pure.

Order, as notary: every part a valid role name (INVALID_ROLE) and a TUF file (MALFORMED_JSON); the
root (ErrBadRoot) or a stored one (else ErrValidation); targets roles shallowest first, stored
ancestors loaded as needed (ErrBadTargets); the uploaded snapshot with its checksums (ErrBadSnapshot)
or a server-held snapshot key (else ErrBadHierarchy); a server-held timestamp key; finally every
role's version above the stored one (VERSION). An uploaded timestamp is ignored: notary-server
always makes its own.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import functools
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from dtr.trust import errors
from dtr.trust.certs import valid_root_keys
from dtr.trust.delegations import Role, find_role, invalid, parse_keys, role_structure_error, targets_structure_error
from dtr.trust.metadata import (
    BASE_ROLES,
    ROOT,
    SNAPSHOT,
    TARGETS,
    TIMESTAMP,
    Envelope,
    go_time,
    is_delegation,
    parse_envelope,
    signed_expiry,
    signed_version,
    valid_role,
)
from dtr.trust.tufkeys import PublicKey

__all__ = ["Validated", "current_root_keys", "signed_expiry", "signed_version", "validate_update"]

NO_ROOT = "no pre-existing root and no root provided in update."
NO_SNAPSHOT_KEY = "no snapshot was included in update and server does not hold current snapshot key for repository"
NO_TIMESTAMP_KEY = "no  timestamp keys exist on the server"  # sic, notary's double space
_HASHES = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}


@dataclasses.dataclass(frozen=True)
class Validated:
    #: role -> exact uploaded bytes to store (root, targets, targets/..., snapshot if uploaded)
    files: dict[str, bytes]
    versions: dict[str, int]     # role -> its signed.version
    snapshot_uploaded: bool


@dataclasses.dataclass(frozen=True)
class _Root:
    env: Envelope
    keys: dict[str, PublicKey]
    roles: dict[str, Any]

    def role(self, name: str) -> Role:
        obj = self.roles.get(name) or {}
        return Role(name, {k: self.keys[k] for k in obj.get("keyids") or [] if k in self.keys},
                    obj.get("threshold", 0))


def _bad(name: str, msg: str) -> errors.TrustError:
    return errors.invalid_update(name, msg)


def _root_structure(env: Envelope) -> _Root:
    """``RootFromSigned``: type, version, keys, the four base roles; ValueError with notary's text."""
    if env.type != "Root":
        raise ValueError(invalid(ROOT, f"expected type Root, not {env.type}"))
    if env.version < 1:
        raise ValueError(invalid(ROOT, "version cannot be less than 1"))
    keys = parse_keys(env.signed.get("keys"), ROOT)
    roles = env.signed.get("roles") or {}
    if not isinstance(roles, dict):
        raise ValueError(invalid(ROOT, "roles is not an object"))
    for name in BASE_ROLES:
        if roles.get(name) is None:
            raise ValueError(invalid(ROOT, f"missing {name} role specification"))
        if err := role_structure_error(ROOT, name, roles[name], keys):
            raise ValueError(err)
    return _Root(env, keys, roles)


@functools.lru_cache(maxsize=1024)
def _parsed_root(raw: bytes) -> _Root:
    """``raw`` parsed as a root (ValueError with notary's text); parsed once per root: every update
    of a repository reads its current root (parsed objects are never changed)."""
    return _root_structure(parse_envelope(raw))


def _stored_root(raw: bytes) -> _Root:
    try:
        return _parsed_root(raw)
    except ValueError as e:  # stored roots were validated on upload: a corrupt store
        raise errors.TrustError(errors.UNKNOWN, f"stored root unreadable: {e}") from None


def _load_root(env: Envelope, prev: _Root | None, gun: str, now: dt.datetime, min_version: int) -> _Root:
    """``trustpinning.ValidateRoot`` then version and expiry (``repoBuilder.loadRoot``)."""
    try:
        root = _root_structure(env)
    except ValueError as e:
        raise _bad(errors.BAD_ROOT, str(e)) from None
    own = root.role(ROOT)
    valid = valid_root_keys(own.keys, gun, check_expiry=True, now=now)
    if not valid:
        raise _bad(errors.BAD_ROOT, "could not validate the path to a trusted root: "
                                    "unable to retrieve valid leaf certificates")
    if prev is not None:
        old = prev.role(ROOT)
        trusted = valid_root_keys(old.keys, gun, check_expiry=False, now=now)
        if not trusted:
            raise _bad(errors.BAD_ROOT, "could not validate the path to a trusted root: "
                                        "could not retrieve trusted certs from previous root role data")
        if env.signature_error(trusted, old.threshold, ROOT):
            raise _bad(errors.BAD_ROOT, "could not rotate trust to a new trusted root: "
                                        "failed to validate data with current trusted certificates")
    if env.signature_error(valid, own.threshold, ROOT):
        raise _bad(errors.BAD_ROOT, "could not validate the path to a trusted root: "
                                    "failed to validate integrity of roots")
    if env.version < min_version:
        raise _bad(errors.BAD_ROOT, f"version {env.version} is lower than current version {min_version}")
    if env.expired(now):
        raise _bad(errors.BAD_ROOT, f"root expired at {go_time(env.expires)}")
    return root


class _Targets:
    """The targets roles loaded so far (uploaded ones validated, stored ancestors as needed)."""

    def __init__(self, root: _Root, current: Mapping[str, bytes], now: dt.datetime) -> None:
        self.base = root.role(TARGETS)
        self.current = current
        self.now = now
        self.signed: dict[str, dict[str, Any]] = {}
        self.raw: dict[str, bytes] = {}

    def load(self, name: str, raw: bytes, env: Envelope, *, allow_expired: bool = False) -> None:
        """``loadTargets`` / ``loadDelegation``; ErrBadTargets with notary's text."""
        if name == TARGETS:
            role: Role | str = self.base
        elif TARGETS not in self.signed:
            role = "targets must be loaded first"
        else:
            role = find_role(name, self.base, self.signed, self.now)
        if isinstance(role, str):
            raise _bad(errors.BAD_TARGETS, role)
        # notary checks targets' signatures first, a delegation's structure first
        for check in ("sigs", "structure") if name == TARGETS else ("structure", "sigs"):
            err = (env.signature_error(role.keys, role.threshold, name) if check == "sigs"
                   else targets_structure_error(env.signed, role))
            if err:
                raise _bad(errors.BAD_TARGETS, err)
        if not allow_expired and env.expired(self.now):
            raise _bad(errors.BAD_TARGETS, f"{name} expired at {go_time(env.expires)}")
        self.signed[name] = env.signed
        self.raw[name] = raw

    def load_ancestors(self, name: str) -> None:
        """Stored ancestors of ``name`` not loaded yet, top down (``loadFromStore``, expiry allowed)."""
        missing = []
        while name != TARGETS:
            name = name.rpartition("/")[0]
            if name not in self.signed:
                missing.append(name)
        for parent in reversed(missing):
            if parent in self.current:
                raw = self.current[parent]
                self.load(parent, raw, parse_envelope(raw), allow_expired=True)


def _decode_hash(value: Any, alg: str) -> bytes | None:
    try:
        digest = base64.b64decode(value, validate=True) if isinstance(value, str) else None
    except (binascii.Error, ValueError):
        return None
    return digest if digest is not None and len(digest) == _HASHES[alg]().digest_size else None


def _check_hashes(payload: bytes, name: str, hashes: Any) -> str | None:
    """``data.CheckHashes``: every supported hash given matches, at least one given."""
    hashes = hashes if isinstance(hashes, dict) else {}
    count = 0
    for alg, fn in _HASHES.items():
        if alg in hashes:
            want = _decode_hash(hashes[alg], alg)
            if want is None or not hmac.compare_digest(fn(payload).digest(), want):
                shown = want.hex() if want is not None else str(hashes[alg])[:128]
                return f"{alg} checksum for {name} did not match: expected {shown}"
            count += 1
    return None if count else f"no checksums for supported algorithms were provided for {name}"


def _snapshot_error(env: Envelope, root: _Root, checked: Mapping[str, bytes], now: dt.datetime) -> str | None:
    """``loadSnapshot``: signatures, structure, expiry, then the checksums of ``checked``."""
    role = root.role(SNAPSHOT)
    if err := env.signature_error(role.keys, role.threshold, SNAPSHOT):
        return err
    if env.type != "Snapshot":
        return invalid(SNAPSHOT, f"expected type Snapshot, not {env.type}")
    if env.version < 1:
        return invalid(SNAPSHOT, "version cannot be less than one")
    meta = env.signed.get("meta")
    meta = meta if isinstance(meta, dict) else {}
    for name in (ROOT, TARGETS):
        entry = meta.get(name)
        hashes = entry.get("hashes") if isinstance(entry, dict) else None
        if not isinstance(hashes, dict) or "sha256" not in hashes:
            return invalid(SNAPSHOT, f"missing {name} sha256 checksum information")
        for alg in _HASHES:
            if alg in hashes and _decode_hash(hashes[alg], alg) is None:
                return invalid(SNAPSHOT, f"invalid {name} checksum information, {alg} checksum invalid")
    if env.expired(now):
        return f"snapshot expired at {go_time(env.expires)}"
    for name, payload in checked.items():
        entry = meta.get(name)
        if err := _check_hashes(payload, name, entry.get("hashes") if isinstance(entry, dict) else None):
            return err
    return None


def validate_update(gun: str, current: Mapping[str, bytes], uploaded: Mapping[str, bytes], *,
                    server_holds_snapshot_key: bool, now: dt.datetime,
                    server_holds_timestamp_key: bool = True) -> Validated:
    """current: role -> the stored current file (root, targets, delegations, snapshot, timestamp), empty for a new GUN.
    uploaded: role -> bytes from the multipart update. Applies notary-server's validation table
    (notes: ../shared/notes/notary-protocol.md "Validation on POST") and raises TrustError with
    notary-server's code and detail (errors.invalid_update(BAD_ROOT, msg) etc., errors.VERSION,
    errors.INVALID_ROLE, MALFORMED_JSON) on the first failure. Pure: nothing stored.

    ``server_holds_snapshot_key``: the server holds the snapshot key the root after this update lists
    (only read when no snapshot is uploaded); ``server_holds_timestamp_key`` likewise for timestamp."""
    envs: dict[str, Envelope] = {}
    for role, raw in uploaded.items():
        if not valid_role(role):
            raise errors.TrustError(errors.INVALID_ROLE, role)
        envs[role] = parse_envelope(raw)
    envs.pop(TIMESTAMP, None)

    prev = _stored_root(current[ROOT]) if ROOT in current else None
    if ROOT in envs:
        cur = prev.env.version if prev is not None else 1
        new = envs[ROOT].version
        if new not in (cur, cur + 1):
            raise _bad(errors.BAD_ROOT, f"Root modifications must increment the version. Current {cur}, new {new}")
        root = _load_root(envs[ROOT], prev, gun, now, cur)
    elif prev is None:
        raise _bad(errors.VALIDATION, NO_ROOT)
    else:
        root = prev

    targets = _Targets(root, current, now)
    for name in sorted((r for r in envs if r == TARGETS or is_delegation(r)), key=lambda r: (r.count("/"), r)):
        targets.load_ancestors(name)
        targets.load(name, uploaded[name], envs[name])

    if SNAPSHOT in envs:
        checked = {ROOT: uploaded[ROOT] if ROOT in uploaded else current[ROOT], **targets.raw}
        if err := _snapshot_error(envs[SNAPSHOT], root, checked, now):
            raise _bad(errors.BAD_SNAPSHOT, err)
    elif SNAPSHOT not in current and TARGETS not in targets.signed:
        raise _bad(errors.VALIDATION, "targets must be loaded first")
    elif not server_holds_snapshot_key:
        raise errors.TrustError(errors.INVALID_UPDATE, {"Name": errors.BAD_HIERARCHY,
                                                        "Error": {"Missing": SNAPSHOT, "Msg": NO_SNAPSHOT_KEY}})
    if not server_holds_timestamp_key:
        raise _bad(errors.BAD_ROOT, NO_TIMESTAMP_KEY)

    files = {role: uploaded[role] for role in envs}
    versions = {role: envs[role].version for role in envs}
    for role, version in versions.items():
        if role in current and signed_version(current[role]) >= version:
            raise errors.TrustError(errors.VERSION, {})
    return Validated(files, versions, SNAPSHOT in envs)



def current_root_keys(root: bytes, role: str) -> list[PublicKey]:
    """The keys ``root`` lists for the base ``role``; empty when the file is unreadable (never raises)."""
    if role not in BASE_ROLES:
        return []
    try:
        parsed = _parsed_root(root)
    except (ValueError, errors.TrustError):
        return []
    return list(parsed.role(role).keys.values())

"""The roles the server makes and signs with its held keys (snapshot, timestamp), and who signed
which tag (for the API and policies).

Unlike notary-server, which hashes its own re-serialisation of each role file, the snapshot's and
timestamp's meta are computed over the EXACT bytes given, the bytes clients download: a client that
uploads another key order or whitespace still checks out.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any

from dtr.trust import errors
from dtr.trust.canonical import canonical
from dtr.trust.delegations import Role, children
from dtr.trust.metadata import ROOT, TARGETS, format_time, is_delegation, parse_envelope
from dtr.trust.tufkeys import ServerKey
from dtr.trust.validate import current_root_keys


def file_meta(raw: bytes) -> dict[str, Any]:
    """``{"hashes": {"sha256", "sha512"} (base64), "length"}`` of exactly ``raw``."""
    return {"hashes": {"sha256": base64.b64encode(hashlib.sha256(raw).digest()).decode(),
                       "sha512": base64.b64encode(hashlib.sha512(raw).digest()).decode()},
            "length": len(raw)}


def _sign(signed: dict[str, Any], key: ServerKey) -> bytes:
    """The file on the wire: ``{"signed":<canonical>,"signatures":[...]}`` (signed first, as notary)."""
    body = canonical(signed)
    return b'{"signed":' + body + b',"signatures":[' + canonical(key.sign(body)) + b"]}"


def _previous_meta(previous: bytes | None) -> dict[str, Any]:
    if previous is None:
        return {}
    try:
        meta = parse_envelope(previous).signed.get("meta")
    except errors.TrustError:
        return {}
    return {r: m for r, m in meta.items() if r in (ROOT, TARGETS) or is_delegation(r)} if isinstance(meta, dict) else {}


def make_snapshot(previous: bytes | None, files: Mapping[str, bytes], key: ServerKey, version: int,
                  expires: dt.datetime) -> bytes:
    """A snapshot listing meta (length, sha256+sha512 base64 over the EXACT bytes given) of root, targets and every
    delegation in files (the current set after the update), signed by key; canonical signed part; outer
    {"signed":...,"signatures":[...]}. Entries of ``previous`` for roles absent from ``files`` are kept
    (as notary-server carries its previous snapshot forward)."""
    meta = _previous_meta(previous)
    for role, raw in files.items():
        if role in (ROOT, TARGETS) or is_delegation(role):
            meta[role] = file_meta(raw)
    signed = {"_type": "Snapshot", "expires": format_time(expires), "meta": meta, "version": version}
    return _sign(signed, key)


def make_timestamp(snapshot: bytes, key: ServerKey, version: int, expires: dt.datetime) -> bytes:
    """A timestamp listing the meta of exactly ``snapshot``, signed by key."""
    signed = {"_type": "Timestamp", "expires": format_time(expires), "meta": {"snapshot": file_meta(snapshot)},
              "version": version}
    return _sign(signed, key)


@dataclasses.dataclass(frozen=True)
class SignedTarget:
    tag: str
    digest: str                # "sha256:<hex>" from hashes.sha256 (base64)
    size: int
    role: str                  # "targets", "targets/releases", ...
    key_ids: tuple[str, ...]   # the keys the role is listed with: root's for targets, the parent's delegation's


def _targets_of(signed: dict[str, Any], role: Role) -> list[SignedTarget]:
    found = []
    targets = signed.get("targets")
    for tag, meta in sorted(targets.items()) if isinstance(targets, dict) else []:
        if not any(tag.startswith(p) for p in role.paths) or not isinstance(meta, dict):
            continue
        hashes, size = meta.get("hashes"), meta.get("length")
        try:
            digest = base64.b64decode(hashes["sha256"], validate=True) if isinstance(hashes, dict) else b""
        except (KeyError, TypeError, ValueError):
            continue
        if len(digest) == 32 and isinstance(size, int) and not isinstance(size, bool):
            found.append(SignedTarget(tag, "sha256:" + digest.hex(), size, role.name, tuple(role.keys)))
    return found


def tag_targets(files: Mapping[str, bytes]) -> list[SignedTarget]:
    """Every tag signed in ``files`` (the current set: root, targets, delegations), walking from
    ``targets`` down through delegations their parents declare, as clients do: targets first, then
    delegations breadth first; a delegation's tags only within its (parent-restricted) paths. Files
    that can't be read are skipped."""
    root_keys = current_root_keys(files[ROOT], TARGETS) if ROOT in files else []
    queue = [Role(TARGETS, {k.key_id: k for k in root_keys}, 1)]
    found: list[SignedTarget] = []
    seen: set[str] = set()
    while queue:
        role = queue.pop(0)
        if role.name in seen or role.name not in files:
            continue
        seen.add(role.name)
        try:
            signed = parse_envelope(files[role.name]).signed
            found.extend(_targets_of(signed, role))
            queue.extend(children(signed, role))
        except (errors.TrustError, ValueError, KeyError, TypeError, AttributeError):
            continue
    return found

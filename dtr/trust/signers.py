"""Who signed which tag in the built-in Notary: read from a repository's current trust data (the
targets role and its delegations, ``serverroles.tag_targets``), for the API and the signed-only
policy. A signer is a role (``targets``, ``targets/releases``, ``targets/<name>``) with the keys it is
listed with; the server validated every role file against those keys when it was uploaded, so a
tag listed in a current role file is signed by that role."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
from collections import defaultdict
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.trust.serverroles import tag_targets

#: The current root, targets and delegations of each of a repository's GUNs: the GUNs from the
#: server keys (every GUN with files has its timestamp key), then a walk of the (gun, role,
#: version) index, one probe per role, so the cost does not grow with the versions kept (it is
#: read on each pull by tag under the signed-only policy).
_CURRENT = text("""
WITH RECURSIVE guns AS (SELECT DISTINCT gun FROM trust_keys WHERE repository = :repository),
roles(gun, role) AS (
    SELECT g.gun, (SELECT f.role FROM trust_files f WHERE f.gun = g.gun ORDER BY f.role LIMIT 1) FROM guns g
    UNION ALL
    SELECT r.gun, (SELECT f.role FROM trust_files f WHERE f.gun = r.gun AND f.role > r.role ORDER BY f.role LIMIT 1)
    FROM roles r WHERE r.role IS NOT NULL)
SELECT r.gun, r.role, f.data FROM roles r CROSS JOIN LATERAL (
    SELECT data FROM trust_files WHERE gun = r.gun AND role = r.role ORDER BY version DESC LIMIT 1) f
WHERE r.role IS NOT NULL AND r.role NOT IN ('snapshot', 'timestamp')""")


@dataclasses.dataclass(frozen=True, slots=True)
class NotarySigner:
    """``tag`` signed as ``digest`` by ``role`` of ``gun``; ``keys``: key id -> SPKI fingerprint
    (hex SHA-256 of the public key's DER SubjectPublicKeyInfo; "" when it cannot be read)."""

    gun: str
    tag: str
    digest: str
    role: str
    keys: dict[str, str]


def spki_fingerprint(key: dict[str, Any]) -> str:
    """The SHA-256 of a TUF key object's public key as DER SubjectPublicKeyInfo, hex; "" if unreadable.
    It is the fingerprint trusted keys are registered under (``dtr.signatures``)."""
    try:
        keytype = key["keytype"]
        raw = base64.b64decode(key["keyval"]["public"], validate=True)
        if keytype in ("ecdsa", "rsa"):
            der = raw
        elif keytype in ("ecdsa-x509", "rsa-x509"):
            der = x509.load_pem_x509_certificate(raw).public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        elif keytype == "ed25519":
            der = ed25519.Ed25519PublicKey.from_public_bytes(raw).public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        else:
            return ""
    except (KeyError, TypeError, ValueError, binascii.Error):
        return ""
    return hashlib.sha256(der).hexdigest()


def _keys(files: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    """Every key object the root and the targets roles' delegations list, by key id."""
    found: dict[str, dict[str, Any]] = {}
    for role, raw in files.items():
        try:
            signed = json.loads(raw)["signed"]
            keys = signed["keys"] if role == "root" else (signed.get("delegations") or {}).get("keys") or {}
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        if isinstance(keys, dict):
            found.update({k: v for k, v in keys.items() if isinstance(v, dict)})
    return found


async def repository_signers(conn: AsyncConnection, repository: str, tag: str | None = None) -> list[NotarySigner]:
    """The Notary signatures of ``repository``'s tags (of ``tag`` only, if given), over all its GUNs."""
    files: dict[str, dict[str, bytes]] = defaultdict(dict)
    for row in await conn.execute(_CURRENT, {"repository": repository}):
        files[row.gun][row.role] = bytes(row.data)
    out: list[NotarySigner] = []
    for gun, roles in sorted(files.items()):
        keys = _keys(roles)
        for t in tag_targets(roles):
            if tag is None or t.tag == tag:
                out.append(NotarySigner(gun, t.tag, t.digest, t.role,
                                        {k: spki_fingerprint(keys.get(k, {})) for k in t.key_ids}))
    return out

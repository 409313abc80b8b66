"""Trusted keys of a repository or a namespace: listed, added, removed; and an image's signatures.

Access is ``access.open_scope``'s: a repository's keys are listed by whoever may read it and
changed by its admins; a namespace's keys are listed by any user and changed by its admins.
Each change is audited once committed. A key is checked (``pem.parse``) before it is
stored: a private key, a weak or unknown key, or text that does not parse answers
INVALID_PARAMETER with the reason, the text itself never echoed.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.api.errors import APIError, codes
from dtr.auth.access import Action
from dtr.registry.models import Manifest, Repository, Tag
from dtr.registry.names import is_digest
from dtr.signatures import access, pem, shapes
from dtr.signatures.kinds import SIGNATURES
from dtr.signatures.verify import image_signatures, trusted_keys
from dtr.storage.base import StorageDriver
from dtr.times import iso
from dtr.trust.signers import repository_signers

repositories = cast(Table, Repository.__table__)
manifests = cast(Table, Manifest.__table__)
tags = cast(Table, Tag.__table__)


@dataclasses.dataclass(frozen=True)
class Caller(access.Caller):
    """With the registry's storage (signatures are read from it)."""

    storage: StorageDriver




def key_json(r: Any) -> shapes.TrustedKey:
    return {"id": int(r.id), "scope": r.scope, "name": r.name, "kind": r.kind, "fingerprint": r.fingerprint,
            "pem": r.pem, "createdBy": r.created_by, "createdAt": iso(r.created_at)}


async def list_keys(c: Caller, namespace: str, repo: str | None) -> list[shapes.TrustedKey]:
    """The keys registered on the namespace (``repo`` None) or on the repository itself."""
    async with c.engine.connect() as conn:
        scope = await access.open_scope(c, conn, namespace, repo, change=False)
        rows = (await conn.execute(select(trusted_keys).where(trusted_keys.c.scope == scope)
                                   .order_by(trusted_keys.c.name))).all()
    return [key_json(r) for r in rows]


async def add_key(c: Caller, namespace: str, repo: str | None, body: shapes.NewTrustedKey) -> shapes.TrustedKey:
    """Register a public key or certificate; CONFLICT if the name or the key is registered there."""
    try:
        material = pem.parse(body.pem)
    except pem.KeyRefused as e:
        raise APIError(codes.INVALID_PARAMETER, f"pem: {e}") from None
    async with c.engine.begin() as conn:
        scope = await access.open_scope(c, conn, namespace, repo, change=True)
        same = (await conn.execute(select(trusted_keys.c.name).where(
            trusted_keys.c.scope == scope, trusted_keys.c.fingerprint == material.fingerprint))).scalar()
        if same is not None:
            raise APIError(codes.CONFLICT, f"this key is already trusted in {scope} as {same!r}")
        try:
            async with conn.begin_nested():
                row = (await conn.execute(insert(trusted_keys).values(
                    scope=scope, name=body.name, kind=material.kind, pem=body.pem.strip() + "\n",
                    fingerprint=material.fingerprint, created_by=c.principal.name or "")
                    .returning(*trusted_keys.c))).one()
        except IntegrityError:
            raise APIError(codes.CONFLICT, f"a trusted key named {body.name!r} exists in {scope}") from None
    made = key_json(row)
    await c.changed("trusted_key_create", "repository" if repo else "namespace", scope,
                    {"name": made["name"], "kind": made["kind"], "fingerprint": made["fingerprint"]})
    return made


async def delete_key(c: Caller, namespace: str, repo: str | None, name: str) -> None:
    """Remove a trusted key by name; NOT_FOUND if there is none of that name."""
    async with c.engine.begin() as conn:
        scope = await access.open_scope(c, conn, namespace, repo, change=True)
        row = (await conn.execute(delete(trusted_keys).where(trusted_keys.c.scope == scope,
                                                              trusted_keys.c.name == name)
                                  .returning(trusted_keys.c.fingerprint))).first()
    if row is None:
        raise APIError(codes.NOT_FOUND, f"no trusted key named {name[:100]!r} in {scope}")
    await c.changed("trusted_key_delete", "repository" if repo else "namespace", scope,
                    {"name": name, "fingerprint": row.fingerprint})


async def _resolve(conn: AsyncConnection, repository: str, reference: str) -> str:
    if is_digest(reference):
        q = (select(manifests.c.digest).join(repositories, repositories.c.id == manifests.c.repository_id)
             .where(repositories.c.name == repository, manifests.c.digest == reference))
        missing = APIError(codes.NOT_FOUND, f"no manifest {reference[:200]!r} in {repository}")
    else:
        q = (select(manifests.c.digest).select_from(tags.join(manifests, manifests.c.id == tags.c.manifest_id)
                                                   .join(repositories, repositories.c.id == tags.c.repository_id))
             .where(repositories.c.name == repository, tags.c.name == reference))
        missing = APIError(codes.NO_SUCH_TAG, f"no tag {reference[:128]!r} in {repository}")
    digest = (await conn.execute(q)).scalar()
    if digest is None:
        raise missing
    return str(digest)


async def signatures(c: Caller, namespace: str, repo: str, reference: str) -> shapes.ImageSignatures:
    """The signatures and other artifacts of the image ``reference`` (tag or digest) names."""
    async with c.engine.connect() as conn:
        full = await access.open_repository(c, conn, namespace, repo, Action.PULL)
        digest = await _resolve(conn, full, reference)
        signers = [] if is_digest(reference) else await repository_signers(conn, full, reference)
    notary: list[shapes.NotarySigner] = [
        {"gun": n.gun, "role": n.role, "digest": n.digest, "current": n.digest == digest, "keys": n.keys}
        for n in signers]
    found = await image_signatures(c.engine, c.storage, full, digest)
    listed: list[shapes.Signature] = [
        {"type": str(s.kind), "digest": s.digest, "artifactType": s.artifact_type, "foundBy": s.found_by,
         "identity": s.identity, "verified": s.verified, "trustedKey": s.trusted_key, "reason": s.reason,
         "layer": s.layer} for s in found]
    return {"repository": full, "digest": digest, "signatures": listed,
            "trusted": any(s.verified and s.kind in SIGNATURES for s in found),
            "inNotary": any(n["current"] for n in notary), "notary": notary}

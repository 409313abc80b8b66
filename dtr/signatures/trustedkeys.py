"""Trusted keys of a repository or a namespace: listed, added, removed; and an image's signatures.

Access is the access decision's (``dtr.auth.access.decide``): a repository's keys are listed by
whoever may read it (one the caller may not read is answered as missing) and changed by its
admins; a namespace's keys are listed by any user and changed by the namespace's admins (site
admins, the user namespace's owner, the organisation's owners, teams granted admin on the whole
namespace). Each change is audited once committed. A key is checked (``pem.parse``) before it is
stored: a private key, a weak or unknown key, or text that does not parse answers
INVALID_PARAMETER with the reason, the text itself never echoed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.api.errors import APIError, codes
from dtr.auth import caller
from dtr.auth.access import Action, Level, decide
from dtr.auth.models import Account
from dtr.auth.service import AuthService
from dtr.registry.models import Manifest, Repository, Tag
from dtr.registry.names import is_digest
from dtr.signatures import pem, shapes
from dtr.signatures.kinds import SIGNATURES
from dtr.signatures.verify import image_signatures, trusted_keys
from dtr.storage.base import StorageDriver

accounts = cast(Table, Account.__table__)
repositories = cast(Table, Repository.__table__)
manifests = cast(Table, Manifest.__table__)
tags = cast(Table, Tag.__table__)


@dataclasses.dataclass(frozen=True)
class Caller(caller.Caller):
    """With the auth service (None: authentication is off) and the registry's storage."""

    auth: AuthService | None
    storage: StorageDriver


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def key_json(r: Any) -> shapes.TrustedKey:
    return {"id": int(r.id), "scope": r.scope, "name": r.name, "kind": r.kind, "fingerprint": r.fingerprint,
            "pem": r.pem, "createdBy": r.created_by, "createdAt": _iso(r.created_at)}


async def _repository(c: Caller, conn: AsyncConnection, namespace: str, repo: str, action: Action) -> str:
    """``namespace/repo`` if the caller may ``action`` it: NO_SUCH_REPOSITORY when it may not
    even read it (or it does not exist), FORBIDDEN when it may read but not ``action``."""
    p = c.user()
    full = f"{namespace}/{repo}"
    missing = APIError(codes.NO_SUCH_REPOSITORY, f"no repository named {full[:300]!r}")
    if (await conn.execute(select(repositories.c.id).where(repositories.c.name == full))).first() is None:
        raise missing
    if c.auth is None:
        return full
    facts = await c.auth.repo_facts(p, full, conn)
    if not decide(p, facts, Action.PULL):
        raise missing
    if not decide(p, facts, action):
        need = Level.WRITE if action in (Action.PUSH, Action.DELETE) else Level.ADMIN
        raise APIError(codes.FORBIDDEN, f"this needs {need.api_name} access to {full}")
    return full


async def _namespace(c: Caller, conn: AsyncConnection, namespace: str, admin: bool) -> str:
    """``namespace`` if it exists (NO_SUCH_NAMESPACE) and, with ``admin``, the caller is admin of
    every repository of it (FORBIDDEN)."""
    p = c.user()
    if (await conn.execute(select(accounts.c.id).where(accounts.c.name == namespace))).first() is None:
        raise APIError(codes.NO_SUCH_NAMESPACE, f"no namespace named {namespace[:64]!r}")
    if not admin or c.auth is None or p.is_admin:
        return namespace
    facts = await c.auth.repo_facts(p, f"{namespace}/", conn)
    if not decide(p, dataclasses.replace(facts, exists=True, public=False), Action.ADMIN):
        raise APIError(codes.FORBIDDEN, f"the trusted keys of the namespace {namespace} need admin access to it")
    return namespace


async def _scope(c: Caller, conn: AsyncConnection, namespace: str, repo: str | None, change: bool) -> str:
    if repo is None:
        return await _namespace(c, conn, namespace, change)
    return await _repository(c, conn, namespace, repo, Action.ADMIN if change else Action.PULL)


async def list_keys(c: Caller, namespace: str, repo: str | None) -> list[shapes.TrustedKey]:
    """The keys registered on the namespace (``repo`` None) or on the repository itself."""
    async with c.engine.connect() as conn:
        scope = await _scope(c, conn, namespace, repo, change=False)
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
        scope = await _scope(c, conn, namespace, repo, change=True)
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
        scope = await _scope(c, conn, namespace, repo, change=True)
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
        full = await _repository(c, conn, namespace, repo, Action.PULL)
        digest = await _resolve(conn, full, reference)
    found = await image_signatures(c.engine, c.storage, full, digest)
    listed: list[shapes.Signature] = [
        {"type": str(s.kind), "digest": s.digest, "artifactType": s.artifact_type, "foundBy": s.found_by,
         "identity": s.identity, "verified": s.verified, "trustedKey": s.trusted_key, "reason": s.reason,
         "layer": s.layer} for s in found]
    return {"repository": full, "digest": digest, "signatures": listed,
            "trusted": any(s.verified and s.kind in SIGNATURES for s in found)}

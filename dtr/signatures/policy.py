"""The "signed images only" policy of a repository or namespace (``signing_policies``).

While it is on, a pull by tag (GET or HEAD of ``/v2/<name>/manifests/<tag>``) is answered only
if the tag's image has a trusted signature, else 403 DENIED naming the tag and what is missing.
Trusted is either
- a Notary signature (``dtr.trust.signers``): the tag listed, with the tag's current digest, in
  the repository's current trust data by the targets role or a delegation; when trusted keys are
  registered for the repository or its namespace, one of the signing role's keys must be one of them;
- an OCI signature (cosign, notation) of the digest verified against a trusted key.
Pulls by digest are not checked: the client names the exact content (``DOCKER_CONTENT_TRUST=1``
pulls resolve the tag through Notary, then pull by digest).

``PolicyCache`` keeps the scopes with the policy on in memory, re-read at most once a second (the
last read kept during a database outage), so a pull in a repository without the policy costs no
database round-trip and a change is seen by every replica within a second.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from typing_extensions import TypedDict

from dtr.db.refreshed import Refreshed
from dtr.registry.errors import RegistryError
from dtr.registry.errors import codes as registry_codes
from dtr.signatures.access import Caller, open_scope
from dtr.signatures.models import SigningPolicy, TrustedKey
from dtr.trust.signers import NotarySigner, repository_signers

policies = cast(Table, SigningPolicy.__table__)
trusted_keys = cast(Table, TrustedKey.__table__)

#: Whether an OCI signature of (repository, digest) verifies against a key trusted there.
OciCheck = Callable[[str, str], Awaitable[bool]]


def scopes_of(repository: str) -> tuple[str, str]:
    """The scopes covering ``repository``: itself and its namespace."""
    return repository, repository.partition("/")[0]


class PolicyCache:
    """The scopes with signed-only on, re-read from the database at most every ``ttl`` seconds
    (the last read kept while the database is unavailable: ``Refreshed``)."""

    def __init__(self, engine: AsyncEngine, ttl: float = 1.0) -> None:
        self.engine = engine
        self._scopes = Refreshed(self._read, ttl)

    async def _read(self) -> frozenset[str]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(policies.c.scope).where(policies.c.signed_only))
            return frozenset(r.scope for r in rows)

    async def scope_for(self, repository: str) -> str | None:
        """The scope (repository or namespace) whose policy covers ``repository``, or None."""
        scopes = await self._scopes.get()
        return next((s for s in scopes_of(repository) if s in scopes), None)

    def forget(self) -> None:
        """Re-read on the next pull (after a change made through this process: seen at once here,
        within ``ttl`` on the other replicas)."""
        self._scopes.forget()


async def trusted_fingerprints(conn: AsyncConnection, repository: str) -> set[str]:
    """The SPKI fingerprints of the keys trusted in ``repository`` (its own and its namespace's)."""
    rows = await conn.execute(select(trusted_keys.c.fingerprint).where(trusted_keys.c.scope.in_(scopes_of(repository))))
    return {r.fingerprint for r in rows}


async def notary_trusted(conn: AsyncConnection, repository: str, tag: str, digest: str) -> bool:
    """``tag`` is signed as ``digest`` in Notary by a listed signer (with a trusted key, if any are registered)."""
    signers = await repository_signers(conn, repository, tag)
    if not any(s.digest == digest for s in signers):
        return False
    return notary_signed(signers, await trusted_fingerprints(conn, repository), tag, digest)


def notary_signed(signers: Sequence[NotarySigner], trusted: set[str], tag: str, digest: str) -> bool:
    """Of a repository's ``signers`` (``repository_signers``) and its ``trusted_fingerprints``:
    whether ``tag`` is signed as ``digest`` by a signer (with a trusted key, if any are registered)."""
    found = [s for s in signers if s.tag == tag and s.digest == digest]
    return bool(found) and (not trusted or any(fp in trusted for s in found for fp in s.keys.values()))


class SignedOnlyGate:
    """The registry's pull gate (``RegistryService.pull_gates``): refuses a tag without a trusted
    signature in a repository under the policy."""

    def __init__(self, engine: AsyncEngine, cache: PolicyCache, oci_trusted: OciCheck) -> None:
        self.engine, self.cache, self.oci_trusted = engine, cache, oci_trusted

    async def __call__(self, repository: str, tag: str, digest: str) -> None:
        scope = await self.cache.scope_for(repository)
        if scope is None:
            return
        async with self.engine.connect() as conn:
            if await notary_trusted(conn, repository, tag, digest):
                return
        if await self.oci_trusted(repository, digest):
            return
        raise RegistryError(
            registry_codes.DENIED, detail={"tag": tag, "digest": digest, "policy": scope},
            message=f"{repository}:{tag} is not signed: {scope} allows only signed images, and {digest} has no "
                    "Notary signature by a signer of the repository's trust data nor an OCI signature verified "
                    "by a trusted key")


# -- the setting ----------------------------------------------------------------------------------


class Policy(TypedDict):
    scope: str
    signedOnly: bool
    #: Whether pulls by tag in the scope need a signature (its own setting or its namespace's).
    enforced: bool
    updatedBy: str
    updatedAt: str | None


async def _read(conn: AsyncConnection, scope: str) -> Policy:
    rows = {r.scope: r for r in await conn.execute(select(policies).where(policies.c.scope.in_(scopes_of(scope))))}
    own: Any = rows.get(scope)
    return {"scope": scope, "signedOnly": bool(own and own.signed_only),
            "enforced": any(r.signed_only for r in rows.values()),
            "updatedBy": own.updated_by if own else "",
            "updatedAt": own.updated_at.isoformat() if own else None}


async def get_policy(c: Caller, namespace: str, repo: str | None) -> Policy:
    """The signing policy of a repository (``repo`` given) or a namespace, for those who may read it."""
    async with c.engine.connect() as conn:
        return await _read(conn, await open_scope(c, conn, namespace, repo, change=False))


async def set_policy(c: Caller, namespace: str, repo: str | None, signed_only: bool) -> Policy:
    """Turn signed-only on or off (admins of the repository or namespace); audited."""
    async with c.engine.begin() as conn:
        scope = await open_scope(c, conn, namespace, repo, change=True)
        values = {"signed_only": signed_only, "updated_by": c.principal.name or ""}
        await conn.execute(pg_insert(policies).values(scope=scope, **values).on_conflict_do_update(
            index_elements=[policies.c.scope], set_={**values, "updated_at": func.now()}))
        found = await _read(conn, scope)
    await c.changed("signing_policy", "repository" if repo is not None else "namespace", scope,
                    {"signedOnly": signed_only})
    return found

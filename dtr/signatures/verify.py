"""An image's OCI signatures and other artifacts, each verified against the trusted keys of its
repository and namespace: ``image_signatures`` and ``has_trusted_signature`` (what the "signed
images only" policy calls).

A signature's blobs (payload, bundle, envelope) are read from storage only up to a size cap and
checked against their digest. Nothing here raises on hostile input: a malformed signature is
"not verified: <reason>". Results are cached in memory, keyed by the artifact's digest, the
image's digest and the trusted keys' state (their ids and fingerprints), so a check on the pull
path costs two queries once warm; a change of keys changes the key and never serves a stale
answer. A storage failure is reported but not cached.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dtr.registry.names import blob_path, is_digest
from dtr.signatures import cosign, notation, pem
from dtr.signatures.cosign import Malformed
from dtr.signatures.crypto import Check, Trusted, not_verified
from dtr.signatures.discover import Artifact, artifacts, artifacts_of
from dtr.signatures.kinds import COSE, COSIGN_SIMPLESIGNING, DSSE, JWS, SIGNATURES, Kind, layers
from dtr.signatures.models import TrustedKey
from dtr.storage.base import StorageDriver, StorageError

log = logging.getLogger("dtr.signatures")
trusted_keys = cast(Table, TrustedKey.__table__)

#: The largest blob read for a signature (a bundle or envelope with its certificate chain, an
#: in-toto statement); a simple-signing payload is far smaller.
MAX_BLOB = 4 << 20
MAX_PAYLOAD = 64 << 10
#: The most signature layers of one manifest verified.
MAX_LAYERS = 16
CACHE_SIZE = 8192


@dataclasses.dataclass(frozen=True)
class OciSignature:
    """One signature or artifact of an image: ``kind``, the artifact manifest's ``digest``, how
    it was found, and the verification (for signatures and attestations; others: not verified)."""

    kind: Kind
    digest: str
    artifact_type: str | None
    found_by: str
    identity: str
    verified: bool
    trusted_key: str | None
    reason: str | None
    #: The layer of a manifest holding several signatures (cosign), else None.
    layer: int | None = None


@dataclasses.dataclass(frozen=True)
class KeyState:
    """The trusted keys covering a repository, parsed, and their state (the cache's key)."""

    keys: tuple[Trusted, ...]
    state: tuple[tuple[int, str], ...]


_parsed: dict[tuple[int, str], pem.KeyMaterial | None] = {}
_cache: collections.OrderedDict[tuple[str, str, tuple[tuple[int, str], ...]], tuple[tuple[int | None, Check], ...]] \
    = collections.OrderedDict()


def scopes(repository: str) -> list[str]:
    """The scopes whose keys cover ``repository``: the repository and its namespace."""
    namespace = repository.partition("/")[0]
    return [repository, namespace] if namespace != repository else [repository]


async def load_keys(conn: AsyncConnection, repository: str) -> KeyState:
    """The trusted keys of ``repository`` and of its namespace (repository's first)."""
    rows = (await conn.execute(select(trusted_keys.c.id, trusted_keys.c.scope, trusted_keys.c.name,
                                      trusted_keys.c.pem, trusted_keys.c.fingerprint)
                               .where(trusted_keys.c.scope.in_(scopes(repository)))
                               .order_by(trusted_keys.c.scope.desc(), trusted_keys.c.name))).all()
    keys: list[Trusted] = []
    for r in rows:
        ident = (int(r.id), str(r.fingerprint))
        if ident not in _parsed:
            try:
                _parsed[ident] = pem.parse(r.pem)
            except pem.KeyRefused:
                _parsed[ident] = None
            if len(_parsed) > CACHE_SIZE:
                _parsed.pop(next(iter(_parsed)))
        material = _parsed[ident]
        if material is not None:
            keys.append(Trusted(r.name, r.scope, material))
    return KeyState(tuple(keys), tuple((int(r.id), str(r.fingerprint)) for r in rows))


async def _blob(storage: StorageDriver, descriptor: dict[str, Any], cap: int) -> bytes:
    """The blob a layer descriptor names, if at most ``cap`` bytes and matching its digest."""
    digest, size = descriptor.get("digest"), descriptor.get("size")
    if not isinstance(digest, str) or not is_digest(digest) or not digest.startswith("sha256:"):
        raise Malformed("a layer's digest is not a sha256 digest")
    if not isinstance(size, int) or size < 0 or size > cap:
        raise Malformed(f"a layer is larger than {cap} bytes")
    data = await storage.get_content(blob_path(digest))
    if len(data) > cap or not cosign.digest_matches(data, digest):
        raise Malformed("a layer's blob does not match its digest")
    return data


async def _checks(storage: StorageDriver, a: Artifact, subject: str,
                  keys: Sequence[Trusted]) -> list[tuple[int | None, Check]]:
    """The verification of each signature in ``a`` (raises Malformed, StorageError)."""
    found = layers(a.payload)[:MAX_LAYERS]
    out: list[tuple[int | None, Check]] = []
    if a.kind is Kind.COSIGN:
        for i, layer in enumerate(found):
            if layer.get("mediaType") == COSIGN_SIMPLESIGNING:
                out.append((i, await _layer(cosign.simple_signing, storage, layer, MAX_PAYLOAD, subject, keys)))
        return out or [(None, not_verified("the manifest holds no simple-signing payload"))]
    if a.kind is Kind.SIGSTORE_BUNDLE:
        if not found:
            raise Malformed("the bundle manifest has no layer")
        return [(None, cosign.bundle(await _blob(storage, found[0], MAX_BLOB), subject, keys))]
    if a.kind is Kind.NOTATION:
        envelope = next((d for d in found if d.get("mediaType") in (JWS, COSE)), None)
        if envelope is None:
            raise Malformed("the notation manifest has no signature envelope layer")
        if envelope.get("mediaType") == COSE:
            return [(None, not_verified("COSE envelopes are not supported; only JWS"))]
        return [(None, notation.verify(await _blob(storage, envelope, MAX_BLOB), subject, keys))]
    if a.kind is Kind.ATTESTATION:
        for i, layer in enumerate(found):
            if layer.get("mediaType") == DSSE:
                out.append((i, await _layer(cosign.dsse_layer, storage, layer, MAX_BLOB, subject, keys)))
        return out or [(None, Check(reason="not verified: no DSSE envelope to verify"))]
    return [(None, Check(reason=f"not a signature ({a.kind})"))]


async def _layer(fn: Any, storage: StorageDriver, layer: dict[str, Any], cap: int, subject: str,
                 keys: Sequence[Trusted]) -> Check:
    """``fn(layer, blob, subject, keys)`` for one signature layer of several: a malformed one is
    "not verified: <why>" without hiding the others."""
    try:
        return cast(Check, fn(layer, await _blob(storage, layer, cap), subject, keys))
    except Malformed as e:
        return not_verified(str(e))


async def verify_artifact(storage: StorageDriver, a: Artifact, subject: str,
                          keys: KeyState) -> list[tuple[int | None, Check]]:
    """``a``'s checks, from the cache or computed (and cached unless storage failed)."""
    key = (a.digest, subject, keys.state)
    if (hit := _cache.get(key)) is not None:
        _cache.move_to_end(key)
        return list(hit)
    try:
        checks = await _checks(storage, a, subject, keys.keys)
    except Malformed as e:
        checks = [(None, not_verified(str(e)))]
    except StorageError as e:
        log.warning("signature %s: its blob cannot be read: %s", a.digest, e)
        return [(None, not_verified("a blob of the signature cannot be read from storage"))]
    except Exception:  # hostile input must never fail the caller; the bug is logged
        log.exception("signature %s: verification failed unexpectedly", a.digest)
        checks = [(None, not_verified("the signature could not be processed"))]
    _cache[key] = tuple(checks)
    if len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return checks


async def image_signatures(engine: AsyncEngine, storage: StorageDriver, repository: str,
                           digest: str) -> list[OciSignature]:
    """The signatures and other artifacts of image ``digest`` in ``repository``, verified."""
    async with engine.connect() as conn:
        found = await artifacts(conn, repository, digest)
        keys = await load_keys(conn, repository) if found else KeyState((), ())
    out: list[OciSignature] = []
    for a in found:
        for layer, c in await verify_artifact(storage, a, digest, keys):
            out.append(OciSignature(a.kind, a.digest, a.artifact_type, a.found_by, c.identity, c.verified,
                                    c.trusted_key, c.reason, layer))
    return out


async def has_trusted_signature(engine: AsyncEngine, storage: StorageDriver, repository: str, digest: str) -> bool:
    """Whether image ``digest`` in ``repository`` has a signature (cosign, Sigstore bundle,
    notation) that verifies with a trusted key of the repository or its namespace."""
    return any(s.verified and s.kind in SIGNATURES
               for s in await image_signatures(engine, storage, repository, digest))


async def trusted_images(conn: AsyncConnection, storage: StorageDriver, repository: str,
                         digests: Sequence[str]) -> set[str]:
    """Which of ``digests`` have a signature ``has_trusted_signature`` would accept, for a list of
    images: two queries for them all (their artifacts, the keys); blobs are read only when trusted
    keys are registered and a verification is not cached."""
    keys = await load_keys(conn, repository)
    out: set[str] = set()
    if not keys.keys:  # nothing can verify: the artifacts need not be looked for
        return out
    for digest, arts in (await artifacts_of(conn, repository, digests)).items():
        for a in (a for a in arts if a.kind in SIGNATURES):
            if any(c.verified for _, c in await verify_artifact(storage, a, digest, keys)):
                out.add(digest)
                break
    return out

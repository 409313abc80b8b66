"""Offline bundles of the vulnerability database, and their signing keys.

A bundle (``export_bundle``/``import_bundle``) is a tar of ``manifest.json`` (each feed's name,
version, record count and the sha256 of its gzip JSON-lines records file, plus the
``vulnerabilities`` table as one more file), the records files, and ``manifest.sig`` (Ed25519 over
``manifest.json``; key id = sha256 of the raw public key). Import verifies the signature against
the trusted keys and every checksum before changing anything (``verify_bundle``), then imports
feed by feed as an online update would (``vulnimport``).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dtr.scanning.feeds import VulnInfo, parse_time
from dtr.scanning.types import Advisory
from dtr.scanning.vulnimport import ADVISORY_COLUMNS, BATCH, FeedResult, import_advisories, import_vulnerabilities

BUNDLE_FORMAT = "dtr-vulndb-bundle"
BUNDLE_VERSION = 1
#: The most bytes of ``manifest.json`` / ``manifest.sig`` read from a bundle.
MANIFEST_MAX = 16 << 20

_COLS = ", ".join(ADVISORY_COLUMNS)


class BundleError(ValueError):
    """An offline bundle that cannot be imported (unsigned by a trusted key, altered, truncated)."""


# --- keys --------------------------------------------------------------------------------------------

def key_id(public_key: Ed25519PublicKey) -> str:
    """A public key's id: the sha256 (hex) of its raw 32 bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def load_signing_key(path: Path, *, create: bool = True) -> Ed25519PrivateKey:
    """The Ed25519 key in PEM file ``path``, made (mode 0600, its directory 0700) if absent and ``create``."""
    if not path.exists() and create:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        return key
    return private_key_from_pem(path.read_bytes(), name=str(path))


def private_key_from_pem(pem: bytes, *, name: str = "signing key") -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{name}: not an unencrypted PEM private key: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{name}: not an Ed25519 key")
    return key


def public_key_from_pem(pem: bytes, *, name: str = "public key") -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{name}: not a PEM public key: {e}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{name}: not an Ed25519 public key")
    return key


def public_key_pem(key: Ed25519PrivateKey) -> bytes:
    """The public half of ``key`` as PEM (what importers list in ``bundle_trusted_keys``)."""
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


# --- records: gzip JSON lines -----------------------------------------------------------------------

def _advisory_json(a: Advisory) -> dict[str, Any]:
    d: dict[str, Any] = {"id": a.vuln_id, "ns": a.namespace, "pkg": a.package, "state": a.state}
    for key, value in (("introduced", a.introduced), ("fixed", a.fixed), ("last_affected", a.last_affected),
                       ("severity", a.severity), ("cvss_score", a.cvss_score), ("cvss_vector", a.cvss_vector)):
        if value not in ("", None):
            d[key] = value
    return d


def _advisory_from_json(d: Any) -> Advisory:
    if not isinstance(d, dict):
        raise BundleError("a record that is no JSON object")
    try:
        return Advisory(vuln_id=str(d["id"]), namespace=str(d["ns"]), package=str(d["pkg"]), state=str(d["state"]),
                        introduced=str(d.get("introduced", "")), fixed=str(d.get("fixed", "")),
                        last_affected=str(d.get("last_affected", "")), severity=str(d.get("severity", "")),
                        cvss_score=None if d.get("cvss_score") is None else float(d["cvss_score"]),
                        cvss_vector=str(d.get("cvss_vector", "")))
    except (KeyError, TypeError, ValueError) as e:
        raise BundleError(f"a malformed advisory record: {e}") from None


def vuln_json(v: VulnInfo) -> dict[str, Any]:
    """A vulnerability as a record (of a bundle, or of NVD's download spooled by ``vulndb``)."""
    d: dict[str, Any] = {"id": v.id}
    if v.summary:
        d["summary"] = v.summary
    if v.cvss_score is not None:
        d["cvss_score"] = v.cvss_score
    if v.cvss_vector:
        d["cvss_vector"] = v.cvss_vector
    if v.aliases:
        d["aliases"] = list(v.aliases)
    if v.published_at:
        d["published_at"] = v.published_at.isoformat()
    if v.modified_at:
        d["modified_at"] = v.modified_at.isoformat()
    return d


def vuln_from_json(d: Any) -> VulnInfo:
    """The vulnerability of a record (``vuln_json``'s); BundleError if malformed."""
    if not isinstance(d, dict):
        raise BundleError("a record that is no JSON object")
    try:
        return VulnInfo(id=str(d["id"]), summary=str(d.get("summary", "")),
                        cvss_score=None if d.get("cvss_score") is None else float(d["cvss_score"]),
                        cvss_vector=str(d.get("cvss_vector", "")),
                        aliases=tuple(str(a) for a in d.get("aliases", ())),
                        published_at=parse_time(d.get("published_at")), modified_at=parse_time(d.get("modified_at")))
    except (KeyError, TypeError, ValueError) as e:
        raise BundleError(f"a malformed vulnerability record: {e}") from None


# --- export, verify, import ---------------------------------------------------------------------------

class _HashingWriter(io.RawIOBase):
    """A file that hashes what is written through it."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self.digest.update(data)
        self.size += len(data)
        self.f.write(data)
        return len(data)


async def _export_rows(conn: AsyncConnection, sql: str, params: dict[str, Any], out: IO[bytes],
                       to_json: Callable[[Any], dict[str, Any]], tick: Callable[[int], None]) -> tuple[int, str]:
    """Stream a query's rows as gzip JSON lines into ``out``; (rows, sha256 of the gzip bytes)."""
    hashing = _HashingWriter(out)
    count = 0
    with gzip.GzipFile(fileobj=hashing, mode="wb", compresslevel=6, mtime=0) as gz:
        result = await conn.stream(text(sql), params)
        async for part in result.partitions(BATCH):
            lines = "".join(json.dumps(to_json(r), separators=(",", ":")) + "\n" for r in part)
            await asyncio.to_thread(gz.write, lines.encode())
            count += len(part)
            tick(len(part))
    return count, hashing.digest.hexdigest()


def _row_advisory(r: Any) -> dict[str, Any]:
    return _advisory_json(Advisory(vuln_id=r.vuln_id, namespace=r.namespace, package=r.package, state=r.state,
                                   introduced=r.introduced, fixed=r.fixed, last_affected=r.last_affected,
                                   severity=r.severity, cvss_score=r.cvss_score, cvss_vector=r.cvss_vector))


def _row_vuln(r: Any) -> dict[str, Any]:
    return vuln_json(VulnInfo(id=r.id, summary=r.summary, cvss_score=r.cvss_score, cvss_vector=r.cvss_vector,
                               aliases=tuple(r.aliases), published_at=r.published_at, modified_at=r.modified_at))


async def export_bundle(engine: AsyncEngine, out: Path, signing_key_pem: bytes,
                        progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Write the database (every imported feed's advisories and the vulnerabilities) as a signed
    offline bundle at ``out`` (a tar, written to a temporary name and renamed); its manifest.
    ``progress(done, total)`` counts records."""
    key = private_key_from_pem(signing_key_pem)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".vulndb-export-", dir=out.parent) as tmp:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                feeds = (await conn.execute(text("SELECT name, version, records, updated_at FROM vuln_feeds "
                                                 "WHERE version > 0 ORDER BY name"))).all()
                total = (await conn.execute(text(
                    "SELECT (SELECT count(*) FROM vuln_advisories) + (SELECT count(*) FROM vulnerabilities)"))
                ).scalar_one()
                done = 0

                def tick(n: int) -> None:
                    nonlocal done
                    done += n
                    if progress is not None:
                        progress(done, total)

                files: list[tuple[str, Path]] = []
                path = Path(tmp) / "vulnerabilities.jsonl.gz"
                with path.open("wb") as f:
                    count, digest = await _export_rows(
                        conn, "SELECT id, summary, cvss_score, cvss_vector, aliases, published_at, modified_at "
                              "FROM vulnerabilities ORDER BY id", {}, f, _row_vuln, tick)
                files.append(("vulnerabilities.jsonl.gz", path))
                vulns = {"file": "vulnerabilities.jsonl.gz", "records": count, "sha256": digest}
                feed_entries = []
                for i, feed in enumerate(feeds):
                    member = f"feeds/{i:04d}.jsonl.gz"
                    path = Path(tmp) / f"feed-{i:04d}.jsonl.gz"
                    with path.open("wb") as f:
                        count, digest = await _export_rows(
                            conn, f"SELECT {_COLS} FROM vuln_advisories WHERE feed = :feed "
                                  "ORDER BY namespace, package, vuln_id, id", {"feed": feed.name}, f,
                            _row_advisory, tick)
                    files.append((member, path))
                    feed_entries.append({"name": feed.name, "version": feed.version, "records": count,
                                         "updated_at": feed.updated_at.isoformat() if feed.updated_at else None,
                                         "file": member, "sha256": digest})
        kid = key_id(key.public_key())
        manifest = {"format": BUNDLE_FORMAT, "format_version": BUNDLE_VERSION,
                    "created": dt.datetime.now(dt.UTC).isoformat(), "key_id": kid,
                    "vulnerabilities": vulns, "feeds": feed_entries}
        manifest_bytes = json.dumps(manifest, indent=1, sort_keys=True).encode()
        signature = {"algorithm": "ed25519", "key_id": kid,
                     "signature": base64.b64encode(key.sign(manifest_bytes)).decode()}
        partial = out.with_name(f".{out.name}.partial")

        def write_tar() -> None:
            with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
                for member, data in (("manifest.json", manifest_bytes),
                                     ("manifest.sig", json.dumps(signature).encode())):
                    info = tarfile.TarInfo(member)
                    info.size, info.mode, info.mtime = len(data), 0o644, int(dt.datetime.now().timestamp())
                    tar.addfile(info, io.BytesIO(data))
                for member, path in files:
                    tar.add(path, arcname=member, recursive=False)
            os.replace(partial, out)

        try:
            await asyncio.to_thread(write_tar)
        finally:
            partial.unlink(missing_ok=True)
    return manifest


def _read_member(tar: tarfile.TarFile, name: str, limit: int) -> bytes:
    try:
        info = tar.getmember(name)
    except KeyError:
        raise BundleError(f"the bundle has no {name}") from None
    if not info.isfile() or info.size > limit:
        raise BundleError(f"the bundle's {name} is not a file of at most {limit} bytes")
    f = tar.extractfile(info)
    assert f is not None
    data = f.read()
    if len(data) != info.size:
        raise BundleError(f"the bundle is truncated (in {name})")
    return data


def verify_bundle(path: Path, trusted_public_keys: Sequence[bytes]) -> dict[str, Any]:
    """Check a bundle's signature against the trusted PEM public keys and every file's sha256; its
    manifest. ``BundleError`` says what is wrong (and which key signed it, when none is trusted)."""
    trusted = {key_id(k): k for k in (public_key_from_pem(p) for p in trusted_public_keys)}
    try:
        with tarfile.open(path, "r:") as tar:
            manifest_bytes = _read_member(tar, "manifest.json", MANIFEST_MAX)
            try:
                sig = json.loads(_read_member(tar, "manifest.sig", MANIFEST_MAX))
                signature = base64.b64decode(sig["signature"], validate=True)
                signer = str(sig.get("key_id", "unknown"))
            except (ValueError, KeyError, TypeError) as e:
                raise BundleError(f"the bundle's manifest.sig is malformed: {e}") from None
            key = trusted.get(signer)
            if key is None:
                raise BundleError(f"the bundle is signed by key {signer}, which is not a trusted key "
                                  f"(trusted: {', '.join(trusted) or 'none'})")
            try:
                key.verify(signature, manifest_bytes)
            except InvalidSignature:
                raise BundleError(f"the bundle's signature by key {signer} does not verify: "
                                  "its manifest was altered") from None
            try:
                manifest = json.loads(manifest_bytes)
                entries = [manifest["vulnerabilities"], *manifest["feeds"]]
                if manifest["format"] != BUNDLE_FORMAT or manifest["format_version"] != BUNDLE_VERSION:
                    raise BundleError(f"unsupported bundle format {manifest['format']!r} "
                                      f"version {manifest['format_version']!r}")
                files = {str(e["file"]): str(e["sha256"]) for e in entries}
            except (ValueError, KeyError, TypeError) as e:
                raise BundleError(f"the bundle's manifest.json is malformed: {e}") from None
            for name, expected in files.items():
                try:
                    info = tar.getmember(name)
                except KeyError:
                    raise BundleError(f"the bundle has no {name}") from None
                f = tar.extractfile(info)
                if f is None:
                    raise BundleError(f"the bundle's {name} is not a file")
                digest = hashlib.sha256()
                size = 0
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
                if size != info.size:
                    raise BundleError(f"the bundle is truncated (in {name})")
                if digest.hexdigest() != expected:
                    raise BundleError(f"the bundle's {name} does not match its checksum: it was altered")
    except (tarfile.TarError, EOFError, OSError) as e:
        raise BundleError(f"{path.name}: not a readable bundle (truncated or not a tar): {e}") from None
    return manifest  # type: ignore[no-any-return]


def _bundle_lines(path: Path, member: str) -> Iterator[Any]:
    """The JSON records of one (already verified) gzip JSON-lines member."""
    with tarfile.open(path, "r:") as tar:
        f = tar.extractfile(member)
        assert f is not None
        with gzip.GzipFile(fileobj=f) as gz:
            for line in gz:
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError as e:
                        raise BundleError(f"{member}: malformed JSON line: {e}") from None


def _bundle_advisories(path: Path, member: str) -> Callable[[], Iterator[Advisory]]:
    return lambda: (_advisory_from_json(d) for d in _bundle_lines(path, member))


async def import_bundle(engine: AsyncEngine, path: Path, trusted_public_keys: Sequence[bytes],
                        progress: Callable[[int, int], None] | None = None) -> list[FeedResult]:
    """Import an offline bundle: verified first (``verify_bundle``; nothing changes if it fails),
    then the vulnerabilities (result named ``vulnerabilities``) and each feed, each in its own
    transaction as an online update would. ``progress(done, total)`` counts records."""
    manifest = await asyncio.to_thread(verify_bundle, path, trusted_public_keys)
    vulns = manifest["vulnerabilities"]
    total = int(vulns["records"]) + sum(int(f["records"]) for f in manifest["feeds"])
    done = 0

    def ticker() -> Callable[[int], None]:
        base = done

        def tick(sent: int) -> None:
            if progress is not None:
                progress(base + sent, total)
        return tick

    results = [await import_vulnerabilities(
        engine, None, lambda: (vuln_from_json(d) for d in _bundle_lines(path, str(vulns["file"]))),
        progress=ticker())]
    done += int(vulns["records"])
    for entry in manifest["feeds"]:
        results.append(await import_advisories(engine, str(entry["name"]), _bundle_advisories(path, str(entry["file"])),
                                               checksum=str(entry["sha256"]), progress=ticker()))
        done += int(entry["records"])
    if progress is not None:
        progress(total, total)
    return results

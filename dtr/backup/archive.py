"""The backup file's content: a tar stream of members, each hashed as it goes, with the manifest
(what dtr wrote it, the schema revision, when, and every member's size and SHA-256) last.

Members: ``database.dump.NNNNNN`` (the ``pg_dump`` custom-format output, cut into segments as it
streams: tar needs each member's size before its bytes), ``config.yaml``, ``keys/<dir>/<file>``
(key material from data_dir), ``blobs/<algorithm>/<xx>/<hex>`` (with ``--include-blobs``), and
``manifest.json``. Reading checks every name against these shapes (no path tricks) and every
member against the manifest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import tarfile
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol

from dtr.backup.errors import BackupError

FORMAT = "dtr-backup"
VERSION = 1
MANIFEST = "manifest.json"
CONFIG = "config.yaml"
DUMP = "database.dump."
KEYS = "keys/"
BLOBS = "blobs/"
#: The dump is cut into members of this size as it streams (the memory a backup holds at most).
SEGMENT = 8 << 20
#: The directories of data_dir whose files are key material (the internal CA, the token signing key).
KEY_DIRS = ("ca", "auth")
_MEMBER = re.compile(
    r"database\.dump\.\d{6}|config\.yaml|keys/(?:ca|auth)/[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}"
    r"|blobs/(?:sha256/[0-9a-f]{2}/[0-9a-f]{64}|sha512/[0-9a-f]{2}/[0-9a-f]{128})")


class Readable(Protocol):
    """A stream to read: a file, or the plaintext of an encrypted backup."""

    def read(self, n: int = -1, /) -> bytes: ...


@dataclasses.dataclass(frozen=True)
class Manifest:
    dtr_version: str
    #: The schema revision of the dump (None: the database had no dtr schema yet).
    alembic_revision: str | None
    created: str
    blobs: bool
    #: name -> (size, sha256 hex), in archive order.
    members: dict[str, tuple[int, str]]

    @property
    def dump_segments(self) -> list[str]:
        return [n for n in self.members if n.startswith(DUMP)]


class _Hashing:
    """A read-only stream over ``src`` that hashes and counts what is read."""

    def __init__(self, src: Readable) -> None:
        self._src, self._hash, self.size = src, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._src.read(n)
        except (tarfile.TarError, EOFError) as e:  # a member of a tar stream cut short
            raise BackupError(f"the backup is truncated or damaged: {e}") from None
        self._hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class ArchiveWriter:
    """Members written as a tar stream into ``sink`` (a file, or an ``EncryptingWriter``);
    ``finish`` appends the manifest and ends the stream (``sink`` stays open)."""

    def __init__(self, sink: Any) -> None:
        self._tar = tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115  (closed by finish)
        self._members: dict[str, tuple[int, str]] = {}
        self._segments = 0
        #: Member bytes written so far (for progress).
        self.written = 0

    def add(self, name: str, src: Readable, size: int) -> None:
        """Member ``name``: exactly ``size`` bytes read from ``src``."""
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o600, int(time.time())
        hashing = _Hashing(src)
        self._tar.addfile(info, hashing)  # type: ignore[arg-type]  # tarfile only calls read()
        self._members[name] = (size, hashing.hexdigest())
        self.written += size

    def add_bytes(self, name: str, data: bytes) -> None:
        self.add(name, io.BytesIO(data), len(data))

    async def add_dump(self, read: Callable[[int], Awaitable[bytes]], progress: Callable[[], None]) -> None:
        """The dump from ``read`` (``b""`` at its end), as segments of at most ``SEGMENT`` bytes."""
        while True:
            segment = bytearray()
            while len(segment) < SEGMENT and (data := await read(SEGMENT - len(segment))):
                segment += data
            if not segment and self._segments:
                return
            self.add_bytes(f"{DUMP}{self._segments:06d}", bytes(segment))
            self._segments += 1
            progress()
            if len(segment) < SEGMENT:
                return

    def finish(self, dtr_version: str, alembic_revision: str | None, created: str, blobs: bool) -> None:
        manifest = {"format": FORMAT, "version": VERSION, "dtr_version": dtr_version,
                    "alembic_revision": alembic_revision, "created": created, "blobs": blobs,
                    "members": [{"name": n, "size": s, "sha256": h} for n, (s, h) in self._members.items()]}
        self.add_bytes(MANIFEST, json.dumps(manifest, indent=1).encode())
        self._tar.close()


def _manifest(data: bytes) -> Manifest:
    try:
        doc = json.loads(data)
        if doc.get("format") != FORMAT:
            raise BackupError("not a dtr backup (its manifest names another format)")
        if doc.get("version") != VERSION:
            raise BackupError(f"backup format version {doc.get('version')} is unknown to this dtr; "
                              "restore it with the dtr version that wrote it or a newer one")
        members = {str(m["name"]): (int(m["size"]), str(m["sha256"])) for m in doc["members"]}
        revision = doc["alembic_revision"]
        return Manifest(str(doc["dtr_version"]), None if revision is None else str(revision),
                        str(doc["created"]), bool(doc["blobs"]), members)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise BackupError(f"the backup's manifest is damaged ({type(e).__name__}: {e})") from None


def read_members(src: Readable) -> Iterator[tuple[str, _Hashing]]:
    """Each member of the tar stream ``src`` in order, as (name, stream); what the consumer leaves
    unread is drained (and hashed) before the next. BackupError on a name or member type that no
    backup has, and on a stream that is no tar or is cut short."""
    try:
        with tarfile.open(fileobj=src, mode="r|") as tar:  # type: ignore[call-overload]  # only read() is called
            for info in tar:
                if not info.isreg() or not (info.name == MANIFEST or _MEMBER.fullmatch(info.name)):
                    raise BackupError(f"not a dtr backup: unexpected member {info.name[:200]!r}")
                extracted = tar.extractfile(info)
                assert extracted is not None  # a regular file
                reader = _Hashing(extracted)
                yield info.name, reader
                reader.drain()
                if reader.size != info.size:
                    raise BackupError(f"the backup is truncated inside {info.name}")
    except (tarfile.TarError, EOFError) as e:
        raise BackupError(f"not a dtr backup, or a damaged or truncated one: {e}") from None


def verify(src: Readable, progress: Callable[[], None]) -> Manifest:
    """Read the whole backup ``src``: every member must be in the manifest (last) with its size and
    checksum, and every member the manifest lists must be there. The manifest, else BackupError."""
    seen: dict[str, tuple[int, str]] = {}
    manifest: Manifest | None = None
    for name, reader in read_members(src):
        if manifest is not None:
            raise BackupError(f"the backup is damaged: member {name} after the manifest")
        if name == MANIFEST:
            manifest = _manifest(reader.read())
            continue
        reader.drain()
        seen[name] = (reader.size, reader.hexdigest())
        progress()
    if manifest is None:
        raise BackupError("the backup has no manifest: it is truncated or not a dtr backup")
    for name, got in seen.items():
        if manifest.members.get(name) != got:
            raise BackupError(f"the backup is damaged: {name} does not match its checksum in the manifest")
    if missing := [n for n in manifest.members if n not in seen]:
        raise BackupError(f"the backup is incomplete: {len(missing)} member(s) missing, such as {missing[0]}")
    if not manifest.dump_segments:
        raise BackupError("the backup holds no database dump")
    return manifest


def check_member(manifest: Manifest, name: str, reader: _Hashing) -> None:
    """After ``reader`` was drained: it matched the manifest (the file did not change since ``verify``)."""
    if manifest.members.get(name) != (reader.size, reader.hexdigest()):
        raise BackupError(f"{name} changed since the backup was verified: the file is being modified")

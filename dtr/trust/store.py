"""The built-in Notary's Postgres side: reads of role files (current, by checksum, by version),
atomic updates, the server's snapshot and timestamp (made, and re-signed before they expire),
server keys, deletes and the change feed.

Every write to a GUN runs in one transaction holding the GUN's advisory lock (two updates of one
GUN run one after the other; different GUNs in parallel), so an update is stored whole or not
at all, and a snapshot or timestamp is made once from the files it describes.

Re-signing: a server-made timestamp (or snapshot, when the server holds its key) is made anew
on GET once less than a quarter of its configured life remains, and on every accepted update;
so a client never sees one about to expire. The new timestamp is an update in the change feed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import threading
from collections.abc import Mapping
from typing import cast

from sqlalchemy import Table, insert, select, text
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dtr.config import Config
from dtr.trust import feed
from dtr.trust.errors import BAD_ROOT, VERSION, TrustError, invalid_update
from dtr.trust.heldkeys import HeldKeys
from dtr.trust.models import TrustFile, TrustKey
from dtr.trust.sealing import Sealer
from dtr.trust.serverroles import make_snapshot, make_timestamp
from dtr.trust.tufkeys import PublicKey, ServerKey
from dtr.trust.validate import signed_expiry, signed_version, validate_update

trust_files = cast(Table, TrustFile.__table__)
trust_keys = cast(Table, TrustKey.__table__)

_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
#: Re-sign a server-made role once less than this share of its life remains.
RESIGN_FRACTION = 0.25


def _lock_key(gun: str) -> int:
    h = hashlib.blake2b(f"dtr-trust\0{gun}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big", signed=True)


async def lock_gun(conn: AsyncConnection, gun: str) -> None:
    """Hold the GUN's lock until the transaction ends."""
    await conn.execute(_LOCK, {"key": _lock_key(gun)})


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _described(files: Mapping[str, bytes]) -> dict[str, bytes]:
    """The files a snapshot lists: root, targets and the delegations."""
    return {r: d for r, d in files.items() if r == "root" or r == "targets" or r.startswith("targets/")}


@dataclasses.dataclass(frozen=True, slots=True)
class StoredFile:
    data: bytes
    #: When it was stored (Last-Modified).
    modified: dt.datetime


class TrustStore:
    """The trust files, keys and change feed of every GUN in ``engine``'s database."""

    def __init__(self, engine: AsyncEngine, cfg: Config) -> None:
        self.engine = engine
        self.cfg = cfg
        self._sealer: Sealer | None = None
        self._sealer_lock = threading.Lock()
        self.keys = HeldKeys(self.sealer)

    def sealer(self) -> Sealer:
        """The sealing key, loaded (or made) on first use."""
        with self._sealer_lock:
            if self._sealer is None:
                self._sealer = Sealer.from_config(self.cfg)
            return self._sealer

    # -- reads ------------------------------------------------------------------------------

    async def _one(self, gun: str, role: str, *where: object) -> StoredFile | None:
        q = (select(trust_files.c.data, trust_files.c.created_at)
             .where(trust_files.c.gun == gun, trust_files.c.role == role, *where)  # type: ignore[arg-type]
             .order_by(trust_files.c.version.desc()).limit(1))
        async with self.engine.connect() as conn:
            row = (await conn.execute(q)).first()
        return StoredFile(row.data, row.created_at) if row is not None else None

    async def by_checksum(self, gun: str, role: str, sha256: str) -> StoredFile | None:
        return await self._one(gun, role, trust_files.c.sha256 == sha256.lower())

    async def by_version(self, gun: str, role: str, version: int) -> StoredFile | None:
        return await self._one(gun, role, trust_files.c.version == version)

    async def current(self, gun: str, role: str) -> StoredFile | None:
        """The role's current file; a server-made snapshot or timestamp re-signed first when it
        is expired or about to be."""
        found = await self._one(gun, role)
        if found is None or role not in ("snapshot", "timestamp") or not self._stale(role, found.data, _now()):
            return found
        async with self.engine.begin() as conn:
            await lock_gun(conn, gun)
            await self._refresh(conn, gun, _now())
        return await self._one(gun, role)

    async def _current_files(self, conn: AsyncConnection, gun: str) -> dict[str, bytes]:
        q = (select(trust_files.c.role, trust_files.c.data).where(trust_files.c.gun == gun)
             .ext(distinct_on(trust_files.c.role)).order_by(trust_files.c.role, trust_files.c.version.desc()))
        return {r.role: r.data for r in (await conn.execute(q)).all()}

    # -- writes -----------------------------------------------------------------------------

    def _life(self, role: str) -> dt.timedelta:
        t = self.cfg.trust
        return dt.timedelta(seconds=t.timestamp_expiry if role == "timestamp" else t.snapshot_expiry)

    def _stale(self, role: str, data: bytes, now: dt.datetime) -> bool:
        return signed_expiry(data) - now < self._life(role) * RESIGN_FRACTION

    async def _insert(self, conn: AsyncConnection, gun: str, repository: str,
                      files: list[tuple[str, int, bytes]]) -> None:
        """Store ``files`` (role, version, bytes) in one statement. Versions were checked under
        the GUN's lock, so a clash means a row the validator did not see: VERSION, nothing stored."""
        try:
            await conn.execute(insert(trust_files), [
                {"gun": gun, "repository": repository, "role": role, "version": version, "sha256": _sha256(data),
                 "data": data} for role, version, data in files])
        except IntegrityError:
            raise TrustError(VERSION, "a version uploaded is already stored") from None

    async def _server_roles(self, conn: AsyncConnection, gun: str, files: Mapping[str, bytes],
                            previous: Mapping[str, bytes], snapshot_key: ServerKey | None,
                            now: dt.datetime) -> list[tuple[str, int, bytes]]:
        """A new timestamp (and, with ``snapshot_key``, first a new snapshot) describing ``files``
        (the current set, the snapshot included unless made here), as (role, version, bytes) to store;
        the timestamp's change record is written."""
        made: list[tuple[str, int, bytes]] = []
        if snapshot_key is not None:
            prev = previous.get("snapshot")
            version = signed_version(prev) + 1 if prev is not None else 1
            snapshot = make_snapshot(prev, _described(files), snapshot_key, version, now + self._life("snapshot"))
            made.append(("snapshot", version, snapshot))
            files = {**files, "snapshot": snapshot}
        ts_key = await self.keys.signer_for(conn, gun, "timestamp", files["root"])
        if ts_key is None:
            raise invalid_update(BAD_ROOT, "the root does not list the server's timestamp key "
                                           "(GET timestamp.key gives it)")
        prev_ts = previous.get("timestamp")
        ts_version = signed_version(prev_ts) + 1 if prev_ts is not None else 1
        timestamp = make_timestamp(files["snapshot"], ts_key, ts_version, now + self._life("timestamp"))
        made.append(("timestamp", ts_version, timestamp))
        await feed.record_update(conn, gun, ts_version, _sha256(timestamp))
        return made

    async def update(self, gun: str, repository: str, uploaded: Mapping[str, bytes]) -> None:
        """Validate and apply a client's update (role -> bytes) atomically: the uploaded files,
        then a snapshot (unless uploaded) and a timestamp made by the server. TrustError when
        notary-server would refuse it."""
        now = _now()
        async with self.engine.begin() as conn:
            await lock_gun(conn, gun)
            current = await self._current_files(conn, gun)
            root = uploaded.get("root") or current.get("root")
            snapshot_key = await self.keys.signer_for(conn, gun, "snapshot", root) if root is not None else None
            validated = validate_update(gun, current, uploaded, server_holds_snapshot_key=snapshot_key is not None,
                                        now=now)
            if validated.snapshot_uploaded:
                snapshot_key = None
            elif snapshot_key is None:
                raise invalid_update(BAD_ROOT, "the root does not list a snapshot key the server holds")
            stored = [(role, validated.versions[role], validated.files[role])
                      for role in sorted(validated.files, key=lambda r: (r.count("/"), r))]
            files = {**current, **validated.files}
            stored += await self._server_roles(conn, gun, files, current, snapshot_key, now)
            await self._insert(conn, gun, repository, stored)

    async def _refresh(self, conn: AsyncConnection, gun: str, now: dt.datetime) -> None:
        """Re-sign what is stale of a GUN's snapshot (when the server holds its key) and
        timestamp; the caller holds the lock."""
        current = await self._current_files(conn, gun)
        if "root" not in current or "snapshot" not in current or "timestamp" not in current:
            return
        snapshot_key = await self.keys.signer_for(conn, gun, "snapshot", current["root"]) \
            if self._stale("snapshot", current["snapshot"], now) else None
        if snapshot_key is None and not self._stale("timestamp", current["timestamp"], now):
            return  # another request re-signed it meanwhile
        repository = await self._repository(conn, gun)
        await self._insert(conn, gun, repository, await self._server_roles(conn, gun, current, current,
                                                                           snapshot_key, now))

    async def _repository(self, conn: AsyncConnection, gun: str) -> str:
        q = select(trust_files.c.repository).where(trust_files.c.gun == gun).limit(1)
        return str((await conn.execute(q)).scalar_one())

    # -- keys -------------------------------------------------------------------------------

    async def get_key(self, gun: str, repository: str, role: str) -> PublicKey:
        """The public key ``GET <role>.key`` answers (``dtr.trust.heldkeys``)."""
        async with self.engine.begin() as conn:
            await lock_gun(conn, gun)
            root = (await conn.execute(
                select(trust_files.c.data).where(trust_files.c.gun == gun, trust_files.c.role == "root")
                .order_by(trust_files.c.version.desc()).limit(1))).scalar()
            return await self.keys.public_for(conn, gun, repository, role, root)

    async def rotate_key(self, gun: str, repository: str, role: str) -> PublicKey:
        """A new server key for ``role``: used once the client publishes a root listing it."""
        async with self.engine.begin() as conn:
            await lock_gun(conn, gun)
            return await self.keys.create(conn, gun, repository, role)

    # -- deletes and the feed ---------------------------------------------------------------

    async def delete(self, gun: str) -> None:
        """Delete a GUN's files and keys; a ``deletion`` change when it had files."""
        async with self.engine.begin() as conn:
            await delete_gun(conn, gun)

    async def changes(self, gun: str | None, change_id: int, records: int) -> list[feed.Change]:
        return await feed.changes(self.engine, gun, change_id, records)


async def delete_gun(conn: AsyncConnection, gun: str) -> None:
    """Delete a GUN's trust data in the caller's transaction (see ``TrustStore.delete``)."""
    await lock_gun(conn, gun)
    deleted = (await conn.execute(trust_files.delete().where(trust_files.c.gun == gun))).rowcount
    await conn.execute(trust_keys.delete().where(trust_keys.c.gun == gun))
    if deleted:
        await feed.record_deletion(conn, gun)


async def delete_repository(conn: AsyncConnection, repository: str) -> list[str]:
    """Delete the trust data of every GUN of ``repository`` in the caller's transaction (the
    repository is being deleted); the GUNs deleted."""
    q = select(trust_files.c.gun).where(trust_files.c.repository == repository).union(
        select(trust_keys.c.gun).where(trust_keys.c.repository == repository))
    guns = sorted(str(g) for g in (await conn.execute(q)).scalars())
    for gun in guns:
        await delete_gun(conn, gun)
    return guns


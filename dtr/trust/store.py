"""The built-in Notary's Postgres side: reads of role files (current, by checksum, by version),
atomic updates, the server's snapshot and timestamp (made, and re-signed before they expire),
server keys, deletes and the change feed.

Every write to a GUN runs in one transaction holding the GUN's advisory lock (two updates of one
GUN run one after the other; different GUNs in parallel), so an update is stored whole or not
at all, and a snapshot or timestamp is made once from the files it describes.

Reads are answered from memory when they can (``dtr.trust.cached``): a transaction changing a
GUN's files notifies the other replicas in the statement that takes the lock (no extra round
trip), and an update leaves the files it committed in this process's cache.

Re-signing: a server-made timestamp (or snapshot, when the server holds its key) is made anew
on GET once less than a quarter of its configured life remains, and on every accepted update;
so a client never sees one about to expire. The new timestamp is an update in the change feed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import threading
from collections.abc import Mapping
from typing import cast

import asyncpg
from sqlalchemy import Table, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dtr.config import Config
from dtr.db.driver import driver_connection
from dtr.trust import feed
from dtr.trust.cached import CHANNEL, CURRENT, CachedFiles, StoredFile, checksum, repository_of
from dtr.trust.errors import BAD_ROOT, VERSION, TrustError, invalid_update
from dtr.trust.heldkeys import HeldKeys
from dtr.trust.models import TrustFile, TrustKey
from dtr.trust.sealing import Sealer
from dtr.trust.serverroles import make_snapshot, make_timestamp
from dtr.trust.tufkeys import PublicKey, ServerKey
from dtr.trust.validate import signed_expiry, signed_version, validate_update

trust_files = cast(Table, TrustFile.__table__)
trust_keys = cast(Table, TrustKey.__table__)

# The driver's statements (``$n`` parameters).
_LOCK = "SELECT pg_advisory_xact_lock($1)"
#: The lock, and the notification of a change to the GUN's files (sent if the transaction commits).
_LOCK_CHANGING = f"SELECT pg_advisory_xact_lock($1), pg_notify('{CHANNEL}', $2)"
#: The same, in a caller's SQLAlchemy transaction (``delete_gun``).
_LOCK_CHANGING_SA = text(f"SELECT pg_advisory_xact_lock(:key), pg_notify('{CHANNEL}', :payload)")
_NEWEST = "SELECT data, created_at FROM trust_files WHERE gun = $1 AND role = $2 ORDER BY version DESC LIMIT 1"
_BY_CHECKSUM = ("SELECT data, created_at FROM trust_files WHERE gun = $1 AND role = $2 AND sha256 = $3 "
                "ORDER BY version DESC LIMIT 1")
_BY_VERSION = "SELECT data, created_at FROM trust_files WHERE gun = $1 AND role = $2 AND version = $3"
#: Each role's newest file: a walk of the (gun, role, version) index, one probe per role, so the
#: cost does not grow with the versions kept (DISTINCT ON sorts every one of them).
_CURRENT_FILES = """
WITH RECURSIVE roles(role) AS (
    (SELECT role FROM trust_files WHERE gun = $1 ORDER BY role LIMIT 1)
    UNION ALL
    SELECT (SELECT f.role FROM trust_files f WHERE f.gun = $1 AND f.role > roles.role ORDER BY f.role LIMIT 1)
    FROM roles WHERE roles.role IS NOT NULL)
SELECT f.role, f.data, f.created_at FROM roles CROSS JOIN LATERAL (
    SELECT role, data, created_at FROM trust_files
    WHERE gun = $1 AND role = roles.role ORDER BY version DESC LIMIT 1) f
"""
#: New files (gun, repository, then role, version, sha256 and data arrays), and the change record
#: of the new timestamp among them (its version and sha256, the category); when they were stored.
_STORE = """
WITH stored AS (
    INSERT INTO trust_files (gun, repository, role, version, sha256, data)
    SELECT $1, $2, f.role, f.version, f.sha256, f.data
    FROM unnest($3::text[], $4::integer[], $5::text[], $6::bytea[]) WITH ORDINALITY AS f(role, version, sha256, data, n)
    ORDER BY f.n)
INSERT INTO trust_changes (gun, version, sha256, category) VALUES ($1, $7, $8, $9)
RETURNING created_at
"""
_REPOSITORY = "SELECT repository FROM trust_files WHERE gun = $1 LIMIT 1"
#: Re-sign a server-made role once less than this share of its life remains.
RESIGN_FRACTION = 0.25


def _lock_key(gun: str) -> int:
    h = hashlib.blake2b(f"dtr-trust\0{gun}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big", signed=True)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _described(files: Mapping[str, bytes]) -> dict[str, bytes]:
    """The files a snapshot lists: root, targets and the delegations."""
    return {r: d for r, d in files.items() if r == "root" or r == "targets" or r.startswith("targets/")}


class TrustStore:
    """The trust files, keys and change feed of every GUN in ``engine``'s database. Reads, updates
    and server keys run on the driver (``dtr.db.driver``): they are a trusted push's and pull's
    requests, where SQLAlchemy's work per statement was most of the time."""

    def __init__(self, engine: AsyncEngine, cfg: Config) -> None:
        self.engine = engine
        self.cfg = cfg
        self._sealer: Sealer | None = None
        self._sealer_lock = threading.Lock()
        self.keys = HeldKeys(self.sealer)
        #: Files read or stored (dtr.app keeps ``files.cache`` coherent).
        self.files = CachedFiles()

    def sealer(self) -> Sealer:
        """The sealing key, loaded (or made) on first use."""
        with self._sealer_lock:
            if self._sealer is None:
                self._sealer = Sealer.from_config(self.cfg)
            return self._sealer

    # -- reads ------------------------------------------------------------------------------

    async def _one(self, gun: str, role: str, which: str, query: str, *args: object,
                   conn: asyncpg.Connection | None = None) -> StoredFile | None:
        """The file ``query`` finds (given GUN, role and ``args``), cached as ``which``; read on
        ``conn`` when given, else on a pooled connection."""
        if (cached := self.files.get(gun, role, which)) is not None:
            return cached.found
        generation = self.files.generation()
        async with driver_connection(self.engine) if conn is None else contextlib.nullcontext(conn) as db:
            row = await db.fetchrow(query, gun, role, *args)
        found = StoredFile(row["data"], row["created_at"]) if row is not None else None
        self.files.put(gun, role, which, found, generation)
        return found

    async def by_checksum(self, gun: str, role: str, sha256: str) -> StoredFile | None:
        return await self._one(gun, role, checksum(sha256), _BY_CHECKSUM, sha256.lower())

    async def by_version(self, gun: str, role: str, version: int) -> StoredFile | None:
        return await self._one(gun, role, f"v{version}", _BY_VERSION, version)

    async def current(self, gun: str, role: str) -> StoredFile | None:
        """The role's current file; a server-made snapshot or timestamp re-signed first when it
        is expired or about to be."""
        found = await self._one(gun, role, CURRENT, _NEWEST)
        if found is None or role not in ("snapshot", "timestamp") or not self._stale(role, found.data, _now()):
            return found
        try:
            async with driver_connection(self.engine) as conn, conn.transaction():
                await conn.execute(_LOCK_CHANGING, _lock_key(gun), self.files.payload(gun))
                await self._refresh(conn, gun, _now())
        finally:
            self.files.changed(gun)
        return await self._one(gun, role, CURRENT, _NEWEST)

    @staticmethod
    async def _current_files(conn: asyncpg.Connection, gun: str) -> dict[str, StoredFile]:
        return {r["role"]: StoredFile(r["data"], r["created_at"]) for r in await conn.fetch(_CURRENT_FILES, gun)}

    # -- writes -----------------------------------------------------------------------------

    def _life(self, role: str) -> dt.timedelta:
        t = self.cfg.trust
        return dt.timedelta(seconds=t.timestamp_expiry if role == "timestamp" else t.snapshot_expiry)

    def _stale(self, role: str, data: bytes, now: dt.datetime) -> bool:
        return signed_expiry(data) - now < self._life(role) * RESIGN_FRACTION

    @staticmethod
    async def _insert(conn: asyncpg.Connection, gun: str, repository: str,
                      files: list[tuple[str, int, bytes]]) -> dt.datetime:
        """Store ``files`` (role, version, bytes; a new timestamp among them) and the timestamp's
        change record, in one statement; when they were stored. Versions were checked under the
        GUN's lock, so a clash means a row the validator did not see: VERSION, nothing stored."""
        ts_version, timestamp = next((v, d) for r, v, d in files if r == "timestamp")
        try:
            stored_at: dt.datetime = await conn.fetchval(
                _STORE, gun, repository, [r for r, _, _ in files], [v for _, v, _ in files],
                [_sha256(d) for _, _, d in files], [d for _, _, d in files], ts_version, _sha256(timestamp),
                feed.UPDATE)
        except asyncpg.UniqueViolationError:
            raise TrustError(VERSION, "a version uploaded is already stored") from None
        return stored_at

    def _server_roles(self, files: Mapping[str, bytes], previous: Mapping[str, bytes], keys: Mapping[str, ServerKey],
                      make_snapshot_too: bool, now: dt.datetime) -> list[tuple[str, int, bytes]]:
        """A new timestamp (and, with ``make_snapshot_too``, first a new snapshot) describing ``files``
        (the current set, the snapshot included unless made here), signed with ``keys`` (role ->
        held key), as (role, version, bytes) to store."""
        made: list[tuple[str, int, bytes]] = []
        if make_snapshot_too:
            prev = previous.get("snapshot")
            version = signed_version(prev) + 1 if prev is not None else 1
            snapshot = make_snapshot(prev, _described(files), keys["snapshot"], version,
                                     now + self._life("snapshot"))
            made.append(("snapshot", version, snapshot))
            files = {**files, "snapshot": snapshot}
        if "timestamp" not in keys:
            raise invalid_update(BAD_ROOT, "the root does not list the server's timestamp key "
                                           "(GET timestamp.key gives it)")
        prev_ts = previous.get("timestamp")
        ts_version = signed_version(prev_ts) + 1 if prev_ts is not None else 1
        timestamp = make_timestamp(files["snapshot"], keys["timestamp"], ts_version, now + self._life("timestamp"))
        made.append(("timestamp", ts_version, timestamp))
        return made

    async def update(self, gun: str, repository: str, uploaded: Mapping[str, bytes]) -> None:
        """Validate and apply a client's update (role -> bytes) atomically: the uploaded files,
        then a snapshot (unless uploaded) and a timestamp made by the server. TrustError when
        notary-server would refuse it."""
        try:
            async with driver_connection(self.engine) as conn, conn.transaction():
                await conn.execute(_LOCK_CHANGING, _lock_key(gun), self.files.payload(gun))
                committed = await self._apply(conn, gun, repository, uploaded)
                generation = self.files.generation()  # the lock is held until the commit
        except BaseException:
            self.files.changed(gun)
            raise
        self.files.changed(gun, generation, committed)

    async def _apply(self, conn: asyncpg.Connection, gun: str, repository: str, uploaded: Mapping[str, bytes]
                     ) -> dict[str, StoredFile]:
        """``update``'s work in its transaction, the GUN's lock held; the GUN's current files after it."""
        now = _now()
        current = await self._current_files(conn, gun)
        before = {role: f.data for role, f in current.items()}
        root = uploaded.get("root") or before.get("root")
        keys = await self.keys.signers_for(conn, gun, root) if root is not None else {}
        validated = validate_update(gun, before, uploaded, server_holds_snapshot_key="snapshot" in keys, now=now)
        if not validated.snapshot_uploaded and "snapshot" not in keys:
            raise invalid_update(BAD_ROOT, "the root does not list a snapshot key the server holds")
        stored = [(role, validated.versions[role], validated.files[role])
                  for role in sorted(validated.files, key=lambda r: (r.count("/"), r))]
        stored += self._server_roles({**before, **validated.files}, before, keys, not validated.snapshot_uploaded, now)
        modified = await self._insert(conn, gun, repository, stored)
        return {**current, **{role: StoredFile(data, modified) for role, _, data in stored}}

    async def _refresh(self, conn: asyncpg.Connection, gun: str, now: dt.datetime) -> None:
        """Re-sign what is stale of a GUN's snapshot (when the server holds its key) and
        timestamp; the caller holds the lock."""
        current = {role: f.data for role, f in (await self._current_files(conn, gun)).items()}
        if "root" not in current or "snapshot" not in current or "timestamp" not in current:
            return
        keys = await self.keys.signers_for(conn, gun, current["root"])
        resnapshot = "snapshot" in keys and self._stale("snapshot", current["snapshot"], now)
        if not resnapshot and not self._stale("timestamp", current["timestamp"], now):
            return  # another request re-signed it meanwhile
        repository = str(await conn.fetchval(_REPOSITORY, gun))
        await self._insert(conn, gun, repository, self._server_roles(current, current, keys, resnapshot, now))

    # -- keys -------------------------------------------------------------------------------

    async def get_key(self, gun: str, repository: str, role: str) -> PublicKey:
        """The public key ``GET <role>.key`` answers (``dtr.trust.heldkeys``): once a root is
        published (read from memory), the held key it lists; before, the key handed out. Both are
        read without a lock; a missing one is made under the GUN's lock."""
        async with driver_connection(self.engine) as conn:  # one checkout for the root and the key
            if (root := await self._one(gun, "root", CURRENT, _NEWEST, conn=conn)) is not None:
                return await self.keys.listed(conn, gun, role, root.data)
            if (found := await self.keys.newest(conn, gun, role)) is not None:
                return found
            async with conn.transaction():
                await conn.execute(_LOCK, _lock_key(gun))
                if (locked := await conn.fetchrow(_NEWEST, gun, "root")) is not None:
                    return await self.keys.listed(conn, gun, role, locked["data"])
                return await self.keys.handed_out(conn, gun, repository, role)

    async def rotate_key(self, gun: str, repository: str, role: str) -> PublicKey:
        """A new server key for ``role``: used once the client publishes a root listing it."""
        async with driver_connection(self.engine) as conn, conn.transaction():
            await conn.execute(_LOCK, _lock_key(gun))
            return await self.keys.create(conn, gun, repository, role)

    # -- deletes and the feed ---------------------------------------------------------------

    async def delete(self, gun: str) -> None:
        """Delete a GUN's files and keys; a ``deletion`` change when it had files."""
        try:
            async with self.engine.begin() as conn:
                await delete_gun(conn, gun)
        finally:
            self.files.changed(gun)

    async def changes(self, gun: str | None, change_id: int, records: int) -> list[feed.Change]:
        return await feed.changes(self.engine, gun, change_id, records)


async def delete_gun(conn: AsyncConnection, gun: str) -> None:
    """Delete a GUN's trust data in the caller's transaction (see ``TrustStore.delete``); every
    replica's cached files of the GUN's repository are dropped when it commits."""
    await conn.execute(_LOCK_CHANGING_SA, {"key": _lock_key(gun), "payload": repository_of(gun)})
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


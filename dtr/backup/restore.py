"""``dtr restore``: a backup put back into an empty instance (its database, data_dir and storage).

Two passes over the file. The first reads it whole: the decryption (a wrong passphrase, a
flipped byte, a cut-off end), every member against the manifest's checksums, and the schema
revision against this dtr's migrations; then the target is checked (no dtr process connected to
its database, which holds no repositories, accounts or foreign tables; the config's destination
free). Nothing is changed before all of that passed. The second pass restores: the database's
public schema is dropped and recreated, ``pg_restore`` reads the dump as it streams (in one
transaction), the key material goes back into data_dir (mode 0600), blobs (if included) into
storage, and the backup's config beside the backup file (never over the running one); then this
dtr's migrations run, so an older backup comes back at the current schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import uuid
from pathlib import Path
from typing import IO

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.backup.archive import (
    BLOBS,
    CONFIG,
    DUMP,
    KEYS,
    MANIFEST,
    Manifest,
    Readable,
    check_member,
    read_members,
    verify,
)
from dtr.backup.crypto import MAGIC, DecryptingReader, is_encrypted
from dtr.backup.errors import BackupError
from dtr.backup.pg import Tool
from dtr.backup.service import revision
from dtr.config import Config
from dtr.errors import UsageError
from dtr.progress import ProgressBar
from dtr.registry.names import upload_path
from dtr.storage.base import PathNotFoundError
from dtr.storage.wrapper import StorageWrapper

_MIB = 1 << 20
_DTR_CONNECTED = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                      "AND application_name = 'dtr' AND pid <> pg_backend_pid()")
_FOREIGN_TABLES = text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename NOT IN "
                       "(SELECT unnest(CAST(:ours AS text[])))")


@dataclasses.dataclass(frozen=True)
class RestoreResult:
    manifest: Manifest
    #: The schema revision the database is at now (after the migrations).
    revision: str | None
    config_out: Path | None
    keys: int
    blobs: int


class _Source:
    """The backup file opened for one pass: ``stream`` is its plaintext (decrypted as it is read),
    ``progress`` shows how far into the file the pass is."""

    def __init__(self, path: Path, passphrase: str | None, bar: ProgressBar, message: str) -> None:
        self._file = path.open("rb")
        self._bar, self._message = bar, message
        self._total = os.fstat(self._file.fileno()).st_size
        try:
            encrypted = is_encrypted(self._file.read(len(MAGIC)))
            self._file.seek(0)
            if encrypted and not passphrase:
                raise UsageError(f"{path} is encrypted: give --passphrase-file or set DTR_BACKUP_PASSPHRASE")
            self.stream: IO[bytes] | DecryptingReader = \
                DecryptingReader(self._file, passphrase) if encrypted and passphrase else self._file
        except BaseException:
            self._file.close()
            raise

    def progress(self) -> None:
        self._bar.show({"done": self._file.tell() // _MIB, "total": max(self._total // _MIB, 1),
                        "message": self._message})

    def __enter__(self) -> _Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()
        self._bar.clear()


def _check_revision(manifest: Manifest) -> None:
    """BackupError if the backup's schema is newer than this dtr's migrations know."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    from dtr.db.migrate import alembic_config

    scripts = ScriptDirectory.from_config(alembic_config())
    for rev in (manifest.alembic_revision or "").split(",") if manifest.alembic_revision else []:
        try:
            scripts.get_revision(rev)
        except CommandError:
            raise BackupError(f"the backup's database schema ({rev}) is newer than this dtr knows: it was written "
                              f"by dtr {manifest.dtr_version}; restore it with that version or a newer one") from None


async def _check_empty(conn: AsyncConnection) -> str | None:
    """Why the database cannot take a restore without ``--force``; None if it is empty."""
    from dtr.db.metadata import metadata

    found = (await conn.execute(_FOREIGN_TABLES, {"ours": [*metadata.tables, "alembic_version"]})).scalar()
    if found:
        return f"the database holds {found} table(s) that are not dtr's"
    if await revision(conn) is None:
        return None
    repos = (await conn.execute(text("SELECT count(*) FROM repositories"))).scalar()
    accounts = (await conn.execute(text("SELECT count(*) FROM accounts"))).scalar()
    if repos or accounts:
        return f"the database is not empty ({repos} repositories, {accounts} accounts)"
    return None


def _write_private(path: Path, src: Readable) -> None:
    """``src``'s bytes at ``path`` (mode 0600, its directory 0700 if made), replacing it whole."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.restore")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            while chunk := src.read(_MIB):
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


async def _put_blob(storage: StorageWrapper, path: str, src: Readable, size: int) -> bool:
    """The blob at ``path`` from ``src`` unless storage has it (same size) already; whether it was written."""
    with contextlib.suppress(PathNotFoundError):
        if (await storage.stat(path)).size == size:
            return False
    tmp_id = f"restore-{uuid.uuid4()}"
    writer = await storage.writer(upload_path(tmp_id))
    try:
        while chunk := src.read(_MIB):
            await writer.write(chunk)
        await writer.commit()
    except BaseException:
        await writer.cancel()
        raise
    await storage.move(upload_path(tmp_id), path)
    with contextlib.suppress(PathNotFoundError):
        await storage.delete(f"/uploads/{tmp_id}")
    return True


async def _feed(tool: Tool, src: Readable) -> None:
    """``src``'s bytes into ``tool``'s stdin; its own error if it stops reading."""
    stdin = tool.proc.stdin
    assert stdin is not None
    try:
        while chunk := src.read(_MIB):
            stdin.write(chunk)
            await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        await tool.wait()
        raise BackupError(f"{tool.name} stopped reading the dump") from None


async def _end(tool: Tool) -> None:
    """Close ``tool``'s stdin and wait for it to finish."""
    assert tool.proc.stdin is not None
    tool.proc.stdin.close()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        await tool.proc.stdin.wait_closed()
    await tool.wait()


async def _put_back(cfg: Config, url: str, source: _Source, manifest: Manifest, storage: StorageWrapper | None,
                    config_out: Path | None) -> tuple[int, int]:
    """The second pass: every member to its place; (key files, blobs written)."""
    restoring: Tool | None = None
    keys = blobs = 0
    try:
        for name, reader in read_members(source.stream):
            if name.startswith(DUMP):
                if restoring is None:
                    restoring = await Tool.start("pg_restore", url, "--no-owner", "--no-privileges",
                                                 "--exit-on-error", "--single-transaction", feed=True)
                await _feed(restoring, reader)
            elif restoring is not None and restoring.proc.returncode is None:
                await _end(restoring)
            if name == CONFIG and config_out is not None:
                _write_private(config_out, reader)
            elif name.startswith(KEYS):
                _write_private(cfg.data_path / name.removeprefix(KEYS), reader)
                keys += 1
            elif name.startswith(BLOBS) and storage is not None:
                blobs += await _put_blob(storage, "/" + name, reader, manifest.members[name][0])
            reader.drain()
            if name != MANIFEST:
                check_member(manifest, name, reader)
            source.progress()
        if restoring is not None and restoring.proc.returncode is None:
            await _end(restoring)
    finally:
        if restoring is not None:
            restoring.kill()
    return keys, blobs


def restore(cfg: Config, path: Path, passphrase: str | None, force: bool, config_out: Path | None,
            bar: ProgressBar) -> RestoreResult:
    """Restore the backup at ``path`` into the instance ``cfg`` describes (see the module's contract).
    The backup's config goes to ``config_out`` (default: beside the backup, ``<path>.config.yaml``)."""
    if not path.is_file():
        raise BackupError(f"{path}: no such backup file")
    with _Source(path, passphrase, bar, "verifying (MiB)") as source:
        manifest = verify(source.stream, source.progress)
    _check_revision(manifest)
    if CONFIG in manifest.members:
        config_out = config_out or path.with_name(path.name + ".config.yaml")
        if config_out.exists() and not force:
            raise BackupError(f"{config_out} exists: name another file with --config-out, or give --force")
    else:
        config_out = None
    keys, blobs, now = asyncio.run(_restore(cfg, path, passphrase, force, manifest, config_out, bar))
    return RestoreResult(manifest, now, config_out, keys, blobs)


async def _restore(cfg: Config, path: Path, passphrase: str | None, force: bool, manifest: Manifest,
                   config_out: Path | None, bar: ProgressBar) -> tuple[int, int, str | None]:
    """Check the target database, then the second pass and the migrations; (keys, blobs, revision now)."""
    from dtr.db.engine import Database
    from dtr.db.migrate import upgrade
    from dtr.storage.factory import create_driver

    db = await Database.open(cfg, migrate=False)
    storage: StorageWrapper | None = None
    try:
        storage = create_driver(cfg.storage_config) if manifest.blobs else None
        async with db.engine.connect() as conn:
            if running := (await conn.execute(_DTR_CONNECTED)).scalar():
                raise BackupError(f"{running} connection(s) of a running dtr use this database: stop dtr first")
            if (problem := await _check_empty(conn)) and not force:
                raise BackupError(f"{problem}: restore into an empty instance, or give --force to drop its content")
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
            await conn.commit()
        with _Source(path, passphrase, bar, "restoring (MiB)") as source:
            keys, blobs = await _put_back(cfg, db.url, source, manifest, storage, config_out)
        await upgrade(db.engine)
        async with db.engine.connect() as conn:
            now = await revision(conn)
    finally:
        await db.close()
        if storage is not None:
            await storage.close()
    return keys, blobs, now

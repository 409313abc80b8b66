"""``dtr backup``: one consistent snapshot of dtr's metadata, taken while dtr keeps serving.

Consistency: the backup opens a REPEATABLE READ transaction, exports its snapshot and hands it
to ``pg_dump`` (``--snapshot``), then reads the schema revision and, with ``--include-blobs``,
the list of blobs from that same transaction. So the dump, the manifest and the blobs copied all
describe one instant: every tag in the dump resolves to a manifest whose blobs exist in storage
(a blob's bytes are written before its row commits, and GC deletes a row before its bytes; a
blob file deleted by GC while it is being copied stays readable through its open handle).

Streaming: pg_dump's output goes into the archive as it comes (cut into ``SEGMENT``-sized
members), the archive into the encryption, the encryption into ``FILE.tmp``; memory stays
bounded by the segment size. ``FILE.tmp`` (mode 0600) is renamed to ``FILE`` once complete.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.backup.archive import BLOBS, CONFIG, KEY_DIRS, KEYS, ArchiveWriter
from dtr.backup.crypto import EncryptingWriter
from dtr.backup.errors import BackupError
from dtr.backup.pg import Tool
from dtr.config import Config
from dtr.progress import ProgressBar
from dtr.registry.names import blob_path
from dtr.storage.wrapper import StorageWrapper

_MIB = 1 << 20


@dataclasses.dataclass(frozen=True)
class BackupResult:
    size: int
    revision: str | None
    keys: int
    blobs: int


def key_files(data_dir: Path) -> list[tuple[str, Path]]:
    """(member name, file) of the key material in ``data_dir``: the files of its ``KEY_DIRS``
    (the internal CA's certificates and keys, the token signing key), hidden temporaries left out."""
    found = []
    for sub in KEY_DIRS:
        d = data_dir / sub
        if d.is_dir():
            found += [(f"{KEYS}{sub}/{f.name}", f) for f in sorted(d.iterdir())
                      if f.is_file() and not f.name.startswith(".")]
    return found


async def revision(conn: AsyncConnection) -> str | None:
    """The database's schema revision(s) (comma-separated); None if it has no dtr schema."""
    if (await conn.execute(text("SELECT to_regclass('alembic_version')"))).scalar() is None:
        return None
    heads = sorted((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())
    return ",".join(heads) or None


def _blob_source(cfg: Config) -> StorageWrapper:
    """The storage driver blobs are copied from; BackupError unless its blobs are local files."""
    from dtr.storage.factory import create_driver

    driver = create_driver(cfg.storage_config)
    if driver.local_path(blob_path("sha256:" + "0" * 64)) is None:
        raise BackupError(f"--include-blobs works with the filesystem storage only: the {cfg.storage_config.driver} "
                          "driver keeps blobs in its object store (back that up with the store's own tools)")
    return driver


async def _write(cfg: Config, files: list[tuple[str, bytes]], sink: BinaryIO | EncryptingWriter,
                 include_blobs: bool, bar: ProgressBar) -> BackupResult:
    """The archive into ``sink``: the dump, ``files`` (name, content), the blobs, the manifest."""
    from dtr.db.engine import Database
    from dtr.ops.health import version

    driver = _blob_source(cfg) if include_blobs else None
    archive = ArchiveWriter(sink)

    def progress() -> None:
        bar.show({"done": archive.written // _MIB, "message": "backup: MiB written"})

    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    db = await Database.open(cfg, migrate=False)
    blobs = 0
    try:
        async with db.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            snapshot = (await conn.execute(text("SELECT pg_export_snapshot()"))).scalar_one()
            rev = await revision(conn)
            dump = await Tool.start("pg_dump", db.url, "--format=custom", f"--snapshot={snapshot}")
            try:
                assert dump.proc.stdout is not None
                await archive.add_dump(dump.proc.stdout.read, progress)
                await dump.wait()
            finally:
                dump.kill()
            for name, data in files:
                archive.add_bytes(name, data)
            if driver is not None and rev is not None:
                rows = await conn.stream(text("SELECT digest, size FROM blobs ORDER BY digest"))
                async for digest, size in rows:
                    _add_blob(archive, driver, digest, size)
                    blobs += 1
                    progress()
            await conn.rollback()
        archive.finish(version(), rev, created, include_blobs)
    finally:
        await db.close()
        if driver is not None:
            await driver.close()
    return BackupResult(archive.written, rev, sum(n.startswith(KEYS) for n, _ in files), blobs)


def _add_blob(archive: ArchiveWriter, driver: StorageWrapper, digest: str, size: int) -> None:
    path = driver.local_path(blob_path(digest))
    assert path is not None  # checked by _blob_source
    try:
        with path.open("rb") as f:
            if os.fstat(f.fileno()).st_size != size:
                raise BackupError(f"blob {digest} in storage is not the size its row says ({path}): run dtr fsck")
            archive.add(BLOBS + blob_path(digest).removeprefix("/blobs/"), f, size)
    except FileNotFoundError:
        raise BackupError(f"blob {digest} is missing from storage ({path}); deleted by garbage collection "
                          "during the backup? Run the backup again") from None


def backup(cfg: Config, config_file: Path | None, out: Path, passphrase: str | None, include_blobs: bool,
           force: bool, bar: ProgressBar) -> BackupResult:
    """Write the backup of the instance ``cfg`` describes (its config file: ``config_file``) to
    ``out``, encrypted when ``passphrase`` is given; ``out`` is replaced only with ``force``."""
    if out.exists() and not force:
        raise BackupError(f"{out} exists: give --force to replace it")
    if out.is_dir():
        raise BackupError(f"{out} is a directory")
    files = [(n, p.read_bytes()) for n, p in key_files(cfg.data_path)]
    if config_file is not None:
        try:
            files.insert(0, (CONFIG, config_file.read_bytes()))
        except OSError as e:
            raise BackupError(f"cannot read the config file {config_file}: {e.strerror}") from None
    tmp = out.with_name(out.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    try:
        with os.fdopen(fd, "wb", buffering=_MIB) as f:
            sink = EncryptingWriter(f, passphrase) if passphrase else f
            result = asyncio.run(_write(cfg, files, sink, include_blobs, bar))
            if isinstance(sink, EncryptingWriter):
                sink.close()
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        bar.clear()
    return dataclasses.replace(result, size=out.stat().st_size)

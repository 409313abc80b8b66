"""A backup that is not what was written is refused before anything changes: a wrong passphrase, a
flipped byte, a cut-off end, a missing passphrase; and an older backup comes back migrated."""

from __future__ import annotations

import asyncio
import glob
import io
import json
import tarfile
from pathlib import Path

import pytest
import yaml
from alembic.script import ScriptDirectory
from sqlalchemy import text

from dtr.config import DatabaseConfig, load_config
from dtr.db.engine import Database, create_engine
from dtr.db.migrate import alembic_config, upgrade
from tests.backup.helpers import PASSPHRASE, dtr_cli, refusal
from tests.servers import create_database


def write_config(path: Path, data_dir: Path, database_url: str | None) -> Path:
    cfg = {"data_dir": str(data_dir), "auth": {"enabled": False}}
    if database_url:
        cfg["database"] = {"url": database_url}
    path.write_text(yaml.safe_dump(cfg))
    return path


async def tables(url: str) -> int:
    engine = create_engine(url, DatabaseConfig(pool_size=1))
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")))
                       .scalar_one())
    finally:
        await engine.dispose()


def from_newer_dtr(plain: Path, out: Path) -> Path:
    """A copy of the unencrypted backup ``plain`` whose manifest names a schema revision no migration has."""
    with tarfile.open(plain) as src, tarfile.open(out, "w") as dst:
        for info in src.getmembers():
            data = src.extractfile(info).read()  # type: ignore[union-attr]
            if info.name == "manifest.json":
                data = json.dumps({**json.loads(data), "alembic_revision": "9999"}).encode()
                info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    return out


async def test_damaged_or_locked_backups_are_refused_and_change_nothing(
        pg_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    source_url = create_database(pg_uri)
    source = write_config(tmp_path / "source.yaml", tmp_path / "source", source_url)
    status, _, err = await dtr_cli(capsys, "db", "upgrade", "-c", source)
    assert status == 0, err
    locked, plain = tmp_path / "locked.dtr", tmp_path / "plain.dtr"
    monkeypatch.setenv("DTR_BACKUP_PASSPHRASE", PASSPHRASE)
    assert (await dtr_cli(capsys, "backup", locked, "-c", source))[0] == 0
    monkeypatch.delenv("DTR_BACKUP_PASSPHRASE")
    assert (await dtr_cli(capsys, "backup", plain, "-c", source))[0] == 0

    def damaged(src: Path, name: str, at: float | None = None, cut: float = 0) -> Path:
        """A copy of ``src`` with the byte at fraction ``at`` of it flipped, or its last ``cut`` cut off."""
        data = bytearray(src.read_bytes())
        if at is not None:
            data[int(len(data) * at)] ^= 0x01
        path = tmp_path / name
        path.write_bytes(bytes(data[:len(data) - int(len(data) * cut)]))
        return path

    target_url = create_database(pg_uri)
    target = write_config(tmp_path / "target.yaml", tmp_path / "target", target_url)
    wrong = tmp_path / "wrong"
    wrong.write_text("not the passphrase\n")
    right = tmp_path / "right"
    right.write_text(PASSPHRASE + "\n")
    for path, phrase, says in [
        (locked, wrong, "wrong passphrase"),
        (damaged(locked, "flipped.dtr", at=0.5), right, "tampered with: chunk 0 fails authentication"),
        (damaged(locked, "cut.dtr", cut=0.01), right, "tampered with"),
        (damaged(plain, "plain-flipped.dtr", at=0.2), None, "does not match its checksum"),
        (damaged(plain, "plain-cut.dtr", cut=0.5), None, "truncated"),
    ]:
        args = ["--passphrase-file", phrase] if phrase else []
        status, _, err = await dtr_cli(capsys, "restore", path, "-c", target, *args)
        assert status == 1, (path, err)
        assert says in refusal(err), (path, err)
    status, _, err = await dtr_cli(capsys, "restore", from_newer_dtr(plain, tmp_path / "newer.dtr"), "-c", target)
    assert status == 1 and "newer than this dtr knows" in refusal(err)
    status, _, err = await dtr_cli(capsys, "restore", locked, "-c", target)
    assert status == 2 and "is encrypted: give --passphrase-file" in refusal(err)
    # Nothing changed: no schema in the database, no keys, no config written.
    assert await tables(target_url) == 0
    assert not glob.glob(f"{tmp_path}/target") and not glob.glob(f"{tmp_path}/*.config.yaml")

    status, _, err = await dtr_cli(capsys, "restore", locked, "-c", target, "--passphrase-file", right)
    assert status == 0, err
    assert await tables(target_url) > 0


async def test_older_backup_is_migrated_on_restore_embedded(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Both instances run dtr's embedded PostgreSQL (no database.url); the source is at 0005."""
    source = write_config(tmp_path / "source.yaml", tmp_path / "source", None)

    async def at_0005() -> None:
        db = await Database.open(load_config(source, environ={}), migrate=False)
        try:
            await upgrade(db.engine, "0005")
        finally:
            await db.close()

    await asyncio.to_thread(asyncio.run, at_0005())
    out = tmp_path / "old.dtr"
    status, stdout, err = await dtr_cli(capsys, "backup", out, "-c", source)
    assert status == 0, err
    assert "schema 0005" in stdout
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    target = write_config(tmp_path / "target.yaml", tmp_path / "target", None)
    status, stdout, err = await dtr_cli(capsys, "restore", out, "-c", target)
    assert status == 0, err
    assert f"schema 0005); the database is at schema {head}" in stdout
    assert (tmp_path / "target" / "postgres").is_dir()

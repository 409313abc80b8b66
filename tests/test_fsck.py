"""``dtr fsck`` against a real ``dtr serve`` (Postgres + filesystem storage): images pushed over
/v2, then damage planted in storage and in the tables, found, repaired where safe, and named
where only a re-push mends it."""

from __future__ import annotations

import io
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from dtr.config import load_config
from dtr.db.engine import asyncpg_url
from dtr.registry import cli, fsck
from dtr.registry.names import blob_path
from tests.oci import digest_of, pulls_whole, push_image
from tests.servers import DtrProcess
from tests.test_cli import dtr as dtr_command

DAY = 86400


@pytest.fixture
async def registry(dtr_factory: Callable[..., DtrProcess]) -> AsyncIterator[tuple[DtrProcess, AsyncEngine]]:
    proc = dtr_factory()
    engine = create_async_engine(asyncpg_url(proc.config["database"]["url"]))
    yield proc, engine
    await engine.dispose()


def _file(proc: DtrProcess, digest: str) -> Path:
    """Where filesystem storage keeps the blob ``digest``."""
    return Path(proc.config["storage"]["filesystem"]["rootdirectory"]) / blob_path(digest).lstrip("/")


async def _fsck_text(proc: DtrProcess, as_json: bool = False, **options: Any) -> tuple[int, str]:
    """``dtr fsck`` in this process: (exit status, what it printed)."""
    cfg = load_config(proc.config_path, environ={})
    out, err = io.StringIO(), io.StringIO()
    status = await cli.run(cfg, fsck.Options(grace=DAY, **options), as_json, out, err)
    return status, out.getvalue()


async def _fsck(proc: DtrProcess, **options: Any) -> tuple[int, dict[str, Any]]:
    """``dtr fsck --json`` in this process: (exit status, report)."""
    status, out = await _fsck_text(proc, True, **options)
    return status, json.loads(out)


def _kinds(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for p in report["problems"]:
        found.setdefault(p["kind"], []).append(p)
    return found


def _subjects(report: dict[str, Any], kind: str) -> set[str]:
    return {p["subject"] for p in _kinds(report).get(kind, [])}


async def test_clean_exits_0_usage_errors_2_repaired_0(registry: tuple[DtrProcess, AsyncEngine],
                                                              http: aiohttp.ClientSession) -> None:
    proc, _ = registry
    await push_image(http, proc.url, "fsck/ok", "v1", os.urandom(100), [os.urandom(3000), os.urandom(2000)])
    r = dtr_command("fsck", config=proc.config_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no problems found" in r.stdout and "checked 1 manifests" in r.stdout
    assert "checking manifests" in r.stderr  # the progress bar (an occasional plain line off a terminal)
    status, report = await _fsck(proc, deep=True)
    assert status == 0
    assert report == {"clean": True, "deep": True, "repair": False, "repository": None,
                      "checked": {"manifests": 1, "tags": 1, "links": 3, "blobs": 3, "uploads": 0,
                                  "stored_blobs": 3, "stored_uploads": 0},
                      "problems": [], "repaired": 0, "unrepaired": 0, "notes": []}
    for bad, said in ((["--repository", "Not A Name"], "not a repository name"),
                      (["--repository", "no/such"], "no repository no/such"), (["--bogus"], "unrecognized")):
        r = dtr_command("fsck", *bad, config=proc.config_path)
        assert r.returncode == 2 and said in r.stderr and "Traceback" not in r.stderr, r.stdout + r.stderr

    # everything found repairable and repaired: 0, and clean afterwards
    orphan = _file(proc, digest_of(b"left behind"))
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"left behind")
    os.utime(orphan, (time.time() - 2 * DAY, time.time() - 2 * DAY))
    status, out = await _fsck_text(proc)
    assert status == 1 and "orphan_blob" in out and "[REPAIRABLE]" in out, out
    status, out = await _fsck_text(proc, repair=True)
    assert status == 0 and "[REPAIRED (file deleted)]" in out, out
    assert not orphan.exists()
    assert (await _fsck_text(proc))[0] == 0


async def test_finds_repairs_and_names_what_needs_a_push(registry: tuple[DtrProcess, AsyncEngine],
                                                         http: aiohttp.ClientSession) -> None:
    proc, engine = registry
    rnd = os.urandom
    u = proc.url
    images = {}
    for name in ("ok", "gone", "short", "flip", "size", "ref", "body", "mlen"):
        config, layer = rnd(120), rnd(4000)
        images[name] = (config, layer, await push_image(http, u, f"fsck/{name}", "v1", config, [layer]))

    def layer_of(name: str) -> str:
        return digest_of(images[name][1])

    # storage damage: a layer removed, one truncated, one corrupted at the same size
    _file(proc, layer_of("gone")).unlink()
    os.truncate(_file(proc, layer_of("short")), 100)
    flip = _file(proc, layer_of("flip"))
    data = bytearray(flip.read_bytes())
    data[7] ^= 0xFF
    flip.write_bytes(bytes(data))
    # orphans: a blob file and an upload directory with no row, old; a blob file too young to judge
    old_orphan, young_orphan = (_file(proc, digest_of(d)) for d in (rnd(500), rnd(500)))
    stale_upload = Path(proc.config["storage"]["filesystem"]["rootdirectory"]) / "uploads" / str(uuid.uuid4())
    for path in (old_orphan, young_orphan, stale_upload / "data"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rnd(500))
    long_ago = time.time() - 2 * DAY
    os.utime(old_orphan, (long_ago, long_ago))
    os.utime(stale_upload / "data", (long_ago, long_ago))
    # table damage, planted by SQL
    ghost_blob, ghost_ref, ghost_upload = digest_of(rnd(10)), digest_of(rnd(10)), uuid.uuid4()
    async with engine.begin() as conn:
        rid = (await conn.execute(text("SELECT id FROM repositories WHERE name = 'fsck/ok'"))).scalar_one()
        mid = {r.name: r.id for r in await conn.execute(text(
            "SELECT r.name, m.id FROM manifests m JOIN repositories r ON r.id = m.repository_id"))}
        await conn.execute(text("UPDATE blobs SET size = size + 1 WHERE digest = :d"), {"d": layer_of("size")})
        await conn.execute(text("INSERT INTO blobs (digest, size) VALUES (:d, 10)"), {"d": ghost_blob})
        await conn.execute(text("INSERT INTO uploads (id, repository_id, size) VALUES (:id, :rid, 0)"),
                           {"id": ghost_upload, "rid": rid})
        await conn.execute(text("INSERT INTO manifest_references VALUES (:m, :d, 'blob')"),
                           {"m": mid["fsck/ref"], "d": ghost_ref})
        await conn.execute(text("UPDATE manifests SET size = size + 5 WHERE id = :m"), {"m": mid["fsck/mlen"]})
        await conn.execute(text("UPDATE manifests SET payload = overlay(payload PLACING '\\x20'::bytea "
                                "FROM octet_length(payload) FOR 1) WHERE id = :m"), {"m": mid["fsck/body"]})
        # rows the foreign keys forbid (a damaged database): a tag and a link pointing nowhere
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        await conn.execute(text("INSERT INTO tags (repository_id, name, manifest_id) VALUES (:r, 'ghost', -1)"),
                           {"r": rid})
        await conn.execute(text("INSERT INTO repository_blobs (repository_id, digest) VALUES (:r, :d)"),
                           {"r": rid, "d": ghost_ref})

    status, report = await _fsck(proc)
    assert status == 1 and not report["clean"]
    assert {key for p in report["problems"] for key in p} == {"kind", "subject", "message", "images", "repairable",
                                                              "repaired", "repair", "action"}
    found = _kinds(report)
    missing = {p["subject"]: p for p in found["blob_missing"]}
    assert set(missing) == {layer_of("gone"), ghost_blob}
    assert missing[layer_of("gone")]["images"] == ["fsck/gone:v1"] and "fsck/gone:v1" in missing[layer_of("gone")][
        "message"]
    assert _subjects(report, "blob_size") == {layer_of("short"), layer_of("size")}
    assert "blob_digest" not in found and "manifest_digest" not in found  # same size: only --deep sees it
    assert _subjects(report, "manifest_size") == {digest_of(images["mlen"][2])}
    assert _subjects(report, "upload_missing") == {str(ghost_upload)}
    assert _subjects(report, "orphan_blob") == {"/" + str(old_orphan.relative_to(old_orphan.parents[3]))}
    assert _subjects(report, "orphan_upload") == {f"/uploads/{stale_upload.name}"}
    assert _subjects(report, "tag_dangling") == {"fsck/ok:ghost"}
    assert _subjects(report, "link_dangling") == {f"fsck/ok@{ghost_ref}"}
    broken = {p["subject"]: p for p in found["manifest_incomplete"]}
    assert set(broken) == {"fsck/gone:v1", "fsck/short:v1", "fsck/size:v1", "fsck/ref:v1"}
    assert not any(p["repairable"] for p in broken.values())
    assert broken["fsck/ref:v1"]["message"] == f"fsck/ref:v1 needs blob {ghost_ref}: no blob record"
    assert broken["fsck/gone:v1"]["action"] == "push fsck/gone:v1 again"

    status, deep = await _fsck(proc, deep=True)
    assert status == 1
    assert _kinds(deep)["blob_digest"][0]["subject"] == layer_of("flip")
    assert _kinds(deep)["blob_digest"][0]["images"] == ["fsck/flip:v1"]
    assert _subjects(deep, "manifest_digest") == {digest_of(images["body"][2])}
    assert "fsck/flip:v1" in _subjects(deep, "manifest_incomplete")

    # one repository: only its problems; orphans are not looked for
    status, one = await _fsck(proc, repository="fsck/gone")
    assert status == 1 and {p["kind"] for p in one["problems"]} == {"blob_missing", "manifest_incomplete"}
    assert one["notes"] and "stored_blobs" not in one["checked"]

    status, repaired = await _fsck(proc, deep=True, repair=True)
    assert status == 1 and repaired["unrepaired"] > 0
    for p in repaired["problems"]:
        assert bool(p["repaired"]) == p["repairable"], p
    assert not old_orphan.exists() and young_orphan.exists() and not stale_upload.exists()
    assert not flip.exists() and not _file(proc, layer_of("short")).exists()  # corrupt bytes deleted
    assert _file(proc, layer_of("size")).exists()  # verified: only its recorded size was wrong
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT size FROM blobs WHERE digest = :d"),
                                   {"d": layer_of("size")})).scalar() == 4000
        events = (await conn.execute(text("SELECT type, repository, tag, digest FROM registry_events "
                                          "WHERE detail ? 'fsck' ORDER BY id"))).all()
    assert ("tag_deleted", "fsck/ok", "ghost", None) in events
    assert ("blob_unlinked", "fsck/gone", None, layer_of("gone")) in events

    # after repair, only what needs a push is left: the images missing a layer and the corrupt manifest
    status, after = await _fsck(proc, deep=True)
    assert status == 1
    assert {p["kind"] for p in after["problems"]} == {"manifest_incomplete", "manifest_digest"}
    assert _subjects(after, "manifest_incomplete") == {"fsck/gone:v1", "fsck/short:v1", "fsck/flip:v1",
                                                       "fsck/ref:v1"}
    r = dtr_command("fsck", config=proc.config_path)
    assert r.returncode == 1 and "CANNOT REPAIR" in r.stdout and "to fix: push fsck/short:v1 again" in r.stdout

    # the push it asks for mends the image: the blob is unknown now, so the client uploads it again
    config, layer, body = images["gone"]
    assert await push_image(http, u, "fsck/gone", "v1", config, [layer]) == body
    await pulls_whole(http, u, "fsck/gone", "v1", body)
    status, last = await _fsck(proc)
    assert status == 1 and "fsck/gone:v1" not in _subjects(last, "manifest_incomplete")

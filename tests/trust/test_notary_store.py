"""The Notary store (``dtr.trust.store``) on real Postgres: concurrent updates and key requests
of one GUN, private keys sealed at rest, a wrong sealing key, deleting a repository's trust data."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.config import Config
from dtr.config.schema import TrustConfig
from dtr.trust import feed
from dtr.trust.errors import TrustError
from dtr.trust.store import TrustStore, delete_repository
from tests.trust.tufclient import Repo, signed_part

REPO = "ns/app"


def make_store(engine: AsyncEngine, tmp_path: Path, **trust: object) -> TrustStore:
    cfg = Config(data_dir=str(tmp_path / "data"), trust=dataclasses.replace(TrustConfig(), **trust))  # type: ignore[arg-type]
    return TrustStore(engine, cfg)


async def new_repo(store: TrustStore, gun: str, repository: str = REPO) -> Repo:
    repo = Repo(gun)
    for role in ("timestamp", "snapshot"):
        repo.server_keys[role] = (await store.get_key(gun, repository, role)).key_object()
    repo.add_target("v1", b"one")
    await store.update(gun, repository, {"root": repo.root(), "targets": repo.targets_file()})
    return repo


async def test_concurrent_requests_of_one_gun(engine: AsyncEngine, tmp_path: Path) -> None:
    store = make_store(engine, tmp_path)
    gun = "127.0.0.1:5000/ns/app"
    keys = await asyncio.gather(*(store.get_key(gun, REPO, "timestamp") for _ in range(8)))
    assert len({k.key_id for k in keys}) == 1
    repo = await new_repo(store, gun)
    repo.add_target("v2", b"two")
    first = repo.targets_file()
    repo.versions["targets"] -= 1
    repo.add_target("v3", b"three")
    second = repo.targets_file()
    results = await asyncio.gather(store.update(gun, REPO, {"targets": first}),
                                   store.update(gun, REPO, {"targets": second}), return_exceptions=True)
    refused = [r for r in results if isinstance(r, TrustError)]
    assert len(refused) == 1 and refused[0].code.name == "VERSION", results
    current = await store.current(gun, "timestamp")
    assert current is not None and signed_part(current.data)["version"] == 2


async def test_private_keys_are_sealed_at_rest(engine: AsyncEngine, tmp_path: Path) -> None:
    store = make_store(engine, tmp_path)
    gun = "127.0.0.1:5000/ns/app"
    await new_repo(store, gun)
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT gun, role, key_id, private_sealed FROM trust_keys"))).all()
        dump = b"".join(bytes(r.data) for r in (await conn.execute(text("SELECT data FROM trust_files"))).all())
    assert {r.role for r in rows} == {"snapshot", "timestamp"}
    for row in rows:
        der = store.sealer().unseal(row.private_sealed, f"dtr-trust-key\0{row.gun}\0{row.role}\0{row.key_id}".encode())
        private = serialization.load_der_private_key(der, None)
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        scalar = private.private_numbers().private_value.to_bytes(32, "big")
        assert der not in row.private_sealed and scalar not in row.private_sealed and scalar not in dump


async def test_a_wrong_sealing_key_is_a_clear_error(engine: AsyncEngine, tmp_path: Path) -> None:
    store = make_store(engine, tmp_path)
    gun = "127.0.0.1:5000/ns/app"
    repo = await new_repo(store, gun)
    before = await store.current(gun, "timestamp")
    other_key = tmp_path / "other.key"
    other = make_store(engine, tmp_path, sealing_key_file=str(other_key))
    repo.add_target("v2", b"two")
    with pytest.raises(TrustError) as e:
        await other.update(gun, REPO, {"targets": repo.targets_file()})
    assert e.value.code.name == "UNKNOWN"
    assert "sealing key" in str(e.value.detail) and store.sealer().key_id in str(e.value.detail)
    after = await store.current(gun, "timestamp")
    assert before is not None and after is not None and after.data == before.data
    assert (await store.current(gun, "targets")) is not None
    assert signed_part((await store.current(gun, "targets")).data)["version"] == 1  # type: ignore[union-attr]


async def test_deleting_a_repository_deletes_its_guns(engine: AsyncEngine, tmp_path: Path) -> None:
    store = make_store(engine, tmp_path)
    guns = ["127.0.0.1:5000/ns/app", "localhost:5000/ns/app"]
    for gun in guns:
        await new_repo(store, gun)
    await store.get_key("dtr.example.com/ns/app", REPO, "timestamp")  # keys only, no files yet
    other = await new_repo(store, "127.0.0.1:5000/ns/other", "ns/other")
    async with engine.begin() as conn:
        deleted = await delete_repository(conn, REPO)
    assert deleted == sorted([*guns, "dtr.example.com/ns/app"])
    for gun in guns:
        assert await store.current(gun, "root") is None
    async with engine.connect() as conn:
        left = (await conn.execute(text("SELECT DISTINCT gun FROM trust_keys"))).scalars().all()
    assert left == [other.gun]
    records = await feed.changes(engine, None, 0, 0)
    assert [(c.gun, c.category) for c in records if c.category == "deletion"] == [(g, "deletion") for g in guns]
    assert json.loads(json.dumps(records[0].record()))["ID"] == str(records[0].id)


async def test_the_first_key_asked_hands_out_a_key_of_each_server_role(engine: AsyncEngine, tmp_path: Path) -> None:
    store = make_store(engine, tmp_path)
    gun = "127.0.0.1:5000/ns/first"
    timestamp = await store.get_key(gun, REPO, "timestamp")
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT role, key_id FROM trust_keys WHERE gun = :gun"), {"gun": gun})).all()
    assert sorted(r.role for r in rows) == ["snapshot", "timestamp"]
    snapshot = await store.get_key(gun, REPO, "snapshot")
    assert {r.key_id for r in rows} == {timestamp.key_id, snapshot.key_id}
    assert (await store.get_key(gun, REPO, "timestamp")).key_id == timestamp.key_id
    rotated = await store.rotate_key(gun, REPO, "snapshot")  # before any root: the newest handed out
    assert rotated.key_id != snapshot.key_id
    assert (await store.get_key(gun, REPO, "snapshot")).key_id == rotated.key_id

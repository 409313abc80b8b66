"""``dtr backup`` of a serving dtr while pushes go on, then ``dtr restore`` into a fresh instance:
everything comes back consistent and whole, accounts log in, tokens stay valid."""

from __future__ import annotations

import asyncio
import tarfile
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from tests.auth.client import Client
from tests.auth.constants import ADMIN_AUTH, PASSWORD, auth_config
from tests.backup.helpers import PASSPHRASE, all_pull_whole, dtr_cli, headers, mode, push_small, refusal
from tests.servers import DtrProcess, create_database


async def test_backup_while_pushing_restores_whole(dtr_factory: Callable[..., DtrProcess], pg_uri: str,
                                                   tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    src = dtr_factory(auth_config())
    client = Client(src.url)
    client.api("POST", "/accounts", ADMIN_AUTH, {"name": "alice", "password": PASSWORD}, expect=201)
    client.api("POST", "/accounts", ADMIN_AUTH, {"name": "acme", "isOrg": True}, expect=201)
    client.api("POST", "/accounts/acme/teams", ADMIN_AUTH, {"name": "devs"}, expect=201)
    client.api("PUT", "/accounts/acme/teams/devs/members/alice", ADMIN_AUTH, {}, expect=200)
    pat = client.api("POST", "/api_tokens", ("alice", PASSWORD), {"tokenLabel": "ci"}, expect=201).json()["token"]
    repos = ["acme/app", "acme/web", "acme/loop"]
    for repo in repos:
        client.api("POST", "/repositories/acme", ADMIN_AUTH, {"name": repo.split("/")[1], "visibility": "private"},
                   expect=201)
    client.api("PUT", "/repositories/acme/app/teamAccess/devs", ADMIN_AUTH, {"accessLevel": "read-only"}, expect=200)
    token = client.bearer([f"repository:{r}:pull,push" for r in repos] + ["registry:catalog:*"], ADMIN_AUTH)
    pushed: dict[tuple[str, str], bytes] = {}
    out = tmp_path / "backup.dtr"
    async with aiohttp.ClientSession(headers=headers(token)) as http:
        for repo in repos[:2]:
            for tag in ("v1", "v2"):
                pushed[(repo, tag)] = await push_small(http, src.url, repo, tag)
        before = set(pushed)
        done, first = asyncio.Event(), asyncio.Event()

        async def push_loop() -> None:
            i = 0
            while not done.is_set():
                pushed[("acme/loop", f"t{i}")] = await push_small(http, src.url, "acme/loop", f"t{i}")
                first.set()
                i += 1

        monkeypatch.setenv("DTR_BACKUP_PASSPHRASE", PASSPHRASE)
        loop = asyncio.create_task(push_loop())
        try:
            await asyncio.wait_for(first.wait(), 60)  # one loop push committed before the backup starts
            status, stdout, err = await dtr_cli(capsys, "backup", out, "-c", src.config_path)
        finally:
            done.set()
            await loop
        assert status == 0, err
        assert "encrypted" in stdout and mode(out) == 0o600
        assert not out.with_name(out.name + ".tmp").exists()
        monkeypatch.delenv("DTR_BACKUP_PASSPHRASE")
    src.stop()
    with pytest.raises(tarfile.ReadError):  # encrypted: not a readable tar
        tarfile.open(out).close()

    # A fresh instance on the same storage and address, with an empty database: restore, start.
    dst = DtrProcess(tmp_path / "dst", create_database(pg_uri),
                     {**auth_config(), "storage": {"filesystem": {"rootdirectory": str(src.workdir / "registry")}}},
                     port=src.port)
    phrase = tmp_path / "phrase"
    phrase.write_text(PASSPHRASE + "\n")
    status, stdout, err = await dtr_cli(capsys, "restore", out, "-c", dst.config_path, "--passphrase-file", phrase)
    assert status == 0, err
    config_out = out.with_name(out.name + ".config.yaml")
    assert str(config_out) in stdout
    assert config_out.read_bytes() == src.config_path.read_bytes() and mode(config_out) == 0o600
    dst.start()
    try:
        # The token issued by the old instance still verifies: the signing key came back.
        async with aiohttp.ClientSession(headers=headers(token)) as http:
            restored = set(await all_pull_whole(http, dst.url, pushed))
        assert before <= restored
        assert any(repo == "acme/loop" for repo, _ in restored)
        assert client.api("GET", "/accounts/me", ("alice", PASSWORD), expect=200).json()["name"] == "alice"
        assert client.api("GET", "/accounts/me", ("alice", pat), expect=200).json()["name"] == "alice"
        members = client.api("GET", "/accounts/acme/teams/devs/members", ADMIN_AUTH, expect=200).json()
        assert [m["member"]["name"] for m in members["members"]] == ["alice"]
        alice = client.bearer(["repository:acme/app:pull"], ("alice", PASSWORD))
        assert client.request("GET", "/v2/acme/app/tags/list", bearer=alice).status == 200

        # The restored instance is running and not empty: a second restore is refused either way.
        status, _, err = await dtr_cli(capsys, "restore", out, "-c", dst.config_path, "--passphrase-file", phrase,
                                       "--force")
        assert status == 1 and "stop dtr first" in refusal(err)
    finally:
        dst.stop()
    status, _, err = await dtr_cli(capsys, "restore", out, "-c", dst.config_path, "--passphrase-file", phrase,
                                   "--config-out", tmp_path / "other.yaml")
    assert status == 1 and "not empty" in refusal(err) and "--force" in refusal(err)
    assert not (tmp_path / "other.yaml").exists()

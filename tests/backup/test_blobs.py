"""``dtr backup --include-blobs``: the blobs travel in the backup, into a fresh storage directory;
other storage drivers are refused; an existing backup file is replaced only with ``--force``."""

from __future__ import annotations

import glob
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.backup.helpers import all_pull_whole, dtr_cli, mode, push_small, refusal
from tests.servers import DtrProcess, create_database


async def test_include_blobs_round_trip_into_fresh_storage(dtr_factory: Callable[..., DtrProcess], pg_uri: str,
                                                           tmp_path: Path, http: aiohttp.ClientSession,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    src = dtr_factory()
    pushed = {(repo, tag): await push_small(http, src.url, repo, tag)
              for repo, tag in (("one/app", "v1"), ("one/app", "v2"), ("two/db", "latest"))}
    out = tmp_path / "full.tar"
    status, stdout, err = await dtr_cli(capsys, "backup", out, "-c", src.config_path, "--include-blobs")
    assert status == 0, err
    blobs = {d["digest"] for body in pushed.values() for d in [json.loads(body)["config"], *json.loads(body)["layers"]]}
    assert "not encrypted" in err and f"{len(blobs)} blob(s)" in stdout and mode(out) == 0o600
    src.stop()
    # Unencrypted, the backup is a plain tar: the dump, the config, the blobs (named by digest), the manifest.
    with tarfile.open(out) as tar:
        names = tar.getnames()
    assert names[0] == "database.dump.000000" and names[-1] == "manifest.json" and "config.yaml" in names
    assert {"sha256:" + n.rsplit("/", 1)[1] for n in names if n.startswith("blobs/sha256/")} == blobs

    # Refused without --force: the file exists.
    status, _, err = await dtr_cli(capsys, "backup", out, "-c", src.config_path)
    assert status == 1 and "--force" in refusal(err)

    dst = DtrProcess(tmp_path / "dst", create_database(pg_uri))  # its own, empty storage directory
    status, stdout, err = await dtr_cli(capsys, "restore", out, "-c", dst.config_path,
                                        "--config-out", tmp_path / "restored.yaml")
    assert status == 0, err
    assert f"{len(blobs)} blob(s) written" in stdout
    dst.start()
    try:
        assert sorted(await all_pull_whole(http, dst.url, pushed)) == sorted(pushed)
    finally:
        dst.stop()


async def test_include_blobs_refused_for_object_stores(database_url: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "s3.yaml"
    config.write_text(yaml.safe_dump({
        "data_dir": str(tmp_path / "data"), "database": {"url": database_url},
        "storage": {"s3": {"bucket": "b", "regionendpoint": "http://127.0.0.1:9", "accesskey": "a",
                           "secretkey": "s"}}}))
    status, _, err = await dtr_cli(capsys, "backup", tmp_path / "b.dtr", "-c", config, "--include-blobs")
    assert status == 1
    assert "filesystem storage only" in refusal(err) and "s3" in refusal(err)
    assert not glob.glob(f"{tmp_path}/b.dtr*")

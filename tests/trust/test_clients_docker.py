"""Docker Content Trust with the real Docker CLI (Debian's 20.10) and a private dockerd.

Against dtr, docker finds the trust server on its own: DOCKER_CONTENT_TRUST_SERVER unset, it uses
``https://`` + the registry's host:port, so the registry and its Notary share one TLS port. Each
test also runs against notary-server beside the reference registry (DOCKER_CONTENT_TRUST_SERVER
set), which proves the flow itself. Docker logs in to dtr as the admin (the trust server's token
requests carry those credentials).
"""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.clients.engines import DockerEngine, rootfs_tar
from tests.trust.conftest import TrustTarget
from tests.trust.notary_tools import tags_by_signer


def _image(engine: DockerEngine, tmp_path: Path, busybox: str, ref: str, content: str) -> None:
    work = tmp_path / f"img-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    engine.import_image(rootfs_tar(work, content, busybox), ref)


def test_trusted_push_inspect_and_pull(trust_target: TrustTarget, docker_engine: DockerEngine, busybox: str,
                                       tmp_path: Path) -> None:
    docker = trust_target.docker(docker_engine, tmp_path / "config")
    repo = trust_target.repo()
    _image(docker_engine, tmp_path, busybox, f"{repo}:1", f"trusted {repo}")
    digest = docker.push(f"{repo}:1")
    inspected = docker.inspect(repo)
    assert inspected[0]["Name"] == repo
    assert tags_by_signer(inspected) == {"1": {"Repo Admin": digest}}
    assert inspected[0]["Signers"] == []
    admin = {k["Name"]: [key["ID"] for key in k["Keys"]] for k in inspected[0]["AdministrativeKeys"]}
    assert set(admin) == {"Root", "Repository"} and all(len(ids) == 1 for ids in admin.values()), admin

    # A trusted pull resolves the tag through the signed targets, then pulls by that digest.
    docker_engine.remove(f"{repo}:1")
    out = docker.pull(f"{repo}:1").stdout
    assert f"{repo}:1@{digest}" in out and f"Digest: {digest}" in out, out
    assert docker_engine.run_sh(f"{repo}:1", "cat /id.txt") == f"trusted {repo}"

    # An unsigned tag of the same repository, and a repository without trust data, are refused.
    _image(docker_engine, tmp_path, busybox, f"{repo}:unsigned", f"unsigned {repo}")
    docker.docker("push", "--disable-content-trust", f"{repo}:unsigned")
    refused = docker.pull(f"{repo}:unsigned", check=False)
    assert refused.returncode != 0 and "No valid trust data for unsigned" in refused.stderr, refused.stderr
    other = trust_target.repo()
    docker.docker("tag", f"{repo}:unsigned", f"{other}:1")
    docker.docker("push", "--disable-content-trust", f"{other}:1")
    refused = docker.pull(f"{other}:1", check=False)
    assert refused.returncode != 0 and "does not have trust data" in refused.stderr, refused.stderr


def test_signer_sign_revoke_remove(trust_target: TrustTarget, docker_engine: DockerEngine, busybox: str,
                                   tmp_path: Path) -> None:
    docker = trust_target.docker(docker_engine, tmp_path / "config")
    repo = trust_target.repo()
    _image(docker_engine, tmp_path, busybox, f"{repo}:1", f"signers {repo}")
    digest = docker.push(f"{repo}:1")

    pub = docker.key_generate("alice", tmp_path / "keys")
    docker.signer_add("alice", pub, repo)
    docker.docker("tag", f"{repo}:1", f"{repo}:2")
    docker.sign(f"{repo}:2")
    inspected = docker.inspect(repo)
    assert tags_by_signer(inspected) == {"1": {"Repo Admin": digest}, "2": {"alice": digest}}
    assert [s["Name"] for s in inspected[0]["Signers"]] == ["alice"]
    assert len(inspected[0]["Signers"][0]["Keys"]) == 1

    # Revoked: the tag is gone from the trust data and a trusted pull of it is refused.
    docker.revoke(f"{repo}:2")
    assert tags_by_signer(docker.inspect(repo)) == {"1": {"Repo Admin": digest}}
    docker_engine.remove(f"{repo}:1")
    refused = docker.pull(f"{repo}:2", check=False)
    assert refused.returncode != 0 and "No valid trust data for 2" in refused.stderr, refused.stderr
    assert f"Digest: {digest}" in docker.pull(f"{repo}:1").stdout

    docker.signer_remove("alice", repo)
    inspected = docker.inspect(repo)
    assert inspected[0]["Signers"] == []
    assert tags_by_signer(inspected) == {"1": {"Repo Admin": digest}}

    # A fresh client (no cached trust data) reads the same from the server.
    fresh = trust_target.docker(docker_engine, tmp_path / "fresh")
    assert tags_by_signer(fresh.inspect(repo)) == {"1": {"Repo Admin": digest}}

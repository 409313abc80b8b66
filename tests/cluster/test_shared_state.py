"""What one replica does, the others honour at once: tokens (one signing key in the database,
though each replica has its own data_dir), site settings, and uploads moving between replicas."""

from __future__ import annotations

import hashlib
from pathlib import Path

import jwt

from dtr.auth.tokens import TokenSigner, load_key, new_key_pem
from dtr.cluster.secrets import LEGACY_SIGNING_KEY
from tests.auth.client import Client
from tests.auth.constants import ADMIN_AUTH
from tests.cluster.conftest import eventually, replica_config, token
from tests.oci import digest_of
from tests.servers import DtrProcess, create_database


def test_each_replica_accepts_the_others_tokens(pair: tuple[DtrProcess, DtrProcess]) -> None:
    a, b = (Client(p.url) for p in pair)
    assert pair[0].data_dir != pair[1].data_dir
    assert not (pair[0].data_dir / LEGACY_SIGNING_KEY).exists()  # the key lives in the database
    repo = "admin/tokens"
    a.api("POST", "/repositories/admin", ADMIN_AUTH, {"name": "tokens", "visibility": "private"}, expect=201)
    for issuer, verifier in ((a, b), (b, a)):
        bearer = token(issuer, [f"repository:{repo}:pull"], ADMIN_AUTH)
        r = verifier.request("GET", f"/v2/{repo}/tags/list", bearer=bearer)
        assert r.status == 200, r.body
        assert verifier.request("GET", "/api/v0/accounts/me", bearer=bearer).json()["name"] == "admin"
    # A token signed with another key is still refused.
    access = [{"type": "repository", "name": repo, "actions": ["pull"]}]
    forged, _, _ = TokenSigner(load_key(new_key_pem()), "dtr", "registry.test", 300, 300).issue("admin", access)
    assert b.request("GET", f"/v2/{repo}/tags/list", bearer=forged).status == 401


def _may_push(client: Client, repo: str) -> bool:
    r = client.request("GET", f"/auth/token?service=registry.test&scope=repository:{repo}:push", auth=ADMIN_AUTH)
    assert r.status == 200, r.body
    claims = jwt.decode(r.json()["token"], options={"verify_signature": False})
    return "push" in claims["access"][0]["actions"]


def test_a_setting_changed_on_one_replica_holds_on_the_other_within_a_second(
        pair: tuple[DtrProcess, DtrProcess]) -> None:
    a, b = (Client(p.url) for p in pair)
    new_repo = "admin/made-on-push"
    assert b.api("GET", "/meta/settings", ADMIN_AUTH, expect=200).json()["createRepositoryOnPush"] is False
    assert not _may_push(b, new_repo)  # b has read (and cached) the setting
    try:
        a.api("PATCH", "/meta/settings", ADMIN_AUTH, {"createRepositoryOnPush": True}, expect=200)
        # b has no restart and no cache flush: the change arrives by itself.
        eventually(lambda: b.api("GET", "/meta/settings", ADMIN_AUTH).json()["createRepositoryOnPush"], within=3)
        eventually(lambda: _may_push(b, new_repo), within=3)
    finally:
        a.api("PATCH", "/meta/settings", ADMIN_AUTH, {"createRepositoryOnPush": False}, expect=200)
    eventually(lambda: not _may_push(b, new_repo), within=3)


def test_a_chunked_upload_hops_between_replicas(pair: tuple[DtrProcess, DtrProcess]) -> None:
    a, b = (Client(p.url) for p in pair)
    repo = "admin/hops"
    a.api("POST", "/repositories/admin", ADMIN_AUTH, {"name": "hops", "visibility": "private"}, expect=201)
    bearer = token(a, [f"repository:{repo}:pull,push"], ADMIN_AUTH)  # from a, used on both
    data = hashlib.sha256(b"seed").digest() * 40_000  # 1.28 MB in four chunks
    digest = digest_of(data)
    r = a.request("POST", f"/v2/{repo}/blobs/uploads/", bearer=bearer)
    assert r.status == 202, r.body
    location = r.headers["Location"]
    quarter = len(data) // 4
    start = 0
    for replica, end in ((b, quarter), (a, 2 * quarter), (b, 3 * quarter)):
        r = replica.request("PATCH", location, bearer=bearer, data=data[start:end],
                            headers={"Content-Type": "application/octet-stream",
                                     "Content-Range": f"{start}-{end - 1}"})
        assert r.status == 202, r.body
        assert r.headers["Range"] == f"0-{end - 1}"
        start = end
    r = a.request("PUT", f"{location}?digest={digest}", bearer=bearer, data=data[start:],
                  headers={"Content-Type": "application/octet-stream"})
    assert r.status == 201, r.body
    for replica in (a, b):
        r = replica.request("GET", f"/v2/{repo}/blobs/{digest}", bearer=bearer)
        assert r.status == 200 and r.body == data

    # A wrong digest is caught whichever replica finishes.
    r = b.request("POST", f"/v2/{repo}/blobs/uploads/", bearer=bearer)
    location = r.headers["Location"]
    assert a.request("PATCH", location, bearer=bearer, data=b"abc").status == 202
    r = b.request("PUT", f"{location}?digest={digest_of(b'abd')}", bearer=bearer)
    assert r.status == 400 and r.error_code == "DIGEST_INVALID", r.body


def test_a_data_dir_key_is_imported_so_issued_tokens_stay_valid(pg_uri: str, tmp_path: Path) -> None:
    url = create_database(pg_uri)
    old = DtrProcess(tmp_path / "old", url, replica_config(tmp_path / "registry"))
    pem = new_key_pem()  # the key an earlier dtr kept in its data_dir
    (old.data_dir / LEGACY_SIGNING_KEY).parent.mkdir(parents=True)
    (old.data_dir / LEGACY_SIGNING_KEY).write_text(pem)
    issued, _, _ = TokenSigner(load_key(pem), "dtr", "registry.test", 300, 300).issue("admin", [])
    new = DtrProcess(tmp_path / "new", url, replica_config(tmp_path / "registry"))
    with old, new:  # old imports its key first; new has none and reads the cluster's
        for proc in (old, new):
            r = Client(proc.url).request("GET", "/api/v0/accounts/me", bearer=issued)
            assert r.status == 200 and r.json()["name"] == "admin", r.body
        assert not (new.data_dir / LEGACY_SIGNING_KEY).exists()

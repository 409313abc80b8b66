"""A rolling upgrade: the previous release and this one serve side by side on ONE database this one
migrated; each pulls what the other pushed, and tokens and passwords work across them.

"The previous release" is found with git (a clean CI checkout needs its full history: without it the
test fails saying so, it never skips): the newest ancestor of HEAD with fewer migrations than HEAD
that already tolerates a newer schema (``dtr.db.migrate`` leaves such a schema as it is); failing
that (no migration added since that tolerance), the newest ancestor with HEAD's migrations and
without it (the release before it). Its ``dtr`` and ``migrations`` are taken with ``git archive``.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from tests.auth.client import Client
from tests.auth.constants import ADMIN_AUTH, auth_config
from tests.cluster.keys import signing_key
from tests.oci import OCI_MANIFEST, digest_of, image
from tests.servers import ROOT, DtrProcess, create_database

#: Text only a ``dtr/db/migrate.py`` that tolerates a newer schema holds.
TOLERANT = "which a newer dtr release made"
DEPTH = 400
#: The token audience every replica shares (behind one load balancer, its name).
SERVICE = "registry.test"


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def _migrations(commit: str) -> set[str]:
    return set(_git("ls-tree", "--name-only", f"{commit}:migrations/versions").split())


def previous_release() -> str:
    """The commit the test runs as the previous release (see the module's docstring)."""
    try:
        commits = _git("rev-list", f"--max-count={DEPTH}", "HEAD").split()[1:]
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.fail(f"the rolling-upgrade test needs dtr's git history: {e}", pytrace=False)
    head = _migrations("HEAD")
    seen = []
    for commit in commits:
        try:
            tolerant = TOLERANT in _git("show", f"{commit}:dtr/db/migrate.py")
            seen.append((commit, _migrations(commit), tolerant))
        except subprocess.CalledProcessError:
            continue  # before dtr had that layout
    for commit, migrations, tolerant in seen:
        if tolerant and migrations < head:
            return commit
    for commit, migrations, tolerant in seen:
        if not tolerant and migrations == head:
            return commit
    shallow = _git("rev-parse", "--is-shallow-repository").strip() == "true"
    pytest.fail("no previous release found in the git history" + (
        " (a shallow clone: fetch the full history, `git fetch --unshallow`)" if shallow else ""), pytrace=False)


def _export(commit: str, into: Path) -> Path:
    data = subprocess.run(["git", "archive", commit, "dtr", "migrations"], cwd=ROOT, capture_output=True,
                          check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def _token(c: Client, scope: str) -> str:
    """A token from ``c`` for the service both releases share."""
    r = c.request("GET", f"/auth/token?service={SERVICE}&scope={scope}", auth=ADMIN_AUTH)
    assert r.status == 200, r.body
    return str(r.json()["token"])


def _push(c: Client, token: str, repo: str, tag: str) -> bytes:
    config, layer = f'{{"tag": "{tag}"}}'.encode(), os.urandom(300)
    for blob in (config, layer):
        r = c.request("POST", f"/v2/{repo}/blobs/uploads/?digest={digest_of(blob)}", bearer=token, data=blob,
                      headers={"Content-Type": "application/octet-stream"})
        assert r.status == 201, r.body
    body = image(config, [layer])
    r = c.request("PUT", f"/v2/{repo}/manifests/{tag}", bearer=token, data=body,
                  headers={"Content-Type": OCI_MANIFEST})
    assert r.status == 201, r.body
    return body


def test_previous_and_new_release_side_by_side(pg_uri: str, tmp_path: Path) -> None:
    commit = previous_release()
    print(f"previous release: {commit}")
    old_source = _export(commit, tmp_path / "previous")
    url = create_database(pg_uri)
    shared = {**auth_config(service=SERVICE), "storage": {"filesystem": {"rootdirectory": str(tmp_path / "storage")}}}
    new = DtrProcess(tmp_path / "new", url, shared).start()  # migrates the database
    old = DtrProcess(tmp_path / "old", url, shared, source=old_source)
    # One token signing key: the new release keeps it in the database; a release from before that
    # reads it from data_dir (an operator copied it between replicas).
    (old.data_dir / "auth").mkdir(parents=True)
    (old.data_dir / "auth" / "token-signing.pem").write_bytes(
        signing_key(url).private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    old.start()
    try:
        n, o = Client(new.url), Client(old.url)
        n.api("POST", "/repositories/admin", ADMIN_AUTH, {"name": "rolling", "visibility": "private"}, expect=201)
        scope = "repository:admin/rolling:pull,push"
        pushed = {"from-new": _push(n, _token(n, scope), "admin/rolling", "from-new"),
                  "from-old": _push(o, _token(o, scope), "admin/rolling", "from-old")}
        for c, issuer in ((n, o), (o, n)):  # a token of the other release, and pulls of its pushes
            token = _token(issuer, scope)
            for tag, body in pushed.items():
                r = c.request("GET", f"/v2/admin/rolling/manifests/{tag}", bearer=token,
                              headers={"Accept": OCI_MANIFEST})
                assert (r.status, r.body) == (200, body), (c.url, tag, r.body)
            assert c.api("GET", "/accounts/me", ADMIN_AUTH, expect=200).json()["name"] == "admin"
    finally:
        old.stop()
        new.stop()
    for proc in (old, new):
        assert '"status": 500' not in proc.log_path.read_text()

"""Signature tests' servers and clients: a dtr with auth on (``auth_dtr``, ``world``: an
organisation, its private ``app`` repository and a user per role, from tests.auth), skopeo and
umoci (tests.clients), and ``Site``: pushes of busybox images and signature artifacts with
skopeo and PyPI's oras.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import oras.auth.utils
import oras.client
import oras.oci
import pytest

from tests.auth.client import Client
from tests.auth.conftest import auth_dtr, client, world  # noqa: F401
from tests.auth.constants import ADMIN_AUTH
from tests.auth.world import World
from tests.clients.conftest import busybox, skopeo, umoci  # noqa: F401
from tests.clients.engines import Skopeo, Umoci, make_rootfs
from tests.oci import ALL_MANIFEST_TYPES
from tests.servers import DtrProcess
from tests.signatures import makers as mk


@contextlib.contextmanager
def inside(path: Path) -> Iterator[None]:
    """oras refuses files outside the working directory."""
    cwd = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(cwd)


class Site:
    """Pushes to one dtr (as ``auth``, the site admin unless told) with real clients."""

    def __init__(self, proc: DtrProcess, api: Client, copier: Skopeo, builder: Umoci, busybox_path: str,
                 work: Path, auth: tuple[str, str] | None = ADMIN_AUTH) -> None:
        self.proc, self.client, self.skopeo, self.umoci, self.busybox = proc, api, copier, builder, busybox_path
        self.work, self.auth = work, auth
        self.host = proc.url.split("://", 1)[1]

    def _creds(self) -> tuple[str, ...]:
        return ("--dest-creds", f"{self.auth[0]}:{self.auth[1]}") if self.auth else ()

    def push_image(self, repo: str, tag: str) -> tuple[str, str, int]:
        """A busybox image of unique content built with umoci, pushed with skopeo; (media type, digest, size)."""
        label = uuid.uuid4().hex[:12]
        rootfs = make_rootfs(self.work / f"rootfs-{label}", label, self.busybox)
        layout = self.work / f"layout-{label}"
        self.umoci.build(layout, tag, rootfs)
        digest = self.skopeo.copy(f"oci:{layout}:{tag}", f"docker://{self.host}/{repo}:{tag}", *self._creds())
        r = self.v2("GET", repo, f"manifests/{digest}", headers={"Accept": ALL_MANIFEST_TYPES})
        assert r.status == 200, r.body
        return r.headers["Content-Type"], digest, len(r.body)

    def push_layout(self, repo: str, reference: str, artifact: mk.Artifact) -> str:
        """``artifact`` through an OCI layout, with skopeo, to ``reference`` (a tag or its digest)."""
        layout = mk.oci_layout(self.work / f"art-{uuid.uuid4().hex[:12]}", "a", artifact)
        sep = "@" if reference.startswith("sha256:") else ":"
        digest = self.skopeo.copy(f"oci:{layout}:a", f"docker://{self.host}/{repo}{sep}{reference}",
                                  "--preserve-digests", *self._creds())
        assert digest == artifact.digest
        return digest

    def oras_push(self, repo: str, tag: str, files: dict[str, tuple[bytes, str]], config_type: str,
                  subject: tuple[str, str, int], annotations: dict[str, str] | None = None) -> str:
        """Push files (name -> (bytes, media type)) with oras-py, ``subject`` the image; the
        manifest's config has media type ``config_type`` (oras-py sets no ``artifactType``: the
        referrers API reports the config's). Returns the manifest digest."""
        work = self.work / f"oras-{uuid.uuid4().hex[:12]}"
        work.mkdir()
        for name, (data, _) in files.items():
            (work / name).write_bytes(data)
        (work / "config.json").write_bytes(b"{}")
        with inside(work):
            orc = oras.client.OrasClient(hostname=self.host, insecure=True)
            if self.auth:
                orc.auth.set_basic_auth(*self.auth)
                # oras-py cannot follow the push challenge after a pull token (see tests/auth/test_oras.py):
                # it gets its push token the way that challenge asks.
                challenge = self.client.request("POST", f"/v2/{repo}/blobs/uploads/")
                token = orc.auth.request_token(oras.auth.utils.parse_auth_header(
                    challenge.headers["WWW-Authenticate"]))
                orc.auth.set_token_auth(token)
            media, digest, size = subject
            pushed = orc.push(f"{self.host}/{repo}:{tag}", files=[f"{n}:{m}" for n, (_, m) in files.items()],
                              manifest_config=f"config.json:{config_type}", manifest_annotations=annotations,
                              subject=oras.oci.Subject(mediaType=media, digest=digest, size=size))
        assert pushed.status_code == 201, pushed.text
        return str(pushed.headers["Docker-Content-Digest"])

    def v2(self, method: str, repo: str, path: str, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        if self.auth is None:  # auth off: no tokens
            return self.client.request(method, f"/v2/{repo}/{path}", headers=headers)
        action = "pull,push,delete" if method == "DELETE" else "pull"
        return self.client.v2(method, f"{repo}/{path}", f"repository:{repo}:{action}", self.auth, headers=headers)

    def new_repo(self, org: str) -> str:
        name = f"r{uuid.uuid4().hex[:10]}"
        self.client.api("POST", f"/repositories/{org}", self.auth, {"name": name, "visibility": "private"},
                        expect=201)
        return f"{org}/{name}"

    def signatures(self, repo: str, reference: str, auth: tuple[str, str] | None = None) -> dict:  # type: ignore[type-arg]
        r = self.client.api("GET", f"/repositories/{repo}/signatures/{reference}", auth or self.auth, expect=200)
        return dict(r.json())

    def trust(self, scope: str, name: str, pem: str, auth: tuple[str, str] | None = None) -> dict:  # type: ignore[type-arg]
        path = f"/repositories/{scope}" if "/" in scope else f"/namespaces/{scope}"
        r = self.client.api("POST", f"{path}/trustedKeys", auth or self.auth, {"name": name, "pem": pem}, expect=201)
        return dict(r.json())


@pytest.fixture
def site(auth_dtr: DtrProcess, client: Client, world: World, skopeo: Skopeo,  # noqa: F811
         umoci: Umoci, busybox: str, tmp_path: Path) -> Site:  # noqa: F811
    return Site(auth_dtr, client, skopeo, umoci, busybox, tmp_path)

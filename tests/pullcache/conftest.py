"""Pull-through cache tests: the session's dtr with auth on (``auth_dtr``, ``client``, from
tests.auth), upstream registries (Go distribution, ``upstreams``; some with htpasswd basic auth),
images built with umoci and copied with skopeo (tests.clients), and ``Caches``: a namespace made a
cache of an upstream and pulls through it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.auth.client import Client
from tests.auth.conftest import auth_dtr, client  # noqa: F401
from tests.auth.constants import ADMIN_AUTH
from tests.clients.conftest import busybox, docker_engine, oci_layout, skopeo, umoci, unique  # noqa: F401
from tests.clients.engines import APT, ReferenceRegistry, Skopeo, verify_dir_image
from tests.servers import DtrProcess, free_port, require_binary

ADMIN_CREDS = f"{ADMIN_AUTH[0]}:{ADMIN_AUTH[1]}"


@pytest.fixture
def upstreams(tmp_path: Path) -> Iterator[Callable[..., ReferenceRegistry]]:
    """``start(htpasswd=None)``: a fresh Go registry (stopped at the end of the test)."""
    binary = require_binary("docker-registry", f"{APT} docker-registry")
    started: list[ReferenceRegistry] = []

    def start(htpasswd: Path | None = None) -> ReferenceRegistry:
        reg = ReferenceRegistry(tmp_path / f"upstream{len(started)}", binary, free_port(), htpasswd).start()
        started.append(reg)
        return reg

    yield start
    for reg in started:
        reg.stop()


class Caches:
    """Cache namespaces on the session's dtr, pulls through them with skopeo."""

    def __init__(self, proc: DtrProcess, api: Client, copier: Skopeo, layout: Callable[..., Path], work: Path
                 ) -> None:
        self.proc, self.client, self.skopeo, self.layout, self.work = proc, api, copier, layout, work
        self.host = proc.url.split("://", 1)[1]

    def make(self, upstream: str, **setting: Any) -> str:
        """A new organisation made a cache of ``upstream``; its name."""
        org = f"pc{uuid.uuid4().hex[:10]}"
        self.client.api("POST", "/accounts", ADMIN_AUTH, {"name": org, "isOrg": True}, expect=201)
        self.configure(org, upstream, **setting)
        return org

    def configure(self, org: str, upstream: str, **setting: Any) -> dict[str, Any]:
        r = self.client.api("PUT", f"/namespaces/{org}/pullThroughCache", ADMIN_AUTH,
                            {"upstream": upstream, **setting}, expect=200)
        found: dict[str, Any] = r.json()
        return found

    def push_upstream(self, registry: ReferenceRegistry, repo: str, tag: str, content: str,
                      creds: str | None = None) -> str:
        """An image of two layers (``content`` in /id.txt) pushed to ``registry``; its digest."""
        layout = self.layout(tag, content)
        extra = ("--dest-creds", creds) if creds else ()
        return self.skopeo.copy(f"oci:{layout}:{tag}", f"docker://{registry.host}/{repo}:{tag}", *extra)

    def pull(self, repo: str, ref: str, creds: str | None = ADMIN_CREDS) -> tuple[str, dict[str, Any]]:
        """``repo:ref`` through dtr with skopeo (checked blob by blob); (digest, manifest)."""
        out = self.work / f"pull-{uuid.uuid4().hex[:8]}"
        sep = "@" if ref.startswith("sha256:") else ":"
        extra = ("--src-creds", creds) if creds else ()
        digest = self.skopeo.copy(f"docker://{self.host}/{repo}{sep}{ref}", f"dir:{out}", *extra)
        return digest, verify_dir_image(out, digest)

    def v2(self, method: str, path: str, repo: str, headers: dict[str, str] | None = None) -> Any:
        return self.client.v2(method, path, f"repository:{repo}:pull", ADMIN_AUTH, headers=headers)

    def wait_stored(self, repo: str, tag: str, timeout: float = 60) -> None:
        """Wait until dtr stored ``repo:tag`` (the cache stores a manifest once its blobs are in;
        /v2's tag list shows the upstream's tags before, the API's only those stored)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.client.api("GET", f"/repositories/{repo}/tags/{tag}", ADMIN_AUTH).status == 200:
                return
            time.sleep(0.2)
        raise AssertionError(f"{repo}:{tag} was not stored within {timeout}s: {self.proc.log_tail(20)}")


@pytest.fixture
def caches(auth_dtr: DtrProcess, client: Client, skopeo: Skopeo,  # noqa: F811
           oci_layout: Callable[..., Path], tmp_path: Path) -> Caches:  # noqa: F811
    return Caches(auth_dtr, client, skopeo, oci_layout, tmp_path)

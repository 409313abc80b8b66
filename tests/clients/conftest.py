"""Session-wide real clients: a private Docker engine, podman, skopeo, umoci, the reference registry.

Fixtures:
- ``docker_engine``: a private dockerd (``DockerEngine``), stopped by its pidfile at the end.
- ``podman``, ``skopeo``, ``umoci``: the clients with their own state directories.
- ``reference_registry``: Go distribution 2.8 (``docker-registry serve``) on a free port.
- ``busybox``: the static busybox that images are built from.
- ``unique``: a fresh label; put it in an image so its layer differs from every other test's.
- ``oci_layout``: build a two-layer OCI layout image (umoci) from a busybox rootfs with given content.
A missing binary fails the test with the apt-get line that installs it.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.clients.engines import (
    APT,
    DOCKER_CLI,
    DockerEngine,
    Podman,
    ReferenceRegistry,
    Skopeo,
    Umoci,
    make_rootfs,
)
from tests.servers import free_port, require_binary


def _short_tmpdir(prefix: str) -> Path:
    # Unix socket paths are limited to 108 bytes: keep daemon state under a short /tmp path.
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


@pytest.fixture(scope="session")
def busybox() -> str:
    path = require_binary("busybox", f"{APT} busybox-static")
    with open(path, "rb") as f:
        head = f.read(8192)
    if b"ld-linux" in head:
        pytest.fail(f"{path} is dynamically linked; install the static one with: {APT} busybox-static",
                    pytrace=False)
    return path


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    dockerd = require_binary("dockerd", f"{APT} docker.io")
    if not Path(DOCKER_CLI).exists():
        pytest.fail(f"{DOCKER_CLI} is not installed; install it with: {APT} docker.io", pytrace=False)
    workdir = _short_tmpdir("dtr-dockerd-")
    engine = DockerEngine(workdir, dockerd).start()
    try:
        yield engine
    finally:
        engine.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def podman() -> Iterator[Podman]:
    binary = require_binary("podman", f"{APT} podman")
    workdir = _short_tmpdir("dtr-podman-")
    try:
        yield Podman(workdir, binary)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def skopeo() -> Iterator[Skopeo]:
    binary = require_binary("skopeo", f"{APT} skopeo")
    workdir = _short_tmpdir("dtr-skopeo-")
    try:
        yield Skopeo(workdir, binary)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def umoci() -> Umoci:
    return Umoci(require_binary("umoci", f"{APT} umoci"))


@pytest.fixture(scope="session")
def reference_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceRegistry]:
    binary = require_binary("docker-registry", f"{APT} docker-registry")
    reg = ReferenceRegistry(tmp_path_factory.mktemp("reference-registry"), binary, free_port()).start()
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
def oci_layout(umoci: Umoci, busybox: str, tmp_path: Path) -> Callable[..., Path]:
    """``make(tag, content, arch="amd64", layout=None)``: an OCI layout image ``layout:tag`` of two layers.

    The first holds busybox, /base.txt and a placeholder /id.txt; the second writes ``content`` to
    /id.txt and deletes /base.txt (a whiteout), so layer order and whiteouts show in the result.
    """
    count = 0

    def make(tag: str, content: str, arch: str = "amd64", layout: Path | None = None) -> Path:
        nonlocal count
        count += 1
        layout = layout or tmp_path / "layout"
        rootfs = make_rootfs(tmp_path / f"rootfs{count}", f"base layer of {content}", busybox)
        (rootfs / "base.txt").write_text("deleted by the top layer\n")
        umoci.build(layout, tag, rootfs, arch, top={"id.txt": content, "base.txt": None})
        return layout

    return make

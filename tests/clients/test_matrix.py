"""Real clients against dtr's /v2 API: every pusher x every puller, multi-arch, big and chunked blobs,
cross-repository mounts, tag lists and the catalog.

An image is "whole" when the registry serves its manifest under the digest the pusher reported,
every blob matches its digest, and the puller ends up with the same manifest, config and layers
(docker and podman also run it and read back the file that makes its layer unique).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.clients.engines import (
    V2,
    DockerEngine,
    Podman,
    Skopeo,
    access_log,
    add_index,
    read_layer_file,
    rootfs_tar,
    verify_dir_image,
)
from tests.oci import OCI_INDEX, digest_of
from tests.servers import DtrProcess

CLIENTS = ["docker", "podman", "skopeo"]
#: Run in pulled images: the top layer's /id.txt, and /base.txt gone (deleted by the top layer).
CHECK_SCRIPT = "cat /id.txt; test -e /base.txt || echo whiteout honoured"


class Clients:
    def __init__(self, docker: DockerEngine, podman: Podman, skopeo: Skopeo, oci_layout: Callable[..., Path],
                 busybox: str, tmp_path: Path) -> None:
        self.docker, self.podman, self.skopeo = docker, podman, skopeo
        self.oci_layout, self.busybox, self.tmp = oci_layout, busybox, tmp_path

    def push(self, client: str, ref: str, content: str) -> str:
        """Build a two-layer image (``oci_layout``) with ``content`` in /id.txt, load it into ``client``
        and push it from there; returns the manifest digest the client reports. The local copy is
        removed, so a later pull downloads."""
        layout = self.oci_layout("push", content)
        if client == "docker":
            self.skopeo.copy(f"oci:{layout}:push", f"docker-daemon:{ref}",
                             "--dest-daemon-host", f"unix://{self.docker.socket}")
            digest, _ = self.docker.push(ref)
            self.docker.remove(ref)
            return digest
        if client == "podman":
            self.skopeo.copy(f"oci:{layout}:push", self.podman.storage_ref(ref))
            digest = self.podman.push(ref)
            self.podman.remove(ref)
            return digest
        return self.skopeo.copy(f"oci:{layout}:push", f"docker://{ref}")

    def pull_and_check(self, client: str, ref: str, digest: str, manifest: dict[str, Any],
                       config: dict[str, Any], content: str) -> None:
        """Pull ``ref`` with ``client`` and check it is the image the registry holds."""
        config_digest = manifest["config"]["digest"]
        if client == "docker":
            assert self.docker.pull(ref) == digest
            info = self.docker.inspect(ref)
            assert info["Id"] == config_digest
            assert info["RootFS"]["Layers"] == config["rootfs"]["diff_ids"]
            assert any(d.endswith(f"@{digest}") for d in info["RepoDigests"]), info["RepoDigests"]
            assert self.docker.run_sh(ref, CHECK_SCRIPT) == content + "whiteout honoured\n"
            self.docker.remove(ref)
        elif client == "podman":
            image_id = self.podman.pull(ref)
            assert f"sha256:{image_id}" == config_digest
            info = self.podman.inspect(ref)
            assert info["Digest"] == digest
            assert info["RootFS"]["Layers"] == config["rootfs"]["diff_ids"]
            assert self.podman.run_sh(ref, CHECK_SCRIPT) == content + "whiteout honoured\n"
            self.podman.remove(ref)
        else:
            out = self.tmp / f"pulled-{uuid.uuid4().hex[:8]}"
            assert self.skopeo.copy(f"docker://{ref}", f"dir:{out}") == digest
            pulled = verify_dir_image(out, digest)
            assert pulled == manifest
            assert len(manifest["layers"]) == 2
            top = out / manifest["layers"][-1]["digest"].split(":")[1]
            assert read_layer_file(top, "id.txt").decode() == content
            assert read_layer_file(top, ".wh.base.txt") == b""


@pytest.fixture
def clients(docker_engine: DockerEngine, podman: Podman, skopeo: Skopeo, oci_layout: Callable[..., Path],
            busybox: str, tmp_path: Path) -> Clients:
    return Clients(docker_engine, podman, skopeo, oci_layout, busybox, tmp_path)


@pytest.mark.parametrize("puller", CLIENTS)
@pytest.mark.parametrize("pusher", CLIENTS)
def test_push_pull_matrix(dtr: DtrProcess, clients: Clients, pusher: str, puller: str, unique: str) -> None:
    repo = f"matrix/{pusher}-{puller}-{unique}"
    ref = f"{dtr.host}/{repo}:v1"
    content = f"pushed by {pusher}, pulled by {puller}, {unique}\n"
    pushed = clients.push(pusher, ref, content)
    v2 = V2(dtr.url)
    digest, manifest, config = v2.check_image(repo, "v1")
    assert digest == pushed
    assert v2.check_image(repo, digest)[0] == digest
    clients.pull_and_check(puller, ref, digest, manifest, config, content)


def test_multi_arch_index(dtr: DtrProcess, clients: Clients, oci_layout: Callable[..., Path],
                          tmp_path: Path, unique: str) -> None:
    """``skopeo copy --all`` of a two-platform OCI index, pulled back whole by skopeo, docker and podman."""
    contents = {"amd64": f"amd64 {unique}\n", "arm64": f"arm64 {unique}\n"}
    layout = oci_layout("amd64", contents["amd64"])
    oci_layout("arm64", contents["arm64"], arch="arm64", layout=layout)
    index_digest = add_index(layout, "multi", {"amd64": ("linux", "amd64"), "arm64": ("linux", "arm64")})
    repo = f"multiarch/{unique}"
    ref = f"{dtr.host}/{repo}:multi"
    assert clients.skopeo.copy(f"oci:{layout}:multi", f"docker://{ref}", "--all") == index_digest

    v2 = V2(dtr.url)
    digest, media_type, raw = v2.manifest(repo, "multi")
    assert (digest, media_type) == (index_digest, OCI_INDEX)
    index = json.loads(raw)
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    children = {}
    for m in index["manifests"]:
        child_digest, manifest, config = v2.check_image(repo, m["digest"])
        assert child_digest == m["digest"]
        assert config["architecture"] == m["platform"]["architecture"]
        children[config["architecture"]] = (child_digest, manifest)

    # skopeo: the whole index back into an OCI layout.
    out = tmp_path / "pulled"
    assert clients.skopeo.copy(f"docker://{ref}", f"oci:{out}:multi", "--all") == index_digest
    blobs = out / "blobs" / "sha256"
    assert (blobs / index_digest.split(":")[1]).read_bytes() == raw
    for arch, (child_digest, manifest) in children.items():
        for desc in [{"digest": child_digest}, manifest["config"], *manifest["layers"]]:
            path = blobs / desc["digest"].split(":")[1]
            assert digest_of(path.read_bytes()) == desc["digest"]
        layer = blobs / manifest["layers"][-1]["digest"].split(":")[1]
        assert read_layer_file(layer, "id.txt").decode() == contents[arch]

    # docker picks this machine's platform and runs it.
    assert clients.docker.pull(ref) == index_digest
    assert clients.docker.inspect(ref)["Id"] == children["amd64"][1]["config"]["digest"]
    assert clients.docker.run_sh(ref, CHECK_SCRIPT) == contents["amd64"] + "whiteout honoured\n"
    clients.docker.remove(ref)
    # podman picks the platform it is asked for.
    image_id = clients.podman.pull(ref, "--arch", "arm64")
    assert f"sha256:{image_id}" == children["arm64"][1]["config"]["digest"]
    clients.podman.remove(ref)


def test_cross_repository_mount_from_docker_push(dtr: DtrProcess, clients: Clients, unique: str) -> None:
    """Pushing a layer the registry already has in another repository mounts it (POST ?mount=&from= -> 201)."""
    docker = clients.docker
    repo_a, repo_b = f"mount/a-{unique}", f"mount/b-{unique}"
    ref_a, ref_b = f"{dtr.host}/{repo_a}:v1", f"{dtr.host}/{repo_b}:v1"
    docker.import_image(rootfs_tar(clients.tmp / "build", f"mount {unique}\n", clients.busybox), ref_a)
    digest_a, _ = docker.push(ref_a)
    docker.docker("tag", ref_a, ref_b)
    digest_b, out = docker.push(ref_b)
    docker.remove(ref_a)
    assert digest_b == digest_a
    assert f"Mounted from {repo_a}" in out, out

    v2 = V2(dtr.url)
    _, manifest, _ = v2.check_image(repo_b, "v1")
    layer = manifest["layers"][0]["digest"]
    b_requests = [(r["method"], r["path"], r["status"]) for r in access_log(dtr.log_path, dtr.url)
                  if r.get("repository") == repo_b]
    # The layer is mounted (the only POST answered 201); only the small config blob is uploaded.
    assert ("POST", f"/v2/{repo_b}/blobs/uploads/", 201) in b_requests, b_requests
    assert len([r for r in b_requests if r[0] == "PATCH"]) <= 1, b_requests
    status, _, _ = v2.request("HEAD", f"/v2/{repo_b}/blobs/{layer}")
    assert status == 200


def test_tag_list_and_catalog(dtr: DtrProcess, clients: Clients, oci_layout: Callable[..., Path],
                              unique: str) -> None:
    """skopeo list-tags sees every tag; the catalog, read page by page, lists the repository."""
    layout = oci_layout("img", f"tags {unique}\n")
    repo = f"tags/{unique}"
    digest = clients.skopeo.copy(f"oci:{layout}:img", f"docker://{dtr.host}/{repo}:first")
    v2 = V2(dtr.url)
    _, media_type, raw = v2.manifest(repo, digest)
    tags = ["first"] + [f"t{i:03d}" for i in range(120)] + ["latest", "v1.0", "v1.0-rc_1"]
    for tag in tags[1:]:
        status, _, body = v2.request("PUT", f"/v2/{repo}/manifests/{tag}", {"Content-Type": media_type}, raw)
        assert status == 201, body
    assert sorted(clients.skopeo.list_tags(f"{dtr.host}/{repo}")) == sorted(tags)

    seen: list[str] = []
    path = "/v2/_catalog?n=2"
    while path:
        status, headers, body = v2.request("GET", path)
        assert status == 200
        seen += json.loads(body)["repositories"]
        link = headers.get("Link", "")
        path = link[1:link.index(">")] if link else ""
    assert repo in seen
    assert seen == sorted(seen)
    assert len(seen) == len(set(seen))


# -- the HTTP API directly -----------------------------------------------------------------------

GIB = 1 << 30
CHUNK = 1 << 20


async def test_one_gib_blob(dtr: DtrProcess, http: aiohttp.ClientSession, repo_name: str,
                            record_property: Callable[[str, object], None]) -> None:
    """A 1 GiB blob pushed as one streaming PATCH and pulled back, sha256 checked both ways."""
    block = bytearray(os.urandom(CHUNK))
    pushed = hashlib.sha256()

    async def body() -> AsyncIterator[bytes]:
        for i in range(GIB // CHUNK):
            block[:8] = i.to_bytes(8, "big")  # every MiB differs
            chunk = bytes(block)
            pushed.update(chunk)
            yield chunk

    async with http.post(f"{dtr.url}/v2/{repo_name}/blobs/uploads/") as r:
        assert r.status == 202
        location = r.headers["Location"]
    t0 = time.monotonic()
    async with http.patch(f"{dtr.url}{location}", data=body(),
                          headers={"Content-Type": "application/octet-stream"}) as r:
        assert r.status == 202, await r.text()
        assert r.headers["Range"] == f"0-{GIB - 1}"
        location = r.headers["Location"]
    digest = f"sha256:{pushed.hexdigest()}"
    async with http.put(f"{dtr.url}{location}", params={"digest": digest}) as r:
        assert r.status == 201, await r.text()
    push_s = time.monotonic() - t0

    async with http.head(f"{dtr.url}/v2/{repo_name}/blobs/{digest}") as r:
        assert r.status == 200
        assert int(r.headers["Content-Length"]) == GIB
    pulled, size = hashlib.sha256(), 0
    t0 = time.monotonic()
    async with http.get(f"{dtr.url}/v2/{repo_name}/blobs/{digest}") as r:
        assert r.status == 200
        async for chunk in r.content.iter_chunked(CHUNK):
            pulled.update(chunk)
            size += len(chunk)
    pull_s = time.monotonic() - t0
    assert size == GIB
    assert f"sha256:{pulled.hexdigest()}" == digest
    record_property("push_MBps", round(GIB / push_s / 1e6, 1))
    record_property("pull_MBps", round(GIB / pull_s / 1e6, 1))
    print(f"\n1 GiB blob: push {GIB / push_s / 1e6:.0f} MB/s ({push_s:.1f}s), "
          f"pull {GIB / pull_s / 1e6:.0f} MB/s ({pull_s:.1f}s)")


async def test_hundreds_of_patch_chunks(dtr: DtrProcess, http: aiohttp.ClientSession, repo_name: str) -> None:
    """One upload sent as 400 PATCHes with Content-Range, each acknowledged with the new Range."""
    rnd = os.urandom(8)
    chunks = [hashlib.sha256(rnd + i.to_bytes(4, "big")).digest() * (1 + i % 97) for i in range(400)]
    data = b"".join(chunks)
    async with http.post(f"{dtr.url}/v2/{repo_name}/blobs/uploads/") as r:
        assert r.status == 202
        location = r.headers["Location"]
    offset = 0
    for chunk in chunks:
        end = offset + len(chunk) - 1
        async with http.patch(f"{dtr.url}{location}", data=chunk, headers={
                "Content-Type": "application/octet-stream", "Content-Range": f"{offset}-{end}"}) as r:
            assert r.status == 202, await r.text()
            assert r.headers["Range"] == f"0-{end}"
            location = r.headers["Location"]
        offset = end + 1
    async with http.get(f"{dtr.url}{location}") as r:
        assert r.status == 204
        assert r.headers["Range"] == f"0-{len(data) - 1}"
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    async with http.put(f"{dtr.url}{location}", params={"digest": digest}) as r:
        assert r.status == 201, await r.text()
        assert r.headers["Docker-Content-Digest"] == digest
    async with http.get(f"{dtr.url}/v2/{repo_name}/blobs/{digest}") as r:
        assert r.status == 200
        assert await r.read() == data

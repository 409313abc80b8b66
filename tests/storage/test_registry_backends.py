"""The registry on each of these backends, end to end with real clients.

A ``dtr serve`` process per backend (Azure on Azurite, GCS on fake-gcs-server, NFS rules on a
local directory) with ``storage.redirect: true``; skopeo pushes a small OCI image built with
umoci (one incompressible layer) and pulls it back, following the 307 to a SAS / signed URL
where the backend has one. Then a chunked upload over several PATCH requests, a cross-repository
mount and deletes. Push and pull rates are printed (run with ``-s``): numbers, not assertions.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from tests.clients.conftest import busybox, docker_engine  # noqa: F401  (session fixtures)
from tests.clients.engines import APT, DockerEngine, Skopeo, Umoci, access_log, rootfs_tar, sha256_file
from tests.servers import DtrProcess, require_binary
from tests.storage.sections import storage_section

BACKENDS = ["azure", "gcs", "nfs", "s3-swift", "s3-moto", "cleversafe", "swift"]

LAYER_MIB = 32


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, int]:
    """An OCI layout ``img:1`` with one layer of random bytes; returns (layout, layer digest, layer size)."""
    umoci = Umoci(require_binary("umoci", f"{APT} umoci"))
    work = tmp_path_factory.mktemp("image")
    rootfs = work / "rootfs"
    rootfs.mkdir()
    (rootfs / "data.bin").write_bytes(os.urandom(LAYER_MIB << 20))
    (rootfs / "id.txt").write_text("storage backends\n")
    layout = work / "layout"
    umoci.build(layout, "1", rootfs)
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    manifest = json.loads((layout / "blobs" / "sha256" / manifest_digest.split(":")[1]).read_text())
    layer = manifest["layers"][0]
    return layout, layer["digest"], layer["size"]


@pytest.fixture(scope="module")
def skopeo(tmp_path_factory: pytest.TempPathFactory) -> Skopeo:
    return Skopeo(tmp_path_factory.mktemp("skopeo"), require_binary("skopeo", f"{APT} skopeo"))


@pytest.mark.parametrize("backend", BACKENDS)
async def test_push_pull_on_backend(backend: str, request: pytest.FixtureRequest, tmp_path: Path,
                                    dtr_factory: Callable[..., DtrProcess], image: tuple[Path, str, int],
                                    skopeo: Skopeo) -> None:
    layout, layer_digest, layer_size = image
    dtr = dtr_factory({"storage": {**storage_section(backend, request), "redirect": True}})
    repo = f"{dtr.host}/backends/{backend}"

    t0 = time.perf_counter()
    skopeo.copy(f"oci:{layout}:1", f"docker://{repo}:1")
    push_s = time.perf_counter() - t0
    out = tmp_path / "pulled"
    t0 = time.perf_counter()
    skopeo.copy(f"docker://{repo}:1", f"dir:{out}")
    pull_s = time.perf_counter() - t0
    assert sha256_file(out / layer_digest.split(":")[1]) == layer_digest
    mib = layer_size / (1 << 20)
    print(f"\n[{backend}] layer {mib:.1f} MiB: push {mib / push_s:.1f} MiB/s ({push_s:.2f} s), "
          f"pull {mib / pull_s:.1f} MiB/s ({pull_s:.2f} s)")

    blob_url = f"{dtr.url}/v2/backends/{backend}/blobs/{layer_digest}"
    async with aiohttp.ClientSession() as http:
        # storage.redirect: a 307 to the backend where it can sign a URL, bytes from dtr otherwise
        async with http.get(blob_url, allow_redirects=False) as r:
            if backend == "nfs":
                assert r.status == 200
            else:
                assert r.status == 307, await r.text()
                location = r.headers["Location"]
                assert location.startswith("http://127.0.0.1:") and f":{dtr.port}/" not in location
        async with http.get(blob_url) as r:
            assert r.status == 200
            h = hashlib.sha256()
            async for chunk in r.content.iter_chunked(1 << 20):
                h.update(chunk)
            assert f"sha256:{h.hexdigest()}" == layer_digest

        # a chunked upload: three PATCH requests crossing part boundaries, then PUT with the digest
        data = os.urandom(3 * (1 << 20) + 12345)
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        async with http.post(f"{dtr.url}/v2/backends/{backend}/blobs/uploads/") as r:
            assert r.status == 202, await r.text()
            location = r.headers["Location"]
        cuts = [0, 700_000, 2 * (1 << 20) + 1, len(data)]
        for start, end in itertools.pairwise(cuts):
            url = location if location.startswith("http") else dtr.url + location
            async with http.patch(url, data=data[start:end], headers={
                    "Content-Type": "application/octet-stream", "Content-Range": f"{start}-{end - 1}"}) as r:
                assert r.status == 202, await r.text()
                assert r.headers["Range"] == f"0-{end - 1}"
                location = r.headers["Location"]
        url = location if location.startswith("http") else dtr.url + location
        sep = "&" if "?" in url else "?"
        async with http.put(f"{url}{sep}digest={digest}") as r:
            assert r.status == 201, await r.text()
        async with http.get(f"{dtr.url}/v2/backends/{backend}/blobs/{digest}") as r:
            assert r.status == 200
            assert await r.read() == data

        # a cross-repository mount, then deletes
        other = f"backends/{backend}-copy"
        async with http.post(f"{dtr.url}/v2/{other}/blobs/uploads/?mount={digest}&from=backends/{backend}") as r:
            assert r.status == 201, await r.text()
        async with http.head(f"{dtr.url}/v2/{other}/blobs/{digest}") as r:
            assert r.status == 200
        async with http.delete(f"{dtr.url}/v2/{other}/blobs/{digest}") as r:
            assert r.status == 202
        async with http.head(f"{dtr.url}/v2/{other}/blobs/{digest}") as r:
            assert r.status == 404
        async with http.get(f"{dtr.url}/v2/backends/{backend}/blobs/{digest}") as r:
            assert r.status == 200  # still linked in the first repository


@pytest.mark.parametrize("backend", ["s3-swift", "swift"])
def test_docker_and_skopeo_follow_redirects(backend: str, request: pytest.FixtureRequest, tmp_path: Path,
                                            dtr_factory: Callable[..., DtrProcess], skopeo: Skopeo) -> None:
    """docker pull and skopeo copy fetch layers from the presigned / temp URL dtr redirects them to."""
    engine: DockerEngine = request.getfixturevalue("docker_engine")
    busybox_bin: str = request.getfixturevalue("busybox")
    dtr = dtr_factory({"storage": {**storage_section(backend, request), "redirect": True}})
    ref = f"{dtr.host}/redirect/{backend}:1"
    content = f"redirected {backend} {uuid.uuid4().hex}\n"
    engine.import_image(rootfs_tar(tmp_path / "build", content, busybox_bin), ref)
    digest, _ = engine.push(ref)
    engine.remove(ref)
    assert engine.pull(ref) == digest
    assert engine.run_sh(ref, "cat /id.txt") == content
    engine.remove(ref)
    assert skopeo.copy(f"docker://{ref}", f"dir:{tmp_path / 'pulled'}") == digest
    blob_gets = [r for r in access_log(dtr.log_path, dtr.url) if r["method"] == "GET" and "/blobs/sha256:" in r["path"]]
    assert len(blob_gets) >= 4 and {r["status"] for r in blob_gets} == {307}, blob_gets

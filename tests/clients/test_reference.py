"""dtr next to the reference registry (Go distribution 2.8) where the OCI spec leaves room.

The same requests go to both; what matters to clients (status codes, error codes, the headers a
client follows) must be the same. Where the reference registry misses parts of OCI 1.1, dtr is
tested on its own elsewhere; nothing here copies those gaps.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from multidict import CIMultiDict

from tests.clients.engines import DockerEngine, ReferenceRegistry, Skopeo, access_log, rootfs_tar, verify_dir_image
from tests.oci import OCI_MANIFEST, digest_of, image
from tests.servers import DtrProcess

_COMBINED = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3}) ')


def _kind(path: str) -> str:
    path = path.split("?")[0]
    if "/blobs/uploads/" in path:
        return "upload" if not path.endswith("/blobs/uploads/") else "uploads"
    if "/blobs/" in path:
        return "blob"
    if "/manifests/" in path:
        return "manifest"
    return path


def _reference_requests(reg: ReferenceRegistry, repo: str) -> Counter[tuple[str, str, int]]:
    """(method, endpoint kind, status) of the reference registry's access log lines for ``repo``."""
    out: Counter[tuple[str, str, int]] = Counter()
    for line in reg.log_path.read_text(errors="replace").splitlines():
        m = _COMBINED.search(line)
        if m and m["path"].startswith(f"/v2/{repo}/"):
            out[(m["method"], _kind(m["path"]), int(m["status"]))] += 1
    return out


def _dtr_requests(dtr: DtrProcess, repo: str) -> Counter[tuple[str, str, int]]:
    return Counter((r["method"], _kind(r["path"]), r["status"]) for r in access_log(dtr.log_path, dtr.url)
                   if r.get("repository") == repo)


def test_docker_push_pattern_same_on_both(dtr: DtrProcess, reference_registry: ReferenceRegistry,
                                          docker_engine: DockerEngine, skopeo: Skopeo, busybox: str,
                                          tmp_path: Path, unique: str) -> None:
    """docker push sends the same requests to both and gets the same answers; the same manifest
    bytes come back from both.

    docker remembers which layers a registry has, so the request pattern is compared on two images
    that are new to their registry; then the dtr image also goes to the reference registry.
    """
    repo = f"compare/docker-{unique}"
    ref_dtr, ref_go = f"{dtr.host}/{repo}:v1", f"{reference_registry.host}/{repo}:v1"
    docker_engine.import_image(rootfs_tar(tmp_path / "go", f"compare go {unique}\n", busybox), ref_go)
    docker_engine.push(ref_go)
    docker_engine.remove(ref_go)
    docker_engine.import_image(rootfs_tar(tmp_path / "dtr", f"compare dtr {unique}\n", busybox), ref_dtr)
    digest_dtr, _ = docker_engine.push(ref_dtr)

    seen_dtr, seen_go = _dtr_requests(dtr, repo), _reference_requests(reference_registry, repo)
    assert seen_dtr == seen_go
    assert seen_dtr[("PUT", "manifest", 201)] == 1

    docker_engine.docker("tag", ref_dtr, ref_go)
    digest_go, _ = docker_engine.push(ref_go)
    docker_engine.remove(ref_dtr)
    assert digest_go == digest_dtr
    for i, ref in enumerate((ref_dtr, ref_go)):
        out = tmp_path / f"pulled{i}"
        assert skopeo.copy(f"docker://{ref}", f"dir:{out}") == digest_dtr
        verify_dir_image(out, digest_dtr)
    pulled = [(tmp_path / f"pulled{i}" / "manifest.json").read_bytes() for i in (0, 1)]
    assert pulled[0] == pulled[1]
    assert docker_engine.pull(ref_dtr) == digest_dtr
    docker_engine.remove(ref_dtr)


async def _observe(http: aiohttp.ClientSession, base: str, repo: str, seed: bytes) -> list[Any]:
    """One script of requests where the spec is silent or loose; returns what a client would act on."""
    out: list[Any] = []

    async def call(method: str, path: str, **kw: Any) -> tuple[int, CIMultiDict[str], bytes]:
        url = path if path.startswith("http") else f"{base}{path}"
        async with http.request(method, url, **kw) as r:
            return r.status, CIMultiDict(r.headers), await r.read()

    def code(body: bytes) -> str | None:
        try:
            return str(json.loads(body)["errors"][0]["code"])
        except (ValueError, KeyError, IndexError, TypeError):
            return None

    data = hashlib.sha256(seed).digest() * 1000
    digest = digest_of(data)

    # Upload status before and after a streamed PATCH (no Content-Range).
    status, h, _ = await call("POST", f"/v2/{repo}/blobs/uploads/")
    loc = h["Location"]
    out.append(("post", status, "Docker-Upload-UUID" in h))
    status, h, _ = await call("GET", loc)
    out.append(("status empty", status, h.get("Range")))
    status, h, _ = await call("PATCH", loc, data=data[:10000], headers={"Content-Type": "application/octet-stream"})
    loc = h["Location"]
    out.append(("patch", status, h.get("Range")))
    status, h, _ = await call("GET", loc)
    out.append(("status", status, h.get("Range")))
    # The rest with a Content-Range, then a wrong digest: rejected, and the upload is gone.
    status, h, _ = await call("PATCH", loc, data=data[10000:],
                              headers={"Content-Range": f"10000-{len(data) - 1}",
                                       "Content-Type": "application/octet-stream"})
    loc = h.get("Location", loc)
    out.append(("patch rest", status, h.get("Range")))
    wrong = digest_of(b'wrong' + seed)
    status, h, body = await call("PUT", loc, params={"digest": wrong})
    out.append(("put wrong digest", status, code(body)))
    status, h, body = await call("GET", loc)
    out.append(("status after wrong digest", status, code(body)))
    status, h, body = await call("HEAD", f"/v2/{repo}/blobs/{wrong}")
    out.append(("head wrong", status))

    # POST then PUT with the whole body (Go distribution answers a single POST ?digest= with 202), then a
    # ranged GET.
    status, h, _ = await call("POST", f"/v2/{repo}/blobs/uploads/")
    status, h, _ = await call("PUT", h["Location"], params={"digest": digest}, data=data,
                              headers={"Content-Type": "application/octet-stream"})
    out.append(("post-put", status, h.get("Docker-Content-Digest")))
    status, h, body = await call("GET", f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=100-199"})
    out.append(("ranged get", status, body == data[100:200], h.get("Content-Range")))

    # Mount from a repository that lacks the blob: an ordinary upload starts instead.
    status, h, _ = await call("POST", f"/v2/{repo}-other/blobs/uploads/",
                              params={"mount": digest, "from": f"{repo}-missing"})
    out.append(("mount from missing", status, "/blobs/uploads/" in h.get("Location", "")))
    status, h, _ = await call("POST", f"/v2/{repo}-other/blobs/uploads/", params={"mount": digest, "from": repo})
    out.append(("mount", status, h.get("Docker-Content-Digest")))

    # Manifests: missing blob, unknown tag, unknown repository's tags.
    config = b"{}"
    config_digest = digest_of(config)
    manifest = image(config, [data])
    ct = {"Content-Type": OCI_MANIFEST}
    status, h, body = await call("PUT", f"/v2/{repo}/manifests/v1", data=manifest, headers=ct)
    out.append(("manifest missing config", status, code(body)))
    status, h, _ = await call("POST", f"/v2/{repo}/blobs/uploads/")
    await call("PUT", h["Location"], params={"digest": config_digest}, data=config,
               headers={"Content-Type": "application/octet-stream"})
    status, h, body = await call("PUT", f"/v2/{repo}/manifests/v1", data=manifest, headers=ct)
    out.append(("manifest", status, h.get("Docker-Content-Digest")))
    status, h, body = await call("HEAD", f"/v2/{repo}/manifests/v2")
    out.append(("unknown tag", status))
    status, h, body = await call("GET", f"/v2/{repo}-nope/tags/list")
    out.append(("unknown repo tags", status, code(body)))
    status, h, body = await call("HEAD", f"/v2/{repo}-other/manifests/v1")
    out.append(("manifest in other repo", status))
    return out


async def test_http_behaviour_matches_reference(dtr: DtrProcess, reference_registry: ReferenceRegistry,
                                                http: aiohttp.ClientSession, unique: str) -> None:
    repo = f"compare/http-{unique}"
    seed = unique.encode()
    seen_dtr = await _observe(http, dtr.url, repo, seed)
    seen_go = await _observe(http, reference_registry.url, repo, seed)
    # The one deliberate difference: dtr drops an upload whose digest did not match (nothing is left
    # behind, the client starts over); Go distribution keeps it open.
    after = "status after wrong digest"
    assert [o for o in seen_dtr if o[0] == after] == [(after, 404, "BLOB_UPLOAD_UNKNOWN")]
    assert [o for o in seen_go if o[0] == after] == [(after, 204, None)]
    assert [o for o in seen_dtr if o[0] != after] == [o for o in seen_go if o[0] != after]

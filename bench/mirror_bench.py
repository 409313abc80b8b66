"""Push mirroring throughput: dtr pushing an image to Go's reference registry (a push mirroring
policy run on demand) beside ``skopeo copy`` of the same image between the same two servers, in one run.

    .venv/bin/python -m bench.mirror_bench [--size 1GiB] [--layers 4] [--database-url URL]

The image is ``--layers`` layers of random bytes (``--size`` in all) and a config, pushed into dtr
(auth off) from an OCI layout with skopeo. Then, to two fresh reference registries (so neither copy
finds the other's blobs): dtr's ``push_mirror`` job (its own start and end times), and
``skopeo copy docker://dtr/... docker://reference/...`` (wall clock). Prints MB/s (10^6 bytes) of
each and dtr / skopeo. Without ``--database-url`` an embedded PostgreSQL is started in a temp dir.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.targets import databases
from tests.auth.client import Client
from tests.clients.engines import ReferenceRegistry
from tests.servers import DtrProcess, free_port

LAYER = "application/vnd.oci.image.layer.v1.tar"
PIECE = 4 << 20


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}


def parse_size(text: str) -> int:
    """Bytes in ``1GiB``, ``256MiB``, ``500MB``, ``1048576``."""
    m = re.fullmatch(r"\s*(\d+)\s*([kmg]i?b|b)?\s*", text.lower())
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1GiB, 256MiB, 1048576)")
    return int(m.group(1)) * _UNITS[m.group(2) or ""]


def _blob(layout: Path, data_or_size: bytes | int) -> dict[str, object]:
    """Write a blob (``bytes``, or that many random bytes) into the layout; its descriptor."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    tmp = blobs / "tmp"
    h = hashlib.sha256()
    with open(tmp, "wb") as f:
        if isinstance(data_or_size, bytes):
            f.write(data_or_size)
            h.update(data_or_size)
            size = len(data_or_size)
        else:
            size, left = data_or_size, data_or_size
            while left:
                piece = os.urandom(min(PIECE, left))
                f.write(piece)
                h.update(piece)
                left -= len(piece)
    tmp.rename(blobs / h.hexdigest())
    return {"digest": f"sha256:{h.hexdigest()}", "size": size}


def make_layout(layout: Path, size: int, layers: int) -> None:
    """An OCI layout ``layout:1``: ``layers`` random layers of ``size`` bytes in all."""
    descs = [{"mediaType": LAYER, **_blob(layout, size // layers + (1 if i < size % layers else 0))}
             for i in range(layers)]
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descs]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **_blob(layout, config)},
                           "layers": descs}).encode()
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                **_blob(layout, manifest),
                                                "annotations": {"org.opencontainers.image.ref.name": "1"}}]}
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')


def skopeo_copy(work: Path, src: str, dest: str) -> float:
    """Seconds ``skopeo copy`` takes (a fresh auth file and blob cache)."""
    env = {**os.environ, "REGISTRY_AUTH_FILE": str(work / "auth.json"), "TMPDIR": str(work), "HOME": str(work)}
    (work / "auth.json").write_text('{"auths": {}}')
    start = time.perf_counter()
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false", src, dest],
                   env=env, check=True)
    return time.perf_counter() - start


def mirror(dtr: DtrProcess, remote: ReferenceRegistry, repo: str) -> float:
    """Seconds dtr's push_mirror job of ``repo:1`` to ``remote`` ran (its start to end time)."""
    api = Client(dtr.url).api
    policy = api("POST", f"/repositories/{repo}/pushMirroringPolicies", None, {
        "remoteHost": remote.url, "remoteRepository": "bench/mirror", "enabled": False}, expect=201).json()
    job = api("POST", f"/repositories/{repo}/pushMirroringPolicies/{policy['id']}/run", expect=202).json()
    while job["status"] not in ("done", "error", "cancel"):
        time.sleep(0.2)
        job = api("GET", f"/jobs/{job['id']}", expect=200).json()
    if job["status"] != "done":
        raise SystemExit(f"the push_mirror job ended {job['status']}: {job['error']}")
    start, end = (dt.datetime.fromisoformat(job[k].replace("Z", "+00:00")) for k in ("startTime", "endTime"))
    return (end - start).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1GiB", type=parse_size, help="the image's size in all (1GiB, 256MiB, bytes)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--database-url", help="a PostgreSQL server URL (default: an embedded one)")
    args = parser.parse_args()
    size: int = args.size
    for binary in ("docker-registry", "skopeo"):
        if shutil.which(binary) is None:
            raise SystemExit(f"{binary} is missing: run scripts/install-test-deps.sh")
    with tempfile.TemporaryDirectory(prefix="mirror-bench-", dir="/tmp") as tmp, \
            databases(args.database_url, Path(tmp), "mirror_bench") as (database_url,):
        work = Path(tmp)
        make_layout(work / "layout", size, args.layers)
        dtr = DtrProcess(work / "dtr", database_url, {"log": {"level": "warning"}}).start()
        binary = shutil.which("docker-registry") or ""
        remotes = [ReferenceRegistry(work / f"registry{i}", binary, free_port()).start() for i in range(2)]
        try:
            skopeo_copy(work, f"oci:{work / 'layout'}:1", f"docker://{dtr.host}/bench/src:1")
            dtr_s = mirror(dtr, remotes[0], "bench/src")
            skopeo_s = skopeo_copy(work, f"docker://{dtr.host}/bench/src:1", f"docker://{remotes[1].host}/bench/copy:1")
        finally:
            for r in remotes:
                r.stop()
            dtr.stop()
    mb = size / 1e6
    print(f"one image of {args.layers} random layers, {size} bytes, dtr -> reference registry")
    print(f"{'copier':<22} {'seconds':>8} {'MB/s':>8}")
    print(f"{'dtr push mirroring':<22} {dtr_s:>8.2f} {mb / dtr_s:>8.1f}")
    print(f"{'skopeo copy':<22} {skopeo_s:>8.2f} {mb / skopeo_s:>8.1f}")
    print(f"dtr / skopeo throughput: {skopeo_s / dtr_s:.2f}")


if __name__ == "__main__":
    main()

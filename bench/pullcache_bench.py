"""The pull-through cache: pulls through dtr's cache namespace against pulls of the same image
pushed to dtr directly and pulls from the upstream itself, in one run.

    .venv/bin/python -m bench.pullcache_bench [--rounds 5] [--layer-mib 32] [--database-url URL]

Each round makes a new image (a config and one random layer of ``--layer-mib`` MiB), pushes it with
skopeo to the upstream (Go distribution, ``docker-registry``) and to dtr directly, then times
``skopeo copy docker://… dir:`` of: the upstream directly; dtr's cache namespace (``miss``: fetched
from the upstream while served); the cache again once stored (``hit``); the direct push (``local``).
dtr runs with auth off. Prints the median seconds and the ratios hit / local and miss / upstream.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.targets import databases
from tests.clients.engines import ReferenceRegistry, Skopeo
from tests.servers import DtrProcess, free_port

STEPS = ("upstream", "miss", "hit", "local")


def _layout(path: Path, layer_mib: int) -> None:
    """An OCI layout ``path:1``: a config and one random layer."""
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes, media_type: str) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    with open("/dev/urandom", "rb") as f:
        layer = put(f.read(layer_mib << 20), "application/vnd.oci.image.layer.v1.tar")
    config = put(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [
        layer["digest"]]}}).encode(), "application/vnd.oci.image.config.v1+json")
    manifest = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": config, "layers": [layer]}).encode(),
                   "application/vnd.oci.image.manifest.v1+json")
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {**manifest, "annotations": {"org.opencontainers.image.ref.name": "1"}}]}))


def _api(dtr: DtrProcess, method: str, path: str, body: object) -> None:
    req = urllib.request.Request(f"{dtr.url}/api/v0{path}", data=json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30):
        pass


def _stored(dtr: DtrProcess, repo: str) -> bool:
    try:
        with urllib.request.urlopen(f"{dtr.url}/v2/{repo}/tags/list", timeout=30) as r:
            return "1" in (json.loads(r.read()).get("tags") or [])
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--layer-mib", type=int, default=32)
    parser.add_argument("--database-url", help="a PostgreSQL server URL (default: an embedded one)")
    args = parser.parse_args()
    for binary in ("docker-registry", "skopeo"):
        if shutil.which(binary) is None:
            raise SystemExit(f"{binary} is missing: run scripts/install-test-deps.sh")
    times: dict[str, list[float]] = {step: [] for step in STEPS}
    with tempfile.TemporaryDirectory(prefix="pullcache-bench-", dir="/tmp") as tmp, \
            databases(args.database_url, Path(tmp), "pullcache_bench") as (database_url,):
        work = Path(tmp)
        dtr = DtrProcess(work / "dtr", database_url, {"log": {"level": "warning"}}).start()
        upstream = ReferenceRegistry(work / "upstream", shutil.which("docker-registry") or "", free_port()).start()
        skopeo = Skopeo(work / "skopeo", shutil.which("skopeo") or "")
        try:
            for org in ("cache", "local"):
                _api(dtr, "POST", "/accounts", {"name": org, "isOrg": True})
            _api(dtr, "PUT", "/namespaces/cache/pullThroughCache", {"upstream": upstream.url,
                                                                   "upstreamNamespace": "bench"})
            for i in range(args.rounds):
                _layout(work / f"img{i}", args.layer_mib)
                skopeo.copy(f"oci:{work}/img{i}:1", f"docker://{upstream.host}/bench/img{i}:1")
                skopeo.copy(f"oci:{work}/img{i}:1", f"docker://{dtr.host}/local/img{i}:1")
                for step, source in (("upstream", f"{upstream.host}/bench"), ("miss", f"{dtr.host}/cache"),
                                     ("hit", f"{dtr.host}/cache"), ("local", f"{dtr.host}/local")):
                    while step == "hit" and not _stored(dtr, f"cache/img{i}"):
                        time.sleep(0.1)
                    out = work / f"out-{step}-{i}"
                    start = time.perf_counter()
                    skopeo.copy(f"docker://{source}/img{i}:1", f"dir:{out}")
                    times[step].append(time.perf_counter() - start)
                    shutil.rmtree(out)
        finally:
            upstream.stop()
            dtr.stop()
    med = {step: statistics.median(v) for step, v in times.items()}
    print(f"{args.rounds} rounds, one image of a {args.layer_mib} MiB layer each; median seconds per pull (skopeo)")
    for step in STEPS:
        print(f"{step:<9} {med[step]:>8.3f}")
    print(f"hit / local      {med['hit'] / med['local']:>6.2f}")
    print(f"miss / upstream  {med['miss'] / med['upstream']:>6.2f}")


if __name__ == "__main__":
    main()

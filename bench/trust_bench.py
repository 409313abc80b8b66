"""Docker Content Trust with the real Docker client: dtr (registry and built-in Notary on one TLS port)
beside Debian's notary-server 0.7 and the reference registry (docker-registry), in one run.

    .venv/bin/python -m bench.trust_bench [--repos 8] [--database-url URL]

Each target gets ``--repos`` new repositories of a small busybox image each (a unique file, so no
layer is shared). Per repository, timed with the Debian docker CLI (20.10) and a private dockerd:

- ``push new``: ``DOCKER_CONTENT_TRUST=1 docker push`` of tag 1 (a new trust repository: root and
  targets keys made by the client, root and targets published, server snapshot and timestamp);
- ``push tag``: tag 2 of the same image (an update of targets, a new server snapshot and timestamp);
- ``pull``: a trusted pull of tag 1 after the image is removed locally (timestamp, snapshot and targets
  read, then the manifest and blob by digest).

dtr runs with auth on (docker logs in; every trust request carries a token), notary-server and the
reference registry without auth. Prints the median seconds per step for each and dtr / reference.
Without ``--database-url`` an embedded PostgreSQL is started in a temp dir.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from bench.targets import databases
from tests.auth.constants import ADMIN_AUTH, auth_config
from tests.clients.engines import DockerEngine, ReferenceRegistry, rootfs_tar
from tests.servers import DtrProcess, free_port
from tests.trust.notary_tools import DockerTrust, NotaryServer, TestCA, create_repositories_on_push

STEPS = ("push new", "push tag", "pull")


def _dtr(workdir: Path, database_url: str, ca: TestCA) -> DtrProcess:
    ping = free_port()
    proc = DtrProcess(workdir, database_url, {
        **auth_config(), "log": {"level": "warning"},
        "http": {"tls": "auto", "tls_ca": {"certificate": str(ca.cert_path), "key": str(ca.key_path)}},
        "metrics": {"listen": f"127.0.0.1:{ping}"},
    })
    proc.url = f"http://127.0.0.1:{ping}"
    proc.start()
    proc.url = f"https://{proc.host}"
    create_repositories_on_push(proc.url, ca, ADMIN_AUTH)
    return proc


def _measure(engine: DockerEngine, docker: DockerTrust, registry: str, images: list[str]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {step: [] for step in STEPS}
    repos = [f"{registry}/admin/bench-{uuid.uuid4().hex[:8]}" for _ in images]
    for image, repo in zip(images, repos, strict=True):
        engine.docker("tag", image, f"{repo}:1")
        engine.docker("tag", image, f"{repo}:2")
        start = time.perf_counter()
        docker.push(f"{repo}:1")
        times["push new"].append(time.perf_counter() - start)
        start = time.perf_counter()
        docker.push(f"{repo}:2")
        times["push tag"].append(time.perf_counter() - start)
    for repo in repos:
        engine.docker("rmi", f"{repo}:1", f"{repo}:2")
    for image, repo in zip(images, repos, strict=True):
        engine.docker("rmi", "-f", engine.inspect(image)["Id"])
        start = time.perf_counter()
        docker.pull(f"{repo}:1")
        times["pull"].append(time.perf_counter() - start)
        engine.docker("tag", f"{repo}:1", image)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repos", type=int, default=8)
    parser.add_argument("--database-url", help="a PostgreSQL server URL (default: an embedded one)")
    args = parser.parse_args()
    for binary in ("dockerd", "notary-server", "docker-registry", "busybox"):
        if shutil.which(binary) is None:
            raise SystemExit(f"{binary} is missing: run scripts/install-test-deps.sh")
    with tempfile.TemporaryDirectory(prefix="trust-bench-", dir="/tmp") as tmp, \
            databases(args.database_url, Path(tmp), "trust_bench") as (database_url,):
        work = Path(tmp)
        ca = TestCA(work / "ca")
        dtr = _dtr(work / "dtr", database_url, ca)
        notary = NotaryServer(work / "notary", shutil.which("notary-server") or "", free_port(), ca).start()
        reference = ReferenceRegistry(work / "registry", shutil.which("docker-registry") or "", free_port()).start()
        engine = DockerEngine(work / "d", shutil.which("dockerd") or "").start()
        try:
            images = []
            for i in range(args.repos):
                (work / f"img{i}").mkdir()
                images.append(f"bench/trust{i}:src")
                engine.import_image(rootfs_tar(work / f"img{i}", f"trust bench {i} {uuid.uuid4()}"), images[-1])
            on_dtr = DockerTrust(engine, work / "cfg-dtr", ca.cert_path, [dtr.host])
            on_dtr.login(dtr.host, *ADMIN_AUTH)
            on_ref = DockerTrust(engine, work / "cfg-ref", ca.cert_path, [notary.host], server=notary.url)
            results = {"dtr": _measure(engine, on_dtr, dtr.host, images),
                       "reference": _measure(engine, on_ref, reference.host, images)}
        finally:
            engine.stop()
            reference.stop()
            notary.stop()
            dtr.stop()
    print(f"{args.repos} repositories, one small image each; median seconds per step (docker CLI 20.10)")
    print(f"{'step':<10} {'dtr':>8} {'notary-server + registry':>26} {'dtr / reference':>16}")
    for step in STEPS:
        d, r = statistics.median(results["dtr"][step]), statistics.median(results["reference"][step])
        print(f"{step:<10} {d:>8.3f} {r:>26.3f} {d / r:>16.2f}")
    total_d = sum(sum(v) for v in results["dtr"].values())
    total_r = sum(sum(v) for v in results["reference"].values())
    print(f"{'total':<10} {total_d:>8.2f} {total_r:>26.2f} {total_d / total_r:>16.2f}")


if __name__ == "__main__":
    main()

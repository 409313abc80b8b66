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

Every server speaks TLS with certificates of one test CA. notary-server and the reference registry
run without auth, so dtr runs twice: without auth (the like-for-like comparison) and with auth on
(docker logs in; every registry and trust request carries a token: two more round-trips per
docker command, and the token endpoint's work). Prints the median seconds per step of each and
dtr / reference. Without ``--database-url`` an embedded PostgreSQL is started in a temp dir.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from bench.targets import databases
from tests.auth.constants import ADMIN_AUTH, auth_config
from tests.clients.engines import DockerEngine, ReferenceRegistry, rootfs_tar
from tests.servers import DtrProcess, free_port
from tests.trust.notary_tools import DockerTrust, NotaryServer, TestCA, create_repositories_on_push, wait_https

STEPS = ("push new", "push tag", "pull")


def _dtr(workdir: Path, database_url: str, ca: TestCA, auth: bool) -> DtrProcess:
    ping = free_port()
    proc = DtrProcess(workdir, database_url, {
        **(auth_config() if auth else {}), "log": {"level": "warning"},
        "http": {"tls": "auto", "tls_ca": {"certificate": str(ca.cert_path), "key": str(ca.key_path)}},
        "metrics": {"listen": f"127.0.0.1:{ping}"},
    })
    proc.url = f"http://127.0.0.1:{ping}"
    proc.start()
    proc.url = f"https://{proc.host}"
    if auth:  # without auth, any push creates its repository
        create_repositories_on_push(proc.url, ca, ADMIN_AUTH)
    return proc


def _reference(workdir: Path, ca: TestCA) -> ReferenceRegistry:
    """The reference registry over TLS (a certificate of ``ca``), as dtr and notary-server are."""
    registry = ReferenceRegistry(workdir, shutil.which("docker-registry") or "", free_port())
    crt, key = ca.server_cert("registry")
    config = json.loads(registry.config_path.read_text())
    config["http"]["tls"] = {"certificate": str(crt), "key": str(key)}
    registry.config_path.write_text(json.dumps(config))
    with open(registry.log_path, "ab") as log:
        registry.proc = subprocess.Popen([registry.binary, "serve", str(registry.config_path)],
                                         stdout=log, stderr=subprocess.STDOUT)
    wait_https(f"https://{registry.host}/v2/", ca.ssl_context(), registry.proc, registry.log_path)
    return registry


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
            databases(args.database_url, Path(tmp), "trust_bench", "trust_bench_open") as (database_url, open_url):
        work = Path(tmp)
        ca = TestCA(work / "ca")
        dtr = _dtr(work / "dtr", database_url, ca, auth=True)
        open_dtr = _dtr(work / "dtr-open", open_url, ca, auth=False)
        notary = NotaryServer(work / "notary", shutil.which("notary-server") or "", free_port(), ca).start()
        reference = _reference(work / "registry", ca)
        engine = DockerEngine(work / "d", shutil.which("dockerd") or "").start()
        try:
            images = []
            for i in range(args.repos):
                (work / f"img{i}").mkdir()
                images.append(f"bench/trust{i}:src")
                engine.import_image(rootfs_tar(work / f"img{i}", f"trust bench {i} {uuid.uuid4()}"), images[-1])
            on_dtr = DockerTrust(engine, work / "cfg-dtr", ca.cert_path, [dtr.host])
            on_dtr.login(dtr.host, *ADMIN_AUTH)
            on_open = DockerTrust(engine, work / "cfg-open", ca.cert_path, [open_dtr.host])
            on_ref = DockerTrust(engine, work / "cfg-ref", ca.cert_path, [notary.host], server=notary.url)
            results = {"reference": _measure(engine, on_ref, reference.host, images),
                       "dtr, no auth": _measure(engine, on_open, open_dtr.host, images),
                       "dtr, auth on": _measure(engine, on_dtr, dtr.host, images)}
        finally:
            engine.stop()
            reference.stop()
            notary.stop()
            open_dtr.stop()
            dtr.stop()
    print(f"{args.repos} repositories, one small image each; median seconds per step (docker CLI 20.10);")
    print("reference: notary-server + the reference registry, no auth; every server over TLS")
    names = ("dtr, no auth", "dtr, auth on")
    print(f"{'step':<10} {'reference':>10} " + " ".join(f"{n:>13} {'ratio':>6}" for n in names))
    for step in STEPS:
        r = statistics.median(results["reference"][step])
        cells = []
        for n in names:
            d = statistics.median(results[n][step])
            cells.append(f"{d:>13.3f} {d / r:>6.2f}")
        print(f"{step:<10} {r:>10.3f} " + " ".join(cells))
    total_r = sum(sum(v) for v in results["reference"].values())
    cells = []
    for n in names:
        total = sum(sum(v) for v in results[n].values())
        cells.append(f"{total:>13.2f} {total / total_r:>6.2f}")
    print(f"{'total':<10} {total_r:>10.2f} " + " ".join(cells))

if __name__ == "__main__":
    main()

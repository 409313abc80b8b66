"""Docker Content Trust with the real Docker client: dtr (registry and built-in Notary on one TLS port)
beside Debian's notary-server 0.7 and the reference registry (docker-registry), in one run.

    .venv/bin/python -m bench.trust_bench [--repos 8] [--database-url URL]

Each target gets ``--repos`` new repositories of a small busybox image each (a unique file, so no
layer is shared). Per repository, timed with the Debian docker CLI (20.10) and a private dockerd,
image by image against each target in turn (the targets' order rotated from one image to the next):

- ``push new``: ``DOCKER_CONTENT_TRUST=1 docker push`` of tag 1 (a new trust repository: root and
  targets keys made by the client, root and targets published, server snapshot and timestamp);
- ``push tag``: tag 2 of the same image (an update of targets, a new server snapshot and timestamp);
- ``pull``: a trusted pull of tag 1 after the image is removed locally (timestamp, snapshot and targets
  read, then the manifest and blob by digest).

notary-server runs twice, each beside a reference registry of its own: with its memory storage
(nothing kept across a restart) and with its PostgreSQL storage on the database server dtr uses
(durable, as dtr's trust data is: the like-for-like deployment). Every server speaks TLS with
certificates of one test CA. notary-server and the reference registry run without auth, so dtr
runs twice: without auth (the like-for-like comparison) and with auth on (docker logs in; every
registry and trust request carries a token: two more round-trips per docker command, and the
token endpoint's work). Prints the median seconds per step of each and dtr / each reference.
Without ``--database-url`` an embedded PostgreSQL is started in a temp dir.

Then where the time goes: the servers' own time over the whole run (dtr without auth: its request
latency histogram; notary-server and the reference registry: their logs), trust requests and
registry requests apart (blob upload PATCHes left out: they last as long as the client streams),
and what a new TLS connection with one request costs on dtr and on notary-server (docker opens
one for every request, to both).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import http.client
import json
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from bench.targets import databases
from dtr.db.engine import connect_args
from tests.auth.constants import ADMIN_AUTH, auth_config
from tests.clients.engines import DockerEngine, ReferenceRegistry, rootfs_tar
from tests.servers import DtrProcess, create_database, free_port
from tests.trust.notary_tools import DockerTrust, NotaryServer, TestCA, create_repositories_on_push, wait_https

STEPS = ("push new", "push tag", "pull")


def _dtr(workdir: Path, database_url: str, ca: TestCA, auth: bool) -> tuple[DtrProcess, str]:
    """dtr over TLS, and the URL of its plain-HTTP ops listener (metrics)."""
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
    return proc, f"http://127.0.0.1:{ping}"


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


_GO_DURATION = re.compile(r"^([0-9.]+)(ns|µs|ms|s)$")
_GO_UNITS = {"ns": 1e-9, "µs": 1e-6, "ms": 1e-3, "s": 1.0}


def _add(out: dict[str, tuple[int, float]], kind: str, requests: int, seconds: float) -> None:
    n, total = out.get(kind, (0, 0.0))
    out[kind] = (n + requests, total + seconds)


def _go_server_time(log: Path) -> dict[str, tuple[int, float]]:
    """(requests, seconds) a Go server (notary-server, the reference registry) logged as completed,
    by kind: ``trust``, ``upload PATCH``, ``registry``."""
    out: dict[str, tuple[int, float]] = {}
    for line in log.read_text(errors="replace").splitlines():
        if '"response completed"' not in line:
            continue
        entry = json.loads(line)
        m = _GO_DURATION.match(str(entry.get("http.response.duration", "")))
        if m is None:
            continue
        uri, method = str(entry.get("http.request.uri", "")), entry.get("http.request.method")
        kind = "trust" if "/_trust/" in uri else "upload PATCH" if method == "PATCH" else "registry"
        _add(out, kind, 1, float(m.group(1)) * _GO_UNITS[m.group(2)])
    return out


def _merge(*parts: dict[str, tuple[int, float]]) -> dict[str, tuple[int, float]]:
    out: dict[str, tuple[int, float]] = {}
    for part in parts:
        for kind, (n, total) in part.items():
            _add(out, kind, n, total)
    return out


def _dtr_server_time(metrics_url: str) -> dict[str, tuple[int, float]]:
    """(requests, seconds) of dtr's /v2 requests by the same kinds, from its latency histogram."""
    text = urllib.request.urlopen(f"{metrics_url}/metrics", timeout=30).read().decode()
    sums: dict[tuple[str, str], dict[str, float]] = {}
    for m in re.finditer(r'^dtr_http_request_seconds_(sum|count)\{area="([^"]*)",method="([^"]*)"\} (\S+)$', text,
                         re.MULTILINE):
        sums.setdefault((m.group(2), m.group(3)), {})[m.group(1)] = float(m.group(4))
    out: dict[str, tuple[int, float]] = {}
    for (area, method), v in sums.items():
        if area in ("_ping", "metrics", "api", "auth", "ui"):
            continue
        kind = "trust" if area == "trust" else "upload PATCH" if method == "PATCH" else "registry"
        _add(out, kind, int(v.get("count", 0)), v.get("sum", 0.0))
    return out


def _tls_connection(url: str, path: str, ca: TestCA, times: int = 200) -> float:
    """Median seconds of a new TLS connection with one GET of ``path`` (Python's client)."""
    host, port = url.removeprefix("https://").split(":")
    took = []
    for _ in range(times):
        start = time.perf_counter()
        conn = http.client.HTTPSConnection(host, int(port), context=ca.ssl_context(), timeout=30)
        conn.request("GET", path)
        conn.getresponse().read()
        conn.close()
        took.append(time.perf_counter() - start)
    return statistics.median(took)


#: notary-server's PostgreSQL tables (its server migrations, as notary 0.7 reads and writes them:
#: Debian ships no migrations and ``-bootstrap`` does nothing for SQL stores).
_NOTARY_TABLES = """
CREATE TABLE tuf_files (
    id serial PRIMARY KEY, created_at timestamp NULL, updated_at timestamp NULL, deleted_at timestamp NULL,
    gun varchar(255) NOT NULL, role varchar(255) NOT NULL, version integer NOT NULL, data bytea NOT NULL,
    sha256 char(64) DEFAULT NULL, UNIQUE (gun, role, version));
CREATE INDEX tuf_files_sha256_idx ON tuf_files (sha256);
CREATE TABLE change_category (category varchar(20) PRIMARY KEY);
INSERT INTO change_category VALUES ('update'), ('deletion');
CREATE TABLE changefeed (
    id serial PRIMARY KEY, created_at timestamp DEFAULT CURRENT_TIMESTAMP, gun varchar(255) NOT NULL,
    version integer NOT NULL, sha256 char(64) DEFAULT NULL,
    category varchar(20) NOT NULL DEFAULT 'update' REFERENCES change_category);
CREATE INDEX idx_changefeed_gun ON changefeed (gun);
"""


def _notary_database(url: str) -> dict[str, str]:
    """notary-server's ``storage`` section for a new database beside ``url``'s, its tables made."""
    created = make_url(create_database(url, f"notary_{uuid.uuid4().hex[:8]}"))

    async def make_tables() -> None:
        conn = await asyncpg.connect(**connect_args(created.render_as_string(hide_password=False)))
        try:
            await conn.execute(_NOTARY_TABLES)
        finally:
            await conn.close()

    asyncio.run(make_tables())
    auth = created.username + (f":{created.password}" if created.password else "")
    where = f"{created.host}:{created.port or 5432}" if created.host else ""
    query = "sslmode=disable" + (f"&host={created.query['host']}" if "host" in created.query else "")
    return {"backend": "postgres", "db_url": f"postgres://{auth}@{where}/{created.database}?{query}"}


#: A target: its name in the results, its docker client set-up, its registry host.
Target = tuple[str, DockerTrust, str]


def _measure(engine: DockerEngine, targets: list[Target], images: list[str]) -> dict[str, dict[str, list[float]]]:
    """Each step of each image against every target in turn (the order rotated per image), so a
    change in the machine's load during the run weighs on every target alike."""
    times: dict[str, dict[str, list[float]]] = {name: {step: [] for step in STEPS} for name, _, _ in targets}
    repos = {(i, name): f"{host}/admin/bench-{uuid.uuid4().hex[:8]}" for i in range(len(images))
             for name, _, host in targets}

    def timed(name: str, step: str, act: Callable[[], object]) -> None:
        start = time.perf_counter()
        act()
        times[name][step].append(time.perf_counter() - start)

    def rotated(i: int) -> list[Target]:
        return targets[i % len(targets):] + targets[:i % len(targets)]

    for i, image in enumerate(images):
        for name, docker, _ in rotated(i):
            repo = repos[i, name]
            engine.docker("tag", image, f"{repo}:1")
            engine.docker("tag", image, f"{repo}:2")
            timed(name, "push new", functools.partial(docker.push, f"{repo}:1"))
            timed(name, "push tag", functools.partial(docker.push, f"{repo}:2"))
    for i, image in enumerate(images):
        for name, _, _ in targets:
            engine.docker("rmi", f"{repos[i, name]}:1", f"{repos[i, name]}:2")
        for name, docker, _ in rotated(i):
            repo = repos[i, name]
            engine.docker("rmi", "-f", engine.inspect(image)["Id"])
            timed(name, "pull", functools.partial(docker.pull, f"{repo}:1"))
            engine.docker("tag", f"{repo}:1", image)
            engine.docker("rmi", f"{repo}:1")
    return times


MEMORY, POSTGRES = "notary-server (memory)", "notary-server (postgres)"


def _print_ratios(results: dict[str, dict[str, list[float]]], reference: str, names: tuple[str, ...]) -> None:
    print(f"\nagainst {reference} + registry:")
    print(f"{'step':<10} {'reference':>10} " + " ".join(f"{n:>13} {'ratio':>6}" for n in names))
    for step in STEPS:
        r = statistics.median(results[reference][step])
        cells = []
        for n in names:
            d = statistics.median(results[n][step])
            cells.append(f"{d:>13.3f} {d / r:>6.2f}")
        print(f"{step:<10} {r:>10.3f} " + " ".join(cells))
    total_r = sum(sum(v) for v in results[reference].values())
    cells = []
    for n in names:
        total = sum(sum(v) for v in results[n].values())
        cells.append(f"{total:>13.2f} {total / total_r:>6.2f}")
    print(f"{'total':<10} {total_r:>10.2f} " + " ".join(cells))


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
        dtr, _ = _dtr(work / "dtr", database_url, ca, auth=True)
        open_dtr, open_metrics = _dtr(work / "dtr-open", open_url, ca, auth=False)
        notary = NotaryServer(work / "notary", shutil.which("notary-server") or "", free_port(), ca).start()
        durable = NotaryServer(work / "notary-pg", shutil.which("notary-server") or "", free_port(), ca,
                               storage=_notary_database(database_url)).start()
        reference = _reference(work / "registry", ca)
        reference_pg = _reference(work / "registry-pg", ca)
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
            on_pg = DockerTrust(engine, work / "cfg-pg", ca.cert_path, [durable.host], server=durable.url)
            results = _measure(engine, [(MEMORY, on_ref, reference.host), (POSTGRES, on_pg, reference_pg.host),
                                        ("dtr, no auth", on_open, open_dtr.host), ("dtr, auth on", on_dtr, dtr.host)],
                               images)
            spent = {"dtr, no auth": _dtr_server_time(open_metrics),
                     MEMORY: _merge(_go_server_time(notary.log_path), _go_server_time(reference.log_path)),
                     POSTGRES: _merge(_go_server_time(durable.log_path), _go_server_time(reference_pg.log_path))}
            connection = {"dtr": _tls_connection(open_dtr.url, "/v2/", ca),
                          "notary-server": _tls_connection(notary.url, "/_notary_server/health", ca)}
        finally:
            engine.stop()
            reference.stop()
            reference_pg.stop()
            notary.stop()
            durable.stop()
            open_dtr.stop()
            dtr.stop()
    print(f"{args.repos} repositories, one small image each; median seconds per step (docker CLI 20.10);")
    print("references: notary-server (memory or PostgreSQL storage) + the reference registry, no auth;")
    print("every server over TLS")
    for reference in (MEMORY, POSTGRES):
        _print_ratios(results, reference, ("dtr, no auth", "dtr, auth on"))
    print("\nserver time over the whole run (seconds, requests; the references with their registry):")
    for kind in ("trust", "registry"):
        print(f"  {kind} requests:")
        for name, by_kind in spent.items():
            n, seconds = by_kind.get(kind, (0, 0.0))
            print(f"    {name:<26} {seconds:7.3f} ({n})")
    print("  (blob upload PATCHes left out: they last as long as the client streams)")
    print("a new TLS connection and one GET (median of 200, Python's client): "
          + ", ".join(f"{name} {seconds * 1000:.2f} ms" for name, seconds in connection.items()))

if __name__ == "__main__":
    main()

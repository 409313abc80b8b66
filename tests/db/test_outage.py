"""An external PostgreSQL stopped and started under pushes and pulls: while it is down, what needs
it answers 503 with ``Retry-After`` (never a 500, never a hang), ``/_ping`` says so, manifests and
blobs served before the outage keep being served; once it is back, full service with no restart."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.auth.client import Client
from tests.db.postgres import PgServer
from tests.oci import OCI_MANIFEST, digest_of, image
from tests.servers import DtrProcess, create_database

REPO = "ha/outage"
#: The load's pushes go elsewhere: each push drops the cached lookups of its repository.
LOAD = "ha/load"


def _push(c: Client, tag: str, repo: str = REPO) -> tuple[int, bytes, bytes]:
    """Push a one-layer image at ``repo:tag``: (the last status, the manifest, the layer)."""
    config, layer = b'{"outage": 1}', os.urandom(256)
    for blob in (config, layer):
        r = c.request("POST", f"/v2/{repo}/blobs/uploads/?digest={digest_of(blob)}", data=blob,
                      headers={"Content-Type": "application/octet-stream"})
        if r.status != 201:
            return r.status, b"", layer
    body = image(config, [layer])
    r = c.request("PUT", f"/v2/{repo}/manifests/{tag}", data=body, headers={"Content-Type": OCI_MANIFEST})
    return r.status, body, layer


def _cache_hits(c: Client, paths: tuple[str, ...]) -> bool:
    """Whether GETs of ``paths`` (in REPO) all answer 200, each as a manifest cache hit."""
    def hits() -> float:
        text = c.request("GET", "/metrics").body.decode()
        return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                   if s.name == "dtr_manifest_cache_lookups_total" and s.labels.get("result") == "hit")

    before = hits()
    for path in paths:
        if c.request("GET", f"/v2/{REPO}/{path}", headers={"Accept": OCI_MANIFEST}).status != 200:
            return False
    return hits() - before == len(paths)


def _until(check: Callable[[], bool], what: str) -> None:
    for _ in range(300):
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


def test_external_postgres_stopped_and_started_under_load(pg_server: PgServer, tmp_path: Path) -> None:
    proc = DtrProcess(tmp_path / "dtr", create_database(pg_server.base_uri),
                      {"database": {"connect_timeout": 2, "statement_timeout": 5, "pool_timeout": 5}}).start()
    try:
        c = Client(proc.url)
        status, manifest, layer = _push(c, "before")
        assert status == 201
        digest = digest_of(manifest)
        assert c.request("GET", f"/v2/{REPO}/blobs/{digest_of(layer)}").status == 200
        # The cache listens in the background from startup: on a slow machine it may not yet when
        # the first lookups are made (they are then not kept). Look up until both are cache hits.
        _until(lambda: _cache_hits(c, ("manifests/before", f"manifests/{digest}")),
               "the manifest lookups served from the cache")

        seen: list[tuple[int, str | None]] = []
        stop = threading.Event()

        def load() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                status, _, _ = _push(c, f"load{n}", LOAD)
                seen.append((status, None))
                if status == 201:  # (a push refused with 503 left no tag: its GET may rightly be 404)
                    r = c.request("GET", f"/v2/{LOAD}/manifests/load{n}", headers={"Accept": OCI_MANIFEST})
                    seen.append((r.status, r.headers.get("Retry-After")))

        worker = threading.Thread(target=load)
        worker.start()
        try:
            time.sleep(1)
            pg_server.stop("fast")
            _until(lambda: c.request("GET", "/_ping").status == 503, "/_ping saying the database is away")
            ping = c.request("GET", "/_ping")
            assert ping.json()["errors"]["database"].startswith("database unavailable: "), ping.body
            assert ping.headers.get("Retry-After") == "5"
            time.sleep(1.2)  # the settings a pull consults (re-read each second) are now due: their last read is kept
            # Served from what dtr holds: the manifest by tag and by digest, the layer.
            r = c.request("GET", f"/v2/{REPO}/manifests/before", headers={"Accept": OCI_MANIFEST})
            assert (r.status, r.body) == (200, manifest)
            r = c.request("GET", f"/v2/{REPO}/manifests/{digest}", headers={"Accept": OCI_MANIFEST})
            assert (r.status, r.body) == (200, manifest)
            r = c.request("GET", f"/v2/{REPO}/blobs/{digest_of(layer)}")
            assert (r.status, r.body) == (200, layer)
            r = c.request("GET", f"/v2/{REPO}/manifests/never-pushed", headers={"Accept": OCI_MANIFEST})
            assert (r.status, r.headers.get("Retry-After")) == (503, "5"), r.body
            time.sleep(1)
            pg_server.start()
            _until(lambda: c.request("GET", "/_ping").status == 200, "the database back")
            time.sleep(1)
        finally:
            stop.set()
            worker.join(60)
        statuses = {s for s, _ in seen}
        assert statuses <= {200, 201, 503}, seen
        assert all(after == "5" for s, after in seen if s == 503 and after is not None), seen
        assert 503 in statuses, "the load never met the outage"
        status, again, _ = _push(c, "after")
        assert status == 201
        r = c.request("GET", f"/v2/{REPO}/manifests/after", headers={"Accept": OCI_MANIFEST})
        assert (r.status, r.body) == (200, again)
        assert proc.proc is not None and proc.proc.poll() is None  # no restart
    finally:
        proc.stop()
    assert '"status": 500' not in proc.log_path.read_text()

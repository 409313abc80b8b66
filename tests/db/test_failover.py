"""A primary/standby failover under a running ``dtr serve``: dtr's URL names both servers
(``target_session_attrs=read-write``); the primary stops under pushes and pulls, the standby is
promoted, and dtr serves again by itself (503 with ``Retry-After`` in between, never a 500, no
restart); everything pushed before the failover pulls back whole."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tests.auth.client import Client
from tests.db.postgres import PgServer
from tests.db.test_outage import _push, _until
from tests.oci import OCI_MANIFEST
from tests.servers import DtrProcess, create_database

REPO = "ha/failover"


def test_dtr_survives_a_promoted_standby(pg_server: PgServer, tmp_path: Path) -> None:
    name = create_database(pg_server.base_uri).rsplit("/", 1)[1]
    standby = pg_server.standby(tmp_path / "standby")
    multi = (f"postgresql://postgres@127.0.0.1:{pg_server.port},127.0.0.1:{standby.port}/{name}"
             "?target_session_attrs=read-write")
    proc = DtrProcess(tmp_path / "dtr", multi, {"database": {"connect_timeout": 2, "statement_timeout": 5,
                                                             "pool_timeout": 5}}).start()
    try:
        c = Client(proc.url)
        pushed: dict[str, bytes] = {}
        seen: list[int] = []
        stop = threading.Event()

        def load() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                status, manifest, _ = _push(c, f"load{n}", REPO)
                seen.append(status)
                if status == 201:
                    pushed[f"load{n}"] = manifest

        worker = threading.Thread(target=load)
        worker.start()
        try:
            _until(lambda: len(pushed) >= 3, "a few pushes on the primary")
            pg_server.stop("fast")  # a clean stop sends the standby every WAL record first
            _until(lambda: c.request("GET", "/_ping").status == 503, "/_ping saying the database is away")
            before = set(pushed)
            start = time.monotonic()
            standby.promote()
            _until(lambda: c.request("GET", "/_ping").status == 200, "dtr on the promoted standby")
            _until(lambda: len(pushed) > len(before), "a push on the promoted standby")
            print(f"failover: dtr served pushes again {time.monotonic() - start:.1f} s after the promotion")
        finally:
            stop.set()
            worker.join(60)
        assert set(seen) <= {201, 503}, seen
        assert 503 in seen, "the load never met the failover"
        for tag, manifest in pushed.items():
            r = c.request("GET", f"/v2/{REPO}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
            assert (r.status, r.body) == (200, manifest), tag
        assert proc.proc is not None and proc.proc.poll() is None  # no restart
    finally:
        proc.stop()
        standby.cleanup()
    assert '"status": 500' not in proc.log_path.read_text()

"""The embedded PostgreSQL dying under a running dtr: every endpoint that needs it answers 503
with ``Retry-After`` in its API's error shape (never a 500), ``/_ping`` says why, dtr starts
PostgreSQL again and everything answers as before."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from tests.auth.client import Client, Response
from tests.auth.constants import ADMIN_AUTH, auth_config
from tests.oci import OCI_MANIFEST, digest_of, image
from tests.servers import DtrProcess

REPO = "admin/down"
SCOPE = f"repository:{REPO}:pull,push"
REFUSED = "database unavailable: connection refused, restarting embedded PostgreSQL"


def _until(check: Callable[[], bool], what: str, attempts: int = 300) -> None:
    for _ in range(attempts):
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


def _push(c: Client, token: str) -> bytes:
    config, layer = b'{"down": 1}', os.urandom(512)
    for blob in (config, layer):
        r = c.request("POST", f"/v2/{REPO}/blobs/uploads/?digest={digest_of(blob)}", bearer=token, data=blob,
                      headers={"Content-Type": "application/octet-stream"})
        assert r.status == 201, r.body
    body = image(config, [layer])
    r = c.request("PUT", f"/v2/{REPO}/manifests/v1", bearer=token, data=body, headers={"Content-Type": OCI_MANIFEST})
    assert r.status == 201, r.body
    return body


def _unavailable(r: Response) -> None:
    assert r.status == 503, (r.status, r.body)
    assert r.headers.get("Retry-After") == "5"
    assert r.error_code == "UNAVAILABLE", r.body
    assert r.error_message.startswith("database unavailable: "), r.body


def test_embedded_postgres_killed_answers_503_then_recovers(dtr_factory: Callable[..., DtrProcess]) -> None:
    proc = dtr_factory({**auth_config(), "database": {"url": None}})
    c = Client(proc.url)
    c.api("POST", "/repositories/admin", ADMIN_AUTH, {"name": "down", "visibility": "private"}, expect=201)
    token = c.bearer([SCOPE], ADMIN_AUTH)
    manifest = _push(c, token)
    pgdata = proc.data_dir / "postgres"
    away = proc.data_dir / "postgres-away"

    # Kill the postmaster, and keep its data directory away until the 503s are seen.
    os.kill(int((pgdata / "postmaster.pid").read_text().split()[0]), signal.SIGKILL)
    pgdata.rename(away)
    try:
        _until(lambda: c.request("GET", "/_ping").body.count(REFUSED.encode()) == 1, "_ping saying why")
        ping = c.request("GET", "/_ping")
        assert ping.status == 503 and ping.json()["errors"]["database"] == REFUSED
        assert ping.headers.get("Retry-After") == "5"

        r = c.request("GET", f"/v2/{REPO}/manifests/never-pushed", bearer=token,
                      headers={"Accept": OCI_MANIFEST})
        _unavailable(r)
        assert r.headers.get("Docker-Distribution-API-Version") == "registry/2.0"
        _unavailable(c.api("GET", "/accounts/me", ADMIN_AUTH))
        _unavailable(c.token([SCOPE], ADMIN_AUTH))
        _unavailable(c.request("POST", "/auth/token", form={"grant_type": "password", "username": "admin",
                                                            "password": ADMIN_AUTH[1], "service": proc.host}))
    finally:
        Path(away).rename(pgdata)

    _until(lambda: c.request("GET", "/_ping").status == 200, "the database back")
    r = c.request("GET", f"/v2/{REPO}/manifests/v1", bearer=c.bearer([SCOPE], ADMIN_AUTH),
                  headers={"Accept": OCI_MANIFEST})
    assert (r.status, r.body) == (200, manifest)
    assert c.api("GET", "/accounts/me", ADMIN_AUTH, expect=200).json()["name"] == "admin"
    assert proc.proc is not None and proc.proc.poll() is None
    # the server accepts connections a moment before its start command returns and dtr says so
    _until(lambda: "the embedded PostgreSQL is running again" in proc.log_tail(10000, access=False),
           "the restart logged")
    proc.stop()
    log = proc.log_tail(10000, access=False)
    assert log.count("the embedded PostgreSQL died; restarting it") == 1, log
    assert log.count("the embedded PostgreSQL is running again") == 1, log
    assert '"status": 500' not in proc.log_path.read_text()

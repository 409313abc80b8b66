"""dtr as a systemd service: the unit (``systemd-analyze verify``), ``dtr install-service``, the
notify protocol and watchdog against a real datagram socket, draining on SIGTERM, and SIGHUP
loading new TLS certificates into the live context (systemd is not PID 1 here: the unit is
verified, not started)."""

from __future__ import annotations

import asyncio
import datetime as dt
import http.client
import ipaddress
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dtr.config import load_config
from dtr.ops.service_cli import installed_executable, render_unit
from tests.servers import ROOT, DtrProcess, require_binary

UNIT = ROOT / "dtr" / "deploy" / "dtr.service"


def _run_dtr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dtr", *args], capture_output=True, text=True, cwd=ROOT, timeout=60)


def _spawn(proc: DtrProcess, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``dtr serve`` for ``proc``'s config with ``env`` added; ``proc.stop()`` stops it."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("DTR_")} | env
    with open(proc.log_path, "ab") as log:
        proc.proc = subprocess.Popen([sys.executable, "-m", "dtr", "serve", "--config", str(proc.config_path)],
                                     stdout=log, stderr=subprocess.STDOUT, env=full, cwd=ROOT)
    return proc.proc


def test_the_unit_verifies_with_the_installed_dtr(tmp_path: Path) -> None:
    analyze = require_binary("systemd-analyze", "apt-get install systemd")
    assert (ROOT / "deploy" / "dtr.service").read_text() == UNIT.read_text()
    executable = installed_executable()
    assert executable is not None
    unit = tmp_path / "dtr.service"
    unit.write_text(render_unit(executable, "/etc/dtr/config.yaml"))
    r = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert str(unit) not in r.stderr  # no unknown key or bad value in it
    text = unit.read_text()
    for line in ("Type=notify", "NotifyAccess=main", "WatchdogSec=30s", f"ExecStart={executable} serve -c "
                 "/etc/dtr/config.yaml", "ExecReload=/bin/kill -HUP $MAINPID", "StateDirectory=dtr",
                 "ProtectSystem=strict", "ReadWritePaths=/var/lib/dtr", "KillMode=mixed"):
        assert f"\n{line}\n" in text


def test_install_service_writes_the_unit_and_a_config(tmp_path: Path) -> None:
    units, config = tmp_path / "units", tmp_path / "etc" / "dtr" / "config.yaml"
    dry = _run_dtr("install-service", "--unit-dir", str(units), "--config", str(config), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "Type=notify" in dry.stdout and "systemctl enable --now dtr" in dry.stdout
    assert not units.exists() and not config.exists()

    r = _run_dtr("install-service", "--unit-dir", str(units), "--config", str(config))
    assert r.returncode == 0, r.stderr
    assert f"ExecStart={installed_executable()} serve -c {config}\n" in (units / "dtr.service").read_text()
    written = load_config(str(config), environ={})
    assert written.data_dir == "/var/lib/dtr" and written.http.tls == "auto" and written.http.drain_delay == 5
    assert config.stat().st_mode & 0o777 == 0o640
    assert "useradd --system" in r.stdout and "systemctl daemon-reload" in r.stdout
    # An existing config is kept.
    config.write_text("data_dir: /srv/dtr\n")
    assert _run_dtr("install-service", "--unit-dir", str(units), "--config", str(config)).returncode == 0
    assert config.read_text() == "data_dir: /srv/dtr\n"

    (tmp_path / "file").write_text("")
    bad = _run_dtr("install-service", "--unit-dir", str(tmp_path / "file" / "units"), "--config", str(config))
    assert bad.returncode == 1
    assert bad.stderr.startswith(f"dtr: cannot write {tmp_path / 'file' / 'units' / 'dtr.service'}: ")
    assert len(bad.stderr.splitlines()) == 1


def _messages(sock: socket.socket, until: str, timeout: float = 60) -> list[str]:
    """Fields received on ``sock`` up to and including the message holding ``until``."""
    fields: list[str] = []
    sock.settimeout(timeout)
    while True:
        message = sock.recv(4096).decode().split("\n")
        fields += message
        if until in message:
            return fields


def test_notify_ready_watchdog_stopping(dtr_factory: Callable[..., DtrProcess]) -> None:
    """READY=1 once /v2/ answers; WATCHDOG=1 keeps coming; STOPPING=1 on SIGTERM; the variables
    are not passed on; SIGHUP without TLS reloads nothing and keeps serving."""
    proc = dtr_factory(start=False)
    name = f"dtr-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)  # the abstract namespace, as NOTIFY_SOCKET=@name
        popen = _spawn(proc, {"NOTIFY_SOCKET": f"@{name}", "WATCHDOG_USEC": "400000"})
        before = _messages(sock, "READY=1")
        with urllib.request.urlopen(f"{proc.url}/v2/", timeout=10) as r:
            assert r.status == 200
        assert any(f.startswith("STATUS=starting") for f in before)
        assert f"STATUS=serving on {proc.host}" in before
        for _ in range(3):
            assert _messages(sock, "WATCHDOG=1") == ["WATCHDOG=1"]
        popen.send_signal(signal.SIGHUP)
        with urllib.request.urlopen(f"{proc.url}/_ping", timeout=10) as r:
            assert r.status == 200
        popen.send_signal(signal.SIGTERM)
        stopping = _messages(sock, "STOPPING=1")
        assert any(f.startswith("STATUS=draining") for f in stopping)
        assert popen.wait(30) == 0
    assert "nothing to reload" in proc.log_tail(200)


async def test_drain_delay_fails_health_checks_while_serving(dtr_factory: Callable[..., DtrProcess],
                                                             http: aiohttp.ClientSession) -> None:
    """After SIGTERM /_ping and /health answer 503 while other requests (new ones, and an upload in
    flight) are served; a second SIGTERM ends the delay; the upload still completes."""
    proc = dtr_factory({"http": {"drain_delay": 600}})
    data = b"d" * (2 << 20)
    sent, release = asyncio.Event(), asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield data[: 1 << 20]
        sent.set()
        await release.wait()
        yield data[1 << 20:]

    async with http.post(f"{proc.url}/v2/drain/test/blobs/uploads/") as r:
        location = r.headers["Location"]
    patch = asyncio.ensure_future(http.patch(f"{proc.url}{location}", data=body()))
    await sent.wait()
    assert proc.proc is not None
    proc.proc.send_signal(signal.SIGTERM)
    while True:
        async with http.get(f"{proc.url}/_ping") as r:
            if r.status == 503:
                assert (await r.json())["status"] == "draining"
                assert "Retry-After" in r.headers
                break
        await asyncio.sleep(0.05)
    async with http.get(f"{proc.url}/health") as r:
        assert r.status == 503
    async with aiohttp.ClientSession() as fresh, fresh.get(f"{proc.url}/v2/") as r:
        assert r.status == 200  # a new connection is still accepted and served
    proc.proc.send_signal(signal.SIGTERM)  # the second signal: stop waiting
    release.set()
    resp = await patch
    assert resp.status == 202
    assert resp.headers["Range"] == f"0-{len(data) - 1}"
    resp.release()
    assert await asyncio.to_thread(proc.proc.wait, 30) == 0


def _self_signed(directory: Path, name: str) -> tuple[Path, Path, bytes]:
    """A certificate for 127.0.0.1 named ``name``: its files and its DER bytes."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    crt, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return crt, key_path, cert.public_bytes(serialization.Encoding.DER)


def _connect(port: int) -> http.client.HTTPSConnection:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    conn.request("GET", "/_ping")
    response = conn.getresponse()
    response.read()
    assert response.status == 200
    return conn


def _served_cert(conn: http.client.HTTPSConnection) -> bytes | None:
    assert isinstance(conn.sock, ssl.SSLSocket)
    return conn.sock.getpeercert(binary_form=True)


def test_sighup_reloads_the_certificate_and_keeps_connections(tmp_path: Path,
                                                               dtr_factory: Callable[..., DtrProcess]) -> None:
    old_crt, old_key, old_der = _self_signed(tmp_path, "old")
    new_crt, new_key, new_der = _self_signed(tmp_path, "new")
    live_crt, live_key = tmp_path / "server.crt", tmp_path / "server.key"
    live_crt.write_bytes(old_crt.read_bytes())
    live_key.write_bytes(old_key.read_bytes())
    proc = dtr_factory({"http": {"tls": {"certificate": str(live_crt), "key": str(live_key)}}}, start=False)
    name = f"dtr-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        popen = _spawn(proc, {"NOTIFY_SOCKET": f"@{name}"})
        _messages(sock, "READY=1")
        kept = _connect(proc.port)
        assert _served_cert(kept) == old_der
        kept_sock = kept.sock

        live_crt.write_bytes(new_crt.read_bytes())
        live_key.write_bytes(new_key.read_bytes())
        popen.send_signal(signal.SIGHUP)
        reload = _messages(sock, "READY=1")
        assert reload[0] == "RELOADING=1" and reload[1].startswith("MONOTONIC_USEC=")
    conn = _connect(proc.port)
    assert _served_cert(conn) == new_der
    conn.close()
    # The connection opened before the reload still works (on its old session).
    kept.request("GET", "/_ping")
    response = kept.getresponse()
    response.read()
    assert response.status == 200 and kept.sock is kept_sock
    assert _served_cert(kept) == old_der
    kept.close()

    # A broken certificate file: an error in the log, the certificate in use stays.
    live_crt.write_text("not a certificate")
    popen.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 60
    while "keeping the certificate in use" not in proc.log_tail(200):
        assert time.monotonic() < deadline and popen.poll() is None, proc.log_tail()
        time.sleep(0.05)
    assert f"http.tls: cannot load the certificate {live_crt}" in proc.log_tail(200)
    conn = _connect(proc.port)
    assert _served_cert(conn) == new_der
    conn.close()

"""A broken environment stops ``dtr serve`` with one line on stderr and exit 1, before anything
is created; ``dtr config check`` reports the same problems without starting."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.servers import ROOT, DtrProcess, create_database, free_port


def run(proc: DtrProcess, *command: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DTR_")}
    return subprocess.run([sys.executable, "-m", "dtr", *command, "--config", str(proc.config_path)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


def config(tmp_path: Path, pg_uri: str, extra: dict[str, Any], port: int | None = None) -> DtrProcess:
    return DtrProcess(tmp_path / "dtr", create_database(pg_uri), {"auth": {"enabled": True}, **extra}, port=port)


async def _tables(url: str) -> int:
    u = make_url(url)
    conn = await asyncpg.connect(host=u.query["host"], port=u.port, user=u.username, database=u.database)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"))
    finally:
        await conn.close()


def test_port_in_use_fails_before_creating_anything(tmp_path: Path, pg_uri: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = config(tmp_path, pg_uri, {}, port=port)
        r = run(proc, "serve")
    assert (r.returncode, r.stderr) == (1, f"dtr: cannot listen on 127.0.0.1:{port}: address already in use\n")
    assert r.stdout == ""  # no first admin, no password printed
    assert not proc.data_dir.exists()
    assert asyncio.run(_tables(proc.config["database"]["url"])) == 0  # no migration ran


@pytest.mark.parametrize("host,why", [
    ("999.1.1.1", "999.1.1.1 does not resolve to an address"),
    ("no.such.host.invalid", "no.such.host.invalid does not resolve to an address"),
    ("10.255.255.1", "10.255.255.1 is not an address of this machine"),
])
def test_addresses_that_are_not_ours(tmp_path: Path, pg_uri: str, host: str, why: str) -> None:
    port = free_port()
    proc = config(tmp_path, pg_uri, {"http": {"addr": f"{host}:{port}"}})
    r = run(proc, "serve")
    assert (r.returncode, r.stderr, r.stdout) == (1, f"dtr: cannot listen on {host}:{port}: {why}\n", "")
    r = run(proc, "config", "check")
    assert (r.returncode, r.stderr, r.stdout) == (1, f"dtr: cannot listen on {host}:{port}: {why}\n", "")


def _broken(tmp_path: Path) -> list[tuple[dict[str, Any], str]]:
    """(config sections, the one line dtr says) for each broken environment."""
    plain = tmp_path / "plain-file"
    plain.write_text("not a directory")
    folder = tmp_path / "a-directory"
    folder.mkdir()
    key = tmp_path / "server.key"
    key.write_text("unused")
    return [
        ({"data_dir": str(plain / "data")}, f"data_dir: {plain}/data: {plain} is not a directory"),
        ({"data_dir": str(plain)}, f"data_dir: {plain}: not a directory"),
        ({"http": {"tls": {"certificate": str(tmp_path / "nope.crt"), "key": str(key)}}},
         f"http.tls.certificate: {tmp_path}/nope.crt: no such file"),
        ({"http": {"tls": {"certificate": str(key), "key": str(folder)}}},
         f"http.tls.key: {folder}: is a directory, not a file"),
        ({"auth": {"enabled": True, "admin_password_file": str(tmp_path / "no-password")}},
         f"auth.admin_password_file: {tmp_path}/no-password: no such file"),
    ]


@pytest.mark.parametrize("case", range(5))
def test_broken_environment_is_one_line(tmp_path: Path, pg_uri: str, case: int) -> None:
    extra, line = _broken(tmp_path)[case]
    proc = config(tmp_path, pg_uri, extra)
    r = run(proc, "serve")
    assert (r.returncode, r.stderr, r.stdout) == (1, f"dtr: {line}\n", "")
    r = run(proc, "config", "check")
    assert (r.returncode, r.stderr, r.stdout) == (1, f"dtr: {line}\n", "")


def test_certificate_that_does_not_load_is_one_line(tmp_path: Path, pg_uri: str) -> None:
    crt, key = tmp_path / "server.crt", tmp_path / "server.key"
    crt.write_text("not a certificate")
    key.write_text("not a key")
    proc = config(tmp_path, pg_uri, {"http": {"tls": {"certificate": str(crt), "key": str(key)}}})
    r = run(proc, "serve")
    assert r.returncode == 1 and r.stdout == "" and len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr == (f"dtr: http.tls: cannot load the certificate {crt} with the key {key}: "
                        "not a PEM certificate and its private key\n")


def test_config_check_ok_and_port_taken(tmp_path: Path, pg_uri: str) -> None:
    proc = config(tmp_path, pg_uri, {})
    r = run(proc, "config", "check")
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == f"config OK: addr {proc.host}, data_dir {proc.data_dir}, storage filesystem\n"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", proc.port))
        taken.listen()
        r = run(proc, "config", "check")
    assert (r.returncode, r.stdout, r.stderr) == (1, "", f"dtr: cannot listen on {proc.host}: address already in use\n")

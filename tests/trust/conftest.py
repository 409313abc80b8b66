"""Docker Content Trust servers and clients, once per session.

- ``test_ca``: the CA both servers' certificates come from (clients are given its ``ca.crt``).
- ``notary_server``: Debian's notary-server 0.7 (``NotaryServer``), the behaviour dtr reproduces.
- ``trust_dtr``: dtr over TLS (``http.tls: auto`` from ``test_ca``), auth on with the admin's
  password, serving the registry and its built-in Notary on one port; createRepositoryOnPush on.
- ``trust_target``: one of them with its registry, as the clients see it (``TrustTarget``):
  ``dtr``, or ``notary`` (notary-server beside the reference registry).
- The real clients of tests/clients (``docker_engine``, ``busybox``, ``reference_registry``).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.auth.constants import ADMIN, ADMIN_AUTH, auth_config
from tests.clients.conftest import busybox, docker_engine, reference_registry  # noqa: F401
from tests.clients.engines import APT, DockerEngine, ReferenceRegistry
from tests.servers import DtrProcess, create_database, free_port, require_binary
from tests.trust.notary_tools import (
    DockerTrust,
    NotaryCLI,
    NotaryServer,
    TestCA,
    TrustHTTP,
    create_repositories_on_push,
)


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("trust-ca"))


@pytest.fixture(scope="session")
def notary_binary() -> str:
    return require_binary("notary", f"{APT} notary")


@pytest.fixture(scope="session")
def notary_server(test_ca: TestCA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotaryServer]:
    binary = require_binary("notary-server", f"{APT} notary")
    server = NotaryServer(tmp_path_factory.mktemp("notary-server"), binary, free_port(), test_ca).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def trust_dtr(pg_uri: str, test_ca: TestCA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DtrProcess]:
    """dtr on HTTPS (its certificate issued from ``test_ca``); ``.url`` is its https URL once started."""
    ping = free_port()  # the plain-HTTP ops listener: where DtrProcess sees dtr come up
    proc = DtrProcess(tmp_path_factory.mktemp("trust-dtr"), create_database(pg_uri, migrated=True), {
        **auth_config(failed_login_address_threshold=100000),
        "http": {"tls": "auto", "tls_ca": {"certificate": str(test_ca.cert_path), "key": str(test_ca.key_path)}},
        "metrics": {"listen": f"127.0.0.1:{ping}"},
    })
    proc.url = f"http://127.0.0.1:{ping}"
    proc.start()
    proc.url = f"https://{proc.host}"
    # Pushes (and trust data) to new repositories create them, as on notary-server and the reference registry.
    create_repositories_on_push(proc.url, test_ca, ADMIN_AUTH)
    try:
        yield proc
    finally:
        proc.stop()


@dataclasses.dataclass
class TrustTarget:
    """A registry and its trust server as the clients reach them."""

    name: str
    #: host:port images are pushed to.
    registry: str
    #: The notary server's URL (dtr: its own).
    notary_url: str
    #: DOCKER_CONTENT_TRUST_SERVER (None for dtr: docker picks the registry's host:port itself).
    docker_server: str | None
    #: Credentials the clients log in with (None: the server has no auth).
    auth: tuple[str, str] | None
    ca: TestCA

    def repo(self) -> str:
        """A fresh repository (host included) that the credentials may push to."""
        return f"{self.registry}/{ADMIN}/trust-{uuid.uuid4().hex[:10]}"

    def docker(self, engine: DockerEngine, config_dir: Path) -> DockerTrust:
        """Docker with content trust on, logged in when the target has auth."""
        host = self.notary_url.removeprefix("https://")
        client = DockerTrust(engine, config_dir, self.ca.cert_path, [host], self.docker_server)
        if self.auth is not None:
            client.login(self.registry, *self.auth)
        return client

    def notary(self, binary: str, trust_dir: Path) -> NotaryCLI:
        return NotaryCLI(binary, self.notary_url, trust_dir, self.ca.cert_path, self.auth)

    def http(self) -> TrustHTTP:
        return TrustHTTP(self.notary_url, self.ca, self.auth)


def dtr_target(dtr: DtrProcess, ca: TestCA) -> TrustTarget:
    return TrustTarget("dtr", dtr.host, dtr.url, None, ADMIN_AUTH, ca)


def notary_target(server: NotaryServer, registry: ReferenceRegistry, ca: TestCA) -> TrustTarget:
    return TrustTarget("notary", registry.host, server.url, server.url, None, ca)


@pytest.fixture(params=["dtr", "notary"])
def trust_target(request: pytest.FixtureRequest, test_ca: TestCA) -> TrustTarget:
    """Each test runs against dtr and against notary-server beside the reference registry (which
    proves the test itself)."""
    if request.param == "dtr":
        return dtr_target(request.getfixturevalue("trust_dtr"), test_ca)
    return notary_target(request.getfixturevalue("notary_server"), request.getfixturevalue("reference_registry"),
                         test_ca)

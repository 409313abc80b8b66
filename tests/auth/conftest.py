"""Auth test servers: dtr with ``auth.enabled`` (``auth_dtr``, one per session; more through
``dtr_factory(extra=auth_config(...))``), a ``Client`` for it, and the real container clients of
tests/clients (re-exported here).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.auth.client import Client
from tests.auth.constants import auth_config
from tests.auth.world import World, build_world
from tests.clients.conftest import busybox, docker_engine, oci_layout, podman, skopeo, umoci, unique  # noqa: F401
from tests.servers import DtrProcess, create_database


@pytest.fixture(scope="session")
def auth_dtr(pg_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DtrProcess]:
    proc = DtrProcess(tmp_path_factory.mktemp("dtr-auth"), create_database(pg_uri, migrated=True),
                      auth_config(failed_login_address_threshold=100000))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def client(auth_dtr: DtrProcess) -> Client:
    return Client(auth_dtr.url)


@pytest.fixture(scope="session")
def world(client: Client) -> World:
    """An organisation with a private ``app`` and a public ``pub`` repository and a user per role."""
    return build_world(client)

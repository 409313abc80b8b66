"""Session storage servers (started once, on 127.0.0.1, stopped at the end) and fault proxies.

- ``swift_server``: Swift all-in-one with s3api (``tests.storage.servers.SwiftAIO``): the target
  for the s3, cleversafe and swift drivers.
- ``moto_server``: moto's S3 server, a second S3 target.
- ``keystone_swift``: a real Keystone (v3) and a second Swift proxy on ``swift_server``'s storage
  that authenticates through it (``tests.storage.keystone.KeystoneSwift``).
- ``fault_proxy_factory``: ``await fault_proxy_factory(upstream_url)`` gives the session's
  ``FaultProxy`` for that upstream (started on first use); faults are cleared for each test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from tests.storage.faultproxy import FaultProxy
from tests.storage.keystone import KeystoneSwift
from tests.storage.servers import Moto, SwiftAIO
from tests.storage.servers_azure_gcs import (  # noqa: F401  (session fixtures: Azurite, GCS emulators)
    azurite,
    fake_gcs,
    gcp_emulator,
    gcs_keyfile,
    token_server,
)


@pytest.fixture(scope="session")
def swift_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwiftAIO]:
    server = SwiftAIO(tmp_path_factory.mktemp("swift")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def keystone_swift(swift_server: SwiftAIO, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeystoneSwift]:
    server = KeystoneSwift.start(swift_server, tmp_path_factory.mktemp("keystone"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    server = Moto(tmp_path_factory.mktemp("moto")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def _fault_proxies() -> AsyncIterator[dict[str, FaultProxy]]:
    proxies: dict[str, FaultProxy] = {}
    yield proxies
    for p in proxies.values():
        await p.stop()


@pytest.fixture
async def fault_proxy_factory(_fault_proxies: dict[str, FaultProxy]) -> Callable[[str], Awaitable[FaultProxy]]:
    async def get(upstream: str) -> FaultProxy:
        proxy = _fault_proxies.get(upstream)
        if proxy is None:
            proxy = _fault_proxies[upstream] = await FaultProxy(upstream).start()
        proxy.clear()
        return proxy

    return get

"""The shared driver suite on the swift driver against Swift all-in-one (tempauth, v1 auth)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from dtr.config import ConfigError
from dtr.storage.swift import SwiftDriver, SwiftParams
from dtr.storage.wrapper import StorageWrapper
from tests.storage.faultproxy import FaultProxy
from tests.storage.servers import SwiftAIO
from tests.storage.suite import DriverSuite, Faulty, MiB, data_of, write_chunks

CONTAINER = "dtr-swift-test"


class TestSwift(DriverSuite):
    redirect_supported = True
    part_size = 2 * MiB

    @pytest.fixture
    def root(self) -> str:
        return f"t/{uuid.uuid4().hex}"

    def make(self, server: SwiftAIO, root: str, **kw: Any) -> StorageWrapper:
        params = SwiftParams(**{"authurl": server.auth_url, "username": server.user, "password": server.key,
                                "container": CONTAINER, "prefix": root, "chunksize": self.part_size,
                                "secretkey": "tempurl-secret", **kw})
        return StorageWrapper(SwiftDriver(params))

    @pytest.fixture
    async def driver(self, swift_server: SwiftAIO, root: str) -> AsyncIterator[StorageWrapper]:
        d = self.make(swift_server, root)
        yield d
        await d.close()

    @pytest.fixture
    async def faulty_driver(self, swift_server: SwiftAIO, root: str,
                            fault_proxy_factory: Callable[[str], Awaitable[FaultProxy]]) -> AsyncIterator[Faulty]:
        proxy = await fault_proxy_factory(swift_server.url)
        d = self.make(swift_server, root, authurl=f"{proxy.url}/auth/v1.0", maxretries=3, timeout=2)
        yield Faulty(d, proxy)
        await d.close()
        proxy.clear()

    async def test_large_objects_are_slo_and_move_keeps_segments(self, driver: StorageWrapper) -> None:
        data = data_of(3 * self.part_size + 5, 40)
        await write_chunks(driver, "/uploads/x/data", data)
        await driver.put_content("/uploads/x/startedat", b"now")
        inner: Any = driver.driver
        head = await inner._head(inner.keys.key("/uploads/x/data"), "/")
        assert head["x-static-large-object"].lower() == "true"
        await driver.move("/uploads/x/data", "/blobs/b/data")
        await driver.delete("/uploads")
        assert await driver.get_content("/blobs/b/data") == data
        assert (await driver.stat("/blobs/b/data")).size == len(data)
        await driver.delete("/blobs")
        leftover = await inner._listing(inner.prefix, "/")
        assert leftover == [], "segments are deleted with their manifest"

    async def test_tempurl_container_key(self, swift_server: SwiftAIO, root: str) -> None:
        import aiohttp

        d = self.make(swift_server, root, tempurlcontainerkey=True, secretkey="container-secret")
        try:
            await d.put_content("/c/x", b"via container key")
            url = await d.redirect_url("/c/x")
            assert url is not None
            async with aiohttp.ClientSession() as s, s.get(url) as r:
                assert r.status == 200 and await r.read() == b"via container key"
            assert await d.redirect_url("/c/x", "DELETE") is None
        finally:
            await d.close()


def test_params() -> None:
    with pytest.raises(ConfigError, match="authurl"):
        SwiftParams()
    p = SwiftParams(authurl="https://ks/v3", username="u", password="secret-pw", container="c")
    assert p.auth_version == "3" and "secret-pw" not in repr(p)
    assert SwiftParams(authurl="https://ks/v2.0/", username="u", password="p", container="c").auth_version == "2.0"
    assert SwiftParams(authurl="http://h/auth/v1.0", username="u", password="p", container="c").auth_version == "1"
    with pytest.raises(ConfigError, match="chunksize"):
        SwiftParams(authurl="x", username="u", password="p", container="c", chunksize=10)


def test_config_builds_swift_driver() -> None:
    from dtr.config import StorageConfig
    from dtr.storage.factory import create_driver, validate_params

    params = {"authurl": "http://127.0.0.1:1/auth/v1.0", "username": "u", "password": "p", "container": "c",
              "tempurlmethods": ["GET", "HEAD"]}
    validate_params(StorageConfig("swift", params))
    assert create_driver(StorageConfig("swift", params)).name == "swift"
    with pytest.raises(ConfigError, match=r"tempurlmethods"):
        validate_params(StorageConfig("swift", {**params, "tempurlmethods": ["FETCH"]}))
    with pytest.raises(ConfigError, match=r"storage\.swift\.tempurlmethods\[0\]"):
        validate_params(StorageConfig("swift", {**params, "tempurlmethods": [{"get": 1}]}))

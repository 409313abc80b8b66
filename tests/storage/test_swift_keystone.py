"""The swift driver with Keystone v3 auth against a real Keystone (``tests.storage.keystone``).

The whole shared driver suite runs with ``authurl .../v3``, username, password, tenant (project)
and domain, through a Swift proxy with keystonemiddleware's ``authtoken`` and ``keystoneauth``.
The fault tests reach Swift through a fault proxy registered as the object-store endpoint of a
second catalogue region (``region``), so the driver finds it in the catalogue like any endpoint.

v2.0 auth is not tested: Keystone removed its v2.0 identity API upstream (Queens, 2018), so no
real server speaks it any more, and a fake one would prove nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from dtr.storage.base import StorageError
from dtr.storage.swift import SwiftDriver, SwiftParams
from dtr.storage.wrapper import StorageWrapper
from tests.servers import DtrProcess
from tests.storage.faultproxy import FaultProxy
from tests.storage.keystone import KeystoneSwift
from tests.storage.suite import DriverSuite, Faulty, MiB

CONTAINER = "dtr-swift-keystone-test"


def _params(ks: KeystoneSwift) -> dict[str, Any]:
    return {"authurl": ks.auth_url, "username": ks.username, "password": ks.password, "tenant": ks.project,
            "domain": ks.domain, "tenantdomain": ks.domain}


class TestSwiftKeystone(DriverSuite):
    redirect_supported = True
    part_size = 2 * MiB

    @pytest.fixture
    def root(self) -> str:
        return f"t/{uuid.uuid4().hex}"

    def make(self, ks: KeystoneSwift, root: str, **kw: Any) -> StorageWrapper:
        params = SwiftParams(**{**_params(ks), "container": CONTAINER, "prefix": root, "chunksize": self.part_size,
                                "secretkey": "tempurl-secret", **kw})
        assert params.auth_version == "3"
        return StorageWrapper(SwiftDriver(params))

    @pytest.fixture
    async def driver(self, keystone_swift: KeystoneSwift, root: str) -> AsyncIterator[StorageWrapper]:
        d = self.make(keystone_swift, root)
        yield d
        await d.close()

    @pytest.fixture
    async def faulty_driver(self, keystone_swift: KeystoneSwift, root: str,
                            fault_proxy_factory: Callable[[str], Awaitable[FaultProxy]]) -> AsyncIterator[Faulty]:
        proxy = await fault_proxy_factory(keystone_swift.proxy.url)
        region = keystone_swift.region_for(proxy.url)
        d = self.make(keystone_swift, root, region=region, maxretries=3, timeout=2)
        yield Faulty(d, proxy)
        await d.close()
        proxy.clear()

    async def test_objects_live_in_the_projects_account(self, keystone_swift: KeystoneSwift,
                                                        driver: StorageWrapper) -> None:
        """The storage URL comes from the catalogue: the project's ``AUTH_<project id>`` account."""
        await driver.put_content("/a/b", b"keystone")
        inner: Any = driver.driver
        url, _ = await inner._run("/", lambda c: c.get_auth())
        assert url == f"{keystone_swift.proxy.url}/v1/AUTH_{keystone_swift.project_id}"

    async def test_ids_instead_of_names(self, keystone_swift: KeystoneSwift, root: str,
                                        driver: StorageWrapper) -> None:
        """Project and domains given by id reach the same account as by name."""
        ks = keystone_swift
        d = StorageWrapper(SwiftDriver(SwiftParams(
            authurl=ks.auth_url, username=ks.username, password=ks.password, tenantid=ks.project_id,
            domainid=ks.domain_id, tenantdomainid=ks.domain_id, container=CONTAINER, prefix=root)))
        try:
            await d.put_content("/by/ids", b"ids")
            assert await driver.get_content("/by/ids") == b"ids"
        finally:
            await d.close()

    async def test_wrong_password_is_a_clear_final_error(self, keystone_swift: KeystoneSwift, root: str) -> None:
        d = self.make(keystone_swift, root, password="wrong", maxretries=0)
        try:
            with pytest.raises(StorageError, match=r"401: Unauthorized") as e:
                await d.put_content("/x", b"no")
            assert not e.value.retryable
        finally:
            await d.close()


async def test_push_pull_through_dtr(keystone_swift: KeystoneSwift,
                                     dtr_factory: Callable[..., DtrProcess]) -> None:
    """A real ``dtr serve`` on Swift behind Keystone: push an image, pull it back whole."""
    from tests.test_crash import check_image, push_seeded_image

    root = f"r{uuid.uuid4().hex[:10]}"
    dtr = dtr_factory({"storage": {"swift": {**_params(keystone_swift), "container": "dtr-registry-keystone",
                                             "prefix": root, "chunksize": 5 * MiB}}})
    async with aiohttp.ClientSession() as http:
        manifest, blobs = await push_seeded_image(http, dtr.url, "keystone/img", "v1", root)
        await check_image(http, dtr.url, "keystone/img", "v1", manifest, blobs)

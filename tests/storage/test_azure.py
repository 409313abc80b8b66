"""The shared driver suite on the Azure driver against Azurite (started once per session)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from dtr.storage.azure import AzureDriver, AzureParams
from dtr.storage.wrapper import StorageWrapper
from tests.storage.faultproxy import FaultProxy
from tests.storage.servers_azure_gcs import AZURE_ACCOUNT, AZURE_CONTAINER, AZURE_KEY, Azurite
from tests.storage.suite import DriverSuite, Faulty

CONTAINER = AZURE_CONTAINER


def azure_params(serviceurl: str, root: str, **kw: object) -> AzureParams:
    return AzureParams(container=CONTAINER, accountname=AZURE_ACCOUNT, accountkey=AZURE_KEY, serviceurl=serviceurl,
                       rootdirectory=root, chunksize=1 << 20, **kw)  # type: ignore[arg-type]


class TestAzure(DriverSuite):
    redirect_supported = True
    part_size = 1 << 20  # the chunksize above: resumable tests cross many block boundaries

    @pytest.fixture
    def root(self) -> str:
        return f"/t{uuid.uuid4().hex[:12]}"

    @pytest.fixture
    async def driver(self, azurite: Azurite, root: str) -> AsyncIterator[StorageWrapper]:
        d = StorageWrapper(AzureDriver(azure_params(azurite.url, root)))
        yield d
        await d.close()

    @pytest.fixture
    async def faulty_driver(self, azurite: Azurite, root: str,
                            fault_proxy_factory: Callable[[str], Awaitable[FaultProxy]]) -> AsyncIterator[Faulty]:
        proxy = await fault_proxy_factory(azurite.url.rsplit("/", 1)[0])
        d = StorageWrapper(AzureDriver(azure_params(f"{proxy.url}/{AZURE_ACCOUNT}", root, timeout=2.0,
                                                    max_retries=3, retry_delay=0.1)))
        yield Faulty(d, proxy)
        await d.close()

    async def test_connection_string(self, azurite: Azurite, root: str) -> None:
        d = StorageWrapper(AzureDriver(AzureParams(container=CONTAINER, connectionstring=azurite.connection_string,
                                                   rootdirectory=root)))
        try:
            await d.put_content("/cs/obj", b"via connection string")
            assert await d.get_content("/cs/obj") == b"via connection string"
            assert await d.redirect_url("/cs/obj") is not None
        finally:
            await d.close()

    async def test_sas_token(self, azurite: Azurite, root: str) -> None:
        import datetime as dt

        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas
        from azure.storage.blob.aio import ContainerClient

        # A container SAS cannot create its container: make sure it exists, whatever ran before.
        async with ContainerClient.from_connection_string(azurite.connection_string, CONTAINER) as cc:
            with contextlib.suppress(ResourceExistsError):
                await cc.create_container()

        sas = generate_container_sas(AZURE_ACCOUNT, CONTAINER, account_key=AZURE_KEY,
                                     permission=ContainerSasPermissions(read=True, write=True, delete=True, list=True,
                                                                        create=True, add=True),
                                     expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
        d = StorageWrapper(AzureDriver(AzureParams(container=CONTAINER, accountname=AZURE_ACCOUNT, sastoken=sas,
                                                   serviceurl=azurite.url, rootdirectory=root)))
        try:
            w = await d.writer("/sas/data")
            await w.write(b"x" * 1000)
            await w.commit()
            await d.move("/sas/data", "/sas/moved")
            assert await d.get_content("/sas/moved") == b"x" * 1000
            assert await d.list("/sas") == ["/sas/moved"]
            assert await d.redirect_url("/sas/moved") is None  # the configured token is never handed out
        finally:
            await d.close()

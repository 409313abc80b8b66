"""The shared driver suite on the GCS driver, against two local emulators (each started once).

- fake-gcs-server, the most complete emulator, with a service-account keyfile (tokens from a
  local token endpoint) so redirects are real V4-signed URLs. Its resumable-upload status query
  finalises the upload, so the driver runs with ``querysession: false`` there.
- gcp-storage-emulator, which answers the status query right: the driver asks the session on
  resume (``querysession: true``), and the fault tests (lost replies, 5xx, resets) run here.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from dtr.storage.gcs import GCSDriver, GCSParams
from dtr.storage.wrapper import StorageWrapper
from tests.storage.faultproxy import FaultProxy
from tests.storage.servers_azure_gcs import GCS_BUCKET, FakeGCS, GCPEmulator
from tests.storage.suite import DriverSuite, Faulty, data_of, read_all

BUCKET = GCS_BUCKET
CHUNK = 256 * 1024


def gcs_driver(endpoint: str, root: str, **kw: Any) -> StorageWrapper:
    kw.setdefault("anonymous", "keyfile" not in kw)
    return StorageWrapper(GCSDriver(GCSParams(bucket=BUCKET, endpoint=endpoint, rootdirectory=root, chunksize=CHUNK,
                                              **kw)))


class TestGCS(DriverSuite):
    """fake-gcs-server; faults run on the other emulator (TestGCSResumable)."""

    redirect_supported = True
    faults_supported = False
    part_size = CHUNK

    @pytest.fixture
    async def driver(self, fake_gcs: FakeGCS, gcs_keyfile: Path) -> AsyncIterator[StorageWrapper]:
        d = gcs_driver(fake_gcs.url, f"/t{uuid.uuid4().hex[:12]}", keyfile=str(gcs_keyfile), querysession=False)
        yield d
        await d.close()

    async def test_anonymous_cannot_sign(self, fake_gcs: FakeGCS) -> None:
        d = gcs_driver(fake_gcs.url, f"/t{uuid.uuid4().hex[:12]}", querysession=False)
        try:
            await d.put_content("/a/obj", b"x")
            assert await d.redirect_url("/a/obj") is None
        finally:
            await d.close()


class TestGCSResumable(DriverSuite):
    """gcp-storage-emulator: the resumable-session status query, and the fault tests."""

    part_size = CHUNK
    large_size = 8 << 20  # this emulator serves one request at a time

    @pytest.fixture
    def root(self) -> str:
        return f"/t{uuid.uuid4().hex[:12]}"

    @pytest.fixture
    async def driver(self, gcp_emulator: GCPEmulator, root: str) -> AsyncIterator[StorageWrapper]:
        d = gcs_driver(gcp_emulator.url, root)
        yield d
        await d.close()

    @pytest.fixture
    async def faulty_driver(self, gcp_emulator: GCPEmulator, root: str,
                            fault_proxy_factory: Callable[[str], Awaitable[FaultProxy]]) -> AsyncIterator[Faulty]:
        proxy = await fault_proxy_factory(gcp_emulator.url)
        d = gcs_driver(proxy.url, root, timeout=2.0, max_retries=3, retry_delay=0.1)
        yield Faulty(d, proxy)
        await d.close()

    async def test_resume_after_lost_side_object_update(self, driver: StorageWrapper) -> None:
        """A chunk reached the session but the side object was not updated (a crash): resume asks the session."""
        inner: Any = driver.driver
        data = data_of(3 * CHUNK + 1000, 21)
        w = await driver.writer("/lost/data")
        await w.write(data[:CHUNK + 10])
        await w.close()  # sends one chunk, keeps 10 bytes in the side object
        side = inner.bucket.get_blob(inner._keys.key("/lost/data") + "~upload")
        stale_meta, stale_tail = dict(side.metadata), side.download_as_bytes()
        w = await driver.writer("/lost/data", append=True)
        await w.write(data[CHUNK + 10:2 * CHUNK + 20])
        await w.close()  # the session now holds 2 chunks
        side.metadata = stale_meta  # as if the process died before recording that
        side.upload_from_string(stale_tail)
        w = await driver.writer("/lost/data", append=True)
        assert w.size == 2 * CHUNK  # what the session really holds (the 20 buffered bytes were lost)
        await w.write(data[w.size:])
        await w.commit()
        assert await read_all(driver, "/lost/data") == data

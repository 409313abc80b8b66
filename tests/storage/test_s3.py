"""The shared driver suite on the s3 driver against Swift's s3api and moto, plus S3-only checks."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from dtr.config import ConfigError
from dtr.storage.base import PathNotFoundError
from dtr.storage.cleversafe import CleversafeDriver, CleversafeParams
from dtr.storage.s3 import S3Driver, S3Params
from dtr.storage.wrapper import StorageWrapper
from tests.storage.faultproxy import FaultProxy
from tests.storage.servers import Moto, SwiftAIO
from tests.storage.suite import DriverSuite, Faulty, MiB, data_of, write_chunks

BUCKET = "dtr-test"


@pytest.fixture(scope="session")
def swift_s3(swift_server: SwiftAIO) -> Iterator[SwiftAIO]:
    swift_server.make_bucket(BUCKET)
    yield swift_server


@pytest.fixture(scope="session")
def moto_s3(moto_server: Moto) -> Iterator[Moto]:
    moto_server.make_bucket(BUCKET)
    yield moto_server


def s3_params(server: Any, root: str, **kw: Any) -> dict[str, Any]:
    return {"bucket": BUCKET, "region": server.region, "regionendpoint": server.url, "forcepathstyle": True,
            "accesskey": server.access_key, "secretkey": server.secret_key, "rootdirectory": root,
            "chunksize": 5 * MiB, "multipartcopythresholdsize": 6 * MiB, "multipartcopychunksize": 5 * MiB, **kw}


class S3Suite(DriverSuite):
    redirect_supported = True
    driver_class: type[S3Driver] = S3Driver
    params_class: type[S3Params] = S3Params
    extra: dict[str, Any] = {}

    @pytest.fixture
    def server(self) -> Any:
        raise NotImplementedError

    @pytest.fixture
    def root(self) -> str:
        return f"/t/{uuid.uuid4().hex}"

    def make(self, server: Any, root: str, **kw: Any) -> StorageWrapper:
        params = self.params_class(**s3_params(server, root, **{**self.extra, **kw}))
        return StorageWrapper(self.driver_class(params))

    @pytest.fixture
    async def driver(self, server: Any, root: str) -> AsyncIterator[StorageWrapper]:
        d = self.make(server, root)
        yield d
        await d.close()

    @pytest.fixture
    async def faulty_driver(self, server: Any, root: str,
                            fault_proxy_factory: Callable[[str], Awaitable[FaultProxy]]) -> AsyncIterator[Faulty]:
        proxy = await fault_proxy_factory(server.url)
        d = self.make(server, root, regionendpoint=proxy.url, maxretries=3, connecttimeout=2, readtimeout=2)
        yield Faulty(d, proxy)
        await d.close()
        proxy.clear()

    async def test_writer_state_is_small_and_hidden(self, driver: StorageWrapper, server: Any) -> None:
        """Between requests only the remainder below a part is kept, as a hidden object."""
        data = data_of(2 * self.part_size + 1234, 30)
        await write_chunks(driver, "/uploads/u/data", data, commit=False)
        inner: Any = driver.driver
        s3 = await inner._s3()
        page = await s3.list_objects_v2(Bucket=BUCKET, Prefix=inner.prefix)
        sizes = {o["Key"][len(inner.prefix):]: o["Size"] for o in page.get("Contents", [])}
        assert sizes == {"uploads/u/.data.dtr-writer": 1234}
        ups = await s3.list_multipart_uploads(Bucket=BUCKET, Prefix=inner.prefix)
        assert [u["Key"] for u in ups["Uploads"]] == [inner.prefix + "uploads/u/data"]
        await driver.delete("/uploads")
        ups = await s3.list_multipart_uploads(Bucket=BUCKET, Prefix=inner.prefix)
        assert not ups.get("Uploads")

    async def test_resume_after_crash_before_close(self, driver: StorageWrapper) -> None:
        """A writer that uploaded parts but died before closing: resume from the parts alone."""
        data = data_of(3 * self.part_size, 31)
        await write_chunks(driver, "/crash/data", data[:100], commit=False)
        w = await driver.writer("/crash/data", append=True)
        await w.write(data[100:2 * self.part_size + 50])  # uploads 2 parts, keeps 50 bytes in memory
        await w._inner._reap()  # type: ignore[attr-defined]  # the parts are stored ...
        del w  # ... and the writer dies: no close
        w = await driver.writer("/crash/data", append=True)
        assert w.size == 2 * self.part_size
        await w.write(data[w.size:])
        await w.commit()
        assert await driver.get_content("/crash/data") == data


class TestS3Swift(S3Suite):
    extra = {"deletecontentmd5": True}

    @pytest.fixture
    def server(self, swift_s3: SwiftAIO) -> SwiftAIO:
        return swift_s3

    async def test_delete_objects_content_md5_detected(self, swift_s3: SwiftAIO, root: str) -> None:
        """Without deletecontentmd5 the driver switches to Content-MD5 when the store asks for it."""
        d = self.make(swift_s3, root, deletecontentmd5=False)
        try:
            await d.put_content("/md5/a", b"a")
            await d.put_content("/md5/b", b"b")
            await d.delete("/md5")
            with pytest.raises(PathNotFoundError):
                await d.list("/md5")
        finally:
            await d.close()


class TestS3Moto(S3Suite):
    @pytest.fixture
    def server(self, moto_s3: Moto) -> Moto:
        return moto_s3

    async def test_server_side_encryption(self, moto_s3: Moto, root: str) -> None:
        d = self.make(moto_s3, root, encrypt=True)
        try:
            await write_chunks(d, "/enc/small", b"secret bytes")
            await write_chunks(d, "/enc/big", data_of(self.part_size + 1, 32))
            await d.move("/enc/big", "/enc/moved")
            s3 = await d.driver._s3()  # type: ignore[attr-defined]
            for name in ("small", "moved"):
                head = await s3.head_object(Bucket=BUCKET, Key=f"{root.strip('/')}/enc/{name}")
                assert head["ServerSideEncryption"] == "AES256", name
        finally:
            await d.close()

    async def test_server_side_encryption_with_a_kms_key(self, moto_s3: Moto, root: str) -> None:
        """SSE-KMS: every object (small puts, multipart uploads, copies) names the configured key."""
        import aioboto3

        session = aioboto3.Session(aws_access_key_id=moto_s3.access_key, aws_secret_access_key=moto_s3.secret_key,
                                   region_name=moto_s3.region)
        async with session.client("kms", endpoint_url=moto_s3.url) as kms:
            key_id = (await kms.create_key(Description="dtr test"))["KeyMetadata"]["KeyId"]
        d = self.make(moto_s3, root, encrypt=True, keyid=key_id)
        try:
            await write_chunks(d, "/kms/small", b"secret bytes")
            await write_chunks(d, "/kms/big", data_of(self.part_size + 1, 33))
            await d.move("/kms/big", "/kms/moved")
            assert await d.get_content("/kms/small") == b"secret bytes"
            s3 = await d.driver._s3()  # type: ignore[attr-defined]
            for name in ("small", "moved"):
                head = await s3.head_object(Bucket=BUCKET, Key=f"{root.strip('/')}/kms/{name}")
                assert head["ServerSideEncryption"] == "aws:kms", name
                assert key_id in head["SSEKMSKeyId"], (name, head["SSEKMSKeyId"])
        finally:
            await d.close()

    async def test_storage_class(self, moto_s3: Moto, root: str) -> None:
        d = self.make(moto_s3, root, storageclass="REDUCED_REDUNDANCY")
        try:
            await d.put_content("/sc/x", b"x")
            s3 = await d.driver._s3()  # type: ignore[attr-defined]
            head = await s3.head_object(Bucket=BUCKET, Key=f"{root.strip('/')}/sc/x")
            assert head.get("StorageClass") == "REDUCED_REDUNDANCY"
        finally:
            await d.close()


def test_params_validated() -> None:
    with pytest.raises(ConfigError, match="bucket"):
        S3Params()
    with pytest.raises(ConfigError, match="chunksize"):
        S3Params(bucket="b", chunksize=MiB)
    with pytest.raises(ConfigError, match="accesskey"):
        S3Params(bucket="b", accesskey="a")
    with pytest.raises(ConfigError, match="keyid"):
        S3Params(bucket="b", keyid="k")


def test_secrets_not_in_repr() -> None:
    p = S3Params(bucket="b", accesskey="AKIAEXAMPLE", secretkey="very-secret", sessiontoken="tok")
    assert "very-secret" not in repr(p) and "tok'" not in repr(p)


class TestCleversafe(S3Suite):
    """The cleversafe profile against Swift's s3api (which needs Content-MD5 on DeleteObjects, as COS does)."""

    driver_class = CleversafeDriver
    params_class = CleversafeParams

    @pytest.fixture
    def server(self, swift_s3: SwiftAIO) -> SwiftAIO:
        return swift_s3


def test_cleversafe_params() -> None:
    with pytest.raises(ConfigError, match="regionendpoint"):
        CleversafeParams(bucket="b")
    with pytest.raises(ConfigError, match="forcepathstyle"):
        CleversafeParams(bucket="b", regionendpoint="http://cos", forcepathstyle=False)
    p = CleversafeParams(bucket="b", regionendpoint="http://cos")
    assert p.deletecontentmd5 and p.forcepathstyle


def test_config_builds_s3_drivers() -> None:
    from dtr.config import StorageConfig
    from dtr.storage.factory import create_driver, validate_params

    cfg = StorageConfig("s3", {"bucket": "b", "region": "eu-west-1", "chunksize": 8 * MiB})
    validate_params(cfg)
    assert create_driver(cfg).name == "s3"
    with pytest.raises(ConfigError, match=r"storage\.s3\.chunksize"):
        validate_params(StorageConfig("s3", {"bucket": "b", "chunksize": 1024}))
    with pytest.raises(ConfigError, match=r"storage\.s3\.bogus: unknown key"):
        validate_params(StorageConfig("s3", {"bucket": "b", "bogus": 1}))
    with pytest.raises(ConfigError, match=r"storage\.cleversafe\.regionendpoint"):
        validate_params(StorageConfig("cleversafe", {"bucket": "b"}))

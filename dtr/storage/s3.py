"""The S3 driver (aioboto3): objects are keys under ``rootdirectory`` in ``bucket``.

Resumable writes (``dtr.storage.parts.PartWriter``): bytes go to an S3 multipart upload on the
object's own key in parts of ``chunksize`` (growing every 1000 parts so 10,000 parts reach far;
S3's minimum is 5 MiB). What is left below a part when a writer closes is kept in a small hidden *writer-state object*
beside the key (``dir/.name.dtr-writer``) whose metadata names the upload and how many parts
precede it, so a writer resumes in any process or replica and nothing stays in memory between
requests. The state object is the marker of an unfinished write: ``writer(append=True)`` reads
it, lists the upload's parts, and continues. ``commit`` sends the remainder as the last part and
completes the upload (or PUTs a small object), then drops the state; ``cancel`` aborts both.

Crash safety: see ``dtr.storage.parts`` (a writer that died after sending parts but before
saving resumes from the contiguous parts alone). Every request is idempotent and retried by
botocore (standard mode) on 5xx, throttling, resets and timeouts; reads resume at the offset
reached, pinned to the object's ETag. Hidden names (a component starting with ``.``, which no
storage path can have) never show in ``list``/``walk``/``stat``.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import contextlib
import dataclasses
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar, NoReturn, TypeVar

from dtr.sections import ConfigError
from dtr.storage.base import (
    FileInfo,
    FileWriter,
    InvalidOffsetError,
    PathNotFoundError,
    StorageDriver,
    StorageError,
)
from dtr.storage.keys import ObjectKeys
from dtr.storage.parts import Part, PartWriter, contiguous

log = logging.getLogger(__name__)
T = TypeVar("T")

MiB = 1 << 20
MIN_PART = 5 * MiB
MAX_PART = 5 * 1024 * MiB
MAX_PARTS = 10_000
READ_CHUNK = MiB
_NOT_FOUND = {"NoSuchKey", "404", "NotFound", "NoSuchUpload"}


@dataclasses.dataclass(frozen=True)
class S3Params:
    bucket: str = ""
    region: str = "us-east-1"
    #: Endpoint of an S3-compatible service (``https://host:port``; a bare host gets ``secure``'s scheme).
    regionendpoint: str = ""
    rootdirectory: str = ""
    #: Static credentials; both empty means the default AWS chain (env, profile, instance role).
    accesskey: str = ""
    secretkey: str = dataclasses.field(default="", repr=False)
    sessiontoken: str = dataclasses.field(default="", repr=False)
    forcepathstyle: bool = False
    secure: bool = True
    skipverify: bool = False
    #: Server-side encryption: SSE-S3 (AES256), or SSE-KMS with ``keyid``.
    encrypt: bool = False
    keyid: str = ""
    #: ``STANDARD``, ``REDUCED_REDUNDANCY``, ... or ``NONE`` to send no storage class.
    storageclass: str = "STANDARD"
    #: ``private``, ... or empty to send no canned ACL.
    objectacl: str = ""
    #: Multipart upload part size (at least 5 MiB).
    chunksize: int = 10 * MiB
    multipartcopychunksize: int = 32 * MiB
    multipartcopymaxconcurrency: int = 16
    multipartcopythresholdsize: int = 32 * MiB
    #: Retries per request (botocore standard mode: exponential backoff with jitter).
    maxretries: int = 5
    connecttimeout: float = 10.0
    readtimeout: float = 60.0
    maxconnections: int = 64
    useragent: str = ""
    #: Send Content-MD5 on DeleteObjects (botocore >= 1.36 sends a CRC instead, which some
    #: S3-compatible stores such as Swift's s3api and older Cleversafe/IBM COS refuse). Without
    #: it the driver switches to Content-MD5 after the first such refusal.
    deletecontentmd5: bool = False
    #: Lifetime of presigned redirect URLs, in seconds.
    redirectexpiry: int = 1200

    #: The config section named in errors.
    _section: ClassVar[str] = "s3"

    def __post_init__(self) -> None:
        p, where = self, f"storage.{self._section}"
        if not p.bucket:
            raise ConfigError(f"{where}.bucket: required")
        if p.chunksize < MIN_PART or p.chunksize > MAX_PART:
            raise ConfigError(f"{where}.chunksize: must be between 5 MiB ({MIN_PART}) and 5 GiB, got {p.chunksize}")
        if p.multipartcopychunksize < MIN_PART or p.multipartcopychunksize > MAX_PART:
            raise ConfigError(f"{where}.multipartcopychunksize: must be between 5 MiB and 5 GiB")
        if p.multipartcopythresholdsize < 0 or p.multipartcopythresholdsize > MAX_PART:
            raise ConfigError(f"{where}.multipartcopythresholdsize: must be between 0 and 5 GiB")
        if p.multipartcopymaxconcurrency < 1 or p.maxconnections < 1:
            raise ConfigError(f"{where}: multipartcopymaxconcurrency and maxconnections must be at least 1")
        if p.maxretries < 0 or p.connecttimeout <= 0 or p.readtimeout <= 0:
            raise ConfigError(f"{where}: maxretries must be at least 0 and timeouts positive")
        if bool(p.accesskey) != bool(p.secretkey):
            raise ConfigError(f"{where}: accesskey and secretkey go together (or neither, for the default chain)")
        if p.keyid and not p.encrypt:
            raise ConfigError(f"{where}.keyid: needs encrypt: true")


def _code(e: Any) -> str:
    return str(getattr(e, "response", {}).get("Error", {}).get("Code", ""))


def _status(e: Any) -> int:
    return int(getattr(e, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _fail(e: BaseException, path: str, what: str = "") -> NoReturn:
    """Raise the typed StorageError for a botocore/aiohttp failure."""
    from botocore.exceptions import ClientError

    if isinstance(e, StorageError):
        raise e
    if isinstance(e, ClientError):
        code, status = _code(e), _status(e)
        if code in _NOT_FOUND or status == 404:
            raise PathNotFoundError(what or "not found", path=path) from e
        if code == "InvalidRange" or status == 416:
            raise InvalidOffsetError("offset beyond the end of the object", path=path) from e
        err = StorageError(f"{code or status}: {e}", path=path)
        err.retryable = status >= 500 or status in (0, 408, 429) or code in ("SlowDown", "RequestTimeout")
        raise err from e
    raise StorageError(f"{type(e).__name__}: {e}", path=path) from e


def _is_not_found(e: BaseException) -> bool:
    return _code(e) in _NOT_FOUND or _status(e) == 404


class S3Driver(StorageDriver):
    name: ClassVar[str] = "s3"
    Params: ClassVar[type[Any]] = S3Params

    def __init__(self, params: S3Params) -> None:
        self.p = params
        self.keys = ObjectKeys(params.rootdirectory)
        self.prefix = self.keys.prefix
        self._client: Any = None
        self._stack = contextlib.AsyncExitStack()
        self._lock = asyncio.Lock()
        self._md5_hooked = False

    # -- client ----------------------------------------------------------------------------

    def _endpoint(self) -> str | None:
        ep = self.p.regionendpoint
        if not ep:
            return None
        return ep if "://" in ep else f"{'https' if self.p.secure else 'http'}://{ep}"

    def _send_content_md5(self, client: Any) -> None:
        """Sign every DeleteObjects with a Content-MD5 from now on."""
        client.meta.events.register("before-sign.s3.DeleteObjects", _add_content_md5)
        self._md5_hooked = True

    async def _s3(self) -> Any:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                import aioboto3
                from aiobotocore.config import AioConfig

                p = self.p
                config = AioConfig(
                    region_name=p.region,
                    signature_version="s3v4",
                    s3={"addressing_style": "path" if p.forcepathstyle else "auto"},
                    retries={"max_attempts": p.maxretries + 1, "mode": "standard"},
                    connect_timeout=p.connecttimeout,
                    read_timeout=p.readtimeout,
                    max_pool_connections=p.maxconnections,
                    user_agent_extra=p.useragent or None,
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                )
                session = aioboto3.Session(
                    aws_access_key_id=p.accesskey or None,
                    aws_secret_access_key=p.secretkey or None,
                    aws_session_token=p.sessiontoken or None,
                    region_name=p.region,
                )
                client = await self._stack.enter_async_context(session.client(
                    "s3", endpoint_url=self._endpoint(), config=config, verify=not p.skipverify,
                    use_ssl=self.p.secure,
                ))
                self._client = client
                if p.deletecontentmd5:
                    self._send_content_md5(client)
        return self._client

    async def _call(self, path: str, fn: Callable[[Any], Awaitable[T]], what: str = "") -> T:
        s3 = await self._s3()
        try:
            return await fn(s3)
        except (StorageError, asyncio.CancelledError):
            raise
        except Exception as e:
            _fail(e, path, what)

    def _put_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {}
        if self.p.encrypt:
            args["ServerSideEncryption"] = "aws:kms" if self.p.keyid else "AES256"
            if self.p.keyid:
                args["SSEKMSKeyId"] = self.p.keyid
        if self.p.storageclass and self.p.storageclass.upper() != "NONE":
            args["StorageClass"] = self.p.storageclass
        if self.p.objectacl:
            args["ACL"] = self.p.objectacl
        return args

    # -- whole objects ---------------------------------------------------------------------

    async def get_content(self, path: str) -> bytes:
        async def get(s3: Any) -> bytes:
            resp = await s3.get_object(Bucket=self.p.bucket, Key=self.keys.key(path))
            async with resp["Body"] as body:
                data: bytes = await body.read()
                return data

        return await self._call(path, get)

    async def put_content(self, path: str, data: bytes) -> None:
        await self._call(path, lambda s3: s3.put_object(Bucket=self.p.bucket, Key=self.keys.key(path), Body=bytes(data),
                                                        **self._put_args()))

    async def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:  # type: ignore[override]
        if offset < 0:
            raise InvalidOffsetError(f"negative offset {offset}", path=path)
        key, pos, etag, attempt = self.keys.key(path), offset, "", 0
        while True:
            args: dict[str, Any] = {"Bucket": self.p.bucket, "Key": key}
            if pos > 0:
                args["Range"] = f"bytes={pos}-"
            if etag:
                args["IfMatch"] = etag
            try:
                resp = await self._call(path, lambda s3, a=args: s3.get_object(**a))  # type: ignore[misc]
            except InvalidOffsetError:
                size = (await self.stat(path)).size
                if pos == size:
                    return
                raise InvalidOffsetError(f"offset {pos} outside 0..{size}", path=path) from None
            etag = etag or resp.get("ETag", "")
            body = resp["Body"]
            try:
                buf = bytearray()
                while True:
                    try:
                        chunk = await body.read(READ_CHUNK - len(buf))
                    except asyncio.CancelledError:
                        raise
                    except Exception as e:
                        if attempt >= self.p.maxretries:
                            _fail(e, path)
                        attempt += 1
                        log.info("s3 read of %s broke at %d (%s); resuming", path, pos + len(buf), e)
                        break
                    if chunk:
                        buf += chunk
                    if len(buf) >= READ_CHUNK or (not chunk and buf):
                        pos += len(buf)
                        yield bytes(buf)
                        buf.clear()
                    if not chunk:
                        return
                if buf:
                    pos += len(buf)
                    yield bytes(buf)
                await asyncio.sleep(min(0.1 * 2 ** attempt, 5))
            finally:
                body.close()

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        op = {"GET": "get_object", "HEAD": "head_object"}.get(method.upper())
        if op is None:
            return None
        url: str = await self._call(path, lambda s3: s3.generate_presigned_url(
            op, Params={"Bucket": self.p.bucket, "Key": self.keys.key(path)}, ExpiresIn=self.p.redirectexpiry))
        return url

    # -- namespace -------------------------------------------------------------------------

    async def _head(self, key: str, path: str) -> dict[str, Any] | None:
        s3 = await self._s3()
        try:
            resp: dict[str, Any] = await s3.head_object(Bucket=self.p.bucket, Key=key)
            return resp
        except Exception as e:
            if _is_not_found(e):
                return None
            _fail(e, path)

    async def _keys(self, prefix: str, path: str, delimiter: str = "") -> AsyncIterator[dict[str, Any]]:
        """Pages of ListObjectsV2 under ``prefix``."""
        s3 = await self._s3()
        args: dict[str, Any] = {"Bucket": self.p.bucket, "Prefix": prefix}
        if delimiter:
            args["Delimiter"] = delimiter
        while True:
            try:
                page: dict[str, Any] = await s3.list_objects_v2(**args)
            except Exception as e:
                _fail(e, path)
            yield page
            if not page.get("IsTruncated"):
                return
            args["ContinuationToken"] = page["NextContinuationToken"]

    async def stat(self, path: str) -> FileInfo:
        if path != "/":
            head = await self._head(self.keys.key(path), path)
            if head is not None:
                return FileInfo(path, int(head["ContentLength"]), False, head.get("LastModified"))
        page = await self._call(path, lambda s3: s3.list_objects_v2(Bucket=self.p.bucket, Prefix=self.keys.dir(path),
                                                                    MaxKeys=1))
        if page.get("Contents") or path == "/":
            return FileInfo(path, 0, True)
        raise PathNotFoundError("not found", path=path)

    async def list(self, path: str) -> list[str]:
        prefix, base = self.keys.dir(path), path.rstrip("/")
        out: set[str] = set()
        seen = False
        async for page in self._keys(prefix, path, "/"):
            names = [c["Prefix"][len(prefix):].rstrip("/") for c in page.get("CommonPrefixes", [])]
            names += [o["Key"][len(prefix):] for o in page.get("Contents", [])]
            seen = seen or bool(names)
            out.update(f"{base}/{n}" for n in names if n and not n.startswith("."))
        if not seen and path != "/":
            raise PathNotFoundError("not found", path=path)
        return sorted(out)

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        seen = False
        async for page in self._keys(self.keys.dir(path), path):
            for o in page.get("Contents", []):
                seen = True
                p = self.keys.path(o["Key"])
                if any(part.startswith(".") or not part for part in p[1:].split("/")):
                    continue
                yield FileInfo(p, int(o["Size"]), False, o.get("LastModified"))
        if not seen and path != "/":
            raise PathNotFoundError("not found", path=path)

    async def move(self, src: str, dst: str) -> None:
        head = await self._head(self.keys.key(src), src)
        if head is None:
            raise PathNotFoundError("not found", path=src)
        size = int(head["ContentLength"])
        if size <= self.p.multipartcopythresholdsize:
            await self._call(src, lambda s3: s3.copy_object(
                Bucket=self.p.bucket, Key=self.keys.key(dst),
                CopySource={"Bucket": self.p.bucket, "Key": self.keys.key(src)},
                MetadataDirective="REPLACE", **self._put_args()))
        else:
            await self._multipart_copy(src, dst, size)
        await self._call(src, lambda s3: s3.delete_object(Bucket=self.p.bucket, Key=self.keys.key(src)))

    async def _multipart_copy(self, src: str, dst: str, size: int) -> None:
        key, chunk = self.keys.key(dst), self.p.multipartcopychunksize
        if size > chunk * MAX_PARTS:
            chunk = -(-size // MAX_PARTS)
        up = await self._call(dst, lambda s3: s3.create_multipart_upload(Bucket=self.p.bucket, Key=key,
                                                                         **self._put_args()))
        upload_id = up["UploadId"]
        sem = asyncio.Semaphore(self.p.multipartcopymaxconcurrency)

        async def part(n: int) -> dict[str, Any]:
            start = (n - 1) * chunk
            end = min(start + chunk, size) - 1
            async with sem:
                r = await self._call(dst, lambda s3: s3.upload_part_copy(
                    Bucket=self.p.bucket, Key=key, UploadId=upload_id, PartNumber=n,
                    CopySource={"Bucket": self.p.bucket, "Key": self.keys.key(src)},
                    CopySourceRange=f"bytes={start}-{end}"))
            return {"PartNumber": n, "ETag": r["CopyPartResult"]["ETag"]}

        try:
            parts = await asyncio.gather(*(part(n) for n in range(1, -(-size // chunk) + 1)))
            await self._complete(dst, key, upload_id, list(parts), size)
        except BaseException:
            with contextlib.suppress(Exception):
                await self._abort(key, upload_id)
            raise

    async def delete(self, path: str) -> None:
        key, prefix = self.keys.key(path), self.keys.dir(path)
        keys: list[str] = []
        if path != "/":
            if await self._head(key, path) is not None:
                keys.append(key)
            state = await self._head(self.keys.state_key(path), path)
            if state is not None:
                keys.append(self.keys.state_key(path))
                with contextlib.suppress(PathNotFoundError):
                    if upload := state.get("Metadata", {}).get("upload"):
                        await self._abort(key, upload)
        async for page in self._keys(prefix, path):
            keys += [o["Key"] for o in page.get("Contents", [])]
        aborted = await self._abort_uploads(key, prefix, path)
        if not keys and not aborted:
            raise PathNotFoundError("not found", path=path)
        for i in range(0, len(keys), 1000):
            batch = keys[i:i + 1000]
            try:
                resp = await self._delete_batch(path, batch)
            except StorageError as e:
                if self._md5_hooked or "Content-MD5" not in str(e):
                    raise
                # A store that insists on Content-MD5 (Swift s3api, Cleversafe): send it from now on.
                log.warning("s3 DeleteObjects needs Content-MD5 here; sending it (set deletecontentmd5: true)")
                self._send_content_md5(await self._s3())
                resp = await self._delete_batch(path, batch)
            errors = [e for e in resp.get("Errors", []) if e.get("Code") != "NoSuchKey"]
            if errors:
                raise StorageError(f"delete failed for {len(errors)} keys: {errors[0]}", path=path)

    async def _delete_batch(self, path: str, keys: builtins.list[str]) -> dict[str, Any]:
        resp: dict[str, Any] = await self._call(path, lambda s3: s3.delete_objects(
            Bucket=self.p.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}))
        return resp

    async def _abort_uploads(self, key: str, prefix: str, path: str) -> int:
        """Abort the multipart uploads on ``key`` and under ``prefix``; returns how many."""
        s3 = await self._s3()
        args: dict[str, Any] = {"Bucket": self.p.bucket, "Prefix": key}
        n = 0
        while True:
            try:
                page = await s3.list_multipart_uploads(**args)
            except Exception as e:
                _fail(e, path)
            for u in page.get("Uploads", []):
                if u["Key"] == key or u["Key"].startswith(prefix):
                    await self._abort(u["Key"], u["UploadId"])
                    n += 1
            if not page.get("IsTruncated"):
                return n
            args["KeyMarker"] = page.get("NextKeyMarker", "")
            args["UploadIdMarker"] = page.get("NextUploadIdMarker", "")

    async def _uploads_on(self, key: str, path: str) -> builtins.list[str]:
        """Ids of the multipart uploads in progress on exactly ``key``, oldest first."""
        resp = await self._call(path, lambda s3: s3.list_multipart_uploads(Bucket=self.p.bucket, Prefix=key))
        ups = sorted((u.get("Initiated"), u["UploadId"]) for u in resp.get("Uploads", []) if u["Key"] == key)
        return [u for _, u in ups]

    async def _abort(self, key: str, upload_id: str) -> None:
        s3 = await self._s3()
        try:
            await s3.abort_multipart_upload(Bucket=self.p.bucket, Key=key, UploadId=upload_id)
        except Exception as e:
            if not _is_not_found(e):
                _fail(e, self.keys.path(key))

    async def _complete(self, path: str, key: str, upload_id: str, parts: builtins.list[dict[str, Any]],
                        size: int) -> None:
        s3 = await self._s3()
        try:
            await s3.complete_multipart_upload(Bucket=self.p.bucket, Key=key, UploadId=upload_id,
                                               MultipartUpload={"Parts": parts})
        except Exception as e:
            # A retry after a lost reply finds the upload gone: done if the object is there, whole.
            if _code(e) == "NoSuchUpload":
                head = await self._head(key, path)
                if head is not None and int(head["ContentLength"]) == size:
                    return
            _fail(e, path)

    # -- writers ---------------------------------------------------------------------------

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        key, state_key = self.keys.key(path), self.keys.state_key(path)
        if not append:
            for upload in await self._uploads_on(key, path):
                await self._abort(key, upload)
            return _S3Writer(self, path, None, [], bytearray(), dirty=True)
        state = await self._head(state_key, path)
        if state is None:
            raise PathNotFoundError("no unfinished write to resume", path=path)
        meta = state.get("Metadata", {})
        upload_id, before, tail = meta.get("upload") or None, int(meta.get("parts", "0")), int(state["ContentLength"])
        if upload_id is None:
            # A writer resumed from this state may have started an upload and died before saving it.
            uploads = await self._uploads_on(key, path)
            upload_id = uploads[-1] if uploads else None
        parts: list[tuple[int, str, int]] = []
        if upload_id:
            try:
                parts = await self._list_parts(key, upload_id)
            except PathNotFoundError:
                head = await self._head(key, path)
                if head is None:
                    raise PathNotFoundError("the unfinished write's upload is gone", path=path) from None
                return _S3Writer(self, path, None, [], None, done=int(head["ContentLength"]))
        if len(parts) < before:
            raise StorageError(f"unfinished write lost parts: {len(parts)} of {before} remain", path=path)
        if len(parts) > before:
            # Parts went up after the state was saved: its bytes lead the first newer part.
            return _S3Writer(self, path, upload_id, parts, bytearray(), dirty=True)
        return _S3Writer(self, path, upload_id, parts, None, tail_size=tail)

    async def _list_parts(self, key: str, upload_id: str) -> builtins.list[Part]:
        s3 = await self._s3()
        args: dict[str, Any] = {"Bucket": self.p.bucket, "Key": key, "UploadId": upload_id}
        found: dict[int, tuple[str, int]] = {}
        while True:
            try:
                page = await s3.list_parts(**args)
            except Exception as e:
                _fail(e, self.keys.path(key))
            for p in page.get("Parts", []):
                found[int(p["PartNumber"])] = (p["ETag"], int(p["Size"]))
            if not page.get("IsTruncated"):
                break
            args["PartNumberMarker"] = page["NextPartNumberMarker"]
        return contiguous(found)

    def part_size(self, number: int) -> int:
        """Size of part ``number`` (1-based): grows every 1000 parts so 10,000 parts hold 55x chunksize x 1000."""
        return min(self.p.chunksize * (1 + (number - 1) // 1000), MAX_PART)

    async def close(self) -> None:
        self._client = None
        await self._stack.aclose()


class _S3Writer(PartWriter):
    """Parts of an S3 multipart upload on the object's key; the remainder in the writer-state object."""

    def __init__(self, d: S3Driver, path: str, upload_id: str | None, parts: builtins.list[Part],
                 buf: bytearray | None, *, tail_size: int = 0, dirty: bool = False, done: int = -1) -> None:
        super().__init__(path, parts, buf, tail_size=tail_size, dirty=dirty)
        self._d, self._key, self._upload = d, d.keys.key(path), upload_id
        #: >= 0: the upload was completed already (a commit whose reply was lost); the object's size.
        self._done = done
        if done >= 0:
            self._size = done
        self._create = asyncio.Lock()

    def part_size(self, number: int) -> int:
        return self._d.part_size(number)

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._done >= 0:
            raise StorageError("the write was already committed", path=self.path)
        await super().write(data)

    async def _upload_id(self) -> str:
        async with self._create:
            if self._upload is None:
                d = self._d
                up = await d._call(self.path, lambda s3: s3.create_multipart_upload(
                    Bucket=d.p.bucket, Key=self._key, **d._put_args()))
                self._upload = up["UploadId"]
            return self._upload

    async def send_part(self, number: int, data: bytes) -> Part:
        if number > MAX_PARTS:
            err = StorageError(f"object too large: more than {MAX_PARTS} parts", path=self.path)
            err.retryable = False
            raise err
        d, upload = self._d, await self._upload_id()
        r = await d._call(self.path, lambda s3: s3.upload_part(
            Bucket=d.p.bucket, Key=self._key, UploadId=upload, PartNumber=number, Body=data))
        return (number, r["ETag"], len(data))

    async def load_tail(self) -> bytes:
        return await self._d.get_content(self._d.keys.path(self._d.keys.state_key(self.path)))

    async def save(self, tail: bytes, parts: int) -> None:
        d, state_key = self._d, self._d.keys.state_key(self.path)
        meta = {"upload": self._upload or "", "parts": str(parts)}
        await d._call(self.path, lambda s3: s3.put_object(Bucket=d.p.bucket, Key=state_key, Body=tail,
                                                          Metadata=meta, **d._put_args()))

    async def finish(self, parts: builtins.list[Part], rest: bytes) -> None:
        d = self._d
        if self._done < 0:
            if not parts:
                await d.put_content(self.path, rest)
                if self._upload is not None:
                    await d._abort(self._key, self._upload)
            else:
                if rest:
                    parts = [*parts, await self.send_part(len(parts) + 1, rest)]
                await d._complete(self.path, self._key, self._upload or "",
                                  [{"PartNumber": n, "ETag": etag} for n, etag, _ in parts], self._size)
        await self._drop_state()

    async def discard(self) -> None:
        if self._upload is not None:
            await self._d._abort(self._key, self._upload)
        await self._drop_state()

    async def _drop_state(self) -> None:
        d = self._d
        await d._call(self.path, lambda s3: s3.delete_object(Bucket=d.p.bucket, Key=d.keys.state_key(self.path)))


def _add_content_md5(request: Any, **_: Any) -> None:
    """before-sign hook: Content-MD5 on DeleteObjects, for stores that insist on it."""
    body = request.body if isinstance(request.body, bytes) else (request.body or b"")
    if isinstance(body, str):
        body = body.encode()
    for h in [h for h in request.headers if h.lower().startswith("x-amz-checksum") or
              h.lower() == "x-amz-sdk-checksum-algorithm"]:
        del request.headers[h]
    request.headers["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()

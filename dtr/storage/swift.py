"""The OpenStack Swift driver (python-swiftclient): objects live in ``container`` under ``prefix``.

python-swiftclient is synchronous: every call runs in a bounded thread pool (one connection per
thread), so the event loop never waits on the network.

Resumable writes, the same shape as the s3 driver: bytes go to *segments* of ``chunksize``
(growing every 100 segments, as a manifest holds at most 1000 by default) under a hidden
``<prefix>/.dtr-segments/<set>/<n>``; what is left below a segment when a writer closes is kept in
a hidden writer-state object beside the path (``dir/.name.dtr-writer``) whose metadata names the
segment set and how many segments precede it. ``commit`` stores a small object directly, or
uploads the remainder as the last segment and PUTs a static large object (SLO) manifest.
Segments belong to their manifest: ``move`` copies the manifest (not the bytes) and ``delete``
removes manifests with their segments. Reads resume after a broken stream, pinned to the ETag.

Redirects are temp URLs signed with ``secretkey`` (set as the account's, or with
``tempurlcontainerkey`` the container's, Temp-URL-Key on first use), or with a key already set
on the account/container when ``secretkey`` is empty.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import io
import json
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, NoReturn, TypeVar
from urllib.parse import quote, urlsplit

from dtr.sections import ConfigError
from dtr.storage.base import (
    FileInfo,
    FileWriter,
    InvalidOffsetError,
    PathNotFoundError,
    StorageDriver,
    StorageError,
)
from dtr.storage.keys import STATE_SUFFIX, ObjectKeys
from dtr.storage.parts import Part, PartWriter, contiguous

log = logging.getLogger(__name__)
T = TypeVar("T")

MiB = 1 << 20
READ_CHUNK = MiB
SEGMENTS = ".dtr-segments"
MAX_SEGMENT = 5 * 1024 * MiB


@dataclasses.dataclass(frozen=True)
class SwiftParams:
    authurl: str = ""
    username: str = ""
    password: str = dataclasses.field(default="", repr=False)
    #: 1, 2 or 3; 0 guesses from ``authurl`` (``/v3`` -> 3, ``/v2.0`` -> 2, else 1).
    authversion: int = 0
    tenant: str = ""
    tenantid: str = ""
    domain: str = ""
    domainid: str = ""
    tenantdomain: str = ""
    tenantdomainid: str = ""
    trustid: str = ""
    region: str = ""
    #: ``public``, ``internal`` or ``admin`` endpoint from the catalogue (v2/v3).
    endpointtype: str = "public"
    container: str = ""
    prefix: str = ""
    insecureskipverify: bool = False
    #: Segment size for large objects.
    chunksize: int = 20 * MiB
    #: Temp URL signing key; empty: use a key already set on the account (or container).
    secretkey: str = dataclasses.field(default="", repr=False)
    tempurlcontainerkey: bool = False
    tempurlmethods: tuple[str, ...] = ("GET",)
    #: Lifetime of temp URLs, in seconds.
    redirectexpiry: int = 1200
    #: Threads running swiftclient calls (each with its own connection).
    maxthreads: int = 32
    #: Retries per request (swiftclient: exponential backoff from 0.5 s up to 8 s).
    maxretries: int = 5
    timeout: float = 60.0

    def __post_init__(self) -> None:
        if not self.authurl:
            raise ConfigError("storage.swift.authurl: required")
        if not self.username or not self.password:
            raise ConfigError("storage.swift: username and password are required")
        if not self.container:
            raise ConfigError("storage.swift.container: required")
        if self.authversion not in (0, 1, 2, 3):
            raise ConfigError(f"storage.swift.authversion: must be 1, 2 or 3, got {self.authversion}")
        if self.chunksize < MiB or self.chunksize > MAX_SEGMENT:
            raise ConfigError(f"storage.swift.chunksize: must be between 1 MiB and 5 GiB, got {self.chunksize}")
        if self.maxthreads < 1 or self.maxretries < 0 or self.timeout <= 0:
            raise ConfigError("storage.swift: maxthreads must be at least 1, maxretries at least 0, timeout positive")
        bad = [m for m in self.tempurlmethods if m.upper() not in ("GET", "HEAD", "PUT", "POST", "DELETE")]
        if bad:
            raise ConfigError(f"storage.swift.tempurlmethods: unknown methods {bad}")

    @property
    def auth_version(self) -> str:
        if self.authversion:
            return {1: "1", 2: "2.0", 3: "3"}[self.authversion]
        path = urlsplit(self.authurl).path.rstrip("/")
        return "3" if path.endswith("/v3") else "2.0" if path.endswith("/v2.0") else "1"


def _status(e: BaseException) -> int:
    # swiftclient re-raises keystoneclient's errors (a v2.0/v3 401, say) without their status
    for err in (e, e.__context__):
        status = int(getattr(err, "http_status", 0) or 0)
        if status:
            return status
    return 0


def _fail(e: BaseException, path: str) -> NoReturn:
    if isinstance(e, StorageError):
        raise e
    status = _status(e)
    if status == 404:
        raise PathNotFoundError("not found", path=path) from e
    if status == 416:
        raise InvalidOffsetError("offset beyond the end of the object", path=path) from e
    msg = getattr(e, "msg", "") or str(e)
    err = StorageError(f"{status or type(e).__name__}: {msg}", path=path)
    err.retryable = status == 0 or status >= 500 or status in (408, 429)
    raise err from e


class SwiftDriver(StorageDriver):
    name: ClassVar[str] = "swift"
    Params: ClassVar[type[Any]] = SwiftParams

    def __init__(self, params: SwiftParams) -> None:
        self.p = params
        self.keys = ObjectKeys(params.prefix)
        self.prefix = self.keys.prefix
        self._pool = ThreadPoolExecutor(params.maxthreads, thread_name_prefix="dtr-swift")
        self._local = threading.local()
        self._ready: asyncio.Future[None] | None = None
        self._tempurl_key: str | None = None

    # -- plumbing --------------------------------------------------------------------------

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            import swiftclient

            p = self.p
            os_options = {k: v for k, v in {
                "tenant_id": p.tenantid, "tenant_name": p.tenant, "project_id": p.tenantid,
                "project_name": p.tenant, "user_domain_name": p.domain, "user_domain_id": p.domainid,
                "project_domain_name": p.tenantdomain, "project_domain_id": p.tenantdomainid,
                "trust_id": p.trustid, "region_name": p.region, "endpoint_type": f"{p.endpointtype}URL",
            }.items() if v}
            conn = swiftclient.Connection(
                authurl=p.authurl, user=p.username, key=p.password, tenant_name=p.tenant or None,
                auth_version=p.auth_version, os_options=os_options, insecure=p.insecureskipverify,
                retries=p.maxretries, starting_backoff=0.5, max_backoff=8, timeout=p.timeout,
            )
            self._local.conn = conn
        return conn

    async def _run(self, path: str, fn: Callable[[Any], T]) -> T:
        """Run ``fn(connection)`` in the pool, mapping swiftclient errors to typed ones."""
        await self._ensure_container()
        return await self._raw(path, fn)

    async def _raw(self, path: str, fn: Callable[[Any], T]) -> T:
        def call() -> T:
            return fn(self._conn())

        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, call)
        except (StorageError, asyncio.CancelledError):
            raise
        except Exception as e:
            _fail(e, path)

    async def _ensure_container(self) -> None:
        if self._ready is None:
            self._ready = asyncio.ensure_future(self._raw("/", lambda c: c.put_container(self.p.container)))
        try:
            await asyncio.shield(self._ready)
        except BaseException:
            if self._ready.done():
                self._ready = None
            raise

    def _segments(self, seg_set: str) -> str:
        return f"{self.prefix}{SEGMENTS}/{seg_set}/"

    async def _head(self, key: str, path: str) -> dict[str, str] | None:
        try:
            headers: dict[str, str] = await self._run(path, lambda c: c.head_object(self.p.container, key))
            return headers
        except PathNotFoundError:
            return None

    async def _listing(self, prefix: str, path: str, delimiter: str | None = None) -> builtins.list[dict[str, Any]]:
        _, items = await self._run(path, lambda c: c.get_container(self.p.container, prefix=prefix,
                                                                   delimiter=delimiter, full_listing=True))
        return list(items)

    async def _put(self, path: str, key: str, data: bytes, **kw: Any) -> str:
        """PUT ``data`` at ``key``; a seekable body lets swiftclient retry it. Returns the ETag."""
        etag: str = await self._run(path, lambda c: c.put_object(self.p.container, key, io.BytesIO(data),
                                                                 content_length=len(data), **kw))
        return etag

    # -- whole objects ---------------------------------------------------------------------

    async def get_content(self, path: str) -> bytes:
        _, body = await self._run(path, lambda c: c.get_object(self.p.container, self.keys.key(path)))
        return bytes(body)

    async def put_content(self, path: str, data: bytes) -> None:
        await self._put(path, self.keys.key(path), data)

    async def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:  # type: ignore[override]
        if offset < 0:
            raise InvalidOffsetError(f"negative offset {offset}", path=path)
        key, pos, etag, attempt = self.keys.key(path), offset, "", 0
        loop = asyncio.get_running_loop()
        while True:
            headers = {"Range": f"bytes={pos}-"} if pos else {}
            if etag:
                headers["If-Match"] = etag
            try:
                resp_headers, body = await self._run(path, lambda c, h=headers: c.get_object(  # type: ignore[misc]
                    self.p.container, key, resp_chunk_size=READ_CHUNK, headers=h))
            except InvalidOffsetError:
                size = (await self.stat(path)).size
                if pos == size:
                    return
                raise InvalidOffsetError(f"offset {pos} outside 0..{size}", path=path) from None
            etag = etag or resp_headers.get("etag", "")
            it: Iterator[bytes] = iter(body)
            try:
                while True:
                    try:
                        chunk = await loop.run_in_executor(self._pool, next, it, b"")
                    except asyncio.CancelledError:
                        raise
                    except Exception as e:
                        if attempt >= self.p.maxretries:
                            _fail(e, path)
                        attempt += 1
                        log.info("swift read of %s broke at %d (%s); resuming", path, pos, e)
                        break
                    if not chunk:
                        return
                    pos += len(chunk)
                    yield chunk
                await asyncio.sleep(min(0.1 * 2 ** attempt, 5))
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    await loop.run_in_executor(self._pool, close)

    # -- namespace -------------------------------------------------------------------------

    async def stat(self, path: str) -> FileInfo:
        if path != "/":
            head = await self._head(self.keys.key(path), path)
            if head is not None:
                return FileInfo(path, int(head.get("content-length", 0)), False, _mtime(head))
        _, items = await self._run(path, lambda c: c.get_container(self.p.container, prefix=self.keys.dir(path),
                                                                   limit=1))
        if items or path == "/":
            return FileInfo(path, 0, True)
        raise PathNotFoundError("not found", path=path)

    async def list(self, path: str) -> builtins.list[str]:
        prefix, base = self.keys.dir(path), path.rstrip("/")
        items = await self._listing(prefix, path, "/")
        names = [(i.get("subdir") or i["name"])[len(prefix):].rstrip("/") for i in items]
        if not names and path != "/":
            raise PathNotFoundError("not found", path=path)
        return sorted(f"{base}/{n}" for n in names if n and not n.startswith("."))

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        items = await self._listing(self.keys.dir(path), path)
        if not items and path != "/":
            raise PathNotFoundError("not found", path=path)
        for i in items:
            p = self.keys.path(i["name"])
            if any(part.startswith(".") or not part for part in p[1:].split("/")):
                continue
            yield FileInfo(p, int(i["bytes"]), False, _listing_mtime(i))

    async def move(self, src: str, dst: str) -> None:
        skey, dkey = self.keys.key(src), self.keys.key(dst)
        head = await self._head(skey, src)
        if head is None:
            raise PathNotFoundError("not found", path=src)
        if head.get("x-static-large-object", "").lower() == "true":
            # Copy the manifest, not the bytes: the segments now belong to dst.
            _, raw = await self._run(src, lambda c: c.get_object(self.p.container, skey,
                                                                 query_string="multipart-manifest=get&format=raw"))
            await self._put(dst, dkey, raw, query_string="multipart-manifest=put")
        else:
            await self._run(src, lambda c: c.copy_object(self.p.container, skey, f"/{self.p.container}/{dkey}"))
        await self._run(src, lambda c: c.delete_object(self.p.container, skey))

    async def delete(self, path: str) -> None:
        items = [] if path == "/" else [{"name": n} for n in (self.keys.key(path), self.keys.state_key(path))]
        items += await self._listing(self.keys.dir(path), path)
        found = await asyncio.gather(*(self._delete_one(i["name"], path) for i in items))
        if not any(found):
            raise PathNotFoundError("not found", path=path)

    async def _delete_one(self, key: str, path: str) -> bool:
        """Delete an object (with its segments, for a manifest or a writer state); False if absent."""
        try:
            if key.endswith(STATE_SUFFIX):
                head = await self._head(key, path)
                if head is None:
                    return False
                if seg_set := head.get("x-object-meta-segments"):
                    await self._drop_segments(seg_set, path)
                await self._run(path, lambda c: c.delete_object(self.p.container, key))
            else:
                head = await self._head(key, path)
                if head is None:
                    return False
                slo = head.get("x-static-large-object", "").lower() == "true"
                query = "multipart-manifest=delete" if slo else None
                await self._run(path, lambda c: c.delete_object(self.p.container, key, query_string=query))
            return True
        except PathNotFoundError:
            return False

    async def _drop_segments(self, seg_set: str, path: str) -> None:
        for item in await self._listing(self._segments(seg_set), path):
            with contextlib.suppress(PathNotFoundError):
                await self._run(path, lambda c, n=item["name"]: c.delete_object(self.p.container, n))  # type: ignore[misc]

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        if method.upper() not in {m.upper() for m in self.p.tempurlmethods} and not (
                method.upper() == "HEAD" and "GET" in {m.upper() for m in self.p.tempurlmethods}):
            return None
        key = await self._temp_url_key()
        if not key:
            return None
        from swiftclient.utils import generate_temp_url

        storage_url: str = await self._raw(path, lambda c: c.url or c.get_auth()[0])
        parts = urlsplit(storage_url)
        obj_path = f"{parts.path}/{quote(self.p.container)}/{quote(self.keys.key(path))}"
        signed = generate_temp_url(obj_path, self.p.redirectexpiry, key, method.upper())
        return f"{parts.scheme}://{parts.netloc}{signed}"

    async def _temp_url_key(self) -> str:
        if self._tempurl_key is not None:
            return self._tempurl_key
        p = self.p
        if p.secretkey:
            if p.tempurlcontainerkey:
                await self._run("/", lambda c: c.post_container(p.container, {"X-Container-Meta-Temp-URL-Key":
                                                                               p.secretkey}))
            else:
                await self._run("/", lambda c: c.post_account({"X-Account-Meta-Temp-URL-Key": p.secretkey}))
            self._tempurl_key = p.secretkey
        else:
            if p.tempurlcontainerkey:
                h = await self._run("/", lambda c: c.head_container(p.container))
                key = h.get("x-container-meta-temp-url-key", "")
            else:
                h = await self._run("/", lambda c: c.head_account())
                key = h.get("x-account-meta-temp-url-key", "")
            self._tempurl_key = key
        return self._tempurl_key

    # -- writers ---------------------------------------------------------------------------

    def segment_size(self, number: int) -> int:
        """Size of segment ``number`` (1-based): grows every 100 so 1000 segments hold 5500 x chunksize."""
        return min(self.p.chunksize * (1 + (number - 1) // 100), MAX_SEGMENT)

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        state = await self._head(self.keys.state_key(path), path)
        if not append:
            if state is not None and (old := state.get("x-object-meta-segments")):
                await self._drop_segments(old, path)
            return _SwiftWriter(self, path, uuid.uuid4().hex, [], bytearray(), dirty=True)
        if state is None:
            raise PathNotFoundError("no unfinished write to resume", path=path)
        seg_set = state.get("x-object-meta-segments") or uuid.uuid4().hex
        before, tail = int(state.get("x-object-meta-parts", "0")), int(state.get("content-length", 0))
        segs = await self._segment_list(seg_set, path)
        if len(segs) < before:
            raise StorageError(f"unfinished write lost segments: {len(segs)} of {before} remain", path=path)
        if len(segs) > before:
            # Segments went up after the state was saved: its bytes lead the first newer one.
            return _SwiftWriter(self, path, seg_set, segs, bytearray(), dirty=True)
        return _SwiftWriter(self, path, seg_set, segs, None, tail_size=tail)

    async def _segment_list(self, seg_set: str, path: str) -> builtins.list[Part]:
        """(number, etag, size) of the contiguous segments 1..n of ``seg_set``."""
        prefix = self._segments(seg_set)
        found = {}
        for i in await self._listing(prefix, path):
            with contextlib.suppress(ValueError):
                found[int(i["name"][len(prefix):])] = (i["hash"], int(i["bytes"]))
        return contiguous(found)

    def _segment(self, seg_set: str, number: int) -> str:
        return f"{self._segments(seg_set)}{number:08d}"

    async def close(self) -> None:
        self._pool.shutdown(wait=False)


class _SwiftWriter(PartWriter):
    """Segments under a hidden segment set; the remainder in the writer-state object; SLO on commit."""

    def __init__(self, d: SwiftDriver, path: str, seg_set: str, segs: builtins.list[Part], buf: bytearray | None,
                 *, tail_size: int = 0, dirty: bool = False) -> None:
        super().__init__(path, segs, buf, tail_size=tail_size, dirty=dirty)
        self._d, self._set = d, seg_set

    def part_size(self, number: int) -> int:
        return self._d.segment_size(number)

    async def send_part(self, number: int, data: bytes) -> Part:
        etag = await self._d._put(self.path, self._d._segment(self._set, number), data)
        return (number, etag, len(data))

    async def load_tail(self) -> bytes:
        return await self._d.get_content(self._d.keys.path(self._d.keys.state_key(self.path)))

    async def save(self, tail: bytes, parts: int) -> None:
        headers = {"X-Object-Meta-Segments": self._set, "X-Object-Meta-Parts": str(parts)}
        await self._d._put(self.path, self._d.keys.state_key(self.path), tail, headers=headers)

    async def finish(self, parts: builtins.list[Part], rest: bytes) -> None:
        d = self._d
        if not parts:
            await d.put_content(self.path, rest)
        else:
            if rest:
                parts = [*parts, await self.send_part(len(parts) + 1, rest)]
            manifest = json.dumps([{"path": f"/{d.p.container}/{d._segment(self._set, n)}", "etag": etag,
                                    "size_bytes": size} for n, etag, size in parts]).encode()
            await d._put(self.path, d.keys.key(self.path), manifest, query_string="multipart-manifest=put")
        await self._drop_state()

    async def discard(self) -> None:
        await self._d._drop_segments(self._set, self.path)
        await self._drop_state()

    async def _drop_state(self) -> None:
        d = self._d
        with contextlib.suppress(PathNotFoundError):
            await d._run(self.path, lambda c: c.delete_object(d.p.container, d.keys.state_key(self.path)))


def _mtime(headers: dict[str, str]) -> Any:
    import datetime as dt

    ts = headers.get("x-timestamp")
    return dt.datetime.fromtimestamp(float(ts), dt.UTC) if ts else None


def _listing_mtime(item: dict[str, Any]) -> Any:
    import datetime as dt

    lm = item.get("last_modified")
    if not lm:
        return None
    with contextlib.suppress(ValueError):
        return dt.datetime.fromisoformat(lm).replace(tzinfo=dt.UTC)
    return None

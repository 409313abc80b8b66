"""The Google Cloud Storage driver (google-cloud-storage, synchronous, run in a bounded thread pool).

Objects are named ``<rootdirectory>/<path>`` in one bucket.

Writers use GCS resumable uploads. Bytes go to the upload session in chunks of ``chunksize``
(a multiple of 256 KiB, as GCS requires of every chunk but the last). ``close`` sends what it can
in whole 256 KiB units and keeps the state in a small side object ``<path>~upload``: its
content is the unsent tail (under 256 KiB) and its metadata the session URL and the offset the
session has confirmed (``~`` never occurs in a storage path, so side objects are hidden from
list, stat and walk). ``writer(path, append=True)`` in any process or replica reads the side
object and, with ``querysession`` (the default), asks the session how much it really holds
(``PUT`` with ``Content-Range: bytes */*``), so a chunk whose confirmation was lost is neither
lost nor sent twice. ``commit`` sends the last chunk with the total size, which is when GCS makes
the object readable, then deletes the side object. A write that never reached ``chunksize``
commits as a single upload. At most one chunk is buffered in memory.

Credentials: ``keyfile`` (a service-account JSON key), else ``anonymous`` (emulators), else
Application Default Credentials. ``redirect_url`` signs a V4 URL when the credentials can sign
(a service-account key); otherwise it returns None.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

import requests
import urllib3
from google.api_core import exceptions as gexc
from google.auth import credentials as gcreds
from google.auth import exceptions as gauth_exc
from google.auth.transport.requests import AuthorizedSession
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

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

T = TypeVar("T")

#: GCS accepts non-final resumable chunks only in multiples of this.
CHUNK_UNIT = 256 * 1024
SIDE_SUFFIX = "~upload"
SIGNED_URL_LIFETIME = dt.timedelta(minutes=20)
READ_CHUNK = 1 << 20
DEFAULT_ENDPOINT = "https://storage.googleapis.com"


@dataclasses.dataclass(frozen=True)
class GCSParams:
    bucket: str = ""
    #: A service-account JSON key file; without one, Application Default Credentials.
    keyfile: str | None = None
    #: No credentials at all (emulators).
    anonymous: bool = False
    rootdirectory: str = ""
    #: Bytes per resumable-upload chunk; a multiple of 256 KiB.
    chunksize: int = 5 * 1024 * 1024
    #: The API endpoint (an emulator's URL); default Google's.
    endpoint: str | None = None
    #: On resume, ask the upload session how many bytes it holds. Switch off only for servers
    #: that finalise an upload on that query (fake-gcs-server); then the side object is trusted.
    querysession: bool = True
    #: Threads running the synchronous client.
    maxthreads: int = 32
    #: Retries of a failed request (timeouts, resets, 5xx), starting ``retry_delay`` seconds apart.
    max_retries: int = 5
    retry_delay: float = 1.0
    #: Seconds to wait for each request.
    timeout: float = 60.0

    def __post_init__(self) -> None:
        if not self.bucket:
            raise ConfigError("storage.gcs.bucket: required")
        if self.chunksize <= 0 or self.chunksize % CHUNK_UNIT:
            raise ConfigError(f"storage.gcs.chunksize: must be a positive multiple of {CHUNK_UNIT} (256 KiB)")
        if self.keyfile and self.anonymous:
            raise ConfigError("storage.gcs: keyfile and anonymous exclude each other")
        if self.maxthreads < 1:
            raise ConfigError("storage.gcs.maxthreads: must be at least 1")


def is_side(name: str) -> bool:
    return name.endswith(SIDE_SUFFIX)


_TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
              urllib3.exceptions.HTTPError, gauth_exc.TransportError)


@contextlib.contextmanager
def _errors(path: str) -> Iterator[None]:
    """Client errors as the driver interface's errors."""
    try:
        yield
    except gexc.NotFound:
        raise PathNotFoundError("not found", path=path) from None
    except gexc.RequestRangeNotSatisfiable as e:
        raise InvalidOffsetError(str(e), path=path) from None
    except (gexc.GoogleAPIError, requests.RequestException, urllib3.exceptions.HTTPError,
            gauth_exc.GoogleAuthError) as e:
        raise StorageError(f"{type(e).__name__}: {e}", path=path) from e


def _confirmed(resp: requests.Response) -> int:
    """Bytes a resumable session holds, from a 308 answer's ``Range: bytes=0-N``."""
    rng = resp.headers.get("Range")
    if not rng:
        return 0
    return int(rng.rpartition("-")[2]) + 1


class _ResumableWriter(FileWriter):
    def __init__(self, driver: GCSDriver, path: str, name: str, session: str, offset: int, tail: bytes,
                 done: bool = False) -> None:
        self._d, self._path, self._name = driver, path, name
        self._session, self._offset = session, offset
        self._buf = bytearray(tail)
        self._done = done  # the session already finalised the object (a lost side-object delete)
        self._closed = False

    @property
    def size(self) -> int:
        return self._offset + len(self._buf)

    # -- blocking parts, run in the driver's pool ----------------------------------------

    def _start_session(self) -> None:
        d = self._d
        url = f"{d.base}/upload/storage/v1/b/{d.params.bucket}/o?uploadType=resumable&name={quote(self._name, safe='')}"
        resp = d.request("POST", url, headers={"X-Upload-Content-Type": "application/octet-stream"}, json={})
        if resp.status_code != 200 or "Location" not in resp.headers:
            raise StorageError(f"starting a resumable upload: HTTP {resp.status_code} {resp.text[:200]}",
                               path=self._path)
        self._session = resp.headers["Location"]

    def _send(self, n: int, final: bool) -> None:
        """Send the first ``n`` buffered bytes; with ``final``, the whole rest and the total size."""
        if not self._session:
            self._start_session()
        attempts = self._d.params.max_retries + 1
        for attempt in range(attempts):
            data = bytes(memoryview(self._buf)[:n])
            total = str(self._offset + n) if final else "*"
            rng = f"bytes {self._offset}-{self._offset + n - 1}/{total}" if n else f"bytes */{total}"
            try:
                resp = self._d.request("PUT", self._session, data=data, headers={"Content-Range": rng},
                                       retries=False)
            except _TRANSIENT:
                if attempt == attempts - 1:
                    raise
                self._recover(attempt)
                n = min(n, len(self._buf)) if not final else len(self._buf)
                continue
            if resp.status_code in (200, 201) and final:
                self._offset += n
                del self._buf[:n]
                self._done = True
                return
            if resp.status_code == 308 and not final:
                held = _confirmed(resp)
                sent = held - self._offset
                if sent < 0 or sent > n:
                    raise StorageError(f"upload session holds {held} bytes, expected "
                                       f"{self._offset}..{self._offset + n}", path=self._path)
                self._offset = held
                del self._buf[:sent]
                n -= sent
                if n == 0:
                    return
                continue  # the server kept part of the chunk: send the rest
            if resp.status_code in (408, 429) or resp.status_code >= 500:
                if attempt == attempts - 1:
                    raise StorageError(f"upload chunk: HTTP {resp.status_code}", path=self._path)
                self._recover(attempt)
                n = min(n, len(self._buf)) if not final else len(self._buf)
                continue
            if resp.status_code in (404, 410):
                raise StorageError("the upload session expired or was cancelled", path=self._path)
            raise StorageError(f"upload chunk: HTTP {resp.status_code} {resp.text[:200]}", path=self._path)
        raise StorageError("upload chunk: out of retries", path=self._path)

    def _recover(self, attempt: int) -> None:
        """After a failed chunk: wait, then learn (where the server allows) what the session holds."""
        time.sleep(self._d.params.retry_delay * (attempt + 1))
        if self._d.params.querysession:
            self._sync_with_session()

    def _sync_with_session(self) -> None:
        """Align offset and buffer with the bytes the session holds."""
        try:
            resp = self._d.request("PUT", self._session, headers={"Content-Range": "bytes */*"}, retries=True)
        except _TRANSIENT:
            return  # the next attempt finds out
        if resp.status_code in (200, 201):
            self._offset, self._done = int(resp.json().get("size", self.size)), True
            self._buf.clear()
            return
        if resp.status_code != 308:
            if resp.status_code in (404, 410):
                raise StorageError("the upload session expired or was cancelled", path=self._path)
            return
        held = _confirmed(resp)
        if held < self._offset:
            raise StorageError(f"upload session holds {held} bytes, fewer than the {self._offset} confirmed",
                               path=self._path)
        del self._buf[:held - self._offset]  # sent already; bytes beyond the buffer were sent by a lost writer
        self._offset = held

    def _persist(self) -> None:
        side = self._d.bucket.blob(self._name + SIDE_SUFFIX)
        side.metadata = {"session": self._session, "offset": str(self._offset)}
        side.upload_from_string(bytes(self._buf), content_type="application/octet-stream",
                                retry=self._d.retry, timeout=self._d.params.timeout)

    def _delete_side(self) -> None:
        with contextlib.suppress(gexc.NotFound):
            self._d.bucket.blob(self._name + SIDE_SUFFIX).delete(retry=self._d.retry, timeout=self._d.params.timeout)

    # -- interface ------------------------------------------------------------------------

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise ValueError("writer is closed")
        self._buf += data
        chunk = self._d.params.chunksize
        while len(self._buf) >= chunk:
            await self._d.run(self._path, self._send, chunk, False)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        aligned = len(self._buf) - len(self._buf) % CHUNK_UNIT
        if aligned:
            await self._d.run(self._path, self._send, aligned, False)
        await self._d.run(self._path, self._persist)

    async def commit(self) -> None:
        if self._closed:
            raise ValueError("writer is closed")
        self._closed = True
        if self._done:
            pass
        elif not self._session:
            blob = self._d.bucket.blob(self._name)
            await self._d.run(self._path, functools.partial(
                blob.upload_from_string, bytes(self._buf), content_type="application/octet-stream",
                retry=self._d.retry, timeout=self._d.params.timeout))
        else:
            await self._d.run(self._path, self._send, len(self._buf), True)
        await self._d.run(self._path, self._delete_side)

    async def cancel(self) -> None:
        self._closed = True
        self._buf.clear()
        if self._session:
            with contextlib.suppress(StorageError):
                await self._d.run(self._path, self._d.request, "DELETE", self._session)
        await self._d.run(self._path, self._delete_side)


class GCSDriver(StorageDriver):
    name: ClassVar[str] = "gcs"
    Params: ClassVar[type[Any]] = GCSParams

    def __init__(self, params: GCSParams) -> None:
        self.params = params
        self._keys = ObjectKeys(params.rootdirectory)
        if params.keyfile:
            from google.oauth2 import service_account

            try:
                creds: Any = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
                    params.keyfile, scopes=["https://www.googleapis.com/auth/devstorage.read_write"])
            except (OSError, ValueError) as e:
                raise ConfigError(f"storage.gcs.keyfile: cannot load {params.keyfile}: {e}") from None
            project = creds.project_id
        elif params.anonymous:
            creds, project = gcreds.AnonymousCredentials(), "anonymous"  # type: ignore[no-untyped-call]
        else:
            import google.auth

            try:
                creds, project = google.auth.default(scopes=["https://www.googleapis.com/auth/devstorage.read_write"])
            except gauth_exc.DefaultCredentialsError as e:
                raise ConfigError(f"storage.gcs: no keyfile and no application default credentials: {e}") from None
        self.credentials = creds
        self.base = (params.endpoint or DEFAULT_ENDPOINT).rstrip("/")
        options = {"api_endpoint": self.base} if params.endpoint else None
        self.client = storage.Client(project=project or "unknown", credentials=creds, client_options=options)
        self.bucket = self.client.bucket(params.bucket)
        self.session = AuthorizedSession(creds)  # type: ignore[no-untyped-call]
        self.retry = DEFAULT_RETRY.with_delay(initial=params.retry_delay, maximum=params.retry_delay * 8).with_timeout(
            params.timeout * (params.max_retries + 1))
        self._pool = ThreadPoolExecutor(params.maxthreads, thread_name_prefix="dtr-gcs")

    # -- plumbing -------------------------------------------------------------------------

    async def run(self, path: str, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the pool, with client errors mapped."""
        loop = asyncio.get_running_loop()
        with _errors(path):
            return await loop.run_in_executor(self._pool, functools.partial(fn, *args))

    def request(self, method: str, url: str, retries: bool = True, **kw: Any) -> requests.Response:
        """One raw HTTP request with the driver's credentials; transient failures retried with ``retries``."""
        attempts = self.params.max_retries + 1 if retries else 1
        for attempt in range(attempts):
            try:
                resp: requests.Response = self.session.request(  # type: ignore[no-untyped-call]
                    method, url, timeout=self.params.timeout, **kw)
            except _TRANSIENT:
                if attempt == attempts - 1:
                    raise
            else:
                if not (resp.status_code >= 500 or resp.status_code in (408, 429)) or attempt == attempts - 1:
                    return resp
            time.sleep(self.params.retry_delay * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _blob(self, path: str) -> storage.Blob:
        return self.bucket.blob(self._keys.key(path))

    # -- interface ------------------------------------------------------------------------

    async def get_content(self, path: str) -> bytes:
        blob = self._blob(path)
        return await self.run(path, functools.partial(blob.download_as_bytes, retry=self.retry,
                                                      timeout=self.params.timeout))

    async def put_content(self, path: str, data: bytes) -> None:
        blob = self._blob(path)
        await self.run(path, functools.partial(blob.upload_from_string, data, content_type="application/octet-stream",
                                               retry=self.retry, timeout=self.params.timeout))

    async def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:  # type: ignore[override]
        if offset < 0:
            raise InvalidOffsetError(f"negative offset {offset}", path=path)
        name = quote(self._keys.key(path), safe="")
        url = f"{self.base}/download/storage/v1/b/{self.params.bucket}/o/{name}?alt=media"
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp = await self.run(path, functools.partial(self.request, "GET", url, headers=headers, stream=True))
        try:
            if resp.status_code == 404:
                raise PathNotFoundError("not found", path=path)
            if resp.status_code == 416:
                size = (await self.stat(path)).size
                if offset != size:
                    raise InvalidOffsetError(f"offset {offset} outside 0..{size}", path=path)
                return
            if resp.status_code not in (200, 206):
                raise StorageError(f"read: HTTP {resp.status_code}", path=path)
            if offset and resp.status_code == 200:
                raise StorageError("read: the server ignored the range", path=path)
            total = resp.headers.get("Content-Range", "").rpartition("/")[2]
            if total.isdigit() and offset > int(total):  # servers that answer 206 and nothing
                raise InvalidOffsetError(f"offset {offset} outside 0..{total}", path=path)
            expected = resp.headers.get("Content-Length")
            it = resp.raw.stream(READ_CHUNK, decode_content=False)
            got = 0
            while chunk := await self.run(path, next, it, b""):
                got += len(chunk)
                yield chunk
            if expected is not None and got != int(expected):
                raise StorageError(f"read: connection closed after {got} of {expected} bytes", path=path)
        finally:
            resp.close()

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        name = self._keys.key(path)
        if not append:
            return _ResumableWriter(self, path, name, "", 0, b"")

        def _load() -> _ResumableWriter:
            side = self.bucket.get_blob(name + SIDE_SUFFIX, retry=self.retry, timeout=self.params.timeout)
            if side is None:
                raise PathNotFoundError("no unfinished write to resume", path=path)
            tail = side.download_as_bytes(retry=self.retry, timeout=self.params.timeout)
            meta = side.metadata or {}
            w = _ResumableWriter(self, path, name, meta.get("session", ""), int(meta.get("offset", "0")), tail)
            if w._session and self.params.querysession:
                w._sync_with_session()
            return w

        return await self.run(path, _load)

    async def stat(self, path: str) -> FileInfo:
        name = self._keys.key(path)

        def _stat() -> FileInfo:
            blob = self.bucket.get_blob(name, retry=self.retry, timeout=self.params.timeout)
            if blob is not None:
                return FileInfo(path, int(blob.size or 0), False, blob.updated)
            for b in self.client.list_blobs(self.bucket, prefix=self._keys.dir(path), retry=self.retry,
                                            timeout=self.params.timeout):
                if not is_side(b.name):
                    return FileInfo(path, 0, True)
            raise PathNotFoundError("not found", path=path)

        return await self.run(path, _stat)

    async def list(self, path: str) -> list[str]:
        def _list() -> list[str]:
            it = self.client.list_blobs(self.bucket, prefix=self._keys.dir(path), delimiter="/", retry=self.retry,
                                        timeout=self.params.timeout)
            out = [self._keys.path(b.name) for b in it if not is_side(b.name)]
            out += [self._keys.path(p.rstrip("/")) for p in it.prefixes]
            return sorted(out)

        out = await self.run(path, _list)
        if not out and path != "/":
            raise PathNotFoundError("not found", path=path)
        return out

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        def _all() -> list[FileInfo]:
            return [FileInfo(self._keys.path(b.name), int(b.size or 0), False, b.updated)
                    for b in self.client.list_blobs(self.bucket, prefix=self._keys.dir(path), retry=self.retry,
                                                    timeout=self.params.timeout)
                    if not is_side(b.name)]

        for info in await self.run(path, _all):
            yield info

    async def move(self, src: str, dst: str) -> None:
        source, target = self._blob(src), self._blob(dst)

        def _move() -> None:
            try:
                token, _, _ = target.rewrite(source, retry=self.retry, timeout=self.params.timeout)
                while token is not None:
                    token, _, _ = target.rewrite(source, token=token, retry=self.retry, timeout=self.params.timeout)
            except gexc.NotFound:
                raise PathNotFoundError("not found", path=src) from None
            source.delete(retry=self.retry, timeout=self.params.timeout)

        await self.run(src, _move)

    async def delete(self, path: str) -> None:
        name = self._keys.key(path)

        def _names() -> list[str]:
            return [b.name for b in self.client.list_blobs(self.bucket, prefix=name, retry=self.retry,
                                                           timeout=self.params.timeout)
                    if not name or b.name in (name, name + SIDE_SUFFIX) or b.name.startswith(name + "/")]

        def _delete_one(blob: str) -> None:
            with contextlib.suppress(gexc.NotFound):
                self.bucket.blob(blob).delete(retry=self.retry, timeout=self.params.timeout)

        names = await self.run(path, _names)
        if not names:
            raise PathNotFoundError("not found", path=path)
        await asyncio.gather(*(self.run(path, _delete_one, n) for n in names))

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        if not isinstance(self.credentials, gcreds.Signing) or method not in ("GET", "HEAD"):
            return None
        blob = self._blob(path)
        return await self.run(path, functools.partial(
            blob.generate_signed_url, version="v4", expiration=SIGNED_URL_LIFETIME, method=method,
            api_access_endpoint=self.base, credentials=self.credentials))

    async def close(self) -> None:
        self._pool.shutdown(wait=False)
        self.session.close()  # type: ignore[no-untyped-call]
        self.client.close()

"""The Azure Blob Storage driver (azure-storage-blob, asyncio).

Objects are block blobs named ``<rootdirectory>/<path>`` in one container.

Writers stage the bytes as blocks of ``chunksize`` on the target blob, under ids made of a
session id and a sequence number (``<session><0000000042>``), so their order is in the id.
``writer(path)`` starts a session: it puts a small marker blob ``<path>~writer`` holding the
session id (``~`` never occurs in a storage path, so markers are hidden from list, stat and
walk). Staged blocks live in Azure, not in this process: ``writer(path, append=True)`` in any
process or replica reads the marker, lists the session's blocks (``get_block_list``) and
continues after the last one. ``commit`` commits the session's blocks in id order, which is
when the bytes become readable, then deletes the marker; blocks of abandoned sessions are
never committed and Azure drops them. At most one block is buffered in memory.

``move`` is a server-side copy (polled while pending) followed by a delete. ``redirect_url``
is a read-only SAS URL when the driver holds the account key (account name + key, or a
connection string with one); with only a SAS token it returns None, since that token is a
secret that may grant more than reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobBlock, BlobSasPermissions, generate_blob_sas
from azure.storage.blob.aio import BlobClient, ContainerClient, LinearRetry

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

#: Digits in a block id: ids must have one length per blob; 10 digits outlast Azure's block limits.
BLOCK_ID_DIGITS = 10
#: Suffix of the small blob that marks an unfinished write and names its session.
MARKER_SUFFIX = "~writer"
#: How long a redirect URL stays valid.
SAS_LIFETIME = dt.timedelta(minutes=20)
READ_CHUNK = 4 << 20
#: Hex digits of a writer session id, the prefix of its block ids.
SESSION_CHARS = 12


@dataclasses.dataclass(frozen=True)
class AzureParams:
    container: str = ""
    accountname: str | None = None
    accountkey: str | None = dataclasses.field(default=None, repr=False)
    #: A full connection string (instead of accountname + accountkey).
    connectionstring: str | None = dataclasses.field(default=None, repr=False)
    #: A SAS token (``sv=...&sig=...``) for the container (instead of an account key).
    sastoken: str | None = dataclasses.field(default=None, repr=False)
    #: Domain suffix of the service endpoint (``core.windows.net``, ``core.chinacloudapi.cn``, ...).
    realm: str = "core.windows.net"
    #: The blob service endpoint; default ``https://<accountname>.blob.<realm>``.
    serviceurl: str | None = None
    rootdirectory: str = ""
    #: Size of the blocks a writer stages (bytes).
    chunksize: int = 8 << 20
    #: Polls of a pending server-side copy (``move``) before giving up, and the delay step (s).
    copy_status_poll_max_retry: int = 5
    copy_status_poll_delay: float = 0.1
    #: Retries of a failed request (timeouts, resets, 5xx), ``retry_delay`` seconds apart.
    max_retries: int = 5
    retry_delay: float = 1.0
    #: Seconds to connect, and to wait for each read of an answer.
    timeout: float = 60.0

    def __post_init__(self) -> None:
        if not self.container:
            raise ConfigError("storage.azure.container: required")
        if self.connectionstring is None and not self.accountname:
            raise ConfigError("storage.azure: set accountname (with accountkey or sastoken) or connectionstring")
        if self.connectionstring is None and not (self.accountkey or self.sastoken):
            raise ConfigError("storage.azure: set accountkey or sastoken (or a connectionstring)")
        if not 1 << 10 <= self.chunksize <= 4000 << 20:
            raise ConfigError("storage.azure.chunksize: must be between 1 KiB and 4000 MiB")


def _block_id(session: str, seq: int) -> str:
    return f"{session}{seq:0{BLOCK_ID_DIGITS}d}"


def is_marker(name: str) -> bool:
    """Writer markers are named ``<blob>~writer``; ``~`` never occurs in a storage path."""
    return name.endswith(MARKER_SUFFIX)


@contextlib.contextmanager
def _errors(path: str) -> Iterator[None]:
    """Azure SDK errors as the driver interface's errors."""
    try:
        yield
    except ResourceNotFoundError:
        raise PathNotFoundError("not found", path=path) from None
    except AzureError as e:
        raise StorageError(f"{type(e).__name__}: {getattr(e, 'message', None) or e}", path=path) from e


class _BlockWriter(FileWriter):
    def __init__(self, driver: AzureDriver, blob: BlobClient, marker: BlobClient, path: str, session: str,
                 blocks: dict[str, int]) -> None:
        self._d, self._blob, self._marker, self._path = driver, blob, marker, path
        self._session, self._blocks = session, blocks
        self._next = max((int(b[len(session):]) for b in blocks), default=-1) + 1
        self._size = sum(blocks.values())
        self._buf = bytearray()
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    async def _stage(self, data: bytes | bytearray | memoryview) -> None:
        block = _block_id(self._session, self._next)
        with _errors(self._path):
            await self._blob.stage_block(block, bytes(data), length=len(data))
        self._blocks[block] = len(data)
        self._next += 1

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise ValueError("writer is closed")
        self._buf += data
        self._size += len(data)
        chunk = self._d.params.chunksize
        while len(self._buf) >= chunk:
            await self._stage(memoryview(self._buf)[:chunk])
            del self._buf[:chunk]

    async def _flush(self) -> None:
        if self._buf:
            await self._stage(self._buf)
            self._buf.clear()

    async def commit(self) -> None:
        if self._closed:
            raise ValueError("writer is closed")
        await self._flush()
        self._closed = True
        with _errors(self._path):
            await self._blob.commit_block_list([BlobBlock(b) for b in sorted(self._blocks)])
        with contextlib.suppress(PathNotFoundError), _errors(self._path):
            await self._marker.delete_blob()

    async def cancel(self) -> None:
        """Forget the write; its staged blocks are never committed and Azure drops them."""
        self._closed = True
        self._buf.clear()
        with contextlib.suppress(PathNotFoundError), _errors(self._path):
            await self._marker.delete_blob()

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._flush()


def _retry_policy(p: AzureParams) -> LinearRetry:
    backoff: Any = p.retry_delay  # seconds; the SDK takes a float although typed int
    return LinearRetry(backoff=backoff, random_jitter_range=0, retry_total=p.max_retries)


class AzureDriver(StorageDriver):
    name: ClassVar[str] = "azure"
    Params: ClassVar[type[Any]] = AzureParams

    def __init__(self, params: AzureParams) -> None:
        self.params = params
        self._keys = ObjectKeys(params.rootdirectory)
        self._container: ContainerClient | None = None
        self._ensured = False

    # -- plumbing -------------------------------------------------------------------------

    def _client(self) -> ContainerClient:
        """The container client, made on first use (inside the event loop)."""
        if self._container is None:
            p = self.params
            opts: dict[str, Any] = {"max_single_get_size": READ_CHUNK, "max_chunk_get_size": READ_CHUNK,
                                    "max_block_size": p.chunksize, "connection_timeout": p.timeout,
                                    "read_timeout": p.timeout,
                                    "retry_policy": _retry_policy(p)}
            if p.connectionstring:
                self._container = ContainerClient.from_connection_string(p.connectionstring, p.container, **opts)
            else:
                url = p.serviceurl or f"https://{p.accountname}.blob.{p.realm}"
                credential: Any = (
                    {"account_name": p.accountname, "account_key": p.accountkey} if p.accountkey
                    else p.sastoken
                )
                self._container = ContainerClient(url, p.container, credential=credential, **opts)
        return self._container

    async def _cc(self) -> ContainerClient:
        cc = self._client()
        if not self._ensured:
            with contextlib.suppress(HttpResponseError):  # exists already, or a SAS that may not create
                await cc.create_container()
            self._ensured = True
        return cc

    async def _blob(self, path: str) -> BlobClient:
        return (await self._cc()).get_blob_client(self._keys.key(path))

    # -- interface ------------------------------------------------------------------------

    async def get_content(self, path: str) -> bytes:
        blob = await self._blob(path)
        with _errors(path):
            stream = await blob.download_blob()
            return await stream.readall()

    async def put_content(self, path: str, data: bytes) -> None:
        blob = await self._blob(path)
        with _errors(path):
            await blob.upload_blob(data, overwrite=True, blob_type="BlockBlob")

    async def reader(self, path: str, offset: int = 0) -> AsyncIterator[bytes]:  # type: ignore[override]
        if offset < 0:
            raise InvalidOffsetError(f"negative offset {offset}", path=path)
        blob = await self._blob(path)
        with _errors(path):
            try:
                stream = await blob.download_blob(offset=offset or None)
            except HttpResponseError as e:
                if e.status_code != 416:
                    raise
                size = (await blob.get_blob_properties()).size
                if offset != size:
                    raise InvalidOffsetError(f"offset {offset} outside 0..{size}", path=path) from None
                return
            async for chunk in stream.chunks():
                yield chunk

    async def writer(self, path: str, append: bool = False) -> FileWriter:
        cc = await self._cc()
        name = self._keys.key(path)
        blob, marker = cc.get_blob_client(name), cc.get_blob_client(name + MARKER_SUFFIX)
        with _errors(path):
            if not append:
                session = uuid.uuid4().hex[:SESSION_CHARS]
                await marker.upload_blob(session.encode(), overwrite=True, blob_type="BlockBlob")
                return _BlockWriter(self, blob, marker, path, session, {})
            try:
                session = (await (await marker.download_blob()).readall()).decode()
            except ResourceNotFoundError:
                raise PathNotFoundError("no unfinished write to resume", path=path) from None
            try:
                committed, uncommitted = await blob.get_block_list("all")
            except ResourceNotFoundError:
                committed, uncommitted = [], []
        # Blocks of this session only: a committed one means a commit whose marker delete was lost.
        blocks = {b.id: b.size for b in [*committed, *uncommitted] if b.id.startswith(session)}
        return _BlockWriter(self, blob, marker, path, session, blocks)

    async def stat(self, path: str) -> FileInfo:
        cc = await self._cc()
        with contextlib.suppress(PathNotFoundError), _errors(path):
            props = await cc.get_blob_client(self._keys.key(path)).get_blob_properties()
            return FileInfo(path, props.size, False, props.last_modified)
        with _errors(path):
            async for item in cc.list_blobs(name_starts_with=self._keys.dir(path)):
                if not is_marker(item.name):
                    return FileInfo(path, 0, True)
        raise PathNotFoundError("not found", path=path)

    async def list(self, path: str) -> list[str]:
        cc = await self._cc()
        out = []
        with _errors(path):
            async for item in cc.walk_blobs(name_starts_with=self._keys.dir(path), delimiter="/"):
                if not is_marker(item.name):
                    out.append(self._keys.path(item.name.rstrip("/")))
        if not out and path != "/":
            raise PathNotFoundError("not found", path=path)
        return sorted(out)

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        cc = await self._cc()
        with _errors(path):
            async for props in cc.list_blobs(name_starts_with=self._keys.dir(path)):
                if not is_marker(props.name):
                    yield FileInfo(self._keys.path(props.name), props.size, False, props.last_modified)

    async def move(self, src: str, dst: str) -> None:
        cc = await self._cc()
        source, target = cc.get_blob_client(self._keys.key(src)), cc.get_blob_client(self._keys.key(dst))
        with _errors(src):
            result = await target.start_copy_from_url(source.url)
        status = result.get("copy_status")
        with _errors(dst):
            for attempt in range(1, self.params.copy_status_poll_max_retry + 1):
                if status != "pending":
                    break
                await asyncio.sleep(self.params.copy_status_poll_delay * attempt)
                status = (await target.get_blob_properties()).copy.status
            if status != "success":
                with contextlib.suppress(AzureError):
                    await target.abort_copy(str(result["copy_id"]))
                raise StorageError(f"server-side copy ended {status}", path=dst)
        with _errors(src):
            await source.delete_blob()

    async def delete(self, path: str) -> None:
        cc = await self._cc()
        name = self._keys.key(path)
        with _errors(path):
            names = [b.name async for b in cc.list_blobs(name_starts_with=name)
                     if not name or b.name in (name, name + MARKER_SUFFIX) or b.name.startswith(name + "/")]
            sem = asyncio.Semaphore(16)

            async def _one(blob: str) -> None:
                async with sem:
                    with contextlib.suppress(ResourceNotFoundError):
                        await cc.get_blob_client(blob).delete_blob()

            await asyncio.gather(*(_one(n) for n in names))
        if not names:
            raise PathNotFoundError("not found", path=path)

    async def redirect_url(self, path: str, method: str = "GET") -> str | None:
        cc = await self._cc()
        key = getattr(cc.credential, "account_key", None)
        if not key or method not in ("GET", "HEAD"):
            return None
        blob = cc.get_blob_client(self._keys.key(path))
        now = dt.datetime.now(dt.UTC)
        sas = generate_blob_sas(
            cc.account_name or "", cc.container_name, blob.blob_name, account_key=key,
            permission=BlobSasPermissions(read=True), start=now - dt.timedelta(minutes=5), expiry=now + SAS_LIFETIME,
        )
        return f"{blob.url}?{sas}"

    async def close(self) -> None:
        if self._container is not None:
            await self._container.close()

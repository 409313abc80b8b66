"""The storage driver contract, tested the same way against every backend.

A backend's test module subclasses ``DriverSuite`` and provides fixtures:

- ``driver`` (required): a ``dtr.storage.wrapper.StorageWrapper`` around the backend, with a
  fresh root prefix (directory / key prefix) for each test.
- ``faulty_driver`` (required unless ``faults_supported = False``): a ``Faulty(driver, proxy)``:
  the same backend *with the same root prefix as ``driver``*, but reached through a
  ``tests.storage.faultproxy.FaultProxy`` (faults cleared before each test), configured with
  short timeouts (about 2 s per request) and a few retries so the fault tests stay quick.
  ``tests/storage/conftest.py`` has ``fault_proxy_factory`` for a session proxy per upstream.

Class flags a subclass may change:

- ``faults_supported``: False drops the fault tests (the filesystem has no network to fault).
- ``redirect_supported``: ``redirect_url`` returns a URL that really fetches the object.
- ``writes_visible_before_commit``: the backend writes in place (the filesystem), so an
  uncommitted writer's bytes can be seen at its path. Object stores must keep them hidden.
- ``large_size``: bytes for the large round trip (streamed in 1 MiB writes).
- ``part_size``: the backend's part/chunk size, so resumable tests cross part boundaries.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import random
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import aiohttp
import pytest

from dtr.storage.base import (
    FileInfo,
    InvalidOffsetError,
    InvalidPathError,
    PathNotFoundError,
    StorageError,
)
from dtr.storage.wrapper import StorageWrapper
from tests.storage.faultproxy import Fault, FaultProxy

MiB = 1 << 20


@dataclasses.dataclass
class Faulty:
    driver: StorageWrapper
    proxy: FaultProxy


def data_of(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


async def read_all(driver: StorageWrapper, path: str, offset: int = 0) -> bytes:
    out = bytearray()
    async for chunk in driver.reader(path, offset):
        out += chunk
    return bytes(out)


async def write_chunks(driver: StorageWrapper, path: str, data: bytes, step: int = MiB, *, commit: bool = True,
                       append: bool = False) -> int:
    w = await driver.writer(path, append=append)
    for i in range(0, len(data), step):
        await w.write(data[i:i + step])
    size = w.size
    if commit:
        await w.commit()
    else:
        await w.close()
    return size


async def collect(it: AsyncIterator[FileInfo]) -> list[FileInfo]:
    return [x async for x in it]


class DriverSuite:
    redirect_supported: ClassVar[bool] = False
    writes_visible_before_commit: ClassVar[bool] = False
    large_size: ClassVar[int] = 24 * MiB
    part_size: ClassVar[int] = 5 * MiB

    #: False for backends with no network to fault (the filesystem): the fault tests are dropped.
    faults_supported: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Drop (not skip) the tests that do not apply, so a skip always means something is missing.
        for name in dir(cls):
            if (name.startswith("test_fault_") and not cls.faults_supported) or (
                    name == "test_uncommitted_write_invisible" and cls.writes_visible_before_commit):
                setattr(cls, name, None)

    @pytest.fixture
    def faulty_driver(self) -> Any:
        pytest.fail(f"{type(self).__name__} must provide a faulty_driver fixture (or set faults_supported = False)",
                    pytrace=False)

    # -- whole objects ---------------------------------------------------------------------

    async def test_empty_round_trip(self, driver: StorageWrapper) -> None:
        await driver.put_content("/empty/put", b"")
        assert await driver.get_content("/empty/put") == b""
        assert (await driver.stat("/empty/put")).size == 0
        assert await read_all(driver, "/empty/put") == b""

        w = await driver.writer("/empty/writer")
        assert w.size == 0
        await w.commit()
        assert await driver.get_content("/empty/writer") == b""
        info = await driver.stat("/empty/writer")
        assert (info.size, info.is_dir) == (0, False)
        assert await read_all(driver, "/empty/writer") == b""

    async def test_put_content_replaces(self, driver: StorageWrapper) -> None:
        await driver.put_content("/a/obj", b"first version")
        await driver.put_content("/a/obj", b"second")
        assert await driver.get_content("/a/obj") == b"second"
        assert (await driver.stat("/a/obj")).size == 6

    async def test_large_streamed_round_trip(self, driver: StorageWrapper) -> None:
        data = data_of(self.large_size, 1)
        assert await write_chunks(driver, "/large/blob", data) == len(data)
        assert (await driver.stat("/large/blob")).size == len(data)
        h, n, biggest = hashlib.sha256(), 0, 0
        async for chunk in driver.reader("/large/blob"):
            h.update(chunk)
            n += len(chunk)
            biggest = max(biggest, len(chunk))
        assert n == len(data)
        assert h.hexdigest() == hashlib.sha256(data).hexdigest()
        assert biggest <= 16 * MiB, "reader must stream in bounded pieces"

    async def test_read_at_offsets(self, driver: StorageWrapper) -> None:
        data = data_of(3 * MiB + 17, 2)
        await write_chunks(driver, "/off/blob", data)
        for offset in (0, 1, MiB - 1, MiB, 2 * MiB + 5, len(data) - 1, len(data)):
            assert await read_all(driver, "/off/blob", offset) == data[offset:], offset
        with pytest.raises(InvalidOffsetError):
            await read_all(driver, "/off/blob", len(data) + 1)
        with pytest.raises(InvalidOffsetError):
            await read_all(driver, "/off/blob", -1)
        await driver.put_content("/off/empty", b"")
        assert await read_all(driver, "/off/empty", 0) == b""
        with pytest.raises(InvalidOffsetError):
            await read_all(driver, "/off/empty", 1)

    # -- resumable writers -----------------------------------------------------------------

    async def test_resumable_append_across_reopen(self, driver: StorageWrapper) -> None:
        # Odd sizes, many writes, closes between them, crossing part boundaries several times.
        rnd = random.Random(3)
        sizes = [1, 0, 4095, 700_000, self.part_size - 1, 2, 3 * MiB + 3, self.part_size + 1, 1 << 16,
                 2 * self.part_size]
        data = data_of(sum(sizes), 4)
        path = "/uploads/u1/data"
        w = await driver.writer(path)
        await w.close()
        pos = 0
        for size in sizes:
            w = await driver.writer(path, append=True)
            assert w.size == pos
            piece, i = data[pos:pos + size], 0
            while i < len(piece):
                n = 1 + rnd.randrange(2 * MiB)
                await w.write(piece[i:i + n])
                i += n
            pos += size
            assert w.size == pos
            await w.close()
        w = await driver.writer(path, append=True)
        assert w.size == len(data)
        await w.commit()
        assert (await driver.stat(path)).size == len(data)
        got = await read_all(driver, path)
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()

    async def test_resume_then_commit_in_one_go(self, driver: StorageWrapper) -> None:
        data = data_of(2 * self.part_size + 12345, 5)
        half = self.part_size + 7
        await write_chunks(driver, "/r/data", data[:half], commit=False)
        w = await driver.writer("/r/data", append=True)
        assert w.size == half
        await w.write(data[half:])
        await w.commit()
        assert await read_all(driver, "/r/data") == data

    async def test_append_without_unfinished_write(self, driver: StorageWrapper) -> None:
        with pytest.raises(PathNotFoundError):
            await driver.writer("/nothing/here", append=True)

    async def test_new_writer_discards_unfinished(self, driver: StorageWrapper) -> None:
        await write_chunks(driver, "/n/data", data_of(MiB, 6), commit=False)
        w = await driver.writer("/n/data")
        assert w.size == 0
        await w.write(b"fresh")
        await w.commit()
        assert await driver.get_content("/n/data") == b"fresh"

    async def test_cancel_discards(self, driver: StorageWrapper) -> None:
        w = await driver.writer("/c/data")
        await w.write(data_of(self.part_size + 10, 7))
        await w.cancel()
        with pytest.raises(PathNotFoundError):
            await driver.writer("/c/data", append=True)
        with pytest.raises(PathNotFoundError):
            await driver.get_content("/c/data")

    async def test_uncommitted_write_invisible(self, driver: StorageWrapper) -> None:
        await write_chunks(driver, "/inv/data", data_of(self.part_size + 3, 8), commit=False)
        with pytest.raises(PathNotFoundError):
            await driver.get_content("/inv/data")
        with pytest.raises(PathNotFoundError):
            await driver.stat("/inv/data")
        assert [i.path async for i in driver.walk("/")] == []

    async def test_commit_replaces_existing(self, driver: StorageWrapper) -> None:
        await driver.put_content("/rep/data", b"old contents")
        await write_chunks(driver, "/rep/data", b"new")
        assert await driver.get_content("/rep/data") == b"new"

    async def test_concurrent_writers(self, driver: StorageWrapper) -> None:
        blobs = {f"/conc/{i}/data": data_of(self.part_size + 1000 * i, 10 + i) for i in range(6)}

        async def one(path: str, data: bytes) -> None:
            half = len(data) // 2
            await write_chunks(driver, path, data[:half], commit=False)
            await write_chunks(driver, path, data[half:], append=True)

        await asyncio.gather(*(one(p, d) for p, d in blobs.items()))
        for path, data in blobs.items():
            assert await read_all(driver, path) == data

    # -- namespace -------------------------------------------------------------------------

    async def _tree(self, driver: StorageWrapper) -> None:
        for p in ("/t/a/one", "/t/a/two", "/t/a/sub/three", "/t/ab/four", "/t/b", "/other/x"):
            await driver.put_content(p, p.encode())

    async def test_list(self, driver: StorageWrapper) -> None:
        await self._tree(driver)
        assert sorted(await driver.list("/t")) == ["/t/a", "/t/ab", "/t/b"]
        assert sorted(await driver.list("/t/a")) == ["/t/a/one", "/t/a/sub", "/t/a/two"]
        assert sorted(await driver.list("/")) == ["/other", "/t"]
        with pytest.raises(PathNotFoundError):
            await driver.list("/t/nope")
        with pytest.raises(PathNotFoundError):
            await driver.list("/t/a/o")  # a prefix of a name is not a directory

    async def test_list_shows_no_writer_state(self, driver: StorageWrapper) -> None:
        await driver.put_content("/ws/visible", b"x")
        await write_chunks(driver, "/ws/pending", data_of(self.part_size + 5, 9), commit=False)
        listed = await driver.list("/ws")
        assert "/ws/visible" in listed
        assert all(p in ("/ws/visible", "/ws/pending") for p in listed), listed

    async def test_walk(self, driver: StorageWrapper) -> None:
        await self._tree(driver)
        got = {i.path: i for i in await collect(driver.walk("/t"))}
        assert sorted(got) == ["/t/a/one", "/t/a/sub/three", "/t/a/two", "/t/ab/four", "/t/b"]
        assert got["/t/a/sub/three"].size == len(b"/t/a/sub/three")
        assert not any(i.is_dir for i in got.values())
        assert sorted(i.path for i in await collect(driver.walk("/t/a"))) == ["/t/a/one", "/t/a/sub/three", "/t/a/two"]
        assert len(await collect(driver.walk("/"))) == 6

    async def test_stat(self, driver: StorageWrapper) -> None:
        await self._tree(driver)
        f = await driver.stat("/t/a/one")
        assert (f.path, f.size, f.is_dir) == ("/t/a/one", len(b"/t/a/one"), False)
        d = await driver.stat("/t/a")
        assert d.is_dir
        with pytest.raises(PathNotFoundError):
            await driver.stat("/t/missing")
        with pytest.raises(PathNotFoundError):
            await driver.stat("/t/a/on")

    async def test_move(self, driver: StorageWrapper) -> None:
        data = data_of(self.part_size * 2 + 99, 11)
        await write_chunks(driver, "/mv/src", data)
        await driver.put_content("/mv/dst/blob", b"to be replaced")
        await driver.move("/mv/src", "/mv/dst/blob")
        assert await read_all(driver, "/mv/dst/blob") == data
        with pytest.raises(PathNotFoundError):
            await driver.stat("/mv/src")
        await driver.move("/mv/dst/blob", "/mv/new/deep/blob")
        assert (await driver.stat("/mv/new/deep/blob")).size == len(data)
        with pytest.raises(PathNotFoundError):
            await driver.move("/mv/missing", "/mv/other")
        with pytest.raises(PathNotFoundError):
            await driver.stat("/mv/other")

    async def test_delete(self, driver: StorageWrapper) -> None:
        await self._tree(driver)
        await driver.delete("/t/a/one")
        with pytest.raises(PathNotFoundError):
            await driver.get_content("/t/a/one")
        await driver.delete("/t/a")
        with pytest.raises(PathNotFoundError):
            await driver.stat("/t/a/sub/three")
        with pytest.raises(PathNotFoundError):
            await driver.list("/t/a")
        assert await driver.get_content("/t/ab/four") == b"/t/ab/four"  # a sibling sharing a prefix
        with pytest.raises(PathNotFoundError):
            await driver.delete("/t/a")
        assert sorted(await driver.list("/t")) == ["/t/ab", "/t/b"]

    async def test_delete_tree_with_unfinished_writes(self, driver: StorageWrapper) -> None:
        await write_chunks(driver, "/up/x/data", data_of(self.part_size + 1, 12), commit=False)
        await write_chunks(driver, "/up/y/data", b"small", commit=False)
        await driver.put_content("/up/y/startedat", b"now")
        await driver.delete("/up")
        with pytest.raises(PathNotFoundError):
            await driver.writer("/up/x/data", append=True)
        with pytest.raises(PathNotFoundError):
            await driver.list("/up")
        assert [i.path async for i in driver.walk("/")] == []

    async def test_invalid_paths(self, driver: StorageWrapper) -> None:
        bad = ["../etc/passwd", "/a/../b", "/a/./b", "relative", "/a/", "", "/a//b", "/a/b c", "/.hidden", "/a/.."]
        for p in bad:
            with pytest.raises(InvalidPathError):
                await driver.get_content(p)
            with pytest.raises(InvalidPathError):
                await driver.put_content(p, b"x")
            with pytest.raises(InvalidPathError):
                await driver.writer(p)
            with pytest.raises(InvalidPathError):
                await read_all(driver, p)
            with pytest.raises(InvalidPathError):
                await driver.delete(p)
            with pytest.raises(InvalidPathError):
                await driver.move("/ok", p)
            with pytest.raises(InvalidPathError):
                await driver.list(p)

    async def test_missing_paths(self, driver: StorageWrapper) -> None:
        with pytest.raises(PathNotFoundError):
            await driver.get_content("/no/such")
        with pytest.raises(PathNotFoundError):
            await read_all(driver, "/no/such")
        with pytest.raises(PathNotFoundError):
            await driver.delete("/no/such")
        with pytest.raises(PathNotFoundError):
            await driver.stat("/no/such")

    async def test_typed_errors_carry_context(self, driver: StorageWrapper) -> None:
        with pytest.raises(PathNotFoundError) as e:
            await driver.get_content("/ctx/missing")
        assert e.value.driver == driver.name and e.value.path == "/ctx/missing" and e.value.op == "get_content"
        assert not e.value.retryable

    # -- redirects -------------------------------------------------------------------------

    async def test_redirect_url(self, driver: StorageWrapper) -> None:
        data = data_of(MiB + 5, 13)
        await write_chunks(driver, "/redir/blob", data)
        url = await driver.redirect_url("/redir/blob")
        if not self.redirect_supported:
            assert url is None
            return
        assert url is not None and url.startswith(("http://", "https://"))
        async with aiohttp.ClientSession() as s, s.get(url) as r:
            assert r.status == 200, await r.text()
            assert await r.read() == data
        head = await driver.redirect_url("/redir/blob", "HEAD")
        if head is not None:
            async with aiohttp.ClientSession() as s, s.head(head) as r:
                assert r.status == 200
                assert int(r.headers["Content-Length"]) == len(data)

    # -- injected faults -------------------------------------------------------------------

    async def test_fault_transient_status_retried(self, driver: StorageWrapper, faulty_driver: Faulty) -> None:
        fd, proxy = faulty_driver.driver, faulty_driver.proxy
        f = proxy.add(Fault("status", status=503, times=1))
        await fd.put_content("/f/put", b"payload")
        assert f.hits == 1
        f = proxy.add(Fault("status", status=500, times=1))
        assert await fd.get_content("/f/put") == b"payload"
        assert f.hits == 1
        assert await driver.get_content("/f/put") == b"payload"

    async def test_fault_reset_retried(self, driver: StorageWrapper, faulty_driver: Faulty) -> None:
        fd, proxy = faulty_driver.driver, faulty_driver.proxy
        await driver.put_content("/f/r", b"abc")
        f = proxy.add(Fault("reset", times=1))
        assert await fd.get_content("/f/r") == b"abc"
        assert f.hits == 1
        f = proxy.add(Fault("reset", times=1))
        assert (await fd.stat("/f/r")).size == 3
        assert f.hits == 1

    async def test_fault_reply_lost_after_success(self, driver: StorageWrapper, faulty_driver: Faulty) -> None:
        """The backend did the work but the answer was lost: a retry must not corrupt anything."""
        fd, proxy = faulty_driver.driver, faulty_driver.proxy
        data = data_of(2 * self.part_size + 3, 14)
        await write_chunks(fd, "/f/lost", data[: self.part_size + 1], commit=False)
        w = await fd.writer("/f/lost", append=True)
        proxy.add(Fault("reset", when="after", times=2))
        try:
            await w.write(data[self.part_size + 1:])
            await w.commit()
        except StorageError:
            # not retried: the caller starts again from what the backend says it holds
            w = await fd.writer("/f/lost", append=True)
            await w.write(data[w.size:])
            await w.commit()
        assert await read_all(driver, "/f/lost") == data

    async def test_fault_timeout_retried(self, driver: StorageWrapper, faulty_driver: Faulty) -> None:
        fd, proxy = faulty_driver.driver, faulty_driver.proxy
        await driver.put_content("/f/slow", b"slow")
        f = proxy.add(Fault("delay", seconds=8, times=1))
        try:
            assert await fd.get_content("/f/slow") == b"slow"
        except StorageError as e:
            assert e.retryable  # a timeout surfaced: a clear, retryable error
        assert f.hits == 1

    async def test_fault_truncated_read(self, driver: StorageWrapper, faulty_driver: Faulty) -> None:
        fd, proxy = faulty_driver.driver, faulty_driver.proxy
        data = data_of(3 * MiB, 15)
        await write_chunks(driver, "/f/trunc", data)
        proxy.add(Fault("truncate", method="GET", times=1))
        try:
            got = await read_all(fd, "/f/trunc")
        except StorageError:
            return  # a clear error, never wrong bytes
        assert got == data

    async def test_fault_persistent_gives_clear_error(self, driver: StorageWrapper, faulty_driver: Faulty) -> None:
        fd, proxy = faulty_driver.driver, faulty_driver.proxy
        proxy.add(Fault("status", status=500, times=-1))
        with pytest.raises(StorageError) as e:
            await fd.put_content("/f/never", b"x")
        assert not isinstance(e.value, PathNotFoundError)
        assert e.value.driver == driver.name and e.value.op == "put_content"
        proxy.clear()
        with pytest.raises(PathNotFoundError):
            await driver.get_content("/f/never")

    async def test_fault_during_upload_nothing_half_visible(self, driver: StorageWrapper,
                                                            faulty_driver: Faulty) -> None:
        fd, proxy = faulty_driver.driver, faulty_driver.proxy
        data = data_of(2 * self.part_size + 11, 16)
        w = await fd.writer("/f/half")
        await w.write(data[: self.part_size // 2])
        await w.close()
        proxy.add(Fault("status", status=500, times=-1))
        with pytest.raises(StorageError):
            w = await fd.writer("/f/half", append=True)
            await w.write(data[self.part_size // 2:])
            await w.commit()
        proxy.clear()
        with pytest.raises(PathNotFoundError):
            await driver.get_content("/f/half")
        # what the backend kept is a consistent prefix: resume from it and finish
        w = await fd.writer("/f/half", append=True)
        assert w.size <= len(data)
        await w.write(data[w.size:])
        await w.commit()
        assert await read_all(driver, "/f/half") == data

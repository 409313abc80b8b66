"""The shared driver suite on the NFS driver, on a local directory with its NFS-safe rules on.

No NFS server can be mounted here; what is checked is the rules themselves: unfinished writes
at a hidden temporary name, commit by rename, positional writes, retries on stale handles.
"""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dtr.storage.nfs import NFSDriver, NFSParams
from dtr.storage.wrapper import StorageWrapper
from tests.storage.suite import DriverSuite, read_all


class TestNFS(DriverSuite):
    faults_supported = False

    @pytest.fixture
    async def driver(self, tmp_path: Path) -> AsyncIterator[StorageWrapper]:
        d = StorageWrapper(NFSDriver(NFSParams(rootdirectory=str(tmp_path / "root"))))
        yield d
        await d.close()

    async def test_commit_is_a_rename_in_the_same_directory(self, driver: StorageWrapper, tmp_path: Path) -> None:
        root = tmp_path / "root"
        w = await driver.writer("/u/data")
        await w.write(b"abc")
        await w.close()
        assert sorted(os.listdir(root / "u")) == [".data.partial"]
        w = await driver.writer("/u/data", append=True)
        await w.write(b"def")
        ino = os.stat(root / "u" / ".data.partial").st_ino
        await w.commit()
        assert os.listdir(root / "u") == ["data"]
        assert os.stat(root / "u" / "data").st_ino == ino
        assert await driver.get_content("/u/data") == b"abcdef"

    async def test_stale_handle_retried(self, driver: StorageWrapper, monkeypatch: pytest.MonkeyPatch) -> None:
        await driver.put_content("/s/obj", b"payload")
        real_stat, fails = os.stat, [2]

        def flaky_stat(*args: object, **kwargs: object) -> os.stat_result:
            if fails[0] > 0:
                fails[0] -= 1
                raise OSError(errno.ESTALE, "Stale file handle")
            return real_stat(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "stat", flaky_stat)
        assert (await driver.stat("/s/obj")).size == 7
        assert fails[0] == 0
        monkeypatch.setattr(os, "stat", real_stat)

        real_pwrite, fails = os.pwrite, [1]

        def flaky_pwrite(fd: int, data: bytes, offset: int) -> int:
            if fails[0] > 0:
                fails[0] -= 1
                raise OSError(errno.ESTALE, "Stale file handle")
            return real_pwrite(fd, data, offset)

        monkeypatch.setattr(os, "pwrite", flaky_pwrite)
        w = await driver.writer("/s/w")
        await w.write(b"0123456789")
        await w.commit()
        assert fails[0] == 0
        assert await read_all(driver, "/s/w") == b"0123456789"

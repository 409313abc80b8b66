"""The shared driver suite on the local filesystem driver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dtr.storage.filesystem import FilesystemDriver, FilesystemParams
from dtr.storage.wrapper import StorageWrapper
from tests.storage.suite import DriverSuite


class TestFilesystem(DriverSuite):
    writes_visible_before_commit = True
    faults_supported = False

    @pytest.fixture
    async def driver(self, tmp_path: Path) -> AsyncIterator[StorageWrapper]:
        d = StorageWrapper(FilesystemDriver(FilesystemParams(rootdirectory=str(tmp_path / "root"))))
        yield d
        await d.close()

"""Fixtures of the external-database tests: a PostgreSQL server of the test's own on a TCP port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.db.postgres import PgServer


@pytest.fixture
def pg_server(tmp_path: Path) -> Iterator[PgServer]:
    """A running PostgreSQL on 127.0.0.1 the test may stop, hang or fail over; stopped after it."""
    server = PgServer(tmp_path / "primary").init().start()
    yield server
    server.cleanup()

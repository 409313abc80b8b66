"""``Refreshed``: a setting read at most every ttl, its last read kept while the database is away
(the outage itself, end to end, is tests/db/test_outage.py)."""

from __future__ import annotations

import pytest

from dtr.db.errors import DatabaseUnavailable
from dtr.db.refreshed import Refreshed


class Source:
    """What a read returns next; ``down``: the database unavailable."""

    def __init__(self) -> None:
        self.value, self.down, self.reads = 1, False, 0

    async def read(self) -> int:
        self.reads += 1
        if self.down:
            raise DatabaseUnavailable("connection refused")
        return self.value


async def test_read_once_per_ttl_and_again_when_forgotten() -> None:
    source = Source()
    setting = Refreshed(source.read, ttl=3600)
    assert (await setting.get(), await setting.get(), source.reads) == (1, 1, 1)
    source.value = 2
    assert await setting.get() == 1
    setting.forget()
    assert (await setting.get(), source.reads) == (2, 2)


async def test_the_last_read_is_kept_while_the_database_is_away() -> None:
    source = Source()
    setting = Refreshed(source.read, ttl=0)
    assert await setting.get() == 1
    source.down, source.value = True, 2
    assert (await setting.get(), source.reads) == (1, 2)
    source.down = False
    assert await setting.get() == 2


async def test_never_read_is_an_outage() -> None:
    source = Source()
    source.down = True
    with pytest.raises(DatabaseUnavailable):
        await Refreshed(source.read, ttl=0).get()

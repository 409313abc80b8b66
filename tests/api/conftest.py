"""Fixtures for the OCI Distribution spec tests: a ``Registry`` client on the session ``dtr``."""

from __future__ import annotations

import aiohttp
import pytest

from tests.api.helpers import Registry
from tests.servers import DtrProcess


@pytest.fixture
def reg(dtr: DtrProcess, http: aiohttp.ClientSession) -> Registry:
    return Registry(http, dtr.url)

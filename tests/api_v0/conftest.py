"""``site``: a real ``dtr serve`` with authentication on (one per session), for the tests that drive
the whole /api/v0 through its OpenAPI document: ``site.admin`` is a site admin of its own, not the
bootstrap admin, whose name nothing generated can hit (so fuzzing cannot delete or lock it out).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import pytest

from tests.auth.client import Client
from tests.auth.constants import ADMIN_AUTH, auth_config
from tests.servers import DtrProcess, create_database


@dataclasses.dataclass(frozen=True)
class Site:
    proc: DtrProcess
    admin: tuple[str, str]

    @property
    def url(self) -> str:
        return self.proc.url


@pytest.fixture(scope="session")
def site(pg_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    # Failed logins are part of what is fuzzed: no throttling to turn every later request into a 429.
    proc = DtrProcess(tmp_path_factory.mktemp("dtr-api"), create_database(pg_uri, migrated=True),
                      auth_config(failed_login_threshold=1_000_000, failed_login_address_threshold=1_000_000))
    proc.start()
    admin = (f"site-admin-{uuid.uuid4().hex}", f"Pw-{uuid.uuid4().hex}")
    Client(proc.url).api("POST", "/accounts", auth=ADMIN_AUTH, expect=201,
                         body={"name": admin[0], "password": admin[1], "isAdmin": True})
    yield Site(proc, admin)
    proc.stop()

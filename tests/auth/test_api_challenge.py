"""/api/v0 with auth on: every 401 says how to authenticate."""

from __future__ import annotations

import pytest

from tests.auth.client import Client


@pytest.mark.parametrize("path", ["/api/v0/accounts/me", "/api/v0/accounts", "/api/v0/jobs", "/api/v0/api_tokens",
                                  "/api/v0/events"])
def test_a_401_without_credentials_carries_the_basic_challenge(client: Client, path: str) -> None:
    r = client.request("GET", path)
    assert (r.status, r.error_code) == (401, "UNAUTHORIZED"), path
    assert r.headers["WWW-Authenticate"] == 'Basic realm="dtr"', path

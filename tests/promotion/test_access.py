"""Who may manage promotion policies (auth on): admins of the source repository with read-write
access to the target; others are answered 401, 403 or as if the repository were missing. A policy
made by such an admin promotes what the site admin pushes."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.auth.client import basic
from tests.auth.constants import ADMIN_AUTH, PASSWORD, auth_config
from tests.oci import digest_of, push_image
from tests.promotion.conftest import Client, api, error_code, rule, settle, tags
from tests.scanning.api_world import token
from tests.scanning.service_data import FAST_JOBS

#: user -> (team, access to acme/src, access to acme/dst); acme/secret: no team.
USERS = {
    "owner": ("src-admins", "admin", "read-write"),
    "halfway": ("halfway", "admin", "read-only"),
    "writer": ("src-writers", "read-write", "read-write"),
    "hidden": ("hidden", "admin", None),
    "outsider": ("outsiders", None, None),
}


@pytest.fixture
def app_extra() -> dict[str, Any]:
    return {"jobs": FAST_JOBS, **auth_config()}


def _as(user: str | None) -> dict[str, str]:
    if user is None:
        return {}
    return {"Authorization": basic(*ADMIN_AUTH) if user == "admin" else basic(user, PASSWORD)}


async def _setup(client: Client) -> None:
    async def call(method: str, path: str, body: Any) -> None:
        status, answer = await api(client, method, path, body, _as("admin"))
        assert status in (200, 201, 204), (path, answer)

    await call("POST", "/accounts", {"name": "acme", "isOrg": True})
    for repo in ("src", "dst", "secret"):
        await call("POST", "/repositories/acme", {"name": repo, "visibility": "private"})
    for user, (team, src, dst) in USERS.items():
        await call("POST", "/accounts", {"name": user, "password": PASSWORD})
        await call("POST", "/accounts/acme/teams", {"name": team})
        await call("PUT", f"/accounts/acme/teams/{team}/members/{user}", {})
        for repo, level in (("src", src), ("dst", dst)):
            if level is not None:
                await call("PUT", f"/repositories/acme/{repo}/teamAccess/{team}", {"accessLevel": level})


async def test_only_source_admins_with_write_on_the_target_manage_policies(
        app_client: Client, app_base: str, engine_: AsyncEngine) -> None:
    await _setup(app_client)
    base = "/repositories/acme/src/promotionPolicies"
    body = {"rules": [rule("tag", "eq", "v1")], "targetRepository": "acme/dst"}

    async def create(user: str | None, target: str = "acme/dst") -> tuple[int, Any]:
        return await api(app_client, "POST", base, {**body, "targetRepository": target}, _as(user))

    assert error_code((await create(None))[1]) == "UNAUTHORIZED"
    assert (await create(None))[0] == 401
    for user, status, code in (("writer", 403, "FORBIDDEN"), ("halfway", 403, "FORBIDDEN"),
                               ("outsider", 404, "NO_SUCH_REPOSITORY")):
        got, answer = await create(user)
        assert (got, error_code(answer)) == (status, code), (user, answer)
    got, answer = await create("hidden")  # a target it may not read is answered as missing
    assert (got, error_code(answer)) == (400, "INVALID_PROMOTION_POLICY") and "no repository" in str(answer)
    got, answer = await create("owner", "acme/secret")
    assert (got, error_code(answer)) == (400, "INVALID_PROMOTION_POLICY")

    got, policy = await create("owner")
    assert got == 201, policy
    path = f"{base}/{policy['id']}"
    assert (await api(app_client, "GET", path, headers=_as("owner")))[0] == 200
    for method, where in (("GET", base), ("GET", path), ("PUT", path), ("DELETE", path), ("POST", f"{path}/run")):
        got, answer = await api(app_client, method, where, body, _as("writer"))
        assert (got, error_code(answer)) == (403, "FORBIDDEN"), (method, where, answer)
        got, answer = await api(app_client, method, where, body, _as("outsider"))
        assert (got, error_code(answer)) == (404, "NO_SUCH_REPOSITORY"), (method, where, answer)
    got, answer = await api(app_client, "PUT", path, body, _as("halfway"))
    assert (got, error_code(answer)) == (403, "FORBIDDEN")

    # the policy promotes the site admin's push, as dtr's own change
    async with aiohttp.ClientSession(headers=await token(app_client, app_base, "acme/src")) as http:
        manifest = await push_image(http, app_base, "acme/src", "v1", b'{"os": "linux"}', [b"layer" * 100])
    await settle(engine_)
    assert await tags(engine_, "acme/dst") == {"v1": digest_of(manifest)}

"""My access tokens in a real browser: a token created is shown once (never again), works for
``docker login`` (the registry's token endpoint with Basic auth) and Basic auth on /api/v0, and is
refused once revoked; a hostile label renders inert."""

from __future__ import annotations

from tests.auth.client import Client
from tests.ui.conftest import UI, new_user

HOSTILE = "<img src=x onerror=alert('label')>ci"


async def test_a_token_is_shown_once_works_and_is_revoked(ui: UI, api: Client) -> None:
    user, password = new_user(api)
    await ui.login(user, password)
    await ui.page.click("header >> text=My tokens")
    await ui.page.wait_for_url("**/ui/tokens")
    assert "You have no access tokens." in await ui.text("main")
    await ui.shot("tokens-empty")
    await ui.page.click("main button[type=submit]")  # no label: refused beside the field
    assert "Label is required" in await ui.page.locator("#label-error").inner_text()
    await ui.page.fill("#f-label", HOSTILE)
    await ui.page.click("main button[type=submit]")
    token = (await ui.page.locator("#new-token").inner_text()).strip()
    assert token.startswith("dtrpat_")
    assert "shown this once" in await ui.text(".new-secret")
    await ui.shot("token-created")
    # inert: the label is text, nothing ran
    assert await ui.page.locator("main img").count() == 0
    assert HOSTILE in await ui.text("table.list")
    assert not ui.watch.dialogs

    # usable as the password: docker login (the token endpoint) and Basic auth on /api/v0
    assert api.token([f"repository:{user}/app:pull,push"], (user, token)).status == 200
    assert api.api("GET", "/accounts/me", (user, token), expect=200).json()["name"] == user

    # never shown again
    await ui.goto("/ui/tokens")
    assert token not in await ui.page.content()
    assert (await ui.text("table.list tbody td:nth-child(3)")).endswith("UTC")  # last used: just now
    assert await ui.text("table.list tbody td:nth-child(4)") == "never"  # expires
    await ui.shot("tokens-list")

    ui.watch.accept.add(f"Revoke the token {HOSTILE}? Programs using it will stop working.")
    await ui.page.get_by_role("button", name=f"Revoke {HOSTILE}").click()
    await ui.page.wait_for_url("**/ui/tokens?revoked=*")
    assert f"Token {HOSTILE} revoked." in await ui.text(".notice")
    assert "You have no access tokens." in await ui.text("main")
    assert api.api("GET", "/accounts/me", (user, token)).status == 401
    assert api.token([], (user, token)).status == 401


async def test_tokens_are_the_visitors_own(ui: UI, api: Client) -> None:
    """Another user's token hash is not found from my page, even when posted directly."""
    owner, owner_password = new_user(api)
    other, other_password = new_user(api)
    made = api.api("POST", "/api_tokens", (owner, owner_password), {"tokenLabel": "owners"}, expect=201).json()
    await ui.login(other, other_password)
    await ui.goto("/ui/tokens")
    assert "owners" not in await ui.text("main")
    r = await ui.context.request.post(f"{ui.base}/ui/tokens/{made['hashedToken']}/revoke",
                                      form={"csrf_token": await ui.csrf()}, headers={"Origin": ui.base},
                                      max_redirects=0)
    assert r.status == 404
    assert api.api("GET", "/accounts/me", (owner, made["token"]), expect=200).json()["name"] == owner

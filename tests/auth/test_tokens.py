"""The token dance of distribution's token spec against dtr: challenge, token, narrowing, refresh."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import uuid

from tests.auth.client import Client
from tests.auth.constants import ADMIN_AUTH, PASSWORD
from tests.servers import DtrProcess


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _header(token: str) -> dict:
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))


def _user(client: Client, name: str | None = None) -> tuple[str, str]:
    name = name or f"u{uuid.uuid4().hex[:10]}"
    client.api("POST", "/accounts", ADMIN_AUTH, {"name": name, "password": PASSWORD}, expect=201)
    return name, PASSWORD


def test_challenge_names_realm_service_and_scope(client: Client, auth_dtr: DtrProcess) -> None:
    r = client.request("GET", "/v2/")
    assert r.status == 401
    assert r.headers["WWW-Authenticate"] == (
        f'Bearer realm="{auth_dtr.url}/auth/token",service="{auth_dtr.host}"')
    r = client.request("GET", "/v2/someone/thing/manifests/latest")
    assert r.status == 401 and r.error_code == "UNAUTHORIZED"
    assert 'scope="repository:someone/thing:pull"' in r.headers["WWW-Authenticate"]
    r = client.request("PUT", "/v2/someone/thing/manifests/latest", data=b"{}")
    assert 'scope="repository:someone/thing:pull,push"' in r.headers["WWW-Authenticate"]


def test_login_issues_signed_short_lived_token(client: Client, auth_dtr: DtrProcess) -> None:
    user = _user(client)
    r = client.token([], user)
    assert r.status == 200
    body = r.json()
    assert body["token"] == body["access_token"] and body["expires_in"] == 300
    head, claims = _header(body["token"]), _claims(body["token"])
    assert head["alg"] == "ES256" and head["kid"].count(":") == 11
    assert claims["sub"] == user[0] and claims["aud"] == auth_dtr.host and claims["access"] == []
    assert claims["exp"] - claims["iat"] == 300
    assert client.request("GET", "/v2/", bearer=body["token"]).status == 200


def test_wrong_password_is_401_with_a_clear_message(client: Client) -> None:
    user = _user(client)
    r = client.token([], (user[0], "not-the-password"))
    assert r.status == 401 and r.error_message == "invalid username or password"
    r = client.token([], ("nobody-" + uuid.uuid4().hex[:6], "whatever-pass"))
    assert r.status == 401 and r.error_message == "invalid username or password"


def test_scope_is_narrowed_to_what_the_user_may_do(client: Client) -> None:
    owner, other = _user(client), _user(client)
    repo = f"{owner[0]}/app"
    client.api("POST", f"/repositories/{owner[0]}", ADMIN_AUTH, {"name": "app"}, expect=201)
    t = _claims(client.bearer([f"repository:{repo}:pull,push,delete"], owner))
    assert t["access"] == [{"type": "repository", "name": repo, "actions": ["delete", "pull", "push"]}]
    t = _claims(client.bearer([f"repository:{repo}:pull,push"], other))
    assert t["access"] == [{"type": "repository", "name": repo, "actions": []}]
    client.api("PATCH", f"/repositories/{repo}", owner, {"visibility": "public"}, expect=200)
    t = _claims(client.bearer([f"repository:{repo}:pull,push"], other))
    assert t["access"] == [{"type": "repository", "name": repo, "actions": ["pull"]}]
    t = _claims(client.bearer([f"repository:{repo}:pull,push"]))
    assert t["sub"] == "" and t["access"][0]["actions"] == ["pull"]
    t = _claims(client.bearer(["registry:catalog:*"], other))
    assert t["access"] == []
    t = _claims(client.bearer(["registry:catalog:*"], ADMIN_AUTH))
    assert t["access"] == [{"type": "registry", "name": "catalog", "actions": ["*"]}]


def test_token_for_one_repository_does_not_open_another(client: Client) -> None:
    owner = _user(client)
    for name in ("one", "two"):
        client.api("POST", f"/repositories/{owner[0]}", ADMIN_AUTH, {"name": name}, expect=201)
    token = client.bearer([f"repository:{owner[0]}/one:pull"], owner)
    assert client.request("GET", f"/v2/{owner[0]}/one/tags/list", bearer=token).status == 200
    # The owner may do both, but the token says neither: the challenge for a better token.
    r = client.request("GET", f"/v2/{owner[0]}/two/tags/list", bearer=token)
    assert r.status == 401 and 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    assert f'scope="repository:{owner[0]}/two:pull"' in r.headers["WWW-Authenticate"]
    r = client.request("DELETE", f"/v2/{owner[0]}/one/manifests/sha256:{'0' * 64}", bearer=token)
    assert r.status == 401 and f'scope="repository:{owner[0]}/one:delete"' in r.headers["WWW-Authenticate"]


def test_expired_or_forged_tokens_are_refused(client: Client, auth_dtr: DtrProcess) -> None:
    owner = _user(client)
    token = client.bearer([], owner)
    forged = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    r = client.request("GET", "/v2/", bearer=forged)
    assert r.status == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    r = client.request("GET", "/v2/", bearer="not.a.jwt")
    assert r.status == 401


def test_oauth2_password_and_refresh_grants(client: Client, auth_dtr: DtrProcess) -> None:
    owner = _user(client)
    client.api("POST", f"/repositories/{owner[0]}", owner, {"name": "x"}, expect=201)
    form = {"grant_type": "password", "username": owner[0], "password": owner[1], "service": auth_dtr.host,
            "client_id": "docker", "access_type": "offline", "scope": f"repository:{owner[0]}/x:pull,push"}
    r = client.request("POST", "/auth/token", form=form)
    assert r.status == 200, r.body
    body = r.json()
    assert set(body) >= {"access_token", "refresh_token", "expires_in", "scope"}
    assert _claims(body["access_token"])["access"][0]["actions"] == ["pull", "push"]
    refresh = body["refresh_token"]
    r = client.request("POST", "/auth/token", form={"grant_type": "refresh_token", "refresh_token": refresh,
                                                    "service": auth_dtr.host, "client_id": "docker",
                                                    "scope": f"repository:{owner[0]}/y:pull"})
    assert r.status == 200 and _claims(r.json()["access_token"])["sub"] == owner[0]
    # A refresh token is not an access token, nor the other way round.
    assert client.request("GET", "/v2/", bearer=refresh).status == 401
    r = client.request("POST", "/auth/token", form={"grant_type": "refresh_token",
                                                    "refresh_token": body["access_token"]})
    assert r.status == 401
    # Wrong password, OAuth2 style: docker shows error_description.
    r = client.request("POST", "/auth/token", form={**form, "password": "wrong-password"})
    assert r.status == 401 and r.json()["error_description"] == "invalid username or password"
    # A password reset invalidates refresh tokens.
    client.api("POST", f"/accounts/{owner[0]}/changePassword", ADMIN_AUTH,
               {"newPassword": "An0ther-password"}, expect=200)
    r = client.request("POST", "/auth/token", form={"grant_type": "refresh_token", "refresh_token": refresh})
    assert r.status == 401 and "log in again" in r.json()["error_description"]


def test_a_refresh_token_of_an_access_token_login_dies_with_the_access_token(client: Client) -> None:
    owner = _user(client)
    r = client.api("POST", "/api_tokens", owner, {"tokenLabel": "ci"}, expect=201)
    pat, hashed = r.json()["token"], r.json()["hashedToken"]
    refresh = client.token([], (owner[0], pat), offline_token="true", client_id="ci").json()["refresh_token"]
    assert _claims(refresh)["amr"] == ["pat"] and _claims(refresh)["pat"] > 0
    form = {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": "ci"}
    r = client.request("POST", "/auth/token", form=form)
    assert r.status == 200 and _claims(r.json()["access_token"])["amr"] == ["pat"]
    # Deactivated, then deleted: the refresh token stops working too (the password login's does not).
    by_password = client.token([], owner, offline_token="true", client_id="ci").json()["refresh_token"]
    client.api("PATCH", f"/api_tokens/{hashed}", owner, {"isActive": False}, expect=200)
    r = client.request("POST", "/auth/token", form=form)
    assert r.status == 401 and "log in again" in r.json()["error_description"]
    client.api("PATCH", f"/api_tokens/{hashed}", owner, {"isActive": True}, expect=200)
    assert client.request("POST", "/auth/token", form=form).status == 200
    client.api("DELETE", f"/api_tokens/{hashed}", owner, expect=204)
    assert client.request("POST", "/auth/token", form=form).status == 401
    assert client.request("POST", "/auth/token", form={**form, "refresh_token": by_password}).status == 200


def test_get_with_offline_token_returns_refresh_token(client: Client) -> None:
    owner = _user(client)
    r = client.token([], owner, offline_token="true", client_id="podman")
    assert r.status == 200 and "refresh_token" in r.json()
    assert "refresh_token" not in client.token([], None, offline_token="true").json()


def test_personal_access_token_works_as_password(client: Client) -> None:
    owner = _user(client)
    r = client.api("POST", "/api_tokens", owner, {"tokenLabel": "ci"}, expect=201)
    token, hashed = r.json()["token"], r.json()["hashedToken"]
    assert token not in json.dumps(client.api("GET", "/api_tokens", owner).json())
    assert client.token([], (owner[0], token)).status == 200
    assert client.api("GET", "/accounts/me", (owner[0], token)).json()["name"] == owner[0]
    listed = client.api("GET", "/api_tokens", owner).json()["apiTokens"]
    assert listed[0]["tokenLabel"] == "ci" and listed[0]["lastUsed"] is not None
    # Another user cannot use it, even knowing it.
    other = _user(client)
    assert client.token([], (other[0], token)).status == 401
    client.api("PATCH", f"/api_tokens/{hashed}", owner, {"isActive": False}, expect=200)
    assert client.token([], (owner[0], token)).status == 401
    client.api("DELETE", f"/api_tokens/{hashed}", owner, expect=204)
    # Expired tokens stop working.
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    r = client.api("POST", "/api_tokens", owner, {"tokenLabel": "soon", "expiresAt": expires.isoformat()},
                   expect=201)
    time.sleep(max(0.0, (expires - dt.datetime.now(dt.UTC)).total_seconds()) + 0.5)
    assert client.token([], (owner[0], r.json()["token"])).status == 401


def test_inactive_users_cannot_log_in(client: Client) -> None:
    owner = _user(client)
    assert client.token([], owner).status == 200
    client.api("PATCH", f"/accounts/{owner[0]}", ADMIN_AUTH, {"isActive": False}, expect=200)
    r = client.token([], owner)
    assert r.status == 401 and "inactive" in r.error_message

"""``/api/v0/namespaces/{namespace}/pullThroughCache``: site admins only, the namespace must exist,
the upstream checked, the password sealed and never answered."""

from __future__ import annotations

import uuid

from tests.auth.client import Client
from tests.auth.constants import ADMIN_AUTH, PASSWORD


def test_the_setting(client: Client) -> None:
    org = f"pc{uuid.uuid4().hex[:10]}"
    user = f"u{uuid.uuid4().hex[:10]}"
    path = f"/namespaces/{org}/pullThroughCache"
    body = {"upstream": "https://registry.example:5000", "upstreamNamespace": "library", "username": "bot",
            "password": "s3cret-upstream", "tagTTL": 60}
    assert client.api("PUT", path, ADMIN_AUTH, body).error_code == "NO_SUCH_NAMESPACE"
    client.api("POST", "/accounts", ADMIN_AUTH, {"name": org, "isOrg": True}, expect=201)
    client.api("POST", "/accounts", ADMIN_AUTH, {"name": user, "password": PASSWORD}, expect=201)
    assert client.api("GET", path, ADMIN_AUTH).error_code == "NOT_FOUND"
    assert client.api("PUT", path, (user, PASSWORD), body).status == 403
    assert client.api("PUT", path, None, body).status == 401
    for bad in ({"upstream": "ftp://x"}, {"upstream": "https://x/v2/"}, {"upstream": "https://u:p@x"},
                {"upstream": "https://x", "upstreamNamespace": "Not/Valid"}, {"upstream": "https://x", "ca": "junk"},
                {"upstream": "https://x", "tagTTL": -1}):
        r = client.api("PUT", path, ADMIN_AUTH, bad)
        assert r.status == 400, (bad, r.body)
    r = client.api("PUT", path, ADMIN_AUTH, body, expect=200)
    answer = r.json()
    assert answer["hasPassword"] is True and "password" not in answer and b"s3cret" not in r.body
    assert {k: answer[k] for k in ("upstream", "upstreamNamespace", "username", "tagTTL")} == {
        "upstream": "https://registry.example:5000", "upstreamNamespace": "library", "username": "bot", "tagTTL": 60}
    assert client.api("GET", path, ADMIN_AUTH, expect=200).json() == answer
    assert client.api("GET", path, (user, PASSWORD)).status == 403
    r = client.api("PUT", path, ADMIN_AUTH, {"upstream": "https://registry.example:5000", "password": ""}, expect=200)
    assert r.json()["hasPassword"] is False and r.json()["tagTTL"] == 300
    client.api("DELETE", path, ADMIN_AUTH, expect=204)
    assert client.api("DELETE", path, ADMIN_AUTH).error_code == "NOT_FOUND"

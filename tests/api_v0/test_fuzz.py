"""/api/v0 fuzzed in-process (``app_client``), authentication off and on: random paths (the document's
own templates, filled with hostile segments, and made-up ones), queries, headers and bodies (random
and deeply nested JSON, NaN/Infinity, huge numbers, NUL and unpaired surrogates, wrong types,
unknown fields, gzip/deflate of good and bad data, junk bytes). Whatever is sent, the answer is never
a 5xx; every error is ``{"errors": [{"code", "message"}]}`` with a declared code; every 401 says how
to authenticate. Then the regressions those inputs once found, one test each.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import zlib
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from dtr.api.errors import ALL
from tests.auth.client import basic
from tests.auth.constants import ADMIN_AUTH, PASSWORD, auth_config

Client = TestClient[web.Request, web.Application]
EXAMPLES = 150  # per authentication mode
_PARAM = re.compile(r"\{([^}]+)\}")


@pytest.fixture(params=[False, True], ids=["auth-off", "auth-on"])
def app_extra(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Both ways: authentication off, and on (failed logins not throttled: they are fuzzed too)."""
    return auth_config(failed_login_threshold=1_000_000, failed_login_address_threshold=1_000_000) \
        if request.param else {}


def _admin(app_extra: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": basic(*ADMIN_AUTH)} if app_extra else {}


_SEEDED: dict[int, list[tuple[str, str]]] = {}


async def seeded(client: Client, app_extra: dict[str, Any]) -> list[tuple[str, str]]:
    """The document's operations (path template, method), after making ``alice``, ``acme``, its team
    and ``acme/app`` (once per app)."""
    if id(client.app) not in _SEEDED:
        h = _admin(app_extra)
        for method, path, body in (("POST", "/accounts", {"name": "alice", "password": PASSWORD}),
                                   ("POST", "/accounts", {"name": "acme", "isOrg": True}),
                                   ("POST", "/accounts/acme/teams", {"name": "devs"}),
                                   ("POST", "/repositories/acme", {"name": "app"})):
            async with client.request(method, "/api/v0" + path, json=body, headers=h) as r:
                assert r.status == 201, (path, await r.text())
        async with client.get("/api/v0/docs.json", headers=h) as r:
            paths = json.loads(await r.read())["paths"]
        _SEEDED[id(client.app)] = sorted((path, method.upper()) for path, ops in paths.items() for method in ops)
    return _SEEDED[id(client.app)]


# -- what is sent ------------------------------------------------------------------------------------

_HOSTILE = ["%00", "a%00b", "%ED%A0%80", "%FF", "..", "%2e%2e", "%2F", "a%2Fb", "x" * 300, "%C3%A9", "-", "_",
            "1" * 40, "me", "%20", "%0A", "%25", "nul%00l"]
KNOWN = st.sampled_from(["alice", "acme", "devs", "app", "nobody", "0", "1"])
SEGMENT = st.one_of(KNOWN, KNOWN, KNOWN, st.sampled_from(_HOSTILE),
                    st.text(st.characters(codec="utf-8", exclude_characters="/?#%"), min_size=1, max_size=12)
                    .map(lambda s: URL.build(path=s).raw_path))
QUERY_KEYS = ["pageStart", "pageSize", "filter", "username", "actor", "type", "object", "publishedAfter",
              "publishedBefore", "x", "%00"]
GOOD_VALUES = st.sampled_from(["", "0", "1", "2", "10", "users", "orgs", "alice", "acme", "2024-01-01T00:00:00Z"])
QUERY_VALUES = st.one_of(GOOD_VALUES, GOOD_VALUES, GOOD_VALUES, SEGMENT, st.sampled_from(
    ["-1", "1001", "1e400", "NaN", "%00", "%ED%A0%80", "not-a-time", "9" * 400, "true", "%FF"]))
CHARS = st.characters(codec="utf-8") | st.sampled_from(["\x00", "\ud800", "\udfff"])
SCALARS = (st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(CHARS, max_size=20))
FIELDS = ["name", "isOrg", "fullName", "email", "password", "isAdmin", "isActive", "visibility", "shortDescription",
          "longDescription", "immutableTags", "accessLevel", "tokenLabel", "expiresAt", "description",
          "newPassword", "oldPassword", "enableSync", "groupDN", "createRepositoryOnPush", "unknownField"]
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(FIELDS) | st.text(CHARS, max_size=8), inner, max_size=5),
                    max_leaves=20)


def _encode(value: Any) -> bytes:
    """JSON with what ``json.dumps`` cannot write plainly (lone surrogates) escaped."""
    return json.dumps(value).encode()


BODIES = st.one_of(
    st.none(),
    JSON.map(_encode),
    st.dictionaries(st.sampled_from(FIELDS), SCALARS, max_size=6).map(_encode),
    st.integers(1, 200).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 200).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.sampled_from([b'{"isAdmin": NaN}', b"[Infinity]", b"-Infinity", b'{"pageSize": 1e400}', b"1" * 5000,
                     b'{"name": "\\u0000"}', b'{"fullName": "\\ud800"}', b'{"\\ud800": 1}', b"\xff\xfe", b"{",
                     b'{"a": 1, "a": 2}', b"null", b'"text"', b" ", b"\n"]),
    st.binary(max_size=64),
)
ENCODINGS = st.sampled_from([None, "gzip", "deflate", "br", "identity", "gzip, deflate", "x" * 50])
AUTH = st.sampled_from(["none", "admin", "admin", "admin", "wrong", "garbage", "bearer"])


def _compress(body: bytes, encoding: str | None, honest: bool) -> bytes:
    if not honest or encoding not in ("gzip", "deflate"):
        return body
    return gzip.compress(body) if encoding == "gzip" else zlib.compress(body)


def _auth(kind: str) -> dict[str, str]:
    return {"none": {}, "admin": {"Authorization": basic(*ADMIN_AUTH)},
            "wrong": {"Authorization": basic("nobody", "wrong")},
            "garbage": {"Authorization": "Basic " + base64.b64encode(b"\xff\x00no-colon").decode()},
            "bearer": {"Authorization": "Bearer not.a.token"}}[kind]


def check_answer(method: str, status: int, headers: Any, body: bytes) -> None:
    """No 5xx; an error is the API's error JSON with a declared code; a 401 names its scheme."""
    assert status < 500, (status, body[:500])
    if status == 401:
        assert headers.get("WWW-Authenticate"), headers
    if status >= 400 and method != "HEAD":
        errors = json.loads(body)["errors"]
        assert errors and all(isinstance(e["message"], str) and e["code"] in ALL for e in errors), body[:500]


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
async def test_no_input_gets_a_5xx_or_an_undeclared_error(app_client: Client, app_extra: dict[str, Any],
                                                          data: st.DataObject) -> None:
    documented = st.sampled_from(await seeded(app_client, app_extra))
    made_up = st.tuples(st.sampled_from(["/api/v0/{a}/{b}", "/api/v0/{a}", "/api/v0/accounts/{a}/{b}/{c}"]),
                        st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]))
    template, method = data.draw(st.one_of(documented, documented, documented, made_up))
    path = _PARAM.sub(lambda _: data.draw(SEGMENT), template)
    query = "&".join(f"{k}={v}" for k, v in data.draw(st.dictionaries(st.sampled_from(QUERY_KEYS), QUERY_VALUES,
                                                                      max_size=3)).items())
    body, encoding = data.draw(BODIES), data.draw(ENCODINGS)
    headers = {**(_auth(data.draw(AUTH)) if app_extra else {}),
               **({"Content-Encoding": encoding} if encoding else {}),
               "Content-Type": data.draw(st.sampled_from(["application/json", "text/plain", "x/y; charset=junk"]))}
    if body is not None:
        body = _compress(body, encoding, data.draw(st.booleans()))
    url = URL(str(app_client.make_url("/")).rstrip("/") + path + (f"?{query}" if query else ""), encoded=True)
    async with app_client.session.request(method, url, data=body, headers=headers) as r:
        check_answer(method, r.status, r.headers, await r.read())


# -- the regressions, one by one ----------------------------------------------------------------------


async def _send(client: Client, app_extra: dict[str, Any], method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
    await seeded(client, app_extra)
    url = URL(str(client.make_url("/")).rstrip("/") + path, encoded=True)
    h = {**_admin(app_extra), "Content-Type": "application/json", **(headers or {})}
    async with client.session.request(method, url, data=body, headers=h) as r:
        raw = await r.read()
        check_answer(method, r.status, r.headers, raw)
        return r.status, json.loads(raw) if raw else None


def _error(answer: Any) -> tuple[str, str]:
    return answer["errors"][0]["code"], answer["errors"][0]["message"]


@pytest.mark.parametrize("path", ["/api/v0/accounts?pageStart=%00", "/api/v0/repositories/acme/a%00b",
                                  "/api/v0/events?actor=a%00", "/api/v0/accounts/%00"])
async def test_nul_and_surrogates_in_path_or_query_answer_400(app_client: Client, app_extra: dict[str, Any],
                                                              path: str) -> None:
    status, answer = await _send(app_client, app_extra, "GET", path)
    assert status == 400 and _error(answer)[0] == "INVALID_PARAMETER", answer


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/v0/accounts/alice", b'{"fullName": "a\\u0000b"}', "fullName"),
    ("/api/v0/repositories/acme/app", b'{"shortDescription": "\\ud800"}', "shortDescription"),
])
async def test_bad_text_in_a_body_answers_400_naming_the_field(app_client: Client, app_extra: dict[str, Any],
                                                              path: str, body: bytes, field: str) -> None:
    status, answer = await _send(app_client, app_extra, "PATCH", path, body)
    assert status == 400 and field in _error(answer)[1], answer


async def test_an_unknown_field_answers_400(app_client: Client, app_extra: dict[str, Any]) -> None:
    status, answer = await _send(app_client, app_extra, "PATCH", "/api/v0/repositories/acme/app",
                                 b'{"name": "renamed"}')
    assert status == 400 and "unknown field 'name'" in _error(answer)[1], answer
    status, _ = await _send(app_client, app_extra, "GET", "/api/v0/repositories/acme/renamed")
    assert status == 404


async def test_gzip_bodies(app_client: Client, app_extra: dict[str, Any]) -> None:
    path = "/api/v0/repositories/acme/app"
    status, answer = await _send(app_client, app_extra, "PATCH", path, b'{"shortDescription": "x"}',
                                 {"Content-Encoding": "gzip"})
    assert status == 400 and "gzip" in _error(answer)[1], answer
    status, answer = await _send(app_client, app_extra, "PATCH", path, gzip.compress(b'{"shortDescription": "x"}')[:-9],
                                 {"Content-Encoding": "gzip"})
    assert status == 400, answer
    status, answer = await _send(app_client, app_extra, "PATCH", path, gzip.compress(b'{"shortDescription": "zipped"}'),
                                 {"Content-Encoding": "gzip"})
    assert status == 200 and answer["shortDescription"] == "zipped", answer
    status, answer = await _send(app_client, app_extra, "GET", path)
    assert answer["shortDescription"] == "zipped"

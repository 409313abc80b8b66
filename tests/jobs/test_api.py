"""The jobs part of /api/v0 over HTTP (the in-process app on a fresh database): request bodies
refused when they hold unknown fields or numbers out of bounds, job lists paged, filters checked."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.oci import push_image

Client = TestClient[web.Request, web.Application]


@pytest.fixture
def app_extra() -> dict[str, Any]:
    """No job runner: queued jobs stay waiting, no schedule fires."""
    return {"jobs": {"worker": False}}


def _strict(raw: str) -> Any:
    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} in the answer")
    return json.loads(raw, parse_constant=refuse)


async def _send(client: Client, method: str, path: str, body: bytes | dict[str, Any] | None = None,
                expect: int = 200) -> tuple[Any, dict[str, str]]:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    async with client.request(method, f"/api/v0{path}", data=data,
                              headers={"Content-Type": "application/json"}) as r:
        text = await r.text()
        assert r.status == expect, f"{method} {path}: {r.status} {text}"
        return (_strict(text) if text else None), dict(r.headers)


def _error(answer: Any) -> tuple[str, str]:
    return answer["errors"][0]["code"], answer["errors"][0]["message"]


async def test_job_options_out_of_bounds_are_refused_and_the_list_stays_json(app_client: Client) -> None:
    for raw, code, where in ((b'{"action": "noop", "deadline": Infinity}', "INVALID_JSON", "Infinity"),
                             (b'{"action": "noop", "deadline": NaN}', "INVALID_JSON", "NaN"),
                             (b'{"action": "noop", "deadline": 1e308}', "INVALID_JOB", "deadline"),
                             (b'{"action": "noop", "deadline": -1}', "INVALID_JOB", "deadline"),
                             (b'{"action": "noop", "stopTimeout": 1e308}', "INVALID_JOB", "stopTimeout"),
                             (b'{"action": "noop", "retries": 1000}', "INVALID_JOB", "retries"),
                             (b'{"action": "noop", "retries": true}', "INVALID_JOB", "retries"),
                             (b'{"action": "noop", "deadline": "1h"}', "INVALID_JOB", "deadline")):
        answer, _ = await _send(app_client, "POST", "/jobs", raw, expect=400)
        assert _error(answer)[0] == code and where in _error(answer)[1], (raw, answer)
    job, _ = await _send(app_client, "POST", "/jobs", {"action": "noop", "deadline": 3600, "retries": 1}, 202)
    assert (job["deadline"], job["retries"]) == (3600, 1)
    listed, _ = await _send(app_client, "GET", "/jobs")  # strict JSON: no Infinity, no NaN
    assert [j["id"] for j in listed["jobs"]] == [job["id"]]
    answer, _ = await _send(app_client, "PUT", "/crons/noop", {"schedule": "@every 1h", "deadline": 1e308}, 400)
    assert _error(answer)[0] == "INVALID_CRON" and "deadline" in _error(answer)[1]


async def test_unknown_fields_are_refused_with_the_domains_code(app_client: Client, app_base: str) -> None:
    await push_image(app_client.session, app_base, "acme/app", "v1", b"{}", [b"x"])
    rule = {"field": "tag", "operator": "eq", "values": ["v1"]}
    for method, path, body, code in (
        ("POST", "/jobs", {"action": "noop", "extra": 1}, "INVALID_JOB"),
        ("PUT", "/crons/noop", {"schedule": "@every 1h", "extra": 1}, "INVALID_CRON"),
        ("POST", "/repositories/acme/app/pruningPolicies", {"rules": [rule], "extra": 1}, "INVALID_PRUNING_POLICY"),
        ("POST", "/repositories/acme/app/pruningPolicies", {"rules": [{**rule, "extra": 1}]},
         "INVALID_PRUNING_POLICY"),
        ("POST", "/repositories/acme/app/pruningPolicies/test", {"rules": [rule], "extra": 1},
         "INVALID_PRUNING_POLICY"),
        ("PUT", "/repositories/acme/app/pruning", {"tagLimit": 2, "extra": 1}, "INVALID_SETTINGS"),
    ):
        answer, _ = await _send(app_client, method, path, body, 400)
        assert _error(answer)[0] == code and "unknown field" in _error(answer)[1] and "extra" in _error(answer)[1]
    # what the domain refuses still answers its own code and message
    answer, _ = await _send(app_client, "POST", "/repositories/acme/app/pruningPolicies",
                            {"rules": [{**rule, "operator": "zz"}]}, 400)
    assert _error(answer) == ("INVALID_PRUNING_POLICY", "rules[0].operator: got 'zz', allowed for tag: "
                              "eq, neq, sw, ew, c, oneof, noneof, matches")
    answer, _ = await _send(app_client, "PUT", "/crons/noop", {"schedule": "* * * * *"}, 400)
    assert _error(answer)[0] == "INVALID_CRON" and "6 fields" in _error(answer)[1]
    # and a valid body is taken, a policy read may be sent back as it is
    created, _ = await _send(app_client, "POST", "/repositories/acme/app/pruningPolicies", {"rules": [rule]}, 201)
    updated, _ = await _send(app_client, "PUT", f"/repositories/acme/app/pruningPolicies/{created['id']}",
                             {**created, "enabled": False})
    assert updated == {**created, "enabled": False}
    assert (await _send(app_client, "GET", "/repositories/acme/app/pruningPolicies/test"))[0] == {
        "immutableTags": False, "tags": []}


async def test_jobs_page_with_next_page_start(app_client: Client) -> None:
    queued = [(await _send(app_client, "POST", "/jobs", {"action": "noop"}, 202))[0]["id"] for _ in range(7)]
    await _send(app_client, "POST", "/jobs", {"action": "usage"}, 202)
    pages: list[list[str]] = []
    path = "/jobs?action=noop&status=waiting&pageSize=3"
    while True:
        listed, headers = await _send(app_client, "GET", path)
        pages.append([j["id"] for j in listed["jobs"]])
        if "X-Next-Page-Start" not in headers:
            break
        path = f"/jobs?action=noop&status=waiting&pageSize=3&pageStart={headers['X-Next-Page-Start']}"
    newest = queued[::-1]
    assert pages == [newest[0:3], newest[3:6], newest[6:]]
    everything, headers = await _send(app_client, "GET", "/jobs")
    assert len(everything["jobs"]) == 8 and "X-Next-Page-Start" not in headers


@pytest.mark.parametrize("query", ["status=lost", "status=waiting,lost", "action=nope", "pageSize=0",
                                   "pageSize=1001", "pageStart=nonsense", "pageStart=1_not-a-uuid"])
async def test_bad_job_filters_are_refused(app_client: Client, query: str) -> None:
    answer, _ = await _send(app_client, "GET", f"/jobs?{query}", expect=400)
    assert _error(answer)[0] == "INVALID_PARAMETER" and query.split("=")[0] in _error(answer)[1]

"""Tag pruning: the rules table-tested, then policies, tag limits and immutability through the API."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os

import aiohttp
import pytest

from dtr.jobs.pruning import Policy, PolicyError, TagInfo, evaluate
from tests.jobs.conftest import api, wait_job
from tests.oci import get, push_image

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def _t(name: str, pushed_days: float, pulled_days: float | None = None) -> TagInfo:
    return TagInfo(name, NOW - dt.timedelta(days=pushed_days),
                   None if pulled_days is None else NOW - dt.timedelta(days=pulled_days))


TAGS = [_t("latest", 0), _t("v1.0", 40, 1), _t("v1.1", 20), _t("v2.0", 5, 2), _t("dev-abc", 10, 9),
        _t("dev-def", 3), _t("test", 50, 45)]


def rule(field: str, op: str, *values: str) -> dict[str, object]:
    return {"field": field, "operator": op, "values": list(values)}


@pytest.mark.parametrize(("rules", "keep", "expected"), [
    ([rule("tag", "eq", "test")], None, {"test"}),
    ([rule("tag", "neq", "latest")], None, {"v1.0", "v1.1", "v2.0", "dev-abc", "dev-def", "test"}),
    ([rule("tag", "sw", "dev-")], None, {"dev-abc", "dev-def"}),
    ([rule("tag", "ew", ".0")], None, {"v1.0", "v2.0"}),
    ([rule("tag", "c", "1.")], None, {"v1.0", "v1.1"}),
    ([rule("tag", "oneof", "test", "latest", "nope")], None, {"test", "latest"}),
    ([rule("tag", "noneof", "latest", "test")], None, {"v1.0", "v1.1", "v2.0", "dev-abc", "dev-def"}),
    ([rule("tag", "matches", r"^v\d+\.\d+$")], None, {"v1.0", "v1.1", "v2.0"}),
    ([rule("last_updated_at", "older_than", "30d")], None, {"v1.0", "test"}),
    ([rule("last_updated_at", "newer_than", "4d")], None, {"latest", "dev-def"}),
    ([rule("last_pulled_at", "never")], None, {"latest", "v1.1", "dev-def"}),
    ([rule("last_pulled_at", "older_than", "7d")], None, {"latest", "v1.1", "dev-def", "dev-abc", "test"}),
    ([rule("last_pulled_at", "newer_than", "7d")], None, {"v1.0", "v2.0"}),
    # every rule must match
    ([rule("tag", "sw", "v"), rule("last_updated_at", "older_than", "10d")], None, {"v1.0", "v1.1"}),
    # keep the newest N of what matches
    ([rule("tag", "matches", "^v")], 1, {"v1.0", "v1.1"}),
    ([rule("tag", "matches", "^v")], 3, set()),
    ([rule("tag", "neq", "x")], 2, {"v1.0", "v1.1", "dev-abc", "test", "v2.0"}),
])
def test_rules(rules: list[dict[str, object]], keep: int | None, expected: set[str]) -> None:
    raw: dict[str, object] = {"rules": rules}
    if keep is not None:
        raw["keepNewest"] = keep
    assert set(evaluate(TAGS, [Policy.parse(raw)], None, False, NOW)) == expected


def test_tag_limit_immutability_and_disabled_policies() -> None:
    assert set(evaluate(TAGS, [], 3, False, NOW)) == {"v1.0", "v1.1", "dev-abc", "test"}
    everything = Policy.parse({"rules": [rule("tag", "neq", "")]})
    assert evaluate(TAGS, [everything], 1, True, NOW) == {}  # immutable: never pruned
    off = Policy.parse({"rules": [rule("tag", "neq", "")], "enabled": False})
    assert evaluate(TAGS, [off], None, False, NOW) == {}
    both = evaluate(TAGS, [Policy.parse({"rules": [rule("tag", "eq", "latest")]})], 5, False, NOW)
    assert both == {"latest": "policy 1", "test": "tag limit 5"}  # the limit counts what policies leave


@pytest.mark.parametrize(("raw", "message"), [
    ({"rules": []}, "non-empty"),
    ({"rules": [rule("name", "eq", "x")]}, "field"),
    ({"rules": [rule("tag", "before", "x")]}, "operator"),
    ({"rules": [rule("tag", "eq", "a", "b")]}, "one value"),
    ({"rules": [rule("tag", "matches", "(")]}, "regular expression"),
    ({"rules": [rule("last_updated_at", "older_than", "soon")]}, "duration"),
    ({"rules": [rule("last_pulled_at", "never", "x")]}, "no values"),
    ({"rules": [rule("tag", "eq", "x")], "keepNewest": -1}, "keepNewest"),
    ({"rules": [rule("tag", "eq", "x")], "extra": 1}, "unknown key"),
])
def test_invalid_policies_say_why(raw: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        Policy.parse(raw)


async def test_policies_test_endpoint_push_trigger_and_immutability(cluster, http: aiohttp.ClientSession) -> None:
    (a,) = cluster(1)
    u, repo = a.url, "team/app"
    base = f"{u}/api/v0/repositories/{repo}"
    for tag in ("v1", "v2", "v3", "dev-1", "dev-2", "dev-3"):
        await push_image(http, u, repo, tag, os.urandom(50), [os.urandom(100)])
        await asyncio.sleep(0.01)  # distinct push times
    policy = {"enabled": False, "rules": [rule("tag", "sw", "dev-")], "keepNewest": 1}
    created = await api(http, "POST", f"{base}/pruningPolicies", policy, expect=201)
    assert created["enabled"] is False
    preview = await api(http, "POST", f"{base}/pruningPolicies/test", policy)
    assert [t["name"] for t in preview["tags"]] == ["dev-1", "dev-2"]
    assert (await api(http, "GET", f"{base}/pruningPolicies/test"))["tags"] == []  # disabled: nothing yet
    err = await api(http, "POST", f"{base}/pruningPolicies", {"rules": [rule("tag", "zz", "x")]}, expect=400)
    assert err["errors"][0]["code"] == "INVALID_PRUNING_POLICY"
    await api(http, "GET", f"{u}/api/v0/repositories/no/such/pruningPolicies", expect=404)

    # enabling it and pushing prunes
    await api(http, "PUT", f"{base}/pruningPolicies/{created['id']}", {**policy, "enabled": True})
    await push_image(http, u, repo, "dev-4", os.urandom(50), [os.urandom(100)])
    await _until_tags(http, u, repo, {"v1", "v2", "v3", "dev-4"})
    jobs = (await api(http, "GET", f"{u}/api/v0/jobs?action=prune"))["jobs"]
    for j in jobs:  # a running job's lines are stored about twice a second: read them once it ends
        await wait_job(http, u, j["id"])
    logs = [x["data"] for j in jobs for x in await api(http, "GET", f"{u}/api/v0/jobs/{j['id']}/logs")]
    assert f"pruned {repo}:dev-1 (policy 1)" in logs

    # a tag limit applies on the schedule or at once with initialEvaluation
    settings = await api(http, "PUT", f"{base}/pruning?initialEvaluation=true", {"tagLimit": 3})
    assert settings == {"tagLimit": 3, "immutableTags": False}
    await _until_tags(http, u, repo, {"v2", "v3", "dev-4"})

    # immutable repositories are never pruned, even by a policy matching everything
    await api(http, "PUT", f"{base}/pruning", {"tagLimit": 1, "immutableTags": True})
    await api(http, "POST", f"{base}/pruningPolicies", {"rules": [rule("tag", "neq", "")]}, expect=201)
    job = await api(http, "POST", f"{u}/api/v0/jobs", {"action": "prune", "parameters": {"repository": repo}})
    assert (await wait_job(http, u, job["id"]))["status"] == "done"
    assert (await api(http, "GET", f"{base}/pruningPolicies/test"))["tags"] == []
    await _until_tags(http, u, repo, {"v2", "v3", "dev-4"})
    err = await api(http, "PUT", f"{base}/pruning", {"tagLimit": 0}, expect=400)
    assert "tagLimit" in err["errors"][0]["message"]


async def test_pulls_are_recorded_for_last_pulled_rules(cluster, http: aiohttp.ClientSession) -> None:
    (a,) = cluster(1)
    u, repo = a.url, "team/pulled"
    for tag in ("a", "b"):
        await push_image(http, u, repo, tag, os.urandom(50), [os.urandom(100)])
    assert (await get(http, f"{u}/v2/{repo}/manifests/a"))[0] == 200
    never = {"rules": [rule("last_pulled_at", "never")]}
    for _ in range(60):  # pulls are written in batches every few seconds
        tags = [t["name"] for t in (await api(http, "POST", f"{u}/api/v0/repositories/{repo}/pruningPolicies/test",
                                              never))["tags"]]
        if tags == ["b"]:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"still {tags}")


async def _until_tags(http: aiohttp.ClientSession, base: str, repo: str, want: set[str]) -> None:
    for _ in range(100):
        _, body = await get(http, f"{base}/v2/{repo}/tags/list", "application/json")
        if set(json.loads(body)["tags"] or []) == want:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"tags are {json.loads(body)['tags']}, want {sorted(want)}")

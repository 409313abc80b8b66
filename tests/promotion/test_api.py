"""The promotion policy routes' answers to bad input (400 INVALID_PROMOTION_POLICY, never a 500)
and missing things (404), and the policy's life: create, read, list, replace, delete (auth off)."""

from __future__ import annotations

from typing import Any

from tests.promotion.conftest import Client, api, create_policy, error_code, new_repo, rule

BAD: list[tuple[dict[str, Any], str]] = [
    ({"rules": [rule("tag", "matches", "v[0-9")]}, "invalid regular expression"),
    ({"rules": [rule("tag", "matches", "(a+)+$")]}, "exponential"),
    ({"rules": [rule("tag", "matches", "(x|xy)*z")]}, "exponential"),
    ({"rules": [rule("tag", "matches", "a" * 300)]}, "at most 256"),
    ({"rules": [rule("tag", "sw", "v", "w")]}, "takes one value"),
    ({"rules": [rule("tag", "oneof")]}, "takes 1 to"),
    ({"rules": [rule("size", "eq", "1")]}, "rules[0].field"),
    ({"rules": [rule("tag", "gte", "1")]}, "rules[0].operator"),
    ({"rules": [rule("vulnerability_critical", "c", "1")]}, "rules[0].operator"),
    ({"rules": [rule("vulnerability_critical", "lt", "many")]}, "expected a count"),
    ({"rules": [rule("vulnerability_all", "lt", "-1")]}, "expected a count"),
    ({"tagTemplate": "%n-%q"}, "unknown field %q"),
    ({"tagTemplate": "%n:latest"}, "not a valid tag"),
    ({"tagTemplate": "-%n"}, "not a valid tag"),
    ({"tagTemplate": "%"}, "unknown field"),
    ({"tagTemplate": ""}, "tagTemplate"),
    ({"targetRepository": "nonamespace"}, "targetRepository"),
    ({"targetRepository": "ns/does-not-exist"}, "no repository named"),
    ({"colour": "red"}, "unknown field 'colour'"),
    ({"rules": [{"field": "tag", "operator": "eq", "values": ["x"], "extra": 1}]}, "unknown field"),
    ({"rules": "tag=x"}, "rules"),
    ({"enabled": "yes"}, "enabled"),
]


async def test_bad_policies_are_refused(app_client: Client, app_base: str) -> None:
    source, target = await new_repo(app_client, app_base), await new_repo(app_client, app_base)
    policy = await create_policy(app_client, source, target, [rule("tag", "eq", "v1")])
    for change, says in BAD:
        body = {"rules": [rule("tag", "eq", "v1")], "targetRepository": target, "tagTemplate": "%n", **change}
        for method, path in (("POST", ""), ("PUT", f"/{policy['id']}")):
            status, answer = await api(app_client, method, f"/repositories/{source}/promotionPolicies{path}", body)
            assert (status, error_code(answer)) == (400, "INVALID_PROMOTION_POLICY"), (change, answer)
            assert says in answer["errors"][0]["message"], (change, answer)
    assert await api(app_client, "GET", f"/repositories/{source}/promotionPolicies") == (200, [policy])


async def test_a_policy_cannot_promote_into_its_own_repository(app_client: Client, app_base: str) -> None:
    source = await new_repo(app_client, app_base)
    status, answer = await api(app_client, "POST", f"/repositories/{source}/promotionPolicies",
                               {"rules": [], "targetRepository": source})
    assert (status, error_code(answer)) == (400, "INVALID_PROMOTION_POLICY")


async def test_create_read_list_replace_delete(app_client: Client, app_base: str) -> None:
    source, target, other = [await new_repo(app_client, app_base) for _ in range(3)]
    created = await create_policy(app_client, source, target, [rule("tag", "sw", "v")], "%n-%y%m%d")
    assert created["sourceRepository"] == source and created["targetRepository"] == target
    assert created["enabled"] is True and created["rules"] == [rule("tag", "sw", "v")]
    assert created["lastPromotedAt"] is None and created["lastError"] is None
    path = f"/repositories/{source}/promotionPolicies/{created['id']}"
    assert await api(app_client, "GET", path) == (200, created)
    assert await api(app_client, "GET", f"/repositories/{source}/promotionPolicies") == (200, [created])

    status, replaced = await api(app_client, "PUT", path, {
        "rules": [rule("license_name", "noneof", "GPL-3.0-only")], "targetRepository": other, "enabled": False,
        "tagTemplate": "stable"})
    assert status == 200, replaced
    assert (replaced["targetRepository"], replaced["enabled"], replaced["tagTemplate"]) == (other, False, "stable")
    assert replaced["id"] == created["id"] and replaced["createdAt"] == created["createdAt"]

    assert await api(app_client, "DELETE", path) == (204, None)
    for method in ("GET", "DELETE", "PUT"):
        status, answer = await api(app_client, method, path, {"rules": [], "targetRepository": other})
        assert (status, error_code(answer)) == (404, "NO_SUCH_PROMOTION_POLICY"), method
    status, answer = await api(app_client, "POST", f"{path}/run")
    assert (status, error_code(answer)) == (404, "NO_SUCH_PROMOTION_POLICY")
    status, answer = await api(app_client, "GET", f"/repositories/{source}/promotionPolicies/not-a-uuid")
    assert (status, error_code(answer)) == (404, "NO_SUCH_PROMOTION_POLICY")
    status, answer = await api(app_client, "GET", "/repositories/ns/nothing-here/promotionPolicies")
    assert (status, error_code(answer)) == (404, "NO_SUCH_REPOSITORY")

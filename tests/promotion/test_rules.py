"""The rules and the tag template alone (no server): each template field, each count and set
operator, the regular expressions refused."""

from __future__ import annotations

import datetime as dt

import pytest

from dtr.promotion.rules import Facts, Policy, PolicyError, Rule, compile_pattern, render

AT = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)


@pytest.mark.parametrize(("template", "made"), [
    ("%n", "v1.2"), ("%n-%A", "v1.2-20260304T050607Z"), ("%D", "2026-03-04"), ("%T", "050607"),
    ("%y.%m.%d-%H.%M.%S", "2026.03.04-05.06.07"), ("stable", "stable"), ("%n_%n", "v1.2_v1.2"),
])
def test_each_template_field(template: str, made: str) -> None:
    assert render(template, "v1.2", AT) == made


def test_the_time_is_utc() -> None:
    east = AT.astimezone(dt.timezone(dt.timedelta(hours=5)))
    assert render("%H", "x", east) == "05"


@pytest.mark.parametrize("template", ["%n%%", "%Q", "%n:%T", ".%n", "%n" + "x" * 130, "%"])
def test_templates_making_no_valid_tag_are_refused(template: str) -> None:
    with pytest.raises(PolicyError):
        render(template, "v1.2", AT)


FACTS = Facts("v1", True, {"critical": 2, "major": 3, "minor": 0}, frozenset({"openssl", "zlib1g"}),
              frozenset({"Apache-2.0", "MIT OR Apache-2.0"}))


@pytest.mark.parametrize(("raw", "holds"), [
    (("vulnerability_all", "eq", "5"), True), (("vulnerability_all", "gt", "5"), False),
    (("vulnerability_critical", "gte", "2"), True), (("vulnerability_critical", "lt", "2"), False),
    (("vulnerability_major", "lte", "3"), True), (("vulnerability_minor", "eq", "0"), True),
    (("component_name", "eq", "zlib1g"), True), (("component_name", "eq", "zlib"), False),
    (("component_name", "c", "ssl"), True), (("component_name", "oneof", "bash", "openssl"), True),
    (("component_name", "noneof", "bash"), True), (("component_name", "noneof", "bash", "zlib1g"), False),
    (("license_name", "eq", "MIT"), False), (("license_name", "c", "MIT"), True),
    (("license_name", "oneof", "Apache-2.0"), True), (("license_name", "noneof", "GPL-2.0-only"), True),
])
def test_count_and_set_operators(raw: tuple[str, ...], holds: bool) -> None:
    field, op, *values = raw
    rule = Rule.parse({"field": field, "operator": op, "values": values})
    assert rule.holds(FACTS) is holds
    assert rule.holds(Facts("v1")) is False  # unscanned: no rule on scans holds


@pytest.mark.parametrize("pattern", ["(a+)+", "(a*)*b", "(a|ab)+", "((ab)*c)+", r"(\w)\1", "(?P<x>a)(?P=x)"])
def test_patterns_that_may_backtrack_exponentially_are_refused(pattern: str) -> None:
    with pytest.raises(PolicyError, match="exponential time"):
        compile_pattern(pattern, "values")


@pytest.mark.parametrize("pattern", [r"v\d+\.\d+(\.\d+)?", "(release|hotfix)-[0-9]+", "[a-z]+-(ab)+", ".*-rc"])
def test_ordinary_patterns_are_accepted(pattern: str) -> None:
    compile_pattern(pattern, "values")


def test_a_policy_needs_a_target_as_namespace_and_name() -> None:
    for target in ("", "app", "a/b/c", "/b", 3):
        with pytest.raises(PolicyError, match="targetRepository"):
            Policy.parse({"rules": [], "targetRepository": target})
    p = Policy.parse({"rules": [{"field": "vulnerability_all", "operator": "eq", "values": ["0"]}],
                      "targetRepository": "a/b"})
    assert p.needs_scan and p.tag_template == "%n" and p.enabled

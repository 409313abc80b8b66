"""Tag pruning: DTR's per-repository pruning policies and tag limit, evaluated by the ``prune`` job.

A policy is ``{"enabled", "rules": [{"field", "operator", "values"}], "keepNewest"}``. A tag
matches a policy when it matches *every* rule; of the matching tags the ``keepNewest`` most
recently pushed are kept, the rest pruned. Fields and operators:

- ``tag`` (the name): ``eq``, ``neq``, ``sw`` (starts with), ``ew`` (ends with), ``c``
  (contains), ``oneof``, ``noneof`` (against any of ``values``), ``matches`` (a regular
  expression searched in the name; anchor it with ``^...$``);
- ``last_updated_at`` (last pushed) and ``last_pulled_at``: ``older_than`` / ``newer_than`` a
  duration (``30d``, ``12h``); ``last_pulled_at`` also ``never`` (no recorded pull).
A repository's ``tagLimit`` prunes its least recently pushed tags beyond the limit.
A repository with ``immutableTags`` is never pruned. Pruning deletes tags only; the bytes are
left to garbage collection. The job runs on a schedule and after pushes to a repository with
a policy or limit; ``.../pruningPolicies/test`` shows what would go before a policy is enabled.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text

from dtr.jobs.context import JobContext
from dtr.jobs.params import ParameterError, only
from dtr.registry import changes
from dtr.schedule import ScheduleError, parse_duration

TAG_OPERATORS = ("eq", "neq", "sw", "ew", "c", "oneof", "noneof", "matches")
TIME_OPERATORS = ("older_than", "newer_than", "never")
FIELDS = {"tag": TAG_OPERATORS, "last_updated_at": TIME_OPERATORS[:2], "last_pulled_at": TIME_OPERATORS}
MAX_RULES = 20


class PolicyError(ValueError):
    """A policy or rule is invalid; the message says which part."""


@dataclasses.dataclass(frozen=True)
class TagInfo:
    name: str
    pushed_at: dt.datetime
    pulled_at: dt.datetime | None


@dataclasses.dataclass(frozen=True)
class Rule:
    field: str
    operator: str
    values: tuple[str, ...]
    regex: re.Pattern[str] | None = None
    seconds: float | None = None

    @classmethod
    def parse(cls, raw: Any, where: str = "rules[0]") -> Rule:
        if not isinstance(raw, dict):
            raise PolicyError(f"{where}: expected an object with field, operator and values")
        unknown = set(raw) - {"field", "operator", "values"}
        if unknown:
            raise PolicyError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        field, op, values = raw.get("field"), raw.get("operator"), raw.get("values", [])
        if field not in FIELDS:
            raise PolicyError(f"{where}.field: got {field!r}, allowed: {', '.join(FIELDS)}")
        if op not in FIELDS[field]:
            raise PolicyError(f"{where}.operator: got {op!r}, allowed for {field}: {', '.join(FIELDS[field])}")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise PolicyError(f"{where}.values: expected a list of strings")
        if op == "never":
            if values:
                raise PolicyError(f"{where}.values: 'never' takes no values")
            return cls(field, op, ())
        if not values or (op not in ("oneof", "noneof") and len(values) != 1):
            takes = "one or more values" if op in ("oneof", "noneof") else "one value"
            raise PolicyError(f"{where}.values: {op} takes {takes}")
        if op == "matches":
            if len(values[0]) > 256:
                raise PolicyError(f"{where}.values: the pattern is longer than 256 characters")
            try:
                return cls(field, op, tuple(values), regex=re.compile(values[0]))
            except re.error as e:
                raise PolicyError(f"{where}.values: invalid regular expression: {e}") from None
        if op in ("older_than", "newer_than"):
            try:
                return cls(field, op, tuple(values), seconds=parse_duration(values[0]))
            except ScheduleError as e:
                raise PolicyError(f"{where}.values: {e}") from None
        return cls(field, op, tuple(values))

    def matches(self, tag: TagInfo, now: dt.datetime) -> bool:
        if self.field == "tag":
            n, v, op = tag.name, self.values, self.operator
            if op == "matches":
                return bool(self.regex and self.regex.search(n))
            if op in ("oneof", "noneof"):
                return (n in v) == (op == "oneof")
            first = v[0]
            if op == "sw":
                return n.startswith(first)
            if op == "ew":
                return n.endswith(first)
            if op == "c":
                return first in n
            return (n == first) == (op == "eq")  # eq, neq
        when = tag.pushed_at if self.field == "last_updated_at" else tag.pulled_at
        if self.operator == "never":
            return when is None
        assert self.seconds is not None
        if when is None:  # never pulled: older than any age, newer than none
            return self.operator == "older_than"
        age = (now - when).total_seconds()
        return age > self.seconds if self.operator == "older_than" else age < self.seconds

    def json(self) -> dict[str, Any]:
        return {"field": self.field, "operator": self.operator, "values": list(self.values)}


@dataclasses.dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]
    keep_newest: int | None = None
    enabled: bool = True

    @classmethod
    def parse(cls, raw: Any) -> Policy:
        """From the API's JSON (PolicyError on anything invalid)."""
        if not isinstance(raw, dict):
            raise PolicyError("expected an object with rules")
        unknown = set(raw) - {"rules", "keepNewest", "enabled", "id"}
        if unknown:
            raise PolicyError(f"unknown key {sorted(unknown)[0]!r}; allowed: enabled, rules, keepNewest")
        rules = raw.get("rules")
        if not isinstance(rules, list) or not rules:
            raise PolicyError("rules: expected a non-empty list (a policy without rules would prune every tag)")
        if len(rules) > MAX_RULES:
            raise PolicyError(f"rules: at most {MAX_RULES}")
        keep = raw.get("keepNewest")
        if keep is not None and (not isinstance(keep, int) or isinstance(keep, bool) or keep < 0):
            raise PolicyError("keepNewest: expected a non-negative integer")
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            raise PolicyError("enabled: expected true or false")
        return cls(tuple(Rule.parse(r, f"rules[{i}]") for i, r in enumerate(rules)), keep, enabled)

    def select(self, tags: Sequence[TagInfo], now: dt.datetime) -> list[TagInfo]:
        """The tags this policy prunes."""
        hit = [t for t in tags if all(r.matches(t, now) for r in self.rules)]
        if self.keep_newest:
            hit.sort(key=lambda t: (t.pushed_at, t.name), reverse=True)
            hit = hit[self.keep_newest:]
        return hit


def evaluate(tags: Sequence[TagInfo], policies: Sequence[Policy], tag_limit: int | None, immutable: bool,
             now: dt.datetime) -> dict[str, str]:
    """Tag name -> why it is pruned, for enabled policies then the tag limit."""
    if immutable:
        return {}
    out: dict[str, str] = {}
    for i, p in enumerate(policies):
        if p.enabled:
            for t in p.select(tags, now):
                out.setdefault(t.name, f"policy {i + 1}")
    if tag_limit is not None:
        left = sorted((t for t in tags if t.name not in out), key=lambda t: (t.pushed_at, t.name), reverse=True)
        for t in left[tag_limit:]:
            out[t.name] = f"tag limit {tag_limit}"
    return out


# -- the job ---------------------------------------------------------------------------------


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    only(params, {"repository"})
    repo = params.get("repository")
    if repo is not None and not isinstance(repo, str):
        raise ParameterError("repository: expected a repository name")
    return params


_REPOS = text("""
SELECT r.id, r.name, s.tag_limit, r.immutable_tags AS immutable
FROM repositories r LEFT JOIN repository_pruning s ON s.repository_id = r.id
WHERE (s.tag_limit IS NOT NULL OR EXISTS (SELECT 1 FROM pruning_policies p WHERE p.repository_id = r.id AND p.enabled))
  AND (CAST(:repo AS text) IS NULL OR r.name = :repo)
ORDER BY r.name
""")

_TAGS = text("""
SELECT t.name, t.updated_at AS pushed_at, p.pulled_at FROM tags t
LEFT JOIN tag_pulls p ON p.repository_id = t.repository_id AND p.tag = t.name
WHERE t.repository_id = :rid
""")


async def load(conn: Any, repository_id: int, tag_limit: int | None,
               every_tag: bool = False) -> tuple[list[TagInfo], list[Policy], dt.datetime]:
    """The repository's tags, its policies and the database's time. The tags are read only when
    something could prune one (an enabled policy, ``tag_limit``, or ``every_tag``): none otherwise."""
    rows = await conn.execute(text("SELECT rules, keep_newest, enabled FROM pruning_policies "
                                   "WHERE repository_id = :rid ORDER BY created_at, id"), {"rid": repository_id})
    policies = [Policy(tuple(Rule.parse(x) for x in r.rules), r.keep_newest, r.enabled) for r in rows]
    tags = [TagInfo(r.name, r.pushed_at, r.pulled_at) for r in await conn.execute(_TAGS, {"rid": repository_id})] \
        if every_tag or tag_limit is not None or any(p.enabled for p in policies) else []
    now = (await conn.execute(text("SELECT now()"))).scalar_one()
    return tags, policies, now


async def run(ctx: JobContext) -> dict[str, Any]:
    only = ctx.parameters.get("repository")
    async with ctx.engine.connect() as conn:
        repos = (await conn.execute(_REPOS, {"repo": only})).all()
    pruned = 0
    for i, repo in enumerate(repos):
        ctx.check_stop()
        async with ctx.engine.begin() as conn:
            tags, policies, now = await load(conn, repo.id, repo.tag_limit)
            verdict = evaluate(tags, policies, repo.tag_limit, repo.immutable, now)
            pushed = {t.name: t.pushed_at for t in tags}
            # Each only if not pushed again since it was read.
            for name in await changes.prune_tags(conn, repo.id, repo.name,
                                                 {n: (pushed[n], why) for n, why in verdict.items()}):
                pruned += 1
                ctx.log(f"pruned {repo.name}:{name} ({verdict[name]})")
        ctx.progress(i + 1, len(repos), "evaluating repositories")
    ctx.log(f"pruned {pruned} tags in {len(repos)} repositories with pruning policies or tag limits")
    return {"repositories": len(repos), "tags": pruned}

"""What a promotion policy says, checked and evaluated (no I/O): its rules, every one of which an
image must meet, and its tag template.

Rules are DTR's ``{"field", "operator", "values"}``:

- ``tag`` (the source tag's name): ``eq``, ``neq``, ``sw`` (starts with), ``ew`` (ends with),
  ``c`` (contains), ``oneof``, ``noneof``, ``matches`` (a regular expression the *whole* name
  must match; at most ``MAX_PATTERN`` characters, and refused when it could backtrack
  exponentially: no repeated group that itself repeats or alternates, no back-references);
- ``vulnerability_all``, ``vulnerability_critical``, ``vulnerability_major``,
  ``vulnerability_minor``: ``gte``, ``gt``, ``lte``, ``lt``, ``eq`` a count (one value, a
  non-negative integer) of the image's last scan (``all``: the three bands summed; findings an
  override hides in the source repository are not counted; an index: its images' summed);
- ``component_name`` and ``license_name``: ``eq``, ``c``, ``oneof`` (some component, or some
  license, of the last scan is, contains, is one of the values), ``noneof`` (none is one of them).
An image without a completed scan (an index: any of its images) meets no rule on its scan.

The template (DTR's tagTemplate) is the target tag: ``%n`` the source tag, ``%A`` date and time
(``20261205T140407Z``), ``%D`` date (``2026-12-05``), ``%T`` time (``140407``), ``%y`` year,
``%m`` month, ``%d`` day, ``%H`` hour, ``%M`` minute, ``%S`` second (UTC, at promotion), ``%%``
a ``%``; anything else after ``%`` is refused. It must render a valid tag.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Sequence
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

from dtr.registry.names import TAG_RE

TAG_OPERATORS = ("eq", "neq", "sw", "ew", "c", "oneof", "noneof", "matches")
COUNT_OPERATORS = ("gte", "gt", "lte", "lt", "eq")
SET_OPERATORS = ("eq", "c", "oneof", "noneof")
COUNT_FIELDS = ("vulnerability_all", "vulnerability_critical", "vulnerability_major", "vulnerability_minor")
SCAN_FIELDS = (*COUNT_FIELDS, "component_name", "license_name")
FIELDS: dict[str, tuple[str, ...]] = {"tag": TAG_OPERATORS, **{f: COUNT_OPERATORS for f in COUNT_FIELDS},
                                      "component_name": SET_OPERATORS, "license_name": SET_OPERATORS}
MAX_RULES = 20
MAX_VALUES = 100
MAX_VALUE = 255
MAX_PATTERN = 256
MAX_TEMPLATE = 255
#: A tag the template is tried with when a policy is checked (the longest DTR-style tag is the
#: pusher's business: a rendered tag too long for the grammar fails that promotion, recorded).
SAMPLE_TAG = "1.0.0-rc1"


class PolicyError(ValueError):
    """A rule or the template is invalid; the message says which part."""


@dataclasses.dataclass(frozen=True)
class Facts:
    """What the rules look at of one image: its source tag and, when it has a completed scan,
    the counts by band and the names of its components and licenses (an index: every image's)."""

    tag: str
    scanned: bool = False
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    components: frozenset[str] = frozenset()
    licenses: frozenset[str] = frozenset()


_STRING: dict[str, Callable[[str, tuple[str, ...]], bool]] = {
    "eq": lambda s, v: s == v[0], "neq": lambda s, v: s != v[0], "sw": lambda s, v: s.startswith(v[0]),
    "ew": lambda s, v: s.endswith(v[0]), "c": lambda s, v: v[0] in s, "oneof": lambda s, v: s in v,
    "noneof": lambda s, v: s not in v,
}
_COUNT: dict[str, Callable[[int, int], bool]] = {
    "gte": lambda n, v: n >= v, "gt": lambda n, v: n > v, "lte": lambda n, v: n <= v, "lt": lambda n, v: n < v,
    "eq": lambda n, v: n == v,
}
_REPEATS = {sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, getattr(sre_parse, "POSSESSIVE_REPEAT", None)}


def _children(op: Any, av: Any) -> list[Any]:
    """The sub-patterns of a parsed pattern's node (a repeat's aside)."""
    if op == sre_parse.BRANCH:
        return list(av[1])
    if op == sre_parse.SUBPATTERN:
        return [av[-1]]
    if op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT):
        return [av[1]]
    return []


def _risky(parsed: Any, inside_repeat: bool = False) -> str | None:
    """Why a parsed pattern could backtrack exponentially (None: it cannot)."""
    for op, av in parsed:
        if op in (sre_parse.GROUPREF, sre_parse.GROUPREF_EXISTS):
            return "back-references are not allowed"
        subs, inside = _children(op, av), inside_repeat
        if op in _REPEATS:
            low, high, sub = av
            repeats = high != low and (high > 1 or high == sre_parse.MAXREPEAT)
            if repeats and inside_repeat:
                return "a repeated group must not itself repeat"
            subs, inside = [sub], inside_repeat or repeats
        elif op == sre_parse.BRANCH and inside_repeat:
            return "a repeated group must not alternate"
        for sub in subs:
            if (why := _risky(sub, inside)) is not None:
                return why
    return None


def compile_pattern(pattern: str, where: str) -> re.Pattern[str]:
    """A ``matches`` pattern, checked (PolicyError)."""
    if len(pattern) > MAX_PATTERN:
        raise PolicyError(f"{where}: the pattern is longer than {MAX_PATTERN} characters")
    try:
        compiled = re.compile(pattern)
        why = _risky(sre_parse.parse(pattern))
    except (re.error, RecursionError) as e:
        raise PolicyError(f"{where}: invalid regular expression: {e}") from None
    if why is not None:
        raise PolicyError(f"{where}: {why} (such patterns can take exponential time)")
    return compiled


@dataclasses.dataclass(frozen=True)
class Rule:
    field: str
    operator: str
    values: tuple[str, ...]
    regex: re.Pattern[str] | None = None
    count: int = 0

    @classmethod
    def parse(cls, raw: Any, where: str = "rules[0]") -> Rule:
        """A rule from the API's JSON (PolicyError on anything invalid)."""
        if not isinstance(raw, dict):
            raise PolicyError(f"{where}: expected an object with field, operator and values")
        if unknown := set(raw) - {"field", "operator", "values"}:
            raise PolicyError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        field, op, values = raw.get("field"), raw.get("operator"), raw.get("values", [])
        if not isinstance(field, str) or field not in FIELDS:
            raise PolicyError(f"{where}.field: got {str(field)[:64]!r}, allowed: {', '.join(FIELDS)}")
        if not isinstance(op, str) or op not in FIELDS[field]:
            raise PolicyError(f"{where}.operator: got {str(op)[:64]!r}, allowed for {field}: "
                              f"{', '.join(FIELDS[field])}")
        if not isinstance(values, list) or not all(isinstance(v, str) and len(v) <= MAX_VALUE for v in values):
            raise PolicyError(f"{where}.values: expected a list of strings of at most {MAX_VALUE} characters")
        many = op in ("oneof", "noneof")
        if not values or len(values) > MAX_VALUES or (not many and len(values) != 1):
            takes = f"1 to {MAX_VALUES} values" if many else "one value"
            raise PolicyError(f"{where}.values: {op} takes {takes}")
        if op == "matches":
            return cls(field, op, tuple(values), regex=compile_pattern(values[0], f"{where}.values"))
        if field in COUNT_FIELDS:
            if not values[0].isascii() or not values[0].isdigit() or len(values[0]) > 9:
                raise PolicyError(f"{where}.values: expected a count (a non-negative integer), got {values[0]!r}")
            return cls(field, op, tuple(values), count=int(values[0]))
        return cls(field, op, tuple(values))

    def holds(self, facts: Facts) -> bool:
        """Whether the image of ``facts`` meets this rule."""
        if self.field == "tag":
            if self.regex is not None:
                return self.regex.fullmatch(facts.tag) is not None
            return _STRING[self.operator](facts.tag, self.values)
        if not facts.scanned:
            return False
        if self.field in COUNT_FIELDS:
            band = self.field.removeprefix("vulnerability_")
            n = sum(facts.counts.values()) if band == "all" else facts.counts.get(band, 0)
            return _COUNT[self.operator](n, self.count)
        names = facts.components if self.field == "component_name" else facts.licenses
        if self.operator == "noneof":
            return not names & set(self.values)
        return any(_STRING[self.operator](n, self.values) for n in names)

    def json(self) -> dict[str, Any]:
        return {"field": self.field, "operator": self.operator, "values": list(self.values)}


_FIELD = re.compile(r"%(.?)")
_TEMPLATE_FIELDS: dict[str, Callable[[str, dt.datetime], str]] = {
    "n": lambda tag, t: tag, "A": lambda tag, t: t.strftime("%Y%m%dT%H%M%SZ"),
    "D": lambda tag, t: t.strftime("%Y-%m-%d"), "T": lambda tag, t: t.strftime("%H%M%S"),
    "y": lambda tag, t: t.strftime("%Y"), "m": lambda tag, t: t.strftime("%m"), "d": lambda tag, t: t.strftime("%d"),
    "H": lambda tag, t: t.strftime("%H"), "M": lambda tag, t: t.strftime("%M"), "S": lambda tag, t: t.strftime("%S"),
    "%": lambda tag, t: "%",
}


def render(template: str, tag: str, at: dt.datetime) -> str:
    """The target tag ``template`` makes of source tag ``tag`` at ``at`` (UTC); PolicyError for an
    unknown field or a result that is no valid tag."""
    def field(m: re.Match[str]) -> str:
        fn = _TEMPLATE_FIELDS.get(m.group(1))
        if fn is None:
            raise PolicyError(f"tagTemplate: unknown field %{m.group(1)} (allowed: "
                              f"{', '.join('%' + k for k in _TEMPLATE_FIELDS)})")
        return fn(tag, at.astimezone(dt.UTC))

    out = _FIELD.sub(field, template)
    if not TAG_RE.fullmatch(out):
        raise PolicyError(f"tagTemplate: {template!r} makes {out[:200]!r} of tag {tag!r}, which is not a valid tag "
                          "(letters, digits, '_', '.', '-', at most 128, not starting with '.' or '-')")
    return out


@dataclasses.dataclass(frozen=True)
class Policy:
    """A policy's rules, template and target (``ns/repo``), as checked."""

    rules: tuple[Rule, ...]
    tag_template: str
    target: str
    enabled: bool = True

    @classmethod
    def parse(cls, raw: Any) -> Policy:
        """From the API's JSON (PolicyError on anything invalid); the target's existence and
        access are the use case's to check."""
        if not isinstance(raw, dict):
            raise PolicyError("expected an object with rules, targetRepository and tagTemplate")
        rules = raw.get("rules")
        if not isinstance(rules, list) or len(rules) > MAX_RULES:
            raise PolicyError(f"rules: expected a list of at most {MAX_RULES} rules")
        target = raw.get("targetRepository")
        if not isinstance(target, str) or target.count("/") != 1 or not all(target.split("/")):
            raise PolicyError("targetRepository: expected a repository as namespace/name")
        template = raw.get("tagTemplate", "%n")
        if not isinstance(template, str) or not template or len(template) > MAX_TEMPLATE:
            raise PolicyError(f"tagTemplate: expected 1 to {MAX_TEMPLATE} characters")
        render(template, SAMPLE_TAG, dt.datetime.now(dt.UTC))
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            raise PolicyError("enabled: expected true or false")
        return cls(tuple(Rule.parse(r, f"rules[{i}]") for i, r in enumerate(rules)), template, target, enabled)

    @property
    def needs_scan(self) -> bool:
        """Some rule looks at the image's scan."""
        return any(r.field in SCAN_FIELDS for r in self.rules)

    def holds(self, facts: Facts) -> bool:
        return all(r.holds(facts) for r in self.rules)


def stored_rules(raw: Sequence[Any]) -> tuple[Rule, ...]:
    """The rules as stored (checked when they were)."""
    return tuple(Rule.parse(r) for r in raw)

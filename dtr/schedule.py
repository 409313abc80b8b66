"""Cron schedules as DTR writes them: six fields, seconds first (``sec min hour dom month dow``).

Fields take ``*``, numbers, ranges ``a-b``, steps ``*/n`` and ``a-b/n``, and lists ``a,b``;
months and weekdays also take names (``jan``, ``mon``). ``@yearly``, ``@monthly``, ``@weekly``,
``@daily``, ``@hourly`` and ``@every <duration>`` are accepted too. As in robfig/cron (DTR's
scheduler), when both day-of-month and day-of-week are restricted a day matching either fires.
Times are UTC. Durations (``90s``, ``15m``, ``24h``, ``7d``, ``1h30m``) are parsed here as well.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from dtr import sections

MACROS = {
    "@yearly": "0 0 0 1 1 *", "@annually": "0 0 0 1 1 *", "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0", "@daily": "0 0 0 * * *", "@midnight": "0 0 0 * * *", "@hourly": "0 0 * * * *",
}
_NAMES = {
    4: {m: i + 1 for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])},
    5: {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])},
}
_BOUNDS = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
_FIELDS = ["second", "minute", "hour", "day of month", "month", "day of week"]


class ScheduleError(ValueError):
    """The schedule or duration cannot be parsed; the message says where."""


def parse_duration(text: str) -> float:
    """Seconds in ``text`` (``90s``, ``15m``, ``1h30m``, ``7d``; a bare number is seconds)."""
    try:
        return sections.parse_duration(text)
    except ValueError as e:
        raise ScheduleError(str(e)) from None


def _field(spec: str, index: int) -> frozenset[int]:
    lo, hi = _BOUNDS[index]
    out: set[int] = set()
    for part in spec.split(","):
        base, _, step_s = part.partition("/")
        step = 1
        if step_s:
            if not step_s.isdigit() or int(step_s) == 0:
                raise ScheduleError(f"{_FIELDS[index]}: invalid step in {part!r}")
            step = int(step_s)
        if base in ("*", "?"):
            a, b = lo, hi
        else:
            ends = base.split("-")
            if len(ends) > 2:
                raise ScheduleError(f"{_FIELDS[index]}: invalid range {part!r}")
            vals = [_value(e, index) for e in ends]
            a, b = vals[0], vals[-1]
            if len(ends) == 1 and step_s:
                b = hi
        if not (lo <= a <= hi and lo <= b <= hi) or a > b:
            raise ScheduleError(f"{_FIELDS[index]}: {part!r} is outside {lo}-{hi}")
        out.update(range(a, b + 1, step))
    if index == 5 and 7 in out:
        out.discard(7)
        out.add(0)
    return frozenset(out)


def _value(token: str, index: int) -> int:
    names = _NAMES.get(index, {})
    if token.lower() in names:
        return names[token.lower()]
    if not token.isdigit():
        raise ScheduleError(f"{_FIELDS[index]}: {token!r} is not a number")
    return int(token)


@dataclasses.dataclass(frozen=True)
class Schedule:
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    dom_any: bool
    dow_any: bool
    every: float | None = None

    @classmethod
    def parse(cls, text: str) -> Schedule:
        s = text.strip()
        if s.startswith("@every"):
            every = parse_duration(s[len("@every"):])
            if every < 1:
                raise ScheduleError("@every: the interval must be at least 1s")
            full = frozenset[int]()
            return cls(full, full, full, full, full, full, True, True, every)
        s = MACROS.get(s, s)
        parts = s.split()
        if len(parts) != 6:
            raise ScheduleError(f"schedule {text!r}: expected 6 fields (second minute hour day-of-month "
                                f"month day-of-week), got {len(parts)}")
        f = [_field(p, i) for i, p in enumerate(parts)]
        return cls(f[0], f[1], f[2], f[3], f[4], f[5], parts[3] in ("*", "?"), parts[5] in ("*", "?"))

    def _day_ok(self, d: dt.datetime) -> bool:
        dom = d.day in self.days
        dow = (d.isoweekday() % 7) in self.weekdays
        if self.dom_any or self.dow_any:
            return dom and dow
        return dom or dow

    def next_after(self, after: dt.datetime) -> dt.datetime:
        """The first time strictly after ``after`` (aware, UTC) that the schedule fires."""
        if self.every is not None:
            return after + dt.timedelta(seconds=self.every)
        t = after.astimezone(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=1)
        limit = t + dt.timedelta(days=366 * 5)
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0, second=0) + dt.timedelta(days=32)).replace(day=1)
                continue
            if not self._day_ok(t):
                t = t.replace(hour=0, minute=0, second=0) + dt.timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + dt.timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t = t.replace(second=0) + dt.timedelta(minutes=1)
                continue
            if t.second not in self.seconds:
                t += dt.timedelta(seconds=1)
                continue
            return t
        raise ScheduleError("the schedule never fires")

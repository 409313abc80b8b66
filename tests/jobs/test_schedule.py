"""Cron schedules (six fields, seconds first) and durations."""

from __future__ import annotations

import datetime as dt

import pytest

from dtr.schedule import Schedule, ScheduleError, parse_duration

T0 = dt.datetime(2026, 11, 30, 8, 30, 15, 500_000, tzinfo=dt.UTC)  # a Monday


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


@pytest.mark.parametrize(("spec", "expected"), [
    ("* * * * * *", at(2026, 11, 30, 8, 30, 16)),
    ("0 * * * * *", at(2026, 11, 30, 8, 31, 0)),
    ("*/20 * * * * *", at(2026, 11, 30, 8, 30, 20)),
    ("0 0 3 * * *", at(2026, 12, 1, 3, 0, 0)),
    ("0 0 3 * * sat", at(2026, 12, 5, 3, 0, 0)),
    ("0 0 0 1 jan *", at(2027, 1, 1, 0, 0, 0)),
    ("0 15-45/15 8 * * mon-fri", at(2026, 11, 30, 8, 45, 0)),
    ("0 0 12 13 * fri", at(2026, 12, 4, 12, 0, 0)),  # day-of-month OR day-of-week
    ("0 0 0 29 2 *", at(2028, 2, 29, 0, 0, 0)),
    ("@hourly", at(2026, 11, 30, 9, 0, 0)),
    ("@every 90s", T0 + dt.timedelta(seconds=90)),
])
def test_next_run(spec: str, expected: dt.datetime) -> None:
    assert Schedule.parse(spec).next_after(T0) == expected


@pytest.mark.parametrize(("spec", "message"), [
    ("* * * * *", "6 fields"),
    ("60 * * * * *", "outside"),
    ("* * * * * funday", "not a number"),
    ("*/0 * * * * *", "step"),
    ("5-1 * * * * *", "outside"),
    ("0 0 0 31 2 *", "never fires"),
])
def test_bad_schedules(spec: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        Schedule.parse(spec).next_after(T0)


def test_durations() -> None:
    assert parse_duration("90s") == 90
    assert parse_duration("1h30m") == 5400
    assert parse_duration("7d") == 7 * 86400
    assert parse_duration("0") == 0
    for bad in ("", "soon", "5x", "-3", "1h 30m"):
        with pytest.raises(ScheduleError):
            parse_duration(bad)

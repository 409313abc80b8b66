"""Checks every job action's parameters share; each raises ``ParameterError`` naming the parameter."""

from __future__ import annotations

from typing import Any

from dtr.schedule import ScheduleError, parse_duration


class ParameterError(ValueError):
    """A job's parameters are invalid; the message says which and why."""


def only(params: dict[str, Any], allowed: set[str]) -> None:
    """ParameterError if ``params`` has a key outside ``allowed``."""
    unknown = set(params) - allowed
    if unknown:
        allowed_s = ", ".join(sorted(allowed)) or "none"
        raise ParameterError(f"unknown parameter {sorted(unknown)[0]!r}; allowed: {allowed_s}")


def duration_param(params: dict[str, Any], name: str) -> float | None:
    """``params[name]`` as seconds (a number or a duration string like ``24h``), or None if absent."""
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        raise ParameterError(f"{name}: expected a duration like 24h or a number of seconds")
    if isinstance(value, int | float):
        if value < 0:
            raise ParameterError(f"{name}: must not be negative")
        return float(value)
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ScheduleError as e:
            raise ParameterError(f"{name}: {e}") from None
    raise ParameterError(f"{name}: expected a duration like 24h or a number of seconds")


def bool_param(params: dict[str, Any], name: str) -> None:
    """ParameterError if ``params[name]`` is present and not a boolean."""
    if name in params and not isinstance(params[name], bool):
        raise ParameterError(f"{name}: expected true or false")

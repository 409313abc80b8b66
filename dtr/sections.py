"""Config sections from plain mappings: ``ConfigError``, and ``build``, which makes a frozen dataclass
from a (YAML) mapping, checking every key and value against the dataclass's type hints.

A field typed ``Annotated[float, DURATION]`` (or ``int``) takes a duration (``90s``, ``30m``, ``24h``,
``1h30m``, ``2d``) or a number of seconds; string ``Literal`` values match case-insensitively and are
stored as the schema spells them; an empty section (YAML ``null``) is its defaults.

Shared by the config loader (``dtr.config``) and the storage drivers' ``Params`` (``dtr.storage``):
a module of its own, so storage needs nothing from ``dtr.config``.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

T = TypeVar("T")


class ConfigError(Exception):
    """A configuration value is missing, unknown or invalid; the message says which and why."""


#: The mark of a duration field: ``Annotated[float, DURATION]`` (seconds).
DURATION = "duration"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_NAME = "a duration (90s, 30m, 24h, 1h30m, 2d) or a number of seconds"


def parse_duration(text: str) -> float:
    """Seconds in ``text`` (``90s``, ``15m``, ``1h30m``, ``7d``; a bare number is seconds);
    ValueError saying what is accepted otherwise."""
    s = text.strip().lower()
    try:
        value = float(s)
    except ValueError:
        pass
    else:
        if value < 0:
            raise ValueError(f"duration {text!r} is negative")
        return value
    pos, total = 0, 0.0
    for m in _DURATION.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise ValueError(f"invalid duration {text!r}; use e.g. 90s, 15m, 24h, 7d or 1h30m")
    return total


def _duration(value: Any, tp: Any, key: str) -> float | int:
    """``value`` (a number of seconds or a duration string) as seconds of type ``tp`` (int or float)."""
    expected = ConfigError(f"{key}: got {value!r}, expected {_DURATION_NAME}")
    if isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except ValueError:
            raise expected from None
        if tp is int:
            if seconds != int(seconds):
                raise ConfigError(f"{key}: got {value!r}, expected a whole number of seconds")
            return int(seconds)
        return seconds
    try:
        return typing.cast(float, coerce(value, tp, key))
    except ConfigError:
        raise expected from None


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Annotated:
        base, *marks = get_args(tp)
        return _DURATION_NAME if DURATION in marks else _type_name(base)
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp) if a is not type(None))
    if dataclasses.is_dataclass(tp):
        return "a mapping with keys " + ", ".join(f.name for f in dataclasses.fields(tp))
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def coerce(value: Any, tp: Any, key: str) -> Any:
    """``value`` as type ``tp`` (ints widen to floats, numbers to strings; a comma-separated string
    is a list); raise ConfigError naming ``key`` when it is none of what ``tp`` allows."""
    origin = get_origin(tp)
    if origin is Annotated:
        base, *marks = get_args(tp)
        return _duration(value, base, key) if DURATION in marks else coerce(value, base, key)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: got {value!r}, expected {_type_name(tp)}")
    if origin is Literal:
        for allowed in get_args(tp):
            if value == allowed or (isinstance(value, str) and isinstance(allowed, str)
                                    and value.lower() == allowed.lower()):
                return allowed
        raise ConfigError(f"{key}: got {value!r}, allowed: {_type_name(tp)}")
    if dataclasses.is_dataclass(tp):
        if value is None:  # an empty section: its defaults
            value = {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
        return build(typing.cast(type, tp), value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: got {value!r}, expected true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: got {value!r}, expected an integer")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: got {value!r}, expected a number")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: got {value!r}, expected a string")
    if origin in (tuple, list):
        # A YAML list, or a comma-separated string (as environment overrides give).
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: got {value!r}, expected a list")
        items = [coerce(v, get_args(tp)[0], f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    raise ConfigError(f"{key}: unsupported type {tp!r}")  # pragma: no cover - schema bug


def build(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    """The dataclass ``cls`` from ``data``; keys are named ``prefix.key`` in errors. An unknown key
    or a bad value raises ConfigError; absent keys take the dataclass's defaults."""
    hints = typing.get_type_hints(cls, include_extras=True)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in names:
            where = f"{prefix}.{key}" if prefix else str(key)
            raise ConfigError(f"{where}: unknown key; allowed here: {', '.join(sorted(names))}")
    kwargs = {}
    for name in names:
        if name in data:
            kwargs[name] = coerce(data[name], hints[name], f"{prefix}.{name}" if prefix else name)
    return cls(**kwargs)

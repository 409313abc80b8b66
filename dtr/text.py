"""Client text and JSON that every later step accepts: the one check of input, made where requests
are parsed (``/v2`` and ``/api/v0`` alike) rather than in each handler.

Postgres refuses NUL characters in text and Python cannot encode unpaired surrogates as UTF-8, so
such text is refused up front with the name of the field. JSON is parsed strictly: no ``NaN`` or
``Infinity`` (nor numbers that overflow to them), nesting at most ``MAX_DEPTH`` deep, so nothing is
stored that a strict parser would later reject. Imports nothing of dtr's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

#: The deepest nesting of arrays and objects a JSON body may have.
MAX_DEPTH = 64


class BadInput(ValueError):
    """Input that breaks the rules above; ``str(e)`` says what and where, for a 400 answer;
    ``parameter`` names the parameter at fault (``check_params``)."""

    def __init__(self, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


def fault(value: str) -> str | None:
    """What makes ``value`` unstorable ("a NUL character", "an unpaired surrogate"), None if nothing."""
    if "\x00" in value:
        return "a NUL character"
    try:
        value.encode()
    except UnicodeEncodeError:
        return "an unpaired surrogate"
    return None


def check_text(value: str, where: str) -> str:
    """``value`` itself, or ``BadInput`` naming ``where`` when it holds a NUL or an unpaired surrogate."""
    problem = fault(value)
    if problem is not None:
        raise BadInput(f"{where} contains {problem}")
    return value


def check_params(params: Iterable[tuple[str, object]], what: str = "query parameter") -> None:
    """``check_text`` of each ``(name, value)`` (values that are no strings are skipped); the
    ``BadInput`` says "the {what} NAME" or "a {what}'s name" and carries the parameter's name."""
    for key, value in params:
        try:
            check_text(key, f"a {what}'s name")
            if isinstance(value, str):
                check_text(value, f"the {what} {key}")
        except BadInput as e:
            raise BadInput(str(e), key) from None


def _constant(name: str) -> Any:
    raise BadInput(f"{name} is not a JSON number")


def _number(raw: str) -> float:
    value = float(raw)
    if value in (float("inf"), float("-inf")):
        raise BadInput(f"the number {raw[:40]} is too large")
    return value


def _walk(value: Any, where: str, depth: int, text: bool) -> None:
    if depth > MAX_DEPTH:
        raise BadInput(f"the JSON is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        if text:
            check_text(value, where or "the body")
    elif isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}" if where else key
            if text:
                check_text(key, f"a field name in {where or 'the body'}")
            _walk(item, path, depth + 1, text)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, f"{where}[{i}]", depth + 1, text)


def loads(data: bytes | str, *, text: bool = True) -> Any:
    """``data`` parsed as strict JSON, or ``BadInput`` saying why not (also for invalid UTF-8).

    With ``text``, every string and field name is checked with ``check_text`` (the error names the
    field by its path, ``a.b[2]``).
    """
    try:
        value = json.loads(data, parse_constant=_constant, parse_float=_number)
    except BadInput:
        raise
    except RecursionError:
        raise BadInput(f"the JSON is nested more than {MAX_DEPTH} levels deep") from None
    except UnicodeDecodeError:
        raise BadInput("the body is not UTF-8") from None
    except ValueError as e:
        raise BadInput(f"not valid JSON: {e}") from None
    _walk(value, "", 1, text)
    return value


def dumps(value: Any) -> bytes:
    """``value`` as compact JSON bytes; ``ValueError`` for NaN or Infinity (never written)."""
    return json.dumps(value, allow_nan=False, separators=(",", ":")).encode()

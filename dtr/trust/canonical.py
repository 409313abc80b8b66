"""Notary's canonical JSON (the bytes TUF signs) and the strict loading of uploaded files.

Canonical form (docker/go ``canonical/json``): object keys sorted (by their UTF-8 bytes), no
whitespace, strings with only ``"`` and ``\\`` escaped and everything else raw UTF-8 (control
characters too), integers only, ``true``/``false``/``null``.
"""

from __future__ import annotations

import json
from typing import Any

from dtr.trust import errors

#: The largest file ``load_json`` accepts (notary's own download limit is 100 MiB; a targets file
#: of 16 MiB lists ~100 000 tags).
MAX_SIZE = 16 << 20
#: The deepest nesting ``load_json`` accepts (TUF files nest 6 levels).
MAX_DEPTH = 64


def _string(s: str, out: list[bytes]) -> None:
    out.append(b'"' + s.replace("\\", "\\\\").replace('"', '\\"').encode() + b'"')


def _encode(obj: Any, out: list[bytes], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError("JSON nested too deeply")
    if obj is None:
        out.append(b"null")
    elif obj is True:
        out.append(b"true")
    elif obj is False:
        out.append(b"false")
    elif isinstance(obj, int):
        out.append(str(int(obj)).encode())
    elif isinstance(obj, str):
        _string(obj, out)
    elif isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not isinstance(k, str):
                raise ValueError(f"JSON object key is not a string: {type(k).__name__}")
            items.append((k.encode(), k, v))
        items.sort(key=lambda i: i[0])
        out.append(b"{")
        for n, (_, k, v) in enumerate(items):
            if n:
                out.append(b",")
            _string(k, out)
            out.append(b":")
            _encode(v, out, depth + 1)
        out.append(b"}")
    elif isinstance(obj, list | tuple):
        out.append(b"[")
        for n, v in enumerate(obj):
            if n:
                out.append(b",")
            _encode(v, out, depth + 1)
        out.append(b"]")
    elif isinstance(obj, float):
        raise ValueError("canonical JSON holds integers only, not floats")
    else:
        raise ValueError(f"not a JSON value: {type(obj).__name__}")


def canonical(obj: Any) -> bytes:
    """Notary's canonical JSON: sorted keys, no whitespace, only " and \\ escaped, raw UTF-8; ints only
    (a float or non-finite number -> ValueError; a lone surrogate -> UnicodeEncodeError, a ValueError)."""
    out: list[bytes] = []
    _encode(obj, out, 0)
    return b"".join(out)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key in a JSON object")
    return obj


def _no_float(text: str) -> Any:
    raise ValueError("floats are not allowed")


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not allowed")


def _check(obj: Any) -> None:
    """Depth within MAX_DEPTH and every string valid UTF-8 (no lone surrogates from escapes)."""
    stack: list[tuple[Any, int]] = [(obj, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError("JSON nested too deeply")
        if isinstance(value, str):
            value.encode()
        elif isinstance(value, dict):
            for k, v in value.items():
                k.encode()
                stack.append((v, depth + 1))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def load_json(raw: bytes) -> Any:
    """Parse an uploaded file strictly: valid UTF-8 JSON, no duplicate keys, no floats, depth and size
    limits; failure -> TrustError(MALFORMED_JSON)."""
    try:
        if len(raw) > MAX_SIZE:
            raise ValueError("file too large")
        text = raw.decode("utf-8")
        if text.startswith("\ufeff"):
            raise ValueError("byte order mark")
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_float=_no_float,
                         parse_constant=_no_constant)
        _check(obj)
    except (ValueError, RecursionError):
        raise errors.TrustError(errors.MALFORMED_JSON) from None
    return obj

"""Vulnerability feeds parsed into ``Advisory`` records (and, for NVD, ``VulnInfo``).

One module per feed format: ``osv`` (OSV JSON, ``all.zip``), ``debian`` (the Debian security
tracker's JSON), ``alpine`` (Alpine's secdb), ``nvd`` (NVD's CVE API 2.0 pages, CVSS). Parsers are
synchronous, read from binary file objects and yield records as they go (a feed can be hundreds of
MB); bad input raises ``FeedError`` naming the feed and what is wrong. ``dtr.scanning.vulndb``
downloads them; ``dtr.scanning.vulnimport`` imports and diffs them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Iterator
from typing import IO, Any


class FeedError(ValueError):
    """A feed's content cannot be read (not JSON, not the expected shape, a broken archive)."""


@dataclasses.dataclass(frozen=True, slots=True)
class VulnInfo:
    """What a feed says about a vulnerability itself (a ``vulnerabilities`` row)."""

    id: str
    summary: str = ""
    cvss_score: float | None = None
    cvss_vector: str = ""
    aliases: tuple[str, ...] = ()
    published_at: dt.datetime | None = None
    modified_at: dt.datetime | None = None


#: The longest summary kept (OSV ``details`` can be pages of Markdown).
SUMMARY_MAX = 1000

_SEVERITIES = {
    "critical": "critical", "high": "high", "important": "high", "medium": "medium", "moderate": "medium",
    "low": "low", "negligible": "negligible", "unimportant": "negligible", "not yet assigned": "unknown",
    "untriaged": "unknown", "unknown": "unknown",
}


def normalise_severity(value: object) -> str:
    """A vendor's severity word in the ``Advisory.severity`` vocabulary; '' if it is none of them
    (Debian marks unconfirmed urgencies with ``*``: ``medium**`` is ``medium``)."""
    if not isinstance(value, str):
        return ""
    return _SEVERITIES.get(value.strip().rstrip("*").strip().lower(), "")


def summary_of(text: object) -> str:
    """A one-paragraph summary: whitespace collapsed, cut at ``SUMMARY_MAX`` characters."""
    if not isinstance(text, str):
        return ""
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1] + "…"


def parse_time(value: object) -> dt.datetime | None:
    """An RFC 3339 / ISO 8601 timestamp (NVD's have no zone: UTC), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


_WS = re.compile(r"[ \t\n\r]*")


def iter_object_items(fp: IO[bytes], *, name: str, chunk: int = 1 << 20) -> Iterator[tuple[str, Any]]:
    """The members of the top-level JSON object in ``fp``, one (key, value) at a time: memory is
    bounded by the largest single value, not the document. ``FeedError`` if it is no JSON object."""
    decoder = json.JSONDecoder()
    buf = ""
    eof = False
    pending = b""

    def more(at_least: int) -> bool:
        nonlocal buf, eof, pending
        if eof:
            return False
        data = fp.read(max(chunk, at_least))
        if not data:
            eof = True
            if pending:
                raise FeedError(f"{name}: not UTF-8 text at the end")
            return False
        data = pending + data
        try:
            text = data.decode("utf-8")
            pending = b""
        except UnicodeDecodeError as e:
            if e.start < len(data) - 3:
                raise FeedError(f"{name}: not UTF-8 text") from None
            text, pending = data[: e.start].decode("utf-8"), data[e.start:]
        buf += text
        return True

    def skip_ws(pos: int) -> int:
        while True:
            pos = _WS.match(buf, pos).end()  # type: ignore[union-attr]
            if pos < len(buf) or not more(0):
                return pos

    def decode_at(pos: int) -> tuple[Any, int]:
        while True:
            try:
                value, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as e:
                # A value cut by the buffer's end reads as an error too: read more and retry (reading
                # at least as much again as is buffered, so retries stay linear overall).
                if more(len(buf) - pos):
                    continue
                raise FeedError(f"{name}: malformed JSON: {e.msg} at character {e.pos}") from None
            if end == len(buf) and not eof and more(0):
                continue  # a number may go on past the buffer
            return value, end

    pos = skip_ws(0)
    if pos >= len(buf) or buf[pos] != "{":
        raise FeedError(f"{name}: not a JSON object")
    pos = skip_ws(pos + 1)
    if pos < len(buf) and buf[pos] == "}":
        if skip_ws(pos + 1) < len(buf):
            raise FeedError(f"{name}: malformed JSON: data after the object")
        return
    while True:
        key, pos = decode_at(pos)
        if not isinstance(key, str):
            raise FeedError(f"{name}: malformed JSON: a key that is no string")
        pos = skip_ws(pos)
        if pos >= len(buf) or buf[pos] != ":":
            raise FeedError(f"{name}: malformed JSON: ':' expected after {key!r}")
        pos = skip_ws(pos + 1)
        value, pos = decode_at(pos)
        yield key, value
        pos = skip_ws(pos)
        if pos >= len(buf):
            raise FeedError(f"{name}: malformed JSON: the document ends inside the object")
        if buf[pos] == "}":
            if skip_ws(pos + 1) < len(buf):
                raise FeedError(f"{name}: malformed JSON: data after the object")
            return
        if buf[pos] != ",":
            raise FeedError(f"{name}: malformed JSON: ',' or '}}' expected after {key!r}")
        pos = skip_ws(pos + 1)
        if pos >= chunk:  # drop what was consumed (now and then: a copy per item would be quadratic)
            buf, pos = buf[pos:], 0

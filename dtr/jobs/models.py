"""Jobs, their logs, workers, schedules, tag pruning settings and storage usage.

Statuses follow DTR: ``waiting`` (queued, or backing off before a retry), ``running``,
``done``, ``error``, ``cancel_request`` (running, asked to stop), ``cancel`` and
``worker_dead`` (its worker stopped heartbeating; picked up again while attempts remain).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from dtr.db.base import Base, utcnow_column


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    action: Mapped[str] = mapped_column(String(64))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    status: Mapped[str] = mapped_column(String(16), server_default="waiting")
    worker_id: Mapped[str | None] = mapped_column(String(64))
    #: Attempts started so far; a job is retried (with backoff) while attempt < max_attempts.
    attempt: Mapped[int] = mapped_column(Integer, server_default="0")
    max_attempts: Mapped[int] = mapped_column(Integer, server_default="1")
    #: Not claimed before this time (backoff between attempts).
    run_after: Mapped[dt.datetime] = utcnow_column()
    #: Seconds one attempt may run before it is stopped as an error.
    deadline: Mapped[float | None] = mapped_column(Float)
    #: Seconds a job gets to stop by itself (cancel, shutdown, deadline) before it is cut off.
    stop_timeout: Mapped[float] = mapped_column(Float, server_default="30")
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    #: The schedule that queued the job, and the due time it fired for.
    cron_action: Mapped[str | None] = mapped_column(String(64))
    scheduled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    #: While a job with this key is waiting, queueing another with it returns the first.
    dedupe_key: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = utcnow_column()
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_jobs_claim", "action", "run_after", postgresql_where=text("status IN ('waiting', 'worker_dead')")),
        Index("ix_jobs_worker", "worker_id", postgresql_where=text("status IN ('running', 'cancel_request')")),
        Index("ix_jobs_created_at", "created_at"),
        Index("uq_jobs_dedupe_waiting", "dedupe_key", unique=True,
              postgresql_where=text("status = 'waiting' AND dedupe_key IS NOT NULL")),
    )


class JobLog(Base):
    __tablename__ = "job_logs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    #: 1, 2, ... within the job, across its attempts.
    line: Mapped[int] = mapped_column(Integer)
    time: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    data: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_job_logs_job", "job_id", "line"),)


class Worker(Base):
    """A dtr process's job runner; alive while ``heartbeat_at`` is recent."""

    __tablename__ = "job_workers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    capacity: Mapped[dict[str, int]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), server_default="running")
    started_at: Mapped[dt.datetime] = utcnow_column()
    heartbeat_at: Mapped[dt.datetime] = utcnow_column()


class Cron(Base):
    """A schedule: six-field cron (seconds first); fires once per due time across the cluster."""

    __tablename__ = "job_crons"

    action: Mapped[str] = mapped_column(String(64), primary_key=True)
    schedule: Mapped[str] = mapped_column(String(255))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    max_attempts: Mapped[int] = mapped_column(Integer, server_default="1")
    deadline: Mapped[float | None] = mapped_column(Float)
    stop_timeout: Mapped[float] = mapped_column(Float, server_default="30")
    next_run: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    last_job_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[dt.datetime] = utcnow_column()


class PruningPolicy(Base):
    """DTR's pruningPolicies: a tag is pruned when every rule of an enabled policy matches it."""

    __tablename__ = "pruning_policies"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"), index=True)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    #: ``[{"field": ..., "operator": ..., "values": [...]}]`` (see dtr.jobs.pruning).
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    #: Of the tags the rules match, keep this many most recently pushed.
    keep_newest: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = utcnow_column()


class RepositoryPruning(Base):
    """Per repository: a tag limit (oldest tags beyond it are pruned)."""

    __tablename__ = "repository_pruning"

    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True)
    tag_limit: Mapped[int | None] = mapped_column(Integer)


class TagPull(Base):
    """When a tag was last pulled (recorded in batches; for pruning rules)."""

    __tablename__ = "tag_pulls"

    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(128, collation="C"), primary_key=True)
    pulled_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class StorageUsage(Base):
    """Bytes used per repository or namespace, as of ``updated_at`` (written by the usage job).

    ``bytes`` counts each blob once per scope; ``unique_bytes`` only blobs no other scope links.
    """

    __tablename__ = "storage_usage"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)  # repository | namespace
    name: Mapped[str] = mapped_column(String(255, collation="C"), primary_key=True)
    bytes: Mapped[int] = mapped_column(BigInteger)
    unique_bytes: Mapped[int] = mapped_column(BigInteger)
    blobs: Mapped[int] = mapped_column(BigInteger)
    manifests: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = utcnow_column()

"""The cluster's tables: ``replicas`` (each ``dtr serve`` process, with its heartbeat) and
``cluster_keys`` (secrets every replica shares, such as the registry token signing key)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dtr.db.base import Base, utcnow_column


class Replica(Base):
    """A ``dtr serve`` process; up while ``heartbeat_at`` is recent and ``status`` is running."""

    __tablename__ = "replicas"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: The URL the process serves on (its scheme and ``http.addr``).
    address: Mapped[str] = mapped_column(String(1024))
    version: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    #: ``running`` or ``stopped`` (a clean shutdown); a running one silent too long is down.
    status: Mapped[str] = mapped_column(String(16), server_default="running")
    #: The id of the process's job worker as of its last heartbeat (None: it runs no worker).
    worker_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[dt.datetime] = utcnow_column()
    heartbeat_at: Mapped[dt.datetime] = utcnow_column()


class ClusterKey(Base):
    """A secret every replica shares: the first replica to need it stores it, the others read it."""

    __tablename__ = "cluster_keys"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = utcnow_column()

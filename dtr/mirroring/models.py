"""Mirroring policies: a repository's push mirrors (tags copied to a remote registry when pushed)
and poll mirrors (a remote repository's tags fetched on a schedule), with the last run's status.

Credentials are stored sealed (``dtr.trust.sealing``), bound to the policy's id; never in the clear.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Boolean, DateTime, ForeignKey, LargeBinary, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from dtr.db.base import Base, utcnow_column


class MirroringPolicy(Base):
    """One push (``direction`` 'push') or poll ('poll') mirroring policy of a repository."""

    __tablename__ = "mirroring_policies"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"), index=True)
    direction: Mapped[str] = mapped_column(String(8))
    #: ``https://host[:port]`` or ``http://host[:port]``.
    remote_host: Mapped[str] = mapped_column(String(512))
    remote_repository: Mapped[str] = mapped_column(String(255))
    username: Mapped[str | None] = mapped_column(String(255))
    #: 'password' or 'token' (what ``secret`` holds), None without one.
    secret_kind: Mapped[str | None] = mapped_column(String(16))
    secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    remote_ca: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    #: ``[{"field": "tag", "operator": ..., "values": [...]}]`` (dtr.jobs.pruning's tag rules).
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    #: Push: the remote tag's name, ``%n`` standing for the local tag's.
    tag_template: Mapped[str | None] = mapped_column(String(255))
    #: Poll: a six-field cron; None: every tick of the ``poll_mirror`` schedule.
    schedule: Mapped[str | None] = mapped_column(String(255))
    last_status: Mapped[str | None] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_run_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_job_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[dt.datetime] = utcnow_column()
    updated_at: Mapped[dt.datetime] = utcnow_column()


class MirrorUpload(Base):
    """A chunked upload of a push policy's in progress at its remote: where a later run resumes it
    (after the process mirroring it died, say). Removed once the blob is whole there."""

    __tablename__ = "mirror_uploads"

    policy_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mirroring_policies.id", ondelete="CASCADE"),
                                                 primary_key=True)
    digest: Mapped[str] = mapped_column(String(200), primary_key=True)
    #: The upload's URL as the remote last gave it (``Location``).
    location: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = utcnow_column()

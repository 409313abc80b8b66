"""Registry metadata: repositories, blobs and which repositories may read them, manifests, tags, uploads.

Bytes live in storage; a blob or manifest exists for a client only when its row exists here,
and a row is written only after the bytes are verified and durable.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from dtr.db.base import Base, utcnow_column


class Repository(Base):
    __tablename__ = "repositories"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(255, collation="C"), unique=True)
    created_at: Mapped[dt.datetime] = utcnow_column()
    #: DTR's immutableTags: a tag, once pushed, is never moved or deleted (nor pruned).
    immutable_tags: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


class Blob(Base):
    """A verified blob in storage, shared by every repository that links it."""

    __tablename__ = "blobs"

    digest: Mapped[str] = mapped_column(String(200), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = utcnow_column()


class RepositoryBlob(Base):
    """The link that lets a repository read a blob (push or mount into it)."""

    __tablename__ = "repository_blobs"

    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True
    )
    digest: Mapped[str] = mapped_column(ForeignKey("blobs.digest", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[dt.datetime] = utcnow_column()

    __table_args__ = (Index("ix_repository_blobs_digest", "digest"),)


class Manifest(Base):
    """A manifest or index, its body kept verbatim (bodies are capped at a few MiB)."""

    __tablename__ = "manifests"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"))
    digest: Mapped[str] = mapped_column(String(200))
    media_type: Mapped[str] = mapped_column(String(255))
    artifact_type: Mapped[str | None] = mapped_column(String(255))
    subject_digest: Mapped[str | None] = mapped_column(String(200))
    annotations: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = utcnow_column()

    __table_args__ = (
        UniqueConstraint("repository_id", "digest", name="uq_manifests_repository_digest"),
        Index("ix_manifests_subject", "repository_id", "subject_digest"),
    )


class ManifestReference(Base):
    """What a manifest needs: its config and layers (``blob``) or its children (``manifest``)."""

    __tablename__ = "manifest_references"

    manifest_id: Mapped[int] = mapped_column(ForeignKey("manifests.id", ondelete="CASCADE"), primary_key=True)
    digest: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))

    __table_args__ = (
        Index("ix_manifest_references_digest", "digest"),
        #: Where a manifest is a child (GC's re-check, fsck): the references to blobs, often
        #: millions to one shared layer, would make the plain digest index look too costly.
        Index("ix_manifest_references_child", "digest", postgresql_where=text("kind = 'manifest'")),
    )


class Tag(Base):
    __tablename__ = "tags"

    repository_id: Mapped[int] = mapped_column(
        ForeignKey("repositories.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(128, collation="C"), primary_key=True)
    manifest_id: Mapped[int] = mapped_column(ForeignKey("manifests.id", ondelete="CASCADE"), index=True)
    updated_at: Mapped[dt.datetime] = utcnow_column()
    #: The account that pushed the tag last ('' for anonymous pushes, dtr's own and tags older than it).
    pushed_by: Mapped[str] = mapped_column(String(255), server_default=text("''"))


#: The tag list's order (``service.list_tags``: case-insensitive, byte order breaking ties), so a
#: page is an index range, not a sort of all the repository's tags.
Index("ix_tags_repository_id_lower_name", Tag.repository_id, func.lower(Tag.name), Tag.name)


class Upload(Base):
    """A blob upload in progress; its bytes are at ``storage_path`` in storage."""

    __tablename__ = "uploads"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"), index=True)
    #: Bytes received and committed to the upload so far.
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    started_at: Mapped[dt.datetime] = utcnow_column()
    updated_at: Mapped[dt.datetime] = utcnow_column()


class RegistryEvent(Base):
    """The outbox: one row per change to a repository, written in the change's own transaction.

    ``id`` order is commit order (``dtr.registry.events.record`` takes a cluster-wide lock before
    the ids are drawn and holds it until commit), so subscribers read events with a plain cursor.
    """

    __tablename__ = "registry_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    repository: Mapped[str] = mapped_column(String(255, collation="C"))
    tag: Mapped[str | None] = mapped_column(String(128, collation="C"))
    digest: Mapped[str | None] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(255), server_default=text("''"))
    client_addr: Mapped[str] = mapped_column(String(64), server_default=text("''"))
    at: Mapped[dt.datetime] = utcnow_column()
    detail: Mapped[dict[str, object] | None] = mapped_column(JSONB)

    __table_args__ = (Index("ix_registry_events_repository", "repository", "id"),)


class EventCursor(Base):
    """How far a subscriber has handled the outbox (the id of the last event it handled)."""

    __tablename__ = "event_cursors"

    subscriber: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    updated_at: Mapped[dt.datetime] = utcnow_column()

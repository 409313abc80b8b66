"""Promotion policies (DTR's promotionPolicies): an image of the source repository that meets every
rule is copied (its blobs linked, its manifests put) into the target repository, under a tag made
from the policy's template. The policy keeps its last promotion (time, tags) and last error."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Boolean, DateTime, ForeignKey, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from dtr.db.base import Base, utcnow_column


class PromotionPolicy(Base):
    """A policy of the source repository ``repository_id``; deleted with either repository."""

    __tablename__ = "promotion_policies"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"), index=True)
    target_repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"),
                                                      index=True)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    #: ``[{"field", "operator", "values"}]`` (see ``dtr.promotion.rules``).
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    #: DTR's tagTemplate (``%n`` the source tag, date and time fields).
    tag_template: Mapped[str] = mapped_column(String(255))
    #: Who created or last changed it (its promotions are recorded as dtr's own).
    updated_by: Mapped[str] = mapped_column(String(255), server_default=text("''"))
    created_at: Mapped[dt.datetime] = utcnow_column()
    updated_at: Mapped[dt.datetime] = utcnow_column()
    #: The last promotion: when, of which source tag, to which target tag.
    last_promoted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_source_tag: Mapped[str | None] = mapped_column(String(128))
    last_target_tag: Mapped[str | None] = mapped_column(String(128))
    #: The last failed promotion's reason and time (cleared by the next success).
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

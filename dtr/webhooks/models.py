"""Webhooks and their deliveries.

A webhook fires for one DTR event type (``TAG_PUSH``...) in ``key``: a repository
(``ns/repo``), a namespace (``ns``: every repository in it), or '' (``SCANNER_UPDATE_COMPLETED``).
Its secret is sealed (``dtr.trust.sealing``, context ``webhook:<id>``). A delivery is one payload
for one webhook, sent (and retried) by the ``webhook_deliver`` job; it keeps its last attempt's
outcome.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from dtr.db.base import Base, utcnow_column


class Webhook(Base):
    __tablename__ = "webhooks"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(255, collation="C"))
    endpoint: Mapped[str] = mapped_column(Text)
    #: A PEM CA bundle the endpoint's TLS certificate must chain to (None: the system's).
    tls_cert: Mapped[str | None] = mapped_column(Text)
    #: The HMAC secret, sealed.
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    inactive: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    author: Mapped[str] = mapped_column(String(255), server_default=text("''"))
    created_at: Mapped[dt.datetime] = utcnow_column()
    last_successful_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_webhooks_type_key", "type", "key"),)


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    webhook_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    #: The DTR event type (the webhook's).
    event_type: Mapped[str] = mapped_column(String(32))
    #: The outbox event it announces (None: a redelivery's copy keeps its original's).
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    #: The JSON body, as sent (the same bytes on every attempt).
    body: Mapped[bytes] = mapped_column(LargeBinary)
    #: ``pending``, ``succeeded`` or ``failed``.
    status: Mapped[str] = mapped_column(String(16), server_default=text("'pending'"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    #: A pending delivery is not sent before this (backoff; while being sent, the sender's lease).
    next_attempt_at: Mapped[dt.datetime] = utcnow_column()
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    #: The delivery this one sends again.
    redelivery_of: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = utcnow_column()
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_webhook_deliveries_webhook", "webhook_id", "id"),
        Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
    )

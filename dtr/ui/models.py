"""Browser sessions of the web UI, kept in Postgres so that any replica serves any session."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from dtr.db.base import Base, utcnow_column


class UiSession(Base):
    """One signed-in browser. ``id`` is the SHA-256 of the cookie's secret (the secret itself is
    never stored); ``csrf`` the token every state-changing request of the session must carry."""

    __tablename__ = "ui_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    client_addr: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = utcnow_column()
    #: Last request (refreshed at most once a minute): idle expiry counts from here.
    seen_at: Mapped[dt.datetime] = utcnow_column()



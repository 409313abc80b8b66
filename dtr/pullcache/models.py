"""A namespace that caches an upstream registry (``dtr.pullcache``): one row per namespace."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from dtr.db.base import Base, utcnow_column


class PullThroughCache(Base):
    """Pulls of ``namespace/<repo>`` that dtr lacks are fetched from ``upstream``'s
    ``[upstream_namespace/]<repo>``; the password is sealed (``dtr.trust.sealing``)."""

    __tablename__ = "pull_through_caches"

    namespace: Mapped[str] = mapped_column(String(255, collation="C"), primary_key=True)
    #: ``https://host[:port]`` (or http), no path.
    upstream: Mapped[str] = mapped_column(String(2048))
    upstream_namespace: Mapped[str] = mapped_column(String(255), server_default=text("''"))
    username: Mapped[str] = mapped_column(String(255), server_default=text("''"))
    #: The password sealed for this namespace (context ``pullcache:<namespace>``); None: none.
    password_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    #: PEM certificates trusted for the upstream's TLS ("" : the system's).
    ca: Mapped[str] = mapped_column(Text, server_default=text("''"))
    #: Seconds a tag is served from the cache before it is checked upstream again.
    tag_ttl: Mapped[int] = mapped_column(Integer, server_default=text("300"))
    updated_by: Mapped[str] = mapped_column(String(255), server_default=text("''"))
    updated_at: Mapped[dt.datetime] = utcnow_column()

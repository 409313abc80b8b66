"""Trusted keys and signing policies. Both are scoped by name: ``scope`` is a namespace
(``ns``) or a repository (``ns/repo``), and a repository is covered by its own rows and its
namespace's."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from dtr.db.base import Base, utcnow_column


class TrustedKey(Base):
    """A public key or certificate whose signatures count as trusted in ``scope``."""

    __tablename__ = "trusted_keys"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    scope: Mapped[str] = mapped_column(String(255, collation="C"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    #: ``public-key`` or ``certificate``.
    kind: Mapped[str] = mapped_column(String(16))
    #: The PEM text as registered.
    pem: Mapped[str] = mapped_column(Text)
    #: Lowercase hex SHA-256 of the public key's DER SubjectPublicKeyInfo.
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    created_by: Mapped[str] = mapped_column(String(255), server_default=text("''"))
    created_at: Mapped[dt.datetime] = utcnow_column()

    __table_args__ = (UniqueConstraint("scope", "name", name="uq_trusted_keys_scope_name"),)


class SigningPolicy(Base):
    """``signed_only``: a pull by tag in ``scope`` needs a trusted signature of the tag's image."""

    __tablename__ = "signing_policies"

    scope: Mapped[str] = mapped_column(String(255, collation="C"), primary_key=True)
    signed_only: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    updated_by: Mapped[str] = mapped_column(String(255), server_default=text("''"))
    updated_at: Mapped[dt.datetime] = utcnow_column()

"""The built-in Notary's tables.

``trust_files``: every version of every role file of every GUN, the exact bytes as uploaded (or as
the server signed them, for snapshot and timestamp); the current file of a role is its highest
version. ``sha256`` is over those bytes, so by-checksum reads and the snapshot's and timestamp's
meta hash what clients download. ``trust_keys``: the server-held snapshot and timestamp keys,
their private halves sealed (``dtr.trust.sealing``). ``trust_changes``: notary's change feed, one
row per accepted update or deletion, ``id`` in commit order.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dtr.db.base import Base, utcnow_column


class TrustFile(Base):
    __tablename__ = "trust_files"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    gun: Mapped[str] = mapped_column(String(512, collation="C"))
    #: The repository the GUN belongs to (``dtr.trust.gun_repository``), for the API and deletes.
    repository: Mapped[str] = mapped_column(String(255, collation="C"), index=True)
    role: Mapped[str] = mapped_column(String(255, collation="C"))
    version: Mapped[int] = mapped_column(Integer)
    #: Lowercase hex SHA-256 of ``data``.
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = utcnow_column()

    __table_args__ = (
        UniqueConstraint("gun", "role", "version", name="uq_trust_files_gun_role_version"),
        Index("ix_trust_files_checksum", "gun", "role", "sha256"),
    )


class TrustKey(Base):
    """A server-held key of one GUN's ``snapshot`` or ``timestamp`` role. The key the current root
    lists is the one in use; newer rows are keys handed out for a rotation not yet published."""

    __tablename__ = "trust_keys"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    gun: Mapped[str] = mapped_column(String(512, collation="C"))
    repository: Mapped[str] = mapped_column(String(255, collation="C"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    key_id: Mapped[str] = mapped_column(String(64))
    #: The TUF key object's ``keytype`` (``ecdsa``, ``ed25519``).
    algorithm: Mapped[str] = mapped_column(String(32))
    #: The public key as the key object's ``keyval.public`` (base64 text).
    public: Mapped[str] = mapped_column(Text)
    #: The private key, sealed (``dtr.trust.sealing``): never stored, logged or answered in clear.
    private_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = utcnow_column()

    __table_args__ = (Index("ix_trust_keys_gun_role", "gun", "role", "id"),)


class TrustChange(Base):
    """One change feed record: ``category`` ``update`` (``version`` and ``sha256`` of the new
    timestamp) or ``deletion`` (version 0, sha256 "")."""

    __tablename__ = "trust_changes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    gun: Mapped[str] = mapped_column(String(512, collation="C"))
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = utcnow_column()

    __table_args__ = (Index("ix_trust_changes_gun", "gun", "id"),)

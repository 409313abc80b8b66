"""Accounts, teams, grants, access tokens, settings, failed logins: who is who and who may do what.

Users and organisations share ``accounts`` (one namespace: a repository ``ns/name`` belongs to the
account ``ns``). Teams live in organisations. Repository metadata and team grants are keyed to
``dtr.registry.models.Repository`` and go away with it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from dtr.db.base import Base, utcnow_column


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(255, collation="C"), unique=True)
    is_org: Mapped[bool] = mapped_column(Boolean, default=False)
    full_name: Mapped[str] = mapped_column(String(255), default="")
    email: Mapped[str] = mapped_column(String(255), default="")
    #: argon2id hash; None for organisations and directory (LDAP) users.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Imported from the directory: logs in against LDAP, deactivated when it leaves it.
    is_imported: Mapped[bool] = mapped_column(Boolean, default=False)
    ldap_dn: Mapped[str | None] = mapped_column(Text)
    #: Bumped on password reset and deactivation: refresh tokens of older generations stop working.
    credential_gen: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = utcnow_column()
    updated_at: Mapped[dt.datetime] = utcnow_column()


class OrgMember(Base):
    """A user in an organisation; ``is_admin`` makes them an organisation owner."""

    __tablename__ = "org_members"

    org_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True,
                                         index=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255, collation="C"))
    description: Mapped[str] = mapped_column(Text, default="")
    #: ``managed`` (members set by hand) or ``ldap`` (members synced from the directory).
    type: Mapped[str] = mapped_column(String(16), default="managed")
    ldap_group_dn: Mapped[str | None] = mapped_column(Text)
    ldap_group_member_attr: Mapped[str | None] = mapped_column(String(64))
    ldap_user_filter: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = utcnow_column()

    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_teams_org_name"),)


class TeamMember(Base):
    __tablename__ = "team_members"

    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True,
                                         index=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)


class RepositoryMeta(Base):
    """Visibility and descriptions of a repository; a repository without a row is private."""

    __tablename__ = "repository_meta"

    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"),
                                               primary_key=True)
    visibility: Mapped[str] = mapped_column(String(16), default="private")
    short_description: Mapped[str] = mapped_column(String(140), default="")
    long_description: Mapped[str] = mapped_column(Text, default="")
    #: DTR's scanOnPush: each push of a tag queues a scan of its image.
    scan_on_push: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    updated_at: Mapped[dt.datetime] = utcnow_column()


class RepositoryTeamAccess(Base):
    __tablename__ = "repository_team_access"

    repository_id: Mapped[int] = mapped_column(ForeignKey("repositories.id", ondelete="CASCADE"),
                                               primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True,
                                         index=True)
    access_level: Mapped[str] = mapped_column(String(16))


class NamespaceTeamAccess(Base):
    """A team's level on every repository of its organisation's namespace."""

    __tablename__ = "namespace_team_access"

    namespace_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True,
                                         index=True)
    access_level: Mapped[str] = mapped_column(String(16))


class AccessToken(Base):
    """A personal access token; only the SHA-256 of the token is stored."""

    __tablename__ = "access_tokens"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(255), default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = utcnow_column()
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Setting(Base):
    """Site settings (``createRepositoryOnPush``, ...) as JSON values."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONB)


class LoginFailure(Base):
    """Failed logins of one user (``u:NAME``) or client address (``a:ADDR``), for dtr.auth.throttle."""

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(String(320), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    first_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    last_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

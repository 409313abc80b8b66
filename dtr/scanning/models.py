"""The scanner's tables.

Layers (``scan_layers``, ``scan_packages``): what each layer blob holds, indexed once per blob
and indexer version; rows go with the blob (GC deletes the blob row, the cascade the rest).

The vulnerability database (``vuln_feeds``, ``vuln_advisories``, ``vulnerabilities``): each feed's
advisories as of its last successful import (``vuln_feeds.version`` counts imports; an import
replaces a feed's rows in one transaction). ``vulnerabilities`` holds what is known of each
vulnerability across feeds (summary, CVSS from NVD).

Images (``scan_images``, ``scan_image_packages``, ``scan_image_vulns``): each image manifest's
(one platform's) software built from its layers' rows, and what the last match found;
``scan_image_packages`` answers "which images hold package X of namespace N", so a database change
re-matches only the images it touches. Overrides (``scan_overrides``) hide a vulnerability for an
image or a component with a reason; hidden findings are counted apart. ``vuln_changes`` lists
what each import changed, for the re-match.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, DateTime, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from dtr.db.base import Base, utcnow_column


class ScanLayer(Base):
    """One layer blob's index (``status`` ``indexed``), or why it could not be indexed (``failed``)."""

    __tablename__ = "scan_layers"

    digest: Mapped[str] = mapped_column(ForeignKey("blobs.digest", ondelete="CASCADE"), primary_key=True)
    indexer_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    #: ``dtr.scanning.types.Distribution`` as JSON, or None.
    distribution: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    whiteouts: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    opaque_dirs: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    package_dbs: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    warnings: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    files: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    #: Uncompressed tar bytes read.
    size: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    #: Seconds indexing took.
    duration: Mapped[float] = mapped_column(Float, server_default=text("0"))
    indexed_at: Mapped[dt.datetime] = utcnow_column()


class ScanPackage(Base):
    """A package found in a layer (``dtr.scanning.types.Package``)."""

    __tablename__ = "scan_packages"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    layer_digest: Mapped[str] = mapped_column(ForeignKey("scan_layers.digest", ondelete="CASCADE"), index=True)
    ecosystem: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(Text)
    version: Mapped[str] = mapped_column(Text)
    source_name: Mapped[str] = mapped_column(Text, server_default=text("''"))
    source_version: Mapped[str] = mapped_column(Text, server_default=text("''"))
    arch: Mapped[str] = mapped_column(String(64), server_default=text("''"))
    license: Mapped[str] = mapped_column(Text, server_default=text("''"))
    location: Mapped[str] = mapped_column(Text, server_default=text("''"))
    files: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))


class VulnFeed(Base):
    """A vulnerability feed: where it is fetched from, its last good import and its last failure."""

    __tablename__ = "vuln_feeds"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(Text, server_default=text("''"))
    #: Imports that changed something so far (0: never imported).
    version: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    #: sha256 of the last imported content (a bundle's checksum; an unchanged download imports nothing).
    checksum: Mapped[str | None] = mapped_column(String(80))
    records: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    checked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class VulnAdvisory(Base):
    """``dtr.scanning.types.Advisory`` as a row, from feed ``feed``."""

    __tablename__ = "vuln_advisories"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    feed: Mapped[str] = mapped_column(ForeignKey("vuln_feeds.name", ondelete="CASCADE"))
    vuln_id: Mapped[str] = mapped_column(String(128))
    namespace: Mapped[str] = mapped_column(String(64))
    package: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    introduced: Mapped[str] = mapped_column(Text, server_default=text("''"))
    fixed: Mapped[str] = mapped_column(Text, server_default=text("''"))
    last_affected: Mapped[str] = mapped_column(Text, server_default=text("''"))
    severity: Mapped[str] = mapped_column(String(16), server_default=text("''"))
    cvss_score: Mapped[float | None] = mapped_column(Float)
    cvss_vector: Mapped[str] = mapped_column(Text, server_default=text("''"))

    __table_args__ = (
        Index("ix_vuln_advisories_namespace_package", "namespace", "package"),
        Index("ix_vuln_advisories_feed", "feed"),
    )


class VulnChange(Base):
    """A (namespace, package) whose advisories an import changed, written in the import's own
    transaction; the re-match handles the rows there and deletes them (its cursor, ``event_cursors``
    subscriber ``rematch``, records the last id handled)."""

    __tablename__ = "vuln_changes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    namespace: Mapped[str] = mapped_column(String(64))
    package: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = utcnow_column()


class Vulnerability(Base):
    """What is known of a vulnerability across feeds (NVD's CVSS, a summary)."""

    __tablename__ = "vulnerabilities"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    summary: Mapped[str] = mapped_column(Text, server_default=text("''"))
    cvss_score: Mapped[float | None] = mapped_column(Float)
    cvss_vector: Mapped[str] = mapped_column(Text, server_default=text("''"))
    aliases: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    published_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    modified_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class ScanImage(Base):
    """One image manifest (one platform) and its last scan. ``status`` is DTR's code: 0 failed,
    1 unscanned, 2 scanning, 3 pending, 4 scanned, 5 checking, 6 completed."""

    __tablename__ = "scan_images"

    digest: Mapped[str] = mapped_column(String(200), primary_key=True)
    status: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    error: Mapped[str | None] = mapped_column(Text)
    #: Layer digests in order (the manifest's).
    layers: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    os: Mapped[str] = mapped_column(String(64), server_default=text("''"))
    architecture: Mapped[str] = mapped_column(String(64), server_default=text("''"))
    #: The image's distribution (the newest layer's), as ``Distribution`` JSON.
    distribution: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    critical: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    major: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    minor: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    #: Findings hidden by overrides, counted apart.
    hidden: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    #: The feed versions the last match saw (``{feed: version}``).
    feed_versions: Mapped[dict[str, int] | None] = mapped_column(JSONB)
    scanned_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    check_completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = utcnow_column()


class ScanImagePackage(Base):
    """A package of an image's software, the layer that introduced it, and its matching key."""

    __tablename__ = "scan_image_packages"

    image_digest: Mapped[str] = mapped_column(ForeignKey("scan_images.digest", ondelete="CASCADE"),
                                              primary_key=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("scan_packages.id", ondelete="CASCADE"), primary_key=True)
    layer_digest: Mapped[str] = mapped_column(String(200))
    #: Position of the introducing layer in the image (0: the base layer).
    layer_index: Mapped[int] = mapped_column(Integer)
    namespace: Mapped[str] = mapped_column(String(64))
    match_name: Mapped[str] = mapped_column(Text)
    match_version: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_scan_image_packages_match", "namespace", "match_name"),
                      Index("ix_scan_image_packages_package", "package_id"))


class ScanImageVuln(Base):
    """A finding of an image's last match (``dtr.scanning.types.Finding``)."""

    __tablename__ = "scan_image_vulns"

    image_digest: Mapped[str] = mapped_column(ForeignKey("scan_images.digest", ondelete="CASCADE"),
                                              primary_key=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("scan_packages.id", ondelete="CASCADE"), primary_key=True)
    vuln_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    fixed_version: Mapped[str] = mapped_column(Text, server_default=text("''"))
    band: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16), server_default=text("''"))
    cvss_score: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (Index("ix_scan_image_vulns_vuln_id", "vuln_id"),)


class ScanOverride(Base):
    """A vulnerability hidden, with a reason: for one image (``digest``) or every image of a
    repository or namespace (``scope``), optionally only for one component (``component``)."""

    __tablename__ = "scan_overrides"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    #: A repository (``ns/repo``) or a namespace (``ns``); '' for the whole registry.
    scope: Mapped[str] = mapped_column(String(255), server_default=text("''"))
    digest: Mapped[str] = mapped_column(String(200), server_default=text("''"))
    component: Mapped[str] = mapped_column(Text, server_default=text("''"))
    vuln_id: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = utcnow_column()

    __table_args__ = (Index("ix_scan_overrides_vuln_id", "vuln_id"),)

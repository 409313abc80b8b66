"""An image's software and findings: composed from its layers' stored rows (no layer read),
matched against the advisories, and stored with its counts in one transaction under the match
fence (``dtr.scanning.locking``). ``Matches`` matches each (namespace, package) once; the re-match
(``dtr.scanning.rematch``) shares it, and the helpers reading packages, feed versions and image
locks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dtr.registry import events
from dtr.registry.events import SYSTEM, Event
from dtr.scanning import image as composer
from dtr.scanning import matcher, results, vulndb
from dtr.scanning.locking import FENCE_SHARED
from dtr.scanning.results import COMPLETED, image_packages, image_vulns, images
from dtr.scanning.types import Distribution, Finding, Package

#: Versions that cannot be ordered logged per scan (the rest counted).
MAX_PROBLEMS = 20

#: The ``scan_packages`` columns ``package_from_row`` reads.
PACKAGE_COLUMNS = "id, ecosystem, name, version, source_name, source_version, arch, license, location"
_LAYER_ROWS = text("SELECT digest, distribution, whiteouts, opaque_dirs, package_dbs FROM scan_layers "
                   "WHERE digest = ANY(CAST(:digests AS text[])) AND status = 'indexed'")
_LAYER_PACKAGES = text(f"SELECT layer_digest, {PACKAGE_COLUMNS}, files FROM scan_packages "
                       "WHERE layer_digest = ANY(CAST(:digests AS text[])) ORDER BY layer_digest, id")
_LOCK_IMAGES = text("SELECT digest FROM scan_images WHERE digest = ANY(CAST(:digests AS text[])) "
                    "ORDER BY digest FOR UPDATE")
_FEED_VERSIONS = text("SELECT name, version FROM vuln_feeds WHERE version > 0 ORDER BY name")


def _distribution(raw: Any) -> Distribution | None:
    if not isinstance(raw, dict) or not raw.get("id"):
        return None
    fields = {f.name for f in dataclasses.fields(Distribution)}
    return Distribution(**{k: str(v) for k, v in raw.items() if k in fields})


def package_from_row(r: Any, files: Sequence[str] = ()) -> Package:
    """The package of a row holding ``PACKAGE_COLUMNS``."""
    return Package(ecosystem=r.ecosystem, name=r.name, version=r.version, source_name=r.source_name,
                   source_version=r.source_version, arch=r.arch, license=r.license, location=r.location,
                   files=tuple(files))


async def lock_images(conn: AsyncConnection, digests: Sequence[str]) -> list[str]:
    """Lock the ``scan_images`` rows of ``digests`` (in digest order); the digests that have one."""
    return list((await conn.execute(_LOCK_IMAGES, {"digests": list(digests)})).scalars())


async def feed_versions(conn: AsyncConnection) -> dict[str, int]:
    """The version of each feed imported at least once."""
    return {r.name: int(r.version) for r in await conn.execute(_FEED_VERSIONS)}


async def compose(conn: AsyncConnection, layers: Sequence[str]
                  ) -> tuple[Distribution | None, list[composer.ImagePackage]]:
    """The image's software from its layers' rows."""
    rows = {r.digest: r for r in await conn.execute(_LAYER_ROWS, {"digests": list(layers)})}
    missing = [d for d in layers if d not in rows]
    if missing:  # re-indexed by a newer indexer and failed, or collected, since it was indexed here
        raise RuntimeError(f"layer {missing[0]}'s index changed during the scan")
    packages: dict[str, list[tuple[int, Package]]] = {d: [] for d in layers}
    for r in await conn.execute(_LAYER_PACKAGES, {"digests": list(layers)}):
        packages[r.layer_digest].append((int(r.id), package_from_row(r, r.files)))
    return composer.compose([
        composer.LayerRows(d, _distribution(rows[d].distribution), packages[d], list(rows[d].whiteouts),
                           list(rows[d].opaque_dirs), list(rows[d].package_dbs))
        for d in layers])


async def match_and_store(engine: AsyncEngine, digest: str, repository: str, distribution: Distribution | None,
                          packages: Sequence[composer.ImagePackage], log: Callable[[str], None]
                          ) -> tuple[dict[str, int], int, dict[str, int]]:
    """Match image ``digest``'s software, and store the result, completing its scan for
    ``repository`` (``scan_completed``), in one transaction under the match fence: the counts, the
    number of findings and the feed versions matched against. Versions that cannot be ordered
    are logged."""
    seen: set[int] = set()
    rows: list[dict[str, Any]] = []
    keyed: list[Keyed] = []
    for ip in packages:
        if ip.package_id in seen:
            continue  # the same layer twice in the image
        seen.add(ip.package_id)
        key = matcher.match_key(distribution, ip.package)
        ns, name, version = key or ("", "", "")
        rows.append({"image_digest": digest, "package_id": ip.package_id, "layer_digest": ip.layer_digest,
                     "layer_index": ip.layer_index, "namespace": ns, "match_name": name,
                     "match_version": version})
        if key is not None:
            keyed.append((ip.package_id, key, ip.package))
    async with engine.begin() as conn:
        await conn.execute(FENCE_SHARED)
        await lock_images(conn, [digest])
        feeds = await feed_versions(conn)
        matches = Matches()
        await matches.load(conn, keyed)
        vulns = matches.rows(digest, keyed)
        await conn.execute(delete(image_packages).where(image_packages.c.image_digest == digest))
        await conn.execute(delete(image_vulns).where(image_vulns.c.image_digest == digest))
        if rows:
            await conn.execute(insert(image_packages), rows)
        if vulns:
            await conn.execute(insert(image_vulns), vulns)
        await conn.execute(update(images).where(images.c.digest == digest).values(
            status=COMPLETED, error=None, feed_versions=feeds,
            distribution=dataclasses.asdict(distribution) if distribution else None,
            scanned_at=func.now(), check_completed_at=func.now()))
        counts = (await results.recount(conn, [digest]))[digest]
        await events.record(conn, SYSTEM, [Event(events.SCAN_COMPLETED, repository, digest=digest,
                                                 detail={**counts, "packages": len(rows)})])
    for problem in matches.problems[:MAX_PROBLEMS]:
        log(f"  not matched (a version that cannot be ordered): {problem}")
    if len(matches.problems) > MAX_PROBLEMS:
        log(f"  ... and {len(matches.problems) - MAX_PROBLEMS} more versions that cannot be ordered")
    return counts, len(vulns), feeds


Keyed = tuple[int, tuple[str, str, str], Package]
"""A package of an image: its ``scan_packages`` id, its match key and the package."""


class Matches:
    """The findings of each (namespace, package), matched once: a re-match's images sharing
    layers share packages. ``problems``: versions the matcher could not order."""

    def __init__(self) -> None:
        self.found: dict[tuple[str, Package], list[Finding]] = {}
        self.problems: list[str] = []
        #: Packages read by id (a re-match reads a shared layer's packages once per image).
        self.packages: dict[int, Package] = {}

    async def load(self, conn: AsyncConnection, keyed: Iterable[Keyed]) -> None:
        """Match the packages of ``keyed`` not matched yet against the current advisories."""
        todo = list(dict.fromkeys((key, p) for _, key, p in keyed if (key[0], p) not in self.found))
        if not todo:
            return
        advisories = await vulndb.advisories_for(conn, sorted({(k[0], k[1]) for k, _ in todo}))
        for key, p in todo:
            self.found[(key[0], p)] = []
        for f in matcher.match(todo, advisories, self.problems):
            self.found[(f.namespace, f.package)].append(f)

    def rows(self, digest: str, keyed: Iterable[Keyed]) -> list[dict[str, Any]]:
        """``scan_image_vulns`` rows of image ``digest``'s packages: one per (package id, vulnerability)."""
        out: dict[tuple[int, str], dict[str, Any]] = {}
        for pid, key, p in keyed:
            for f in self.found.get((key[0], p), ()):
                out.setdefault((pid, f.vuln_id), {
                    "image_digest": digest, "package_id": pid, "vuln_id": f.vuln_id, "state": f.state,
                    "fixed_version": f.fixed_version, "band": f.band, "severity": f.severity,
                    "cvss_score": f.cvss_score})
        return list(out.values())

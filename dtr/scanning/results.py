"""Reading scan results from the tables: which image a tag names, its findings with overrides
applied, its counts. No access checks here (the use cases make them: ``access``); no HTTP.

Overrides hide a finding (never drop it): an override applies to a finding of image ``D`` seen in
repository ``R`` when its ``vuln_id`` is the finding's (or one of its aliases), its ``digest`` is
empty or ``D``, its ``component`` is empty or the package's name (or source package name), and its
``scope`` is empty (the whole registry), ``R`` or ``R``'s namespace. A repository's view of an
image is computed here for that repository; the counts stored on ``scan_images`` (``recount``)
hide what an override hides in any repository holding the image.

The scanner's tables as SQLAlchemy ``Table`` objects (``images``, ``packages``...) are declared
here once, for the read side and the write side (``scan``, ``findings``, ``rematch``) alike.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, any_, exists, func, literal, or_, select, text, true
from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.api.errors import APIError, codes
from dtr.registry.manifests import FOREIGN_LAYERS, INDEX_TYPES
from dtr.registry.models import Manifest, ManifestReference, Repository, Tag
from dtr.scanning.indexers import INDEXER_VERSION
from dtr.scanning.models import (
    ScanImage,
    ScanImagePackage,
    ScanImageVuln,
    ScanLayer,
    ScanOverride,
    ScanPackage,
    Vulnerability,
    VulnFeed,
)
from dtr.scanning.purl import package_url
from dtr.scanning.types import Distribution

repositories = cast(Table, Repository.__table__)
manifests = cast(Table, Manifest.__table__)
manifest_refs = cast(Table, ManifestReference.__table__)
tags = cast(Table, Tag.__table__)
images = cast(Table, ScanImage.__table__)
image_packages = cast(Table, ScanImagePackage.__table__)
image_vulns = cast(Table, ScanImageVuln.__table__)
layers = cast(Table, ScanLayer.__table__)
packages = cast(Table, ScanPackage.__table__)
overrides = cast(Table, ScanOverride.__table__)
feeds = cast(Table, VulnFeed.__table__)
vulnerabilities = cast(Table, Vulnerability.__table__)

#: DTR's scan status codes (``scan_images.status``).
FAILED, UNSCANNED, SCANNING, PENDING, SCANNED, CHECKING, COMPLETED = range(7)
#: The bands counted (a finding of another band, if any, is counted nowhere but in the list).
BANDS = ("critical", "major", "minor")
#: The platform an index's image defaults to.
DEFAULT_PLATFORM = ("linux", "amd64")


@dataclasses.dataclass(frozen=True)
class Platform:
    digest: str
    os: str
    architecture: str
    variant: str = ""

    @property
    def name(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclasses.dataclass(frozen=True)
class Image:
    """The image (one platform) a repository's reference names."""

    repository: str
    repository_id: int
    reference: str
    #: The platform image's manifest digest; ``index`` is the index the reference named, if any.
    digest: str
    index: str | None
    os: str
    architecture: str
    #: The manifest's layer descriptors, in order.
    layers: tuple[dict[str, Any], ...]
    platforms: tuple[Platform, ...] = ()

    @property
    def has_foreign_layers(self) -> bool:
        return any(d.get("mediaType") in FOREIGN_LAYERS for d in self.layers)


@dataclasses.dataclass(frozen=True)
class Counts:
    critical: int = 0
    major: int = 0
    minor: int = 0
    hidden: int = 0


def _doc(payload: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(payload)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def platforms_of(index_payload: bytes) -> list[Platform]:
    """The image platforms an index lists (attestations, ``unknown/unknown``, left out)."""
    out = []
    for d in _doc(index_payload).get("manifests") or []:
        if not isinstance(d, dict) or not isinstance(d.get("digest"), str):
            continue
        p = d["platform"] if isinstance(d.get("platform"), dict) else {}
        os_, arch = str(p.get("os") or ""), str(p.get("architecture") or "")
        if (os_, arch) == ("unknown", "unknown"):
            continue
        out.append(Platform(d["digest"], os_, arch, str(p.get("variant") or "")))
    return out


def choose_platform(found: Sequence[Platform], wanted: tuple[str, str] | None) -> Platform | None:
    """The platform ``wanted`` (os, architecture; an ``arm64/v8``-style architecture names the variant
    too), or by default linux/amd64, or the only one."""
    if wanted is not None:
        os_, _, rest = (wanted[0] + "/" + wanted[1]).partition("/")
        arch, _, variant = rest.partition("/")
        return next((p for p in found if p.os == os_ and p.architecture == arch
                     and (not variant or p.variant == variant)), None)
    default = next((p for p in found if (p.os, p.architecture) == DEFAULT_PLATFORM), None)
    return default or (found[0] if len(found) == 1 else None)


def is_digest(reference: str) -> bool:
    algorithm, sep, hexpart = reference.partition(":")
    return bool(sep) and algorithm.isalnum() and bool(hexpart)


async def resolve_image(conn: AsyncConnection, repository_id: int, repository: str, reference: str,
                        platform: tuple[str, str] | None = None) -> Image:
    """The image ``reference`` (a tag or a manifest digest) names in the repository, the platform
    ``platform`` of an index (default linux/amd64, or its only image). APIError NO_SUCH_TAG (no
    such tag or manifest) or NOT_FOUND (no such platform)."""
    q = select(manifests.c.id, manifests.c.digest, manifests.c.media_type, manifests.c.payload)
    if is_digest(reference):
        q = q.where(manifests.c.repository_id == repository_id, manifests.c.digest == reference)
    else:
        q = q.join(tags, tags.c.manifest_id == manifests.c.id).where(tags.c.repository_id == repository_id,
                                                                     tags.c.name == reference)
    row = (await conn.execute(q)).first()
    if row is None:
        raise APIError(codes.NO_SUCH_TAG, f"no tag or manifest {reference[:200]!r} in {repository}")
    if row.media_type not in INDEX_TYPES:
        img = Image(repository, repository_id, reference, row.digest, None, "", "",
                    tuple(layer_descriptors(row.payload)))
        scanned = (await conn.execute(select(images.c.os, images.c.architecture)
                                      .where(images.c.digest == row.digest))).first()
        if scanned is not None:
            img = dataclasses.replace(img, os=scanned.os, architecture=scanned.architecture)
        if platform is not None and scanned is not None and scanned.os and \
                (scanned.os, scanned.architecture) != platform:
            raise APIError(codes.NOT_FOUND, f"{repository}:{reference} is a {scanned.os}/{scanned.architecture} "
                                            f"image, not {platform[0]}/{platform[1]}")
        return img
    found = platforms_of(row.payload)
    chosen = choose_platform(found, platform)
    if chosen is None:
        listed = ", ".join(p.name for p in found) or "none"
        wanted = "/".join(platform) if platform else "a default platform (linux/amd64 or a single one)"
        raise APIError(codes.NOT_FOUND, f"{repository}:{reference} has no image for {wanted}; it has: {listed}")
    child = (await conn.execute(select(manifests.c.payload).where(manifests.c.repository_id == repository_id,
                                                                  manifests.c.digest == chosen.digest))).first()
    return Image(repository, repository_id, reference, chosen.digest, row.digest, chosen.os, chosen.architecture,
                 tuple(layer_descriptors(child.payload)) if child is not None else (), tuple(found))


def layer_descriptors(payload: bytes) -> list[dict[str, Any]]:
    """The layer descriptors of an image manifest's payload."""
    return [d for d in _doc(payload).get("layers") or [] if isinstance(d, dict)]


# -- overrides ----------------------------------------------------------------------------------

Scope = Callable[[Any], ColumnElement[bool]]


def in_repository(name: str | ColumnElement[str]) -> Scope:
    """Overrides that apply in repository ``name`` (a name, or a column of names)."""
    namespace: Any = name.partition("/")[0] if isinstance(name, str) else func.split_part(name, "/", 1)
    return lambda o: or_(o.c.scope == "", o.c.scope == name, o.c.scope == namespace)


def in_any_repository(digest: ColumnElement[str]) -> Scope:
    """Overrides that apply to image ``digest`` in some repository holding it."""
    def scope(o: Any) -> ColumnElement[bool]:
        holder = (select(literal(1)).select_from(manifests.join(repositories,
                                                                 repositories.c.id == manifests.c.repository_id))
                  .where(manifests.c.digest == digest,
                         or_(repositories.c.name == o.c.scope,
                             func.split_part(repositories.c.name, "/", 1) == o.c.scope))
                  .correlate_except(manifests, repositories))
        return or_(o.c.scope == "", exists(holder))
    return scope


def applies(o: Any, v: Any, p: Any, scope: Scope) -> ColumnElement[bool]:
    """Override ``o`` applies to finding ``v`` (``scan_image_vulns``) of package ``p`` in ``scope``."""
    va = vulnerabilities.alias("va")
    alias = exists(select(literal(1)).select_from(va).where(va.c.id == v.c.vuln_id, o.c.vuln_id == any_(va.c.aliases))
                   .correlate_except(va))
    return and_(or_(o.c.vuln_id == v.c.vuln_id, alias),
                or_(o.c.digest == "", o.c.digest == v.c.image_digest),
                or_(o.c.component == "", o.c.component == p.c.name, o.c.component == p.c.source_name),
                scope(o))


def hidden(v: Any, p: Any, scope: Scope) -> ColumnElement[bool]:
    o = overrides.alias("o")
    return exists(select(literal(1)).select_from(o).where(applies(o, v, p, scope)).correlate_except(o))


# -- findings and counts --------------------------------------------------------------------------


async def findings(conn: AsyncConnection, digest: str, repository: str) -> list[Any]:
    """Every package of image ``digest`` (in layer order) with each of its findings (a package
    without one: a row whose ``vuln_id`` is None), as repository ``repository`` sees them: the
    override hiding a finding (``override_id``, ``override_reason``, ``override_actor``), if any."""
    ip, p, v, vu = image_packages, packages, image_vulns, vulnerabilities
    o = overrides.alias("o")
    first_override = (select(o.c.id, o.c.reason, o.c.actor).where(applies(o, v, p, in_repository(repository)))
                      .correlate_except(o).order_by(o.c.id).limit(1).lateral("ov"))
    q = (select(p.c.id.label("package_id"), p.c.ecosystem, p.c.name, p.c.version, p.c.source_name,
                p.c.source_version, p.c.arch, p.c.license, p.c.location, ip.c.layer_digest, ip.c.layer_index,
                ip.c.namespace, v.c.vuln_id, v.c.state, v.c.fixed_version, v.c.band, v.c.severity, v.c.cvss_score,
                vu.c.summary, vu.c.cvss_vector, vu.c.aliases, first_override.c.id.label("override_id"),
                first_override.c.reason.label("override_reason"), first_override.c.actor.label("override_actor"))
         .select_from(ip.join(p, p.c.id == ip.c.package_id)
                      .outerjoin(v, and_(v.c.image_digest == ip.c.image_digest, v.c.package_id == ip.c.package_id))
                      .outerjoin(vu, vu.c.id == v.c.vuln_id)
                      .outerjoin(first_override, true()))
         .where(ip.c.image_digest == digest)
         .order_by(ip.c.layer_index, p.c.ecosystem, p.c.name, p.c.version, p.c.id, v.c.vuln_id))
    return list((await conn.execute(q)).all())


def _tally(digests: list[str], scope: Scope) -> Any:
    """Per image of ``digests`` with a finding: its counts by band of what ``scope``'s overrides
    leave, and ``hidden`` (each finding's override check made once)."""
    v, p = image_vulns, packages
    each = (select(v.c.image_digest, v.c.band, hidden(v, p, scope).label("is_hidden"))
            .select_from(v.join(p, p.c.id == v.c.package_id)).where(v.c.image_digest.in_(digests)).subquery())
    bands = [func.count().filter(and_(~each.c.is_hidden, each.c.band == b)).label(b) for b in BANDS]
    return (select(each.c.image_digest, *bands, func.count().filter(each.c.is_hidden).label("hidden"))
            .group_by(each.c.image_digest))


async def counts(conn: AsyncConnection, digests: Iterable[str], scope: Scope) -> dict[str, Counts]:
    """The counts of each image as ``scope`` (``in_repository``) sees them; images without a
    finding are absent."""
    wanted = sorted(set(digests))
    if not wanted:
        return {}
    rows = await conn.execute(_tally(wanted, scope))
    return {r.image_digest: Counts(r.critical, r.major, r.minor, r.hidden) for r in rows}


#: Whether override ``o`` hides finding ``v`` of package ``p`` in some repository holding the image:
#: the finding's vulnerability (or one it is an alias of), the image (or any), the component (its
#: name or source name, or any), and the scope (the registry, a repository or a namespace holding it).
_HIDDEN = """EXISTS (
    SELECT 1 FROM scan_overrides o
    WHERE (o.vuln_id = v.vuln_id OR EXISTS (SELECT 1 FROM vulnerabilities x
                                            WHERE x.id = v.vuln_id AND o.vuln_id = ANY(x.aliases)))
      AND o.digest IN ('', v.image_digest)
      AND o.component IN ('', p.name, p.source_name)
      AND (o.scope = '' OR EXISTS (
            SELECT 1 FROM manifests m JOIN repositories r ON r.id = m.repository_id
            WHERE m.digest = v.image_digest AND (r.name = o.scope OR split_part(r.name, '/', 1) = o.scope))))"""
#: Each image's counts from its findings: by band, those no override hides; ``hidden`` apart.
_RECOUNT = text(f"""
UPDATE scan_images s SET critical = c.critical, major = c.major, minor = c.minor, hidden = c.hidden,
                         updated_at = now()
FROM (
    SELECT d.digest,
           count(*) FILTER (WHERE f.band = 'critical' AND NOT f.hidden) AS critical,
           count(*) FILTER (WHERE f.band = 'major' AND NOT f.hidden) AS major,
           count(*) FILTER (WHERE f.band = 'minor' AND NOT f.hidden) AS minor,
           count(*) FILTER (WHERE f.hidden) AS hidden
    FROM unnest(CAST(:digests AS text[])) AS d(digest)
    LEFT JOIN LATERAL (
        SELECT v.band, {_HIDDEN} AS hidden
        FROM scan_image_vulns v JOIN scan_packages p ON p.id = v.package_id
        WHERE v.image_digest = d.digest
    ) f ON true
    GROUP BY d.digest
) c
WHERE s.digest = c.digest
RETURNING s.digest, s.critical, s.major, s.minor, s.hidden
""")


async def recount(conn: AsyncConnection, digests: Iterable[str]) -> dict[str, dict[str, int]]:
    """Store on ``scan_images`` each image's counts from ``scan_image_vulns`` and the overrides
    (``hidden``: what an override hides in any repository holding the image); the counts by digest."""
    wanted = sorted(set(digests))
    if not wanted:
        return {}
    return {r.digest: {"critical": r.critical, "major": r.major, "minor": r.minor, "hidden": r.hidden}
            for r in await conn.execute(_RECOUNT, {"digests": wanted})}


async def images_with_vuln(conn: AsyncConnection, vuln_id: str, digest: str = "") -> list[str]:
    """Images with a finding of ``vuln_id`` (or of a vulnerability it is an alias of)."""
    v = image_vulns
    q = select(v.c.image_digest).distinct().where(matches_vuln(v.c.vuln_id, vuln_id))
    if digest:
        q = q.where(v.c.image_digest == digest)
    return list((await conn.scalars(q)).all())


def matches_vuln(column: Any, vuln_id: str) -> ColumnElement[bool]:
    """``column`` names ``vuln_id`` or a vulnerability that has it as an alias."""
    aliased = select(vulnerabilities.c.id).where(literal(vuln_id) == any_(vulnerabilities.c.aliases))
    return or_(column == vuln_id, column.in_(aliased))


# -- scan state ------------------------------------------------------------------------------------


async def feed_versions(conn: AsyncConnection) -> dict[str, int]:
    """The current version of each imported feed."""
    rows = await conn.execute(select(feeds.c.name, feeds.c.version).where(feeds.c.version > 0))
    return {r.name: r.version for r in rows}


def _state_select() -> Any:
    stale = (select(func.count()).select_from(layers)
             .where(layers.c.digest == any_(images.c.layers), layers.c.indexer_version < INDEXER_VERSION)
             .scalar_subquery())
    return select(images, stale.label("stale_layers"))


async def scan_state(conn: AsyncConnection, digest: str) -> Any | None:
    """The image's ``scan_images`` row, with ``stale_layers``: how many of its layers an older
    indexer indexed."""
    return (await conn.execute(_state_select().where(images.c.digest == digest))).first()


async def scan_states(conn: AsyncConnection, digests: Iterable[str]) -> dict[str, Any]:
    """``scan_state`` of each of ``digests`` that has a row."""
    wanted = sorted(set(digests))
    if not wanted:
        return {}
    return {r.digest: r for r in await conn.execute(_state_select().where(images.c.digest.in_(wanted)))}


def should_rescan(state: Any | None, current_feeds: dict[str, int]) -> bool:
    """Never scanned, failed, indexed by an older indexer, or matched against older feeds."""
    if state is None or state.status in (FAILED, UNSCANNED):
        return True
    if state.stale_layers:
        return True
    seen = state.feed_versions or {}
    return state.status == COMPLETED and any(seen.get(name, 0) < version for name, version in current_feeds.items())


def distribution_of(state: Any | None) -> Distribution | None:
    raw = state.distribution if state is not None else None
    if not isinstance(raw, dict) or not raw.get("id"):
        return None
    fields = {f.name for f in dataclasses.fields(Distribution)}
    return Distribution(**{k: str(v) for k, v in raw.items() if k in fields})


async def tags_of(conn: AsyncConnection, repository_id: int, digests: Iterable[str]) -> dict[str, list[str]]:
    """The tags of the repository naming each image digest, directly or through an index."""
    wanted = sorted(set(digests))
    out: dict[str, list[str]] = {d: [] for d in wanted}
    if not wanted:
        return out
    direct = (select(tags.c.name, manifests.c.digest).join(manifests, manifests.c.id == tags.c.manifest_id)
              .where(tags.c.repository_id == repository_id, manifests.c.digest.in_(wanted)))
    through = (select(tags.c.name, manifest_refs.c.digest)
               .join(manifest_refs, manifest_refs.c.manifest_id == tags.c.manifest_id)
               .where(tags.c.repository_id == repository_id, manifest_refs.c.kind == "manifest",
                      manifest_refs.c.digest.in_(wanted)))
    for r in await conn.execute(direct.union(through)):
        out[r.digest].append(r.name)
    for names in out.values():
        names.sort()
    return out


# -- an image's software, as the reports show it ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Override:
    id: int
    reason: str
    actor: str


@dataclasses.dataclass(frozen=True)
class Vuln:
    """A finding of a component (``override`` set when one hides it)."""

    id: str
    state: str
    fixed_version: str
    band: str
    severity: str
    cvss_score: float | None
    cvss_vector: str
    summary: str
    aliases: tuple[str, ...]
    override: Override | None

    @property
    def cve(self) -> str:
        """The CVE this is (its id or its first CVE alias); '' if none."""
        return next((i for i in (self.id, *self.aliases) if i.upper().startswith("CVE-")), "")


@dataclasses.dataclass(frozen=True)
class Component:
    """A package of an image, the layer that introduced it, its purl and its findings."""

    package_id: int
    ecosystem: str
    name: str
    version: str
    source_name: str
    source_version: str
    arch: str
    license: str
    location: str
    layer_digest: str
    layer_index: int
    purl: str
    vulns: tuple[Vuln, ...]


def components(rows: Iterable[Any], distribution: Distribution | None) -> list[Component]:
    """``findings`` rows grouped by package, in their order."""
    out: list[Component] = []
    found: dict[int, list[Vuln]] = {}
    for r in rows:
        if r.package_id not in found:
            found[r.package_id] = []
            out.append(Component(r.package_id, r.ecosystem, r.name, r.version, r.source_name, r.source_version,
                                 r.arch, r.license, r.location, r.layer_digest, r.layer_index,
                                 package_url(r.ecosystem, r.name, r.version, arch=r.arch,
                                             distribution=distribution), ()))
        if r.vuln_id is not None:
            found[r.package_id].append(Vuln(
                r.vuln_id, r.state, r.fixed_version, r.band, r.severity, r.cvss_score, r.cvss_vector or "",
                r.summary or "", tuple(r.aliases or ()),
                Override(r.override_id, r.override_reason, r.override_actor) if r.override_id is not None else None))
    return [dataclasses.replace(c, vulns=tuple(found[c.package_id])) for c in out]


def count(found: Iterable[Component]) -> Counts:
    """The counts of ``found`` (hidden findings apart)."""
    tally = {b: 0 for b in (*BANDS, "hidden")}
    for c in found:
        for v in c.vulns:
            key = "hidden" if v.override is not None else v.band
            if key in tally:
                tally[key] += 1
    return Counts(**tally)

"""The scanner's read side: an image's result (and its JSON), and the summaries by repository,
vulnerability, component, layer and license (only images of repositories the caller may read).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, literal, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.accounts.repositories import repo_meta, visible_to
from dtr.api.errors import APIError, codes
from dtr.auth.access import Action
from dtr.registry.manifests import INDEX_TYPES
from dtr.scanning import licenses, shapes
from dtr.scanning.access import Caller, open_repository
from dtr.scanning.purl import package_url
from dtr.scanning.results import (
    Component,
    Counts,
    Image,
    components,
    count,
    counts,
    distribution_of,
    feed_versions,
    findings,
    hidden,
    image_packages,
    image_vulns,
    images,
    in_repository,
    layer_descriptors,
    layers,
    manifests,
    matches_vuln,
    packages,
    platforms_of,
    repositories,
    resolve_image,
    scan_state,
    scan_states,
    should_rescan,
    tags,
    tags_of,
)
from dtr.scanning.types import Distribution
from dtr.times import iso

# -- an image's result ------------------------------------------------------------------------------


def requested_platform(os_: str | None, arch: str | None) -> tuple[str, str] | None:
    """The (os, architecture) asked for, None unless both are given."""
    return (os_, arch) if os_ and arch else None


async def _image(c: Caller, conn: AsyncConnection, namespace: str, repo: str, reference: str,
                 platform: tuple[str, str] | None, action: Action = Action.PULL) -> Image:
    row = await open_repository(c, conn, namespace, repo, action)
    return await resolve_image(conn, row.id, row.name, reference, platform)


def _summary(img: Image, tag: str, state: Any | None, found: Counts, current_feeds: dict[str, int]
             ) -> shapes.ScanSummary:
    namespace, _, name = img.repository.partition("/")
    dist = distribution_of(state)
    return {
        "namespace": namespace, "reponame": name, "tag": tag, "digest": img.digest, "index_digest": img.index,
        "os": img.os or (state.os if state is not None else ""),
        "architecture": img.architecture or (state.architecture if state is not None else ""),
        "critical": found.critical, "major": found.major, "minor": found.minor, "hidden": found.hidden,
        "last_scan_status": state.status if state is not None else 1,
        "check_completed_at": iso(state.check_completed_at) if state is not None else None,
        "scanned_at": iso(state.scanned_at) if state is not None else None,
        "should_rescan": should_rescan(state, current_feeds), "has_foreign_layers": img.has_foreign_layers,
        "error": state.error if state is not None else None,
        "distribution": (dist.pretty_name or f"{dist.id} {dist.version_id}".strip()) if dist else "",
    }


def _license(declared: str) -> shapes.License:
    lic = licenses.parse(declared)
    return {"name": lic.expression or lic.declared, "type": lic.kind, "url": lic.url}


def _component_json(comp: Component) -> shapes.ScanComponent:
    return {
        "component": comp.name, "version": comp.version, "fullpath": [comp.location] if comp.location else [],
        "license": _license(comp.license), "ecosystem": comp.ecosystem, "purl": comp.purl,
        "source_name": comp.source_name, "source_version": comp.source_version,
        "vulns": [{"vuln": {"id": v.id, "cve": v.cve, "cvss": v.cvss_score, "summary": v.summary},
                   "fix_state": v.state, "fixed_version": v.fixed_version, "band": v.band, "severity": v.severity,
                   "cvss_vector": v.cvss_vector, "aliases": list(v.aliases), "hidden": v.override is not None,
                   "override_id": v.override.id if v.override else None,
                   "override_reason": v.override.reason if v.override else ""} for v in comp.vulns],
    }


def _layer_details(img: Image, state: Any | None, found: list[Component]) -> list[shapes.LayerDetail]:
    order = list(state.layers) if state is not None and state.layers else [d.get("digest", "") for d in img.layers]
    by_layer: dict[str, list[shapes.ScanComponent]] = {d: [] for d in order}
    for comp in found:
        by_layer.setdefault(comp.layer_digest, []).append(_component_json(comp))
    return [{"sha256sum": d.partition(":")[2] or d, "digest": d, "components": comps}
            for d, comps in by_layer.items() if d]


@dataclasses.dataclass(frozen=True)
class ImageReport:
    """An image's result as one repository sees it: the image, its scan state and components."""

    image: Image
    state: Any | None
    components: list[Component]
    feeds: dict[str, int]

    @property
    def distribution(self) -> Distribution | None:
        return distribution_of(self.state)


async def image_report(c: Caller, namespace: str, repo: str, reference: str, os_: str | None = None,
                       arch: str | None = None) -> ImageReport:
    """The image ``reference`` names (an index: its ``os``/``arch`` image, default linux/amd64 or
    its only one) with its components and findings, as the repository sees them."""
    async with c.engine.connect() as conn:
        img = await _image(c, conn, namespace, repo, reference, requested_platform(os_, arch))
        state = await scan_state(conn, img.digest)
        found = components(await findings(conn, img.digest, img.repository), distribution_of(state))
        return ImageReport(img, state, found, await feed_versions(conn))


def result_json(report: ImageReport, detailed: bool) -> shapes.ScanResult:
    """DTR's scan result: the summary, and ``layer_details`` when ``detailed``."""
    summary = _summary(report.image, report.image.reference, report.state, count(report.components), report.feeds)
    out: shapes.ScanResult = {**summary}  # type: ignore[typeddict-item]
    if detailed:
        out["layer_details"] = _layer_details(report.image, report.state, report.components)
    return out


# -- summaries ------------------------------------------------------------------------------------


async def repository_summary(c: Caller, namespace: str, repo: str, start: str | None,
                             size: int) -> tuple[shapes.RepositoryScans, str | None]:
    """Each tag's image (each platform of an index) with its counts, by tag name from ``start``."""
    async with c.engine.connect() as conn:
        row = await open_repository(c, conn, namespace, repo, Action.PULL)
        q = (select(tags.c.name, manifests.c.digest, manifests.c.media_type, manifests.c.payload)
             .join(manifests, manifests.c.id == tags.c.manifest_id)
             .where(tags.c.repository_id == row.id).order_by(tags.c.name).limit(size + 1))
        if start:
            q = q.where(tags.c.name >= start)
        tagged = list((await conn.execute(q)).all())
        next_start = tagged[size].name if len(tagged) > size else None
        found: list[tuple[str, Image]] = []
        children: set[str] = set()
        for t in tagged[:size]:
            if t.media_type in INDEX_TYPES:
                for p in platforms_of(t.payload):
                    found.append((t.name, Image(row.name, row.id, t.name, p.digest, t.digest, p.os, p.architecture,
                                                (), ())))
                    children.add(p.digest)
            else:
                found.append((t.name, Image(row.name, row.id, t.name, t.digest, None, "", "",
                                            tuple(layer_descriptors(t.payload)))))
        if children:
            payloads = {r.digest: r.payload for r in await conn.execute(
                select(manifests.c.digest, manifests.c.payload)
                .where(manifests.c.repository_id == row.id, manifests.c.digest.in_(sorted(children))))}
            found = [(tag, dataclasses.replace(img, layers=tuple(layer_descriptors(payloads.get(img.digest, b"{}"))))
                      if img.index else img) for tag, img in found]
        digests = {img.digest for _, img in found}
        states = await scan_states(conn, digests)
        tallies = await counts(conn, digests, in_repository(row.name))
        current = await feed_versions(conn)
    return ({"namespace": namespace, "reponame": repo,
             "images": [_summary(img, tag, states.get(img.digest), tallies.get(img.digest, Counts()), current)
                        for tag, img in found]}, next_start)


def _page_start(raw: str | None) -> tuple[str, str] | None:
    if not raw:
        return None
    repo, sep, digest = raw.partition("@")
    if not sep:
        raise APIError(codes.INVALID_PARAMETER, "pageStart: not the X-Next-Page-Start of a previous page")
    return repo, digest


async def _image_page(c: Caller, conn: AsyncConnection, digests: Select[Any], start: str | None,
                      size: int) -> tuple[list[Any], str | None]:
    """(images among ``digests`` in repositories the caller may read: ``repository``,
    ``repository_id``, ``digest``, ``os``, ``architecture``, ``status``; by repository and digest
    from ``start``, ``size`` of them), the pageStart of the next page."""
    q = (select(repositories.c.name.label("repository"), repositories.c.id.label("repository_id"),
                manifests.c.digest, images.c.os, images.c.architecture, images.c.status, images.c.distribution)
         .select_from(manifests.join(repositories, repositories.c.id == manifests.c.repository_id)
                      .outerjoin(repo_meta, repo_meta.c.repository_id == repositories.c.id)
                      .join(images, images.c.digest == manifests.c.digest))
         .where(manifests.c.digest.in_(digests), visible_to(c.user()))
         .order_by(repositories.c.name, manifests.c.digest).limit(size + 1))
    if (after := _page_start(start)) is not None:
        q = q.where(tuple_(repositories.c.name, manifests.c.digest) >= tuple_(literal(after[0]), literal(after[1])))
    rows = list((await conn.execute(q)).all())
    nxt = f"{rows[size].repository}@{rows[size].digest}" if len(rows) > size else None
    return rows[:size], nxt


async def _found_images(conn: AsyncConnection, page: list[Any], details: Iterable[Any]
                        ) -> list[shapes.FoundImage]:
    """The page's images with their tags and the components ``details`` rows (``repository``,
    ``digest`` and a component's fields) name for each."""
    by_key: dict[tuple[str, str], list[shapes.FoundComponent]] = {(r.repository, r.digest): [] for r in page}
    dists = {r.digest: distribution_of(r) for r in page}
    for d in details:
        comp: shapes.FoundComponent = {
            "component": d.name, "version": d.version, "ecosystem": d.ecosystem, "layer": d.layer_digest,
            "purl": package_url(d.ecosystem, d.name, d.version, arch=d.arch, distribution=dists.get(d.digest)),
            "license": d.license}
        if getattr(d, "vuln_id", None) is not None:
            comp.update({"fix_state": d.state, "fixed_version": d.fixed_version, "band": d.band,
                         "hidden": bool(d.is_hidden)})
        by_key.setdefault((d.repository, d.digest), []).append(comp)
    tagged: dict[int, dict[str, list[str]]] = {}
    for repo_id in {r.repository_id for r in page}:
        tagged[repo_id] = await tags_of(conn, repo_id, [r.digest for r in page if r.repository_id == repo_id])
    out: list[shapes.FoundImage] = []
    for r in page:
        namespace, _, name = r.repository.partition("/")
        out.append({"namespace": namespace, "reponame": name, "digest": r.digest,
                    "tags": tagged[r.repository_id].get(r.digest, []), "os": r.os, "architecture": r.architecture,
                    "last_scan_status": r.status, "components": by_key.get((r.repository, r.digest), [])})
    return out


def _details(page: list[Any], where: ColumnElement[bool], with_vulns: bool) -> Select[Any]:
    """The components (and, ``with_vulns``, findings) of the page's images matching ``where``."""
    p, ip, v = packages, image_packages, image_vulns
    cols: list[Any] = [repositories.c.name.label("repository"), ip.c.image_digest.label("digest"), p.c.name,
                       p.c.version, p.c.ecosystem, p.c.arch, p.c.license, ip.c.layer_digest]
    joined: Any = (ip.join(p, p.c.id == ip.c.package_id)
                   .join(manifests, manifests.c.digest == ip.c.image_digest)
                   .join(repositories, repositories.c.id == manifests.c.repository_id))
    if with_vulns:
        joined = joined.join(v, and_(v.c.image_digest == ip.c.image_digest, v.c.package_id == ip.c.package_id))
        cols += [v.c.vuln_id, v.c.state, v.c.fixed_version, v.c.band,
                 hidden(v, p, in_repository(repositories.c.name)).label("is_hidden")]
    keys = [(r.repository_id, r.digest) for r in page]
    return (select(*cols).select_from(joined)
            .where(tuple_(repositories.c.id, ip.c.image_digest).in_(keys), where)
            .order_by(repositories.c.name, ip.c.image_digest, ip.c.layer_index, p.c.name, p.c.version))


async def _search(c: Caller, digests: Select[Any], where: ColumnElement[bool], with_vulns: bool,
                  start: str | None, size: int) -> tuple[shapes.FoundImages, str | None]:
    async with c.engine.connect() as conn:
        page, nxt = await _image_page(c, conn, digests, start, size)
        details = list((await conn.execute(_details(page, where, with_vulns))).all()) if page else []
        found = await _found_images(conn, page, details)
    return {"images": found}, nxt


def normalise_vuln_id(raw: str) -> str:
    """A vulnerability id as stored: trimmed, a CVE id upper-cased."""
    raw = raw.strip()
    return raw.upper() if raw.lower().startswith("cve-") else raw


async def cve_summary(c: Caller, cve: str, start: str | None, size: int) -> tuple[shapes.FoundImages, str | None]:
    """The images with a finding of ``cve`` (or of a vulnerability it is an alias of) and the
    components it is found on, hidden ones marked."""
    c.user()
    vuln = normalise_vuln_id(cve)
    digests = select(image_vulns.c.image_digest).where(matches_vuln(image_vulns.c.vuln_id, vuln))
    return await _search(c, digests, matches_vuln(image_vulns.c.vuln_id, vuln), True, start, size)


def _component_match(name: str, version: str | None) -> ColumnElement[bool]:
    p = packages
    wanted = name.strip().lower()
    by_name = or_(func.lower(p.c.name) == wanted, func.lower(p.c.source_name) == wanted,
                  and_(p.c.ecosystem == "maven", func.lower(func.split_part(p.c.name, ":", 2)) == wanted))
    if not version:
        return by_name
    return and_(by_name, or_(p.c.version == version, p.c.version.startswith(version + ".", autoescape=True)))


async def component_summary(c: Caller, component: str, version: str | None, start: str | None,
                            size: int) -> tuple[shapes.FoundImages, str | None]:
    """The images holding a component named ``component`` (its name, source package name, or a
    Maven artifact id; any case), of ``version`` if given (or a version it prefixes at a dot)."""
    c.user()
    where = _component_match(component, version)
    digests = (select(image_packages.c.image_digest)
               .join(packages, packages.c.id == image_packages.c.package_id).where(where))
    return await _search(c, digests, where, False, start, size)


def _license_match(license_: str) -> ColumnElement[bool]:
    """``license_`` as a whole word of the declared license (``MIT`` matches ``MIT OR Apache-2.0``)."""
    word = re.escape(license_.strip())
    return packages.c.license.regexp_match(f"(^|[^A-Za-z0-9.+-]){word}($|[^A-Za-z0-9.+-])", flags="i")


async def license_summary(c: Caller, license_: str, start: str | None,
                          size: int) -> tuple[shapes.FoundImages, str | None]:
    """The images holding components whose declared license names ``license_``."""
    c.user()
    if not license_.strip():
        raise APIError(codes.INVALID_PARAMETER, "name a license")
    where = _license_match(license_)
    digests = (select(image_packages.c.image_digest)
               .join(packages, packages.c.id == image_packages.c.package_id).where(where))
    return await _search(c, digests, where, False, start, size)


def _layer_digest(raw: str) -> str:
    raw = raw.strip().lower()
    if re.fullmatch(r"[0-9a-f]{64}", raw):
        return f"sha256:{raw}"
    return raw


async def layer_summary(c: Caller, layer: str, start: str | None, size: int
                        ) -> tuple[shapes.LayerSummary, str | None]:
    """What the layer holds and the images (of repositories the caller may read) built on it;
    NOT_FOUND when the caller may read no image with this layer."""
    c.user()
    digest = _layer_digest(layer)
    async with c.engine.connect() as conn:
        with_layer = select(images.c.digest).where(literal(digest) == func.any(images.c.layers))
        page, nxt = await _image_page(c, conn, with_layer, start, size)
        if not page and not start:
            raise APIError(codes.NOT_FOUND, f"no image you may read has the layer {layer[:100]!r}")
        found = await _found_images(conn, page, ())
        row = (await conn.execute(select(layers).where(layers.c.digest == digest))).first()
        pkgs = list((await conn.execute(select(packages).where(packages.c.layer_digest == digest)
                                        .order_by(packages.c.ecosystem, packages.c.name, packages.c.version))).all())
    dist = row.distribution if row is not None and isinstance(row.distribution, dict) else {}
    return ({"digest": digest, "status": row.status if row is not None else "unscanned",
             "error": row.error if row is not None else None,
             "indexed_at": iso(row.indexed_at) if row is not None else None,
             "distribution": str(dist.get("pretty_name") or f"{dist.get('id', '')} {dist.get('version_id', '')}"
                                 ).strip(),
             "files": row.files if row is not None else 0, "size": row.size if row is not None else 0,
             "components": [{"component": p.name, "version": p.version, "ecosystem": p.ecosystem,
                             "license": p.license, "fullpath": [p.location] if p.location else []} for p in pkgs],
             "images": found}, nxt)


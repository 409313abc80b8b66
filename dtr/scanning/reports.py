"""The scanner's use cases, whatever the front end: an image's result, summaries (by repository,
vulnerability, component, layer, license), CSV and SBOM exports, overrides, scans and database
updates queued, the database's status and offline bundles imported.

Each takes a ``Caller``; every one needs an authenticated user (401 otherwise). Access is the
access decision's (``dtr.auth.access.decide``): read access to a repository shows its results
(a repository the caller may not read is answered as missing), write access queues a scan, admin
access adds or deletes an override of the repository (of a namespace: admin of the namespace; of
the whole registry: site admins); the database's status, update and import are for site admins.
Searches across repositories show only images of repositories the caller may read. Changes are
audited once committed. Client mistakes are ``APIError``s.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import datetime as dt
import functools
import hashlib
import importlib.metadata
import io
import json
import logging
import re
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, func, insert, literal, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.accounts.repositories import repo_meta, visible_to
from dtr.api.errors import APIError, codes
from dtr.auth import caller
from dtr.auth.access import Action, Level, decide
from dtr.auth.service import AuthService
from dtr.config.schema import ScanningConfig
from dtr.jobs.service import JobService
from dtr.registry.errors import RegistryError
from dtr.registry.manifests import INDEX_TYPES, OCI_EMPTY, OCI_MANIFEST
from dtr.registry.service import RegistryService
from dtr.scanning import bundles, licenses, service, shapes
from dtr.scanning import jobs as scan_jobs
from dtr.scanning import sbom as sboms
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
    feeds,
    findings,
    hidden,
    image_packages,
    image_vulns,
    images,
    images_with_vuln,
    in_repository,
    layer_descriptors,
    layers,
    manifests,
    matches_vuln,
    overrides,
    packages,
    platforms_of,
    recount,
    repositories,
    resolve_image,
    scan_state,
    scan_states,
    should_rescan,
    tags,
    tags_of,
)
from dtr.scanning.types import Distribution

log = logging.getLogger("dtr.scanning")


@dataclasses.dataclass(frozen=True)
class Caller(caller.Caller):
    """With the auth service (None: authentication is off), the job queue and the scanner's config."""

    auth: AuthService | None
    jobs: JobService
    config: ScanningConfig
    #: Where uploads are spooled (the server's data directory).
    data_path: Path
    #: The registry (an SBOM attached to its image is pushed there).
    registry: RegistryService


def iso(t: dt.datetime | None) -> str | None:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if t else None


@functools.cache
def dtr_version() -> str:
    try:
        return importlib.metadata.version("dtr")
    except importlib.metadata.PackageNotFoundError:
        return "0"


# -- access ---------------------------------------------------------------------------------------


async def _open(c: Caller, conn: AsyncConnection, namespace: str, name: str, action: Action) -> Any:
    """The repository ``namespace/name`` (``id``, ``name``) if the caller may ``action`` it:
    NO_SUCH_REPOSITORY when it may not even read it, FORBIDDEN when it may read but not ``action``."""
    p = c.user()
    full = f"{namespace}/{name}"
    row = (await conn.execute(select(repositories.c.id, repositories.c.name)
                              .where(repositories.c.name == full))).first()
    if row is None:
        raise APIError(codes.NO_SUCH_REPOSITORY, f"no repository named {full[:300]!r}")
    if c.auth is None:
        return row
    facts = await c.auth.repo_facts(p, full, conn)
    if not decide(p, facts, Action.PULL):
        raise APIError(codes.NO_SUCH_REPOSITORY, f"no repository named {full[:300]!r}")
    if not decide(p, facts, action):
        need = Level.WRITE if action in (Action.PUSH, Action.DELETE) else Level.ADMIN
        raise APIError(codes.FORBIDDEN, f"this needs {need.api_name} access to {full}")
    return row


async def _may_admin_namespace(c: Caller, conn: AsyncConnection, namespace: str) -> bool:
    """The caller is admin of every repository of the namespace (site admin, the user namespace's
    owner, an organisation owner, or a team granted admin on the whole namespace)."""
    p = c.user()
    if c.auth is None or p.is_admin:
        return True
    facts = await c.auth.repo_facts(p, f"{namespace}/", conn)
    return decide(p, dataclasses.replace(facts, exists=True, public=False), Action.ADMIN)


def _split(repository: str) -> tuple[str, str]:
    namespace, sep, name = repository.partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise APIError(codes.INVALID_PARAMETER, f"{repository[:300]!r} is not a repository name (namespace/name)")
    return namespace, name


# -- an image's result ------------------------------------------------------------------------------


def _platform(os_: str | None, arch: str | None) -> tuple[str, str] | None:
    return (os_, arch) if os_ and arch else None


async def _image(c: Caller, conn: AsyncConnection, namespace: str, repo: str, reference: str,
                 platform: tuple[str, str] | None, action: Action = Action.PULL) -> Image:
    row = await _open(c, conn, namespace, repo, action)
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
        img = await _image(c, conn, namespace, repo, reference, _platform(os_, arch))
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


CSV_COLUMNS = ("repository", "tag", "digest", "platform", "layer", "component", "version", "ecosystem", "purl",
               "license", "vulnerability", "cvss", "band", "severity", "fix_state", "fixed_version", "hidden",
               "override_reason", "summary")


def _cell(value: object) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def result_csv(report: ImageReport) -> str:
    """The image's findings as CSV, one row per (component, vulnerability), hidden ones marked."""
    img = report.image
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    platform = f"{img.os}/{img.architecture}" if img.os else ""
    for comp in report.components:
        for v in comp.vulns:
            w.writerow([_cell(x) for x in (
                img.repository, img.reference, img.digest, platform, comp.layer_digest, comp.name, comp.version,
                comp.ecosystem, comp.purl, comp.license, v.id, v.cvss_score, v.band, v.severity, v.state,
                v.fixed_version, "true" if v.override else "false", v.override.reason if v.override else "",
                v.summary)])
    return out.getvalue()


async def sbom(c: Caller, namespace: str, repo: str, reference: str, fmt: str, registry: str,
               os_: str | None = None, arch: str | None = None) -> dict[str, Any]:
    """The image's SBOM (``spdx`` or ``cyclonedx``); NOT_FOUND until it has been scanned."""
    return _sbom_of(await image_report(c, namespace, repo, reference, os_, arch), fmt, registry)


def _sbom_of(report: ImageReport, fmt: str, registry: str) -> dict[str, Any]:
    img, state = report.image, report.state
    if state is None or state.status in (0, 1) or state.scanned_at is None:
        raise APIError(codes.NOT_FOUND, f"{img.repository}:{img.reference} has not been scanned: queue a scan first "
                                        f"(POST /api/v0/imagescan/scan/{img.repository}/{img.reference})")
    subject = sboms.Subject(img.repository, img.reference, img.digest, img.os or state.os,
                            img.architecture or state.architecture, report.distribution, registry,
                            dt.datetime.now(dt.UTC), dtr_version())
    make = sboms.spdx if fmt == "spdx" else sboms.cyclonedx
    return make(subject, report.components)


async def attach_sbom(c: Caller, namespace: str, repo: str, reference: str, fmt: str, registry: str,
                      os_: str | None = None, arch: str | None = None) -> shapes.AttachedSbom:
    """Push the image's SBOM into its repository as an OCI artifact whose subject is the image's
    manifest (``artifactType`` the SBOM's media type), so referrers clients find it (read-write)."""
    async with c.engine.connect() as conn:
        await _open(c, conn, namespace, repo, Action.PUSH)
    report = await image_report(c, namespace, repo, reference, os_, arch)
    doc = _sbom_of(report, fmt, registry)
    body = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    name, subject = report.image.repository, report.image.digest
    media = sboms.SPDX_MEDIA_TYPE if fmt == "spdx" else sboms.CYCLONEDX_MEDIA_TYPE
    async with c.engine.connect() as conn:
        image = (await conn.execute(select(manifests.c.media_type, manifests.c.size).where(
            manifests.c.repository_id == report.image.repository_id, manifests.c.digest == subject))).one()
    layer = await _push_blob(c, name, body)
    config = await _push_blob(c, name, b"{}")
    title = f"sbom.{'spdx' if fmt == 'spdx' else 'cdx'}.json"
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": media,
        "config": {"mediaType": OCI_EMPTY, "digest": config, "size": 2},
        "layers": [{"mediaType": media, "digest": layer, "size": len(body),
                    "annotations": {"org.opencontainers.image.title": title}}],
        "subject": {"mediaType": image.media_type, "digest": subject, "size": image.size},
        "annotations": {"org.opencontainers.image.created": iso(dt.datetime.now(dt.UTC).replace(microsecond=0))},
    }, separators=(",", ":")).encode()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    try:
        await c.registry.put_manifest(name, digest, manifest, OCI_MANIFEST, c.actor)
    except RegistryError as e:
        raise APIError(codes.CONFLICT, f"the registry refused the SBOM artifact: {e}") from None
    await c.changed("sbom_attach", "repository", name, {"subject": subject, "artifactType": media, "digest": digest})
    return {"digest": digest, "artifactType": media, "subject": subject, "size": len(body)}


async def _push_blob(c: Caller, repository: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()

    async def body() -> AsyncIterator[bytes]:
        yield data

    uploads = c.registry.uploads
    await uploads.finish(repository, await uploads.start(repository, c.actor), digest, body())
    return digest


# -- summaries ------------------------------------------------------------------------------------


async def repository_summary(c: Caller, namespace: str, repo: str, start: str | None,
                             size: int) -> tuple[shapes.RepositoryScans, str | None]:
    """Each tag's image (each platform of an index) with its counts, by tag name from ``start``."""
    async with c.engine.connect() as conn:
        row = await _open(c, conn, namespace, repo, Action.PULL)
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


# -- scans and the database -------------------------------------------------------------------------


async def queue_scan(c: Caller, namespace: str, repo: str, reference: str, os_: str | None = None,
                     arch: str | None = None) -> shapes.ScanJobs:
    """Queue scans of the image(s) ``reference`` names (an index: every platform, or ``os``/``arch``)."""
    if not c.config.enabled:
        raise APIError(codes.UNSUPPORTED, "scanning is disabled on this server (scanning.enabled)")
    platform = _platform(os_, arch)
    async with c.engine.begin() as conn:
        row = await _open(c, conn, namespace, repo, Action.PUSH)
        try:
            jobs = await service.queue_scan(c.jobs, conn, row.name, reference, platform=platform)
        except LookupError as e:  # the service's ScanTargetError: no such tag, platform, or no image
            raise APIError(_TARGET_ERRORS.get(getattr(e, "kind", ""), codes.NOT_FOUND), str(e)) from None
    await c.changed("scan_queue", "repository", row.name,
                    {"reference": reference, **({"platform": "/".join(platform)} if platform else {})})
    return {"jobs": list(jobs)}


#: The answer to each kind of the scan service's ``ScanTargetError``.
_TARGET_ERRORS = {"repository": codes.NO_SUCH_REPOSITORY, "tag": codes.NO_SUCH_TAG, "manifest": codes.NO_SUCH_TAG,
                  "platform": codes.NOT_FOUND, "not_an_image": codes.INVALID_OPERATION}


def _feed_json(r: Any) -> shapes.Feed:
    return {"name": r.name, "url": r.url, "version": r.version, "records": r.records,
            "updatedAt": iso(r.updated_at), "checkedAt": iso(r.checked_at), "lastError": r.last_error,
            "lastErrorAt": iso(r.last_error_at)}


async def status(c: Caller) -> shapes.ScannerStatus:
    """The vulnerability database's version, last update, and whether the last update failed (why)."""
    c.admin()
    async with c.engine.connect() as conn:
        rows = list((await conn.execute(select(feeds).order_by(feeds.c.name))).all())
    updated = [r.updated_at for r in rows if r.updated_at is not None]
    failed = [r for r in rows if r.last_error_at is not None and (r.updated_at is None
                                                                 or r.last_error_at > r.updated_at)]
    failed.sort(key=lambda r: r.last_error_at, reverse=True)
    return {"enabled": c.config.enabled, "dbVersion": sum(r.version for r in rows),
            "lastDBUpdate": iso(max(updated)) if updated else None, "lastDBUpdateFailed": bool(failed),
            "lastDBUpdateError": f"{failed[0].name}: {failed[0].last_error}" if failed else None,
            "feeds": [_feed_json(r) for r in rows]}


async def queue_update(c: Caller) -> Any:
    """Queue the online update of the vulnerability database (site admins)."""
    c.admin()
    job = await service.queue_update(c.jobs)
    await c.changed("vulndb_update_queue", "vulndb", "online", {"job": job["id"]})
    return job


async def import_upload(c: Caller, path: Path) -> shapes.ScannerStatus:
    """Import an offline bundle spooled at ``path`` (site admins); INVALID_BUNDLE with the reason
    when it is refused (signature, checksum, format): the database is then unchanged."""
    c.admin()
    keys = await asyncio.to_thread(_trusted_keys, c.config.bundle_trusted_keys)
    if not keys:
        raise APIError(codes.INVALID_BUNDLE, "no trusted bundle signing key is configured "
                                             "(scanning.bundle_trusted_keys): no bundle can be imported")
    try:
        results = await bundles.import_bundle(c.engine, path, keys, _log_progress)
    except ValueError as e:  # the bundle's own fault (format, checksum, signature): nothing imported
        await c.changed("vulndb_import_refused", "vulndb", "offline", {"reason": str(e)[:1000]})
        raise APIError(codes.INVALID_BUNDLE, f"the bundle is refused: {e}") from None
    await c.changed("vulndb_import", "vulndb", "offline", {"feeds": len(results)})
    await service.database_updated(c.engine, c.jobs, scan_jobs.changes(results))
    return await status(c)


def _trusted_keys(paths: Iterable[str]) -> list[bytes]:
    out = []
    for path in paths:
        try:
            out.append(Path(path).read_bytes())
        except OSError as e:
            raise APIError(codes.INVALID_BUNDLE, f"cannot read the trusted key {path}: {e.strerror}") from None
    return out


def _log_progress(done: int, total: int) -> None:
    log.debug("vulndb import", extra={"progress": {"done": done, "total": total}})


# -- overrides -----------------------------------------------------------------------------------


def override_json(r: Any) -> shapes.Override:
    return {"id": r.id, "vulnId": r.vuln_id, "scope": r.scope, "digest": r.digest, "component": r.component,
            "reason": r.reason, "actor": r.actor, "createdAt": iso(r.created_at)}


async def _authorize_scope(c: Caller, conn: AsyncConnection, scope: str, digest: str) -> str:
    """Check the caller may manage overrides of ``scope``; its kind for the audit record."""
    c.user()
    if scope == "":
        if digest:
            raise APIError(codes.INVALID_PARAMETER, "an override of one image names its repository as scope")
        c.admin()
        return "registry"
    if "/" in scope:
        namespace, name = _split(scope)
        row = await _open(c, conn, namespace, name, Action.ADMIN)
        if digest and (await conn.execute(select(manifests.c.id).where(
                manifests.c.repository_id == row.id, manifests.c.digest == digest))).first() is None:
            raise APIError(codes.NO_SUCH_TAG, f"no manifest {digest[:200]!r} in {scope}")
        return "repository"
    if digest:
        raise APIError(codes.INVALID_PARAMETER, "an override of one image names its repository as scope")
    if not await _may_admin_namespace(c, conn, scope):
        raise APIError(codes.FORBIDDEN, f"overrides of the namespace {scope} need admin access to it")
    return "namespace"


@dataclasses.dataclass(frozen=True)
class OverrideSpec:
    vuln_id: str
    scope: str
    reason: str
    digest: str = ""
    component: str = ""


async def create_override(c: Caller, spec: OverrideSpec) -> shapes.Override:
    """Hide a vulnerability (see ``results``); the images it touches are recounted."""
    vuln = normalise_vuln_id(spec.vuln_id)
    scope = spec.scope.strip().strip("/")
    if not vuln or not spec.reason.strip():
        raise APIError(codes.INVALID_PARAMETER, "vulnId and reason are required")
    async with c.engine.begin() as conn:
        kind = await _authorize_scope(c, conn, scope, spec.digest)
        row = (await conn.execute(insert(overrides).values(
            vuln_id=vuln, scope=scope, digest=spec.digest, component=spec.component.strip(),
            reason=spec.reason.strip(), actor=c.principal.name or "").returning(*overrides.c))).one()
        await _recount(conn, vuln, spec.digest)
    made = override_json(row)
    await c.changed("scan_override_create", kind, scope or "*", {k: v for k, v in made.items() if k != "createdAt"})
    return made


async def _recount(conn: AsyncConnection, vuln_id: str, digest: str) -> None:
    await recount(conn, await images_with_vuln(conn, vuln_id, digest))


async def _get_override(conn: AsyncConnection, override_id: int) -> Any:
    row = (await conn.execute(select(overrides).where(overrides.c.id == override_id))).first()
    if row is None:
        raise APIError(codes.NO_SUCH_OVERRIDE)
    return row


def override_id(raw: str) -> int:
    """An override id from its text; NO_SUCH_OVERRIDE if it cannot be one."""
    if not raw.isdigit() or len(raw) > 18:
        raise APIError(codes.NO_SUCH_OVERRIDE)
    return int(raw)


async def get_override(c: Caller, oid: int) -> shapes.Override:
    """An override: for callers who may read its repository (a namespace's: any user; the
    registry's: any user), as missing otherwise."""
    async with c.engine.connect() as conn:
        row = await _get_override(conn, oid)
        await _may_read_scope(c, conn, row.scope)
    return override_json(row)


async def _may_read_scope(c: Caller, conn: AsyncConnection, scope: str) -> None:
    c.user()
    if "/" in scope:
        namespace, name = _split(scope)
        try:
            await _open(c, conn, namespace, name, Action.PULL)
        except APIError:
            raise APIError(codes.NO_SUCH_OVERRIDE) from None


async def delete_override(c: Caller, oid: int) -> None:
    """Delete an override (the same right as creating it); the images it touched are recounted."""
    async with c.engine.begin() as conn:
        row = await _get_override(conn, oid)
        await _may_read_scope(c, conn, row.scope)
        kind = await _authorize_scope(c, conn, row.scope, row.digest)
        await conn.execute(delete(overrides).where(overrides.c.id == oid))
        await _recount(conn, row.vuln_id, row.digest)
    await c.changed("scan_override_delete", kind, row.scope or "*",
                    {"id": row.id, "vulnId": row.vuln_id, "digest": row.digest, "component": row.component})


async def list_overrides(c: Caller, repository: str | None, vuln_id: str | None) -> list[shapes.Override]:
    """The overrides that apply in ``repository`` (read access), or every override (site admins)."""
    q = select(overrides).order_by(overrides.c.id)
    async with c.engine.connect() as conn:
        if repository:
            namespace, name = _split(repository)
            row = await _open(c, conn, namespace, name, Action.PULL)
            q = q.where(or_(overrides.c.scope == "", overrides.c.scope == row.name, overrides.c.scope == namespace))
        else:
            c.admin()
        if vuln_id:
            q = q.where(overrides.c.vuln_id == normalise_vuln_id(vuln_id))
        return [override_json(r) for r in await conn.execute(q)]

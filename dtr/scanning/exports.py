"""An image's result exported: as CSV (one row per finding), as an SBOM (SPDX or CycloneDX), or
as an SBOM attached to the image in its repository as an OCI artifact.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import hashlib
import importlib.metadata
import io
import json
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import select

from dtr.api.errors import APIError, codes
from dtr.auth.access import Action
from dtr.registry.errors import RegistryError
from dtr.registry.manifests import OCI_EMPTY, OCI_MANIFEST
from dtr.scanning import sbom as sboms
from dtr.scanning import shapes
from dtr.scanning.access import Caller, open_repository
from dtr.scanning.reports import ImageReport, image_report
from dtr.scanning.results import manifests
from dtr.times import iso

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


@functools.cache
def dtr_version() -> str:
    try:
        return importlib.metadata.version("dtr")
    except importlib.metadata.PackageNotFoundError:
        return "0"


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
        await open_repository(c, conn, namespace, repo, Action.PUSH)
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


"""``/api/v0/imagescan``: scan results, summaries, CSV and SBOM exports, overrides, scans and
vulnerability database updates queued, the database's status and offline bundles, in DTR's names
and shapes (``shapes``). Each handler is a typed operation (``dtr.api.operations``) calling its use
case (``reports``, ``exports``, ``overrides``, ``control``) with the request's ``Caller``.

An image's result is CSV when the request accepts ``text/csv``. An offline bundle is a
``multipart/form-data`` upload (field ``upload``) to ``PUT /imagescan/scan/update?online=false``,
spooled to a file under the data directory (never held in memory) and imported from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiofiles
from aiohttp import BodyPartReader, web

from dtr.api.errors import APIError, codes
from dtr.api.operations import Paged, PageQuery, add_all, operation
from dtr.auth.api import principal
from dtr.jobs.service import JobService
from dtr.jobs.shapes import Job
from dtr.keys import AUTH, CONFIG, DATABASE, REGISTRY
from dtr.ops.proxies import forwarded_url
from dtr.scanning import access, control, exports, overrides, reports
from dtr.scanning import shapes as s

#: The largest offline bundle accepted (bytes).
MAX_BUNDLE = 16 << 30
_CHUNK = 1 << 20


def caller(request: web.Request) -> access.Caller:
    cfg = request.config_dict[CONFIG]
    engine = request.config_dict[DATABASE].engine
    jobs = JobService(engine, cfg.jobs.stop_timeout, cfg.jobs.worker_timeout)
    return access.Caller(engine, principal(request), request.remote or "", request.config_dict[AUTH], jobs,
                         cfg.scanning, cfg.data_path, request.config_dict[REGISTRY])


_REPO = (codes.NO_SUCH_REPOSITORY,)
_IMAGE = (codes.NO_SUCH_REPOSITORY, codes.NO_SUCH_TAG, codes.NOT_FOUND)


def _wants_csv(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "text/csv" in accept and "application/json" not in accept


async def _result(request: web.Request, namespace: str, repo: str, tag: str, query: s.ResultQuery,
                  os_: str | None = None, arch: str | None = None) -> s.ScanResult | web.StreamResponse:
    report = await reports.image_report(caller(request), namespace, repo, tag, os_, arch)
    if _wants_csv(request):
        name = f"{namespace}-{repo}-{tag}".replace(":", "_").replace('"', "")
        return web.Response(text=exports.result_csv(report), content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    return reports.result_json(report, query.detailed)


# -- results ------------------------------------------------------------------------------------


@operation(*_IMAGE, streams=("text/csv",))
async def get_scan_result(request: web.Request, namespace: str, repo: str, tag: str,
                          query: s.ResultQuery) -> s.ScanResult | web.StreamResponse:
    """An image's last scan: counts by band, status, and with ``detailed=true`` each layer's
    components and their vulnerabilities. CSV of the findings with ``Accept: text/csv``. A
    multi-platform tag: its linux/amd64 image (or its only one)."""
    return await _result(request, namespace, repo, tag, query)


@operation(*_IMAGE, streams=("text/csv",))
async def get_platform_scan_result(request: web.Request, namespace: str, repo: str, tag: str, os: str, arch: str,
                                   query: s.ResultQuery) -> s.ScanResult | web.StreamResponse:
    """The last scan of one platform's image of a multi-platform tag (as ``getScanResult``)."""
    return await _result(request, namespace, repo, tag, query, os, arch)


@operation(*_REPO)
async def repository_scan_summary(request: web.Request, namespace: str, repo: str,
                                  query: PageQuery) -> Paged[s.RepositoryScans]:
    """Each tag's image (each platform of a multi-platform tag) and its counts, by tag name."""
    body, nxt = await reports.repository_summary(caller(request), namespace, repo, query.page_start, query.page_size)
    return Paged(body, nxt)


@operation()
async def cve_scan_summary(request: web.Request, cve: str, query: PageQuery) -> Paged[s.FoundImages]:
    """The images (of repositories you may read) with this vulnerability, and the components it is
    found on (hidden by an override or not)."""
    body, nxt = await reports.cve_summary(caller(request), cve, query.page_start, query.page_size)
    return Paged(body, nxt)


@operation()
async def component_scan_summary(request: web.Request, component: str,
                                 query: s.ComponentQuery) -> Paged[s.FoundImages]:
    """The images (of repositories you may read) holding a component of this name (package,
    source package or Maven artifact id), of ``version`` if given."""
    body, nxt = await reports.component_summary(caller(request), component, query.version, query.page_start,
                                                query.page_size)
    return Paged(body, nxt)


@operation(codes.NOT_FOUND)
async def layer_scan_summary(request: web.Request, layerid: str, query: PageQuery) -> Paged[s.LayerSummary]:
    """What a layer holds and the images (of repositories you may read) built on it; the layer's
    digest, or its sha256 hex."""
    body, nxt = await reports.layer_summary(caller(request), layerid, query.page_start, query.page_size)
    return Paged(body, nxt)


@operation()
async def license_scan_summary(request: web.Request, license: str, query: PageQuery) -> Paged[s.FoundImages]:
    """The images (of repositories you may read) holding components whose declared license names
    this one (``MIT`` finds ``MIT OR Apache-2.0``)."""
    body, nxt = await reports.license_summary(caller(request), license, query.page_start, query.page_size)
    return Paged(body, nxt)


# -- SBOMs ----------------------------------------------------------------------------------------


def _registry(request: web.Request) -> str:
    url = forwarded_url(request, "") or request.config_dict[CONFIG].external_url
    return url.split("://", 1)[-1].rstrip("/")


@operation(*_IMAGE)
async def get_sbom(request: web.Request, namespace: str, repo: str, tag: str, query: s.SbomQuery) -> s.Document:
    """The image's SBOM: SPDX 2.3 JSON (``format=spdx``) or CycloneDX 1.6 JSON (``format=cyclonedx``,
    with its vulnerabilities; those an override hides as VEX ``not_affected``)."""
    return await exports.sbom(caller(request), namespace, repo, tag, query.format, _registry(request))


@operation(*_IMAGE)
async def get_platform_sbom(request: web.Request, namespace: str, repo: str, tag: str, os: str, arch: str,
                            query: s.SbomQuery) -> s.Document:
    """The SBOM of one platform's image of a multi-platform tag (as ``getSbom``)."""
    return await exports.sbom(caller(request), namespace, repo, tag, query.format, _registry(request), os, arch)


@operation(*_IMAGE, codes.FORBIDDEN, codes.CONFLICT, status=201)
async def attach_sbom(request: web.Request, namespace: str, repo: str, tag: str, query: s.SbomQuery) -> s.AttachedSbom:
    """Push the image's SBOM into its repository as an OCI artifact referring to the image
    (``subject``; ``artifactType`` application/spdx+json or application/vnd.cyclonedx+json), so
    referrers clients (``oras discover``) find it; read-write access."""
    return await exports.attach_sbom(caller(request), namespace, repo, tag, query.format, _registry(request))


@operation(*_IMAGE, codes.FORBIDDEN, codes.CONFLICT, status=201)
async def attach_platform_sbom(request: web.Request, namespace: str, repo: str, tag: str, os: str, arch: str,
                               query: s.SbomQuery) -> s.AttachedSbom:
    """Push the SBOM of one platform's image of a multi-platform tag as an artifact referring to it."""
    return await exports.attach_sbom(caller(request), namespace, repo, tag, query.format, _registry(request),
                                     os, arch)


# -- scans and the database -----------------------------------------------------------------------


@operation(*_IMAGE, codes.FORBIDDEN, codes.UNSUPPORTED, codes.INVALID_OPERATION, status=202)
async def scan_image(request: web.Request, namespace: str, repo: str, tag: str) -> s.ScanJobs:
    """Queue a scan of the tag's image (each platform of a multi-platform tag); read-write access."""
    return await control.queue_scan(caller(request), namespace, repo, tag)


@operation(*_IMAGE, codes.FORBIDDEN, codes.UNSUPPORTED, codes.INVALID_OPERATION, status=202)
async def scan_platform_image(request: web.Request, namespace: str, repo: str, tag: str, os: str,
                              arch: str) -> s.ScanJobs:
    """Queue a scan of one platform's image of a multi-platform tag; read-write access."""
    return await control.queue_scan(caller(request), namespace, repo, tag, os, arch)


@operation(codes.FORBIDDEN)
async def scanner_status(request: web.Request) -> s.ScannerStatus:
    """The vulnerability database: its version, last update, and whether (and why) the last update
    failed, per feed (site admins)."""
    return await control.status(caller(request))


@operation(codes.FORBIDDEN, status=202)
async def update_vuln_db(request: web.Request) -> Job:
    """Queue the online update of the vulnerability database (site admins)."""
    job: Job = await control.queue_update(caller(request))
    return job


@operation(codes.FORBIDDEN, codes.INVALID_BUNDLE, codes.BAD_REQUEST, codes.PAYLOAD_TOO_LARGE,
           codes.UNSUPPORTED_MEDIA_TYPE)
async def upload_vuln_db(request: web.Request, query: s.UpdateQuery) -> s.ScannerStatus:
    """Import an offline vulnerability database bundle (``dtr vulndb export``): ``online=false`` and
    the bundle as the ``multipart/form-data`` field ``upload`` (site admins). A bundle whose
    signature or checksums fail is refused (INVALID_BUNDLE, with the reason) and changes nothing.
    For an online update, POST this path."""
    who = caller(request)
    who.admin()
    if query.online:
        raise APIError(codes.INVALID_PARAMETER, "PUT imports an offline bundle (online=false); POST "
                                                "/api/v0/imagescan/scan/update queues an online update")
    async with spooled_upload(request, who.data_path) as path:
        return await control.import_upload(who, path)


@contextlib.asynccontextmanager
async def spooled_upload(request: web.Request, data_path: Path) -> AsyncIterator[Path]:
    """The multipart field ``upload`` written to a temporary file (removed after)."""
    if not request.content_type.startswith("multipart/"):
        raise APIError(codes.UNSUPPORTED_MEDIA_TYPE, "send the bundle as multipart/form-data, in the field upload")
    path = await asyncio.to_thread(_spool_file, data_path / "scanning" / "uploads")
    try:
        async with aiofiles.open(path, "wb") as out:
            if not await _copy_field(request, out):
                raise APIError(codes.BAD_REQUEST, "the multipart body has no field named upload")
        yield path
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)


def _spool_file(where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="bundle-", dir=where)
    os.close(fd)
    return Path(name)


async def _copy_field(request: web.Request, out: Any) -> bool:
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name != "upload":
                continue
            size = 0
            while chunk := await part.read_chunk(_CHUNK):
                size += len(chunk)
                if size > MAX_BUNDLE:
                    raise APIError(codes.PAYLOAD_TOO_LARGE, f"the bundle is larger than {MAX_BUNDLE} bytes")
                await out.write(chunk)
            return True
    except (ValueError, AssertionError, RuntimeError) as e:  # aiohttp's words for a malformed multipart body
        raise APIError(codes.BAD_REQUEST, f"the multipart body is malformed: {e}") from None
    return False


# -- overrides -----------------------------------------------------------------------------------

_OVERRIDE = (codes.FORBIDDEN, codes.NO_SUCH_OVERRIDE)


@operation(codes.FORBIDDEN, codes.NO_SUCH_REPOSITORY)
async def list_overrides(request: web.Request, query: s.OverridesQuery) -> s.OverrideList:
    """The overrides that apply in ``repository`` (read access), or every override (site admins);
    ``vulnId`` narrows them to one vulnerability."""
    return {"overrides": await overrides.list_overrides(caller(request), query.repository, query.vuln_id)}


@operation(codes.FORBIDDEN, codes.NO_SUCH_REPOSITORY, codes.NO_SUCH_TAG, status=201)
async def create_override(request: web.Request, body: s.NewOverride) -> s.Override:
    """Hide a vulnerability, with a reason: for one image (``digest``; ``scope`` its repository), a
    repository or a namespace (``scope``; admin access to it), or the whole registry (``scope``
    '': site admins); ``component`` limits it to one package. Hidden findings are counted apart."""
    spec = overrides.OverrideSpec(body.vuln_id, body.scope, body.reason, body.digest, body.component)
    return await overrides.create_override(caller(request), spec)


@operation(*_OVERRIDE)
async def get_override(request: web.Request, id: str) -> s.Override:
    """An override."""
    return await overrides.get_override(caller(request), overrides.override_id(id))


@operation(*_OVERRIDE, codes.NO_SUCH_REPOSITORY)
async def delete_override(request: web.Request, id: str) -> None:
    """Delete an override (the right to create it is needed); what it hid counts again."""
    await overrides.delete_override(caller(request), overrides.override_id(id))


def register(app: web.Application) -> None:
    """The scanner's routes of /api/v0 (authentication is the API's: ``dtr.api.app.create_api_app``)."""
    image = "/{namespace}/{repo}/{tag}"
    add_all(app.router, (
        ("GET", "/imagescan/status", scanner_status),
        ("POST", "/imagescan/scan/update", update_vuln_db),
        ("PUT", "/imagescan/scan/update", upload_vuln_db),
        ("POST", "/imagescan/scan" + image, scan_image),
        ("POST", "/imagescan/scan" + image + "/{os}/{arch}", scan_platform_image),
        ("GET", "/imagescan/repositories" + image, get_scan_result),
        ("GET", "/imagescan/repositories" + image + "/{os}/{arch}", get_platform_scan_result),
        ("GET", "/imagescan/scansummary/repositories/{namespace}/{repo}", repository_scan_summary),
        ("GET", "/imagescan/scansummary/cve/{cve}", cve_scan_summary),
        ("GET", "/imagescan/scansummary/component/{component}", component_scan_summary),
        ("GET", "/imagescan/scansummary/layer/{layerid}", layer_scan_summary),
        ("GET", "/imagescan/scansummary/license/{license}", license_scan_summary),
        ("GET", "/imagescan/sbom" + image, get_sbom),
        ("GET", "/imagescan/sbom" + image + "/{os}/{arch}", get_platform_sbom),
        ("POST", "/imagescan/sbom" + image, attach_sbom),
        ("POST", "/imagescan/sbom" + image + "/{os}/{arch}", attach_platform_sbom),
        ("GET", "/imagescan/overrides", list_overrides),
        ("POST", "/imagescan/overrides", create_override),
        ("GET", "/imagescan/overrides/{id}", get_override),
        ("DELETE", "/imagescan/overrides/{id}", delete_override),
    ))

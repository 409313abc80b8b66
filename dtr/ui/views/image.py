"""One image, by tag or digest: for each platform (an index's entries, or the image itself) the
layers in order with the Dockerfile instruction behind each, the config (labels, environment,
entrypoint), the components each layer adds and their vulnerabilities (hidden ones with the
reason; repository admins may hide one), the signatures and other artifacts referring to it, and
its SBOM for download.

Data comes from the use cases of ``/api/v0``: ``images.manifests.get_manifest``, the scanner's
``reports.image_report`` and ``exports.sbom``, ``signatures.trustedkeys.signatures`` and
``scanning.overrides.create_override``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from aiohttp import web

from dtr.api.errors import APIError, codes
from dtr.images import manifests
from dtr.images.shapes import ImageDetail, ImagePlatform
from dtr.keys import CONFIG
from dtr.ops.proxies import forwarded_url
from dtr.registry.names import DIGEST_RE
from dtr.scanning import exports, overrides, reports
from dtr.signatures import trustedkeys
from dtr.ui.render import render
from dtr.ui.views.common import (
    Form,
    abilities,
    redirect,
    refused,
    repo_caller,
    repo_url,
    scan_caller,
    signed_in,
    with_query,
)

#: Signature types (``dtr.signatures.kinds``) that sign; the others are artifacts referring to the image.
_SIGNING = {"cosign", "sigstore-bundle", "notation"}
_SBOM_FORMATS = ("spdx", "cyclonedx")


def _names(request: web.Request) -> tuple[str, str, str]:
    return request.match_info["ns"], request.match_info["repo"], request.match_info["ref"]


def image_url(full_name: str, reference: str, tail: str = "") -> str:
    return repo_url(full_name, f"/tags/{quote(reference, safe=':')}{tail}")


async def _scan(request: web.Request, ns: str, name: str, digest: str) -> dict[str, Any] | None:
    """The image's scan result with each layer's components, None when it has none to show."""
    try:
        report = await reports.image_report(scan_caller(request), ns, name, digest)
    except APIError:
        return None
    return dict(reports.result_json(report, detailed=True))


def _platform_label(p: ImagePlatform) -> str:
    return "/".join(x for x in (p["os"], p["architecture"], p["variant"]) if x) or "unknown platform"


async def _section(request: web.Request, ns: str, name: str, digest: str, label: str,
                   image: ImageDetail | None) -> dict[str, Any]:
    """One platform's image: its config and layers, each layer with the components it adds."""
    scan = await _scan(request, ns, name, digest) if image is not None else None
    by_layer = {d["digest"]: d["components"] for d in (scan or {}).get("layer_details", [])}
    lines = image["layers"] if image is not None else []
    layers = [{**line, "components": by_layer.get(line["digest"] or "", [])} for line in lines]
    return {"digest": digest, "label": label, "image": image, "layers": layers, "scan": scan,
            "scanned": scan is not None and scan["last_scan_status"] == 6}


async def _context(request: web.Request, hide: dict[str, Any] | None = None) -> dict[str, Any]:
    ns, name, ref = _names(request)
    detail = await manifests.get_manifest(repo_caller(request), ns, name, ref)
    if detail["manifests"] is None:
        sections = [await _section(request, ns, name, detail["digest"], "", detail["image"])]
    else:
        sections = [await _section(request, ns, name, m["digest"], _platform_label(m["platform"]), m["image"])
                    for m in detail["manifests"]]
    signed = await trustedkeys.signatures(repo_caller(request), ns, name, ref)
    full = detail["repository"]
    return {"title": f"{full}:{ref}" if not DIGEST_RE.fullmatch(ref) else f"{full}@{ref}", "repo_name": full,
            "reference": ref, "is_tag": not DIGEST_RE.fullmatch(ref), "detail": detail, "sections": sections,
            "signatures": [s for s in signed["signatures"] if s["type"] in _SIGNING],
            "artifacts": [s for s in signed["signatures"] if s["type"] not in _SIGNING],
            "notary": signed["notary"], "in_notary": signed["inNotary"], "trusted": signed["trusted"],
            "can": await abilities(request, full), "base": image_url(full, ref),
            "hide": hide or {"key": None, "form": {}, "errors": {}},
            "request_hidden": request.query.get("hidden", "")[:100]}


@signed_in
async def page(request: web.Request) -> web.StreamResponse:
    try:
        context = await _context(request)
    except APIError as e:
        return refused(request, e)
    return render(request, "image.html", context)


@signed_in
async def sbom(request: web.Request) -> web.StreamResponse:
    """The SBOM of one platform's image (``digest``, default the reference's) as a download."""
    ns, name, ref = _names(request)
    fmt = request.query.get("format", "spdx")
    digest = request.query.get("digest", "")[:200] or ref
    if fmt not in _SBOM_FORMATS or not (digest == ref or DIGEST_RE.fullmatch(digest)):
        return refused(request, APIError(codes.INVALID_PARAMETER, "format is spdx or cyclonedx; digest a digest"))
    registry = (forwarded_url(request, "") or request.config_dict[CONFIG].external_url).split("://", 1)[-1]
    try:
        doc = await exports.sbom(scan_caller(request), ns, name, digest, fmt, registry.rstrip("/"))
    except APIError as e:
        return refused(request, e)
    filename = f"{ns}-{name}-{digest.replace(':', '_')}.{fmt}.json"
    return web.Response(body=json.dumps(doc, indent=1).encode(), content_type="application/json",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@signed_in
async def hide(request: web.Request) -> web.StreamResponse:
    """Hide a finding with a reason, in this image or the whole repository (repository admins:
    the use case decides). A missing reason is shown beside its field, what was typed kept."""
    ns, name, ref = _names(request)
    form = await Form.read(request, "vuln_id", "component", "digest", "scope", "reason")
    reason = form.text("reason", "Reason", required=True, max_length=1000)
    scope = form.choice("scope", "Where", ("image", "repository"))
    digest = form.values["digest"]
    if not DIGEST_RE.fullmatch(digest):
        return refused(request, APIError(codes.INVALID_PARAMETER, "the finding's image digest is missing"))
    if not form.errors:
        spec = overrides.OverrideSpec(form.values["vuln_id"], f"{ns}/{name}", reason,
                                      digest if scope == "image" else "", form.values["component"])
        try:
            await overrides.create_override(scan_caller(request), spec)
        except APIError as e:
            if e.code != codes.INVALID_PARAMETER:
                return refused(request, e)
            form.errors["reason"] = e.message
        else:
            return redirect(with_query(image_url(f"{ns}/{name}", ref), hidden=form.values["vuln_id"][:100]))
    try:
        context = await _context(request, {"key": (digest, form.values["component"], form.values["vuln_id"]),
                                           **form.context()})
    except APIError as e:
        return refused(request, e)
    return render(request, "image.html", context, 400)


def register(app: web.Application) -> None:
    app.router.add_get("/repositories/{ns}/{repo}/tags/{ref}", page)
    app.router.add_get("/repositories/{ns}/{repo}/tags/{ref}/sbom", sbom)
    app.router.add_post("/repositories/{ns}/{repo}/tags/{ref}/hide", hide)

"""SBOMs of a scanned image: SPDX 2.3 JSON and CycloneDX 1.6 JSON, made from its components
(``results.components``). Pure functions: no database, no I/O.

Both name each component's package URL and license (an SPDX expression when it is one; free text
as an SPDX ``LicenseRef`` / a CycloneDX license name otherwise) and the layer that introduced it
(SPDX: the package's ``comment``; CycloneDX: ``dtr:layer:digest`` and ``dtr:layer:index``
properties). CycloneDX also lists the image's findings as ``vulnerabilities``; one an override
hides is VEX: ``analysis.state`` ``not_affected`` with the override's reason as ``detail``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

from dtr.scanning import licenses, purl
from dtr.scanning.results import Component, Vuln
from dtr.scanning.types import Distribution

FORMATS = ("spdx", "cyclonedx")
SPDX_MEDIA_TYPE = "application/spdx+json"
CYCLONEDX_MEDIA_TYPE = "application/vnd.cyclonedx+json"


@dataclasses.dataclass(frozen=True)
class Subject:
    """The image an SBOM describes."""

    repository: str
    reference: str
    digest: str
    os: str
    architecture: str
    distribution: Distribution | None
    #: The registry's host as clients name it (``registry.example.com``), for the image's purl.
    registry: str
    created: dt.datetime
    tool_version: str

    @property
    def name(self) -> str:
        sep = "@" if self.reference.startswith("sha256:") else ":"
        return f"{self.repository}{sep}{self.reference}"

    @property
    def purl(self) -> str:
        tag = "" if self.reference == self.digest else self.reference
        return purl.image_url(self.repository, self.digest, registry=self.registry, tag=tag, arch=self.architecture)


def _time(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _layer_note(c: Component) -> str:
    where = f"; recorded in {c.location}" if c.location else ""
    return f"introduced by layer {c.layer_digest} (index {c.layer_index}){where}"


# -- SPDX 2.3 ------------------------------------------------------------------------------------


def spdx(subject: Subject, found: list[Component]) -> dict[str, Any]:
    """The SPDX 2.3 JSON document of the image: the image package (``CONTAINER``), its operating
    system (``OPERATING_SYSTEM``) and a package per component, each contained in the image."""
    tool = f"Tool: dtr-{subject.tool_version}"
    image_id = "SPDXRef-Image"
    packages: list[dict[str, Any]] = [{
        "SPDXID": image_id, "name": subject.repository, "versionInfo": subject.digest,
        "downloadLocation": "NOASSERTION", "filesAnalyzed": False, "primaryPackagePurpose": "CONTAINER",
        "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION", "copyrightText": "NOASSERTION",
        "checksums": [{"algorithm": "SHA256", "checksumValue": subject.digest.removeprefix("sha256:")}]
        if subject.digest.startswith("sha256:") else [],
        "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                          "referenceLocator": subject.purl}],
    }]
    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": image_id}]
    d = subject.distribution
    if d is not None:
        packages.append({"SPDXID": "SPDXRef-OperatingSystem", "name": d.id, "versionInfo": d.version_id or
                         "NOASSERTION", "downloadLocation": "NOASSERTION", "filesAnalyzed": False,
                         "primaryPackagePurpose": "OPERATING_SYSTEM", "licenseConcluded": "NOASSERTION",
                         "licenseDeclared": "NOASSERTION", "copyrightText": "NOASSERTION",
                         **({"description": d.pretty_name} if d.pretty_name else {})})
        relationships.append({"spdxElementId": image_id, "relationshipType": "CONTAINS",
                              "relatedSpdxElement": "SPDXRef-OperatingSystem"})
    extracted: dict[str, str] = {}
    for c in found:
        spdx_id = f"SPDXRef-Package-{c.ecosystem}-{c.package_id}"
        package: dict[str, Any] = {
            "SPDXID": spdx_id, "name": c.name, "versionInfo": c.version, "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False, "licenseConcluded": "NOASSERTION",
            "licenseDeclared": _spdx_license(c.license, extracted), "copyrightText": "NOASSERTION",
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": c.purl}],
            "comment": _layer_note(c),
        }
        if c.source_name and (c.source_name, c.source_version) != (c.name, c.version):
            package["sourceInfo"] = f"built from source package {c.source_name} {c.source_version or c.version}"
        packages.append(package)
        relationships.append({"spdxElementId": image_id, "relationshipType": "CONTAINS",
                              "relatedSpdxElement": spdx_id})
    doc: dict[str, Any] = {
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT", "name": subject.name,
        "documentNamespace": f"https://{subject.registry or 'dtr.invalid'}/spdx/{subject.repository}/"
                             f"{subject.digest.replace(':', '-')}/{uuid.uuid4()}",
        "creationInfo": {"created": _time(subject.created), "creators": [tool],
                         "comment": f"{subject.os}/{subject.architecture} image {subject.digest}".strip()},
        "packages": packages, "relationships": relationships,
    }
    if extracted:
        doc["hasExtractedLicensingInfos"] = [{"licenseId": ref, "name": text[:200], "extractedText": text}
                                             for text, ref in extracted.items()]
    return doc


def _spdx_license(declared: str, extracted: dict[str, str]) -> str:
    """The SPDX expression of ``declared``, or a ``LicenseRef`` to its text (added to ``extracted``)."""
    lic = licenses.parse(declared)
    if lic.expression:
        return lic.expression
    if not lic.declared:
        return "NOASSERTION"
    return extracted.setdefault(lic.declared, f"LicenseRef-{len(extracted) + 1}")


# -- CycloneDX 1.6 ---------------------------------------------------------------------------------

#: CycloneDX's severities for the feeds' words.
_SEVERITIES = {"critical": "critical", "high": "high", "important": "high", "medium": "medium",
               "moderate": "medium", "low": "low", "negligible": "info", "unimportant": "info", "none": "none"}
#: DTR's bands, when a finding's source named no severity.
_BAND_SEVERITIES = {"critical": "high", "major": "medium", "minor": "low"}


def cyclonedx(subject: Subject, found: list[Component]) -> dict[str, Any]:
    """The CycloneDX 1.6 JSON BOM of the image: the image as the ``metadata.component``
    (``container``), its operating system and a component per package, and its findings (VEX for
    the hidden ones)."""
    image_ref = "image"
    comps: list[dict[str, Any]] = []
    d = subject.distribution
    if d is not None:
        comps.append({"type": "operating-system", "bom-ref": "os", "name": d.id, "version": d.version_id,
                      **({"description": d.pretty_name} if d.pretty_name else {})})
    vulns: list[dict[str, Any]] = []
    for c in found:
        ref = f"pkg-{c.package_id}"
        comps.append(_component(c, ref))
        vulns += [_vulnerability(v, c, ref, f"vuln-{len(vulns) + i + 1}") for i, v in enumerate(c.vulns)]
    tool = {"type": "application", "name": "dtr", "version": subject.tool_version}
    image = {"type": "container", "bom-ref": image_ref, "name": subject.repository, "version": subject.reference,
             "purl": subject.purl, "properties": [{"name": "dtr:image:digest", "value": subject.digest}] + (
                 [{"name": "dtr:image:platform", "value": f"{subject.os}/{subject.architecture}"}]
                 if subject.os else [])}
    if subject.digest.startswith("sha256:"):
        image["hashes"] = [{"alg": "SHA-256", "content": subject.digest.removeprefix("sha256:")}]
    bom: dict[str, Any] = {
        "bomFormat": "CycloneDX", "specVersion": "1.6", "serialNumber": f"urn:uuid:{uuid.uuid4()}", "version": 1,
        "metadata": {"timestamp": _time(subject.created), "tools": {"components": [tool]}, "component": image},
        "components": comps,
        "dependencies": [{"ref": image_ref, "dependsOn": [c["bom-ref"] for c in comps]}],
    }
    if vulns:
        bom["vulnerabilities"] = vulns
    return bom


def _component(c: Component, ref: str) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "library", "bom-ref": ref, "name": c.name, "version": c.version, "purl": c.purl}
    if c.ecosystem == "maven" and ":" in c.name:
        out["group"], out["name"] = c.name.split(":", 1)
    elif c.ecosystem == "npm" and c.name.startswith("@") and "/" in c.name:
        out["group"], out["name"] = c.name.split("/", 1)
    lic = licenses.parse(c.license)
    if lic.expression:
        out["licenses"] = [{"expression": lic.expression}]
    elif lic.declared:
        out["licenses"] = [{"license": {"name": lic.declared}}]
    props = [("dtr:package:ecosystem", c.ecosystem), ("dtr:layer:digest", c.layer_digest),
             ("dtr:layer:index", str(c.layer_index)), ("dtr:package:location", c.location),
             ("dtr:package:arch", c.arch), ("dtr:package:source-name", c.source_name),
             ("dtr:package:source-version", c.source_version)]
    out["properties"] = [{"name": k, "value": v} for k, v in props if v]
    return out


def _vulnerability(v: Vuln, c: Component, component_ref: str, ref: str) -> dict[str, Any]:
    severity = _SEVERITIES.get(v.severity.lower()) or _BAND_SEVERITIES.get(v.band, "unknown")
    rating: dict[str, Any] = {"severity": severity, "method": _method(v.cvss_vector) if v.cvss_score is not None
                              else "other"}
    if v.cvss_score is not None:
        rating["score"] = v.cvss_score
    if v.cvss_vector and v.cvss_score is not None:
        rating["vector"] = v.cvss_vector
    out: dict[str, Any] = {"bom-ref": ref, "id": v.id, "ratings": [rating], "affects": [{"ref": component_ref}]}
    if v.summary:
        out["description"] = v.summary
    if v.aliases:
        out["references"] = [{"id": a, "source": {"name": a.split("-", 1)[0]}} for a in v.aliases if a != v.id]
    if v.fixed_version:
        out["recommendation"] = f"upgrade {c.name} to {v.fixed_version}"
    if v.override is not None:
        out["analysis"] = {"state": "not_affected", "detail": v.override.reason}
    elif v.state == "will_not_fix":
        out["analysis"] = {"response": ["will_not_fix"], "detail": "the vendor will not fix this"}
    props = [("dtr:fix:state", v.state), ("dtr:band", v.band)]
    out["properties"] = [{"name": k, "value": val} for k, val in props if val]
    return out


def _method(vector: str) -> str:
    if vector.startswith("CVSS:4.0"):
        return "CVSSv4"
    if vector.startswith("CVSS:3.1"):
        return "CVSSv31"
    if vector.startswith("CVSS:3"):
        return "CVSSv3"
    return "CVSSv2" if vector else "other"

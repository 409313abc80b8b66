"""The JSON of ``/api/v0/imagescan``: DTR's names and shapes where DTR had them (snake_case scan
results: ``critical``, ``major``, ``minor``, ``last_scan_status``, ``check_completed_at``,
``layer_details``...), dtr's additions beside them (``hidden``, per component ``ecosystem`` and
``purl``, per vulnerability ``fix_state``, ``fixed_version``, ``band`` and the override hiding
it); overrides and the database status in camelCase as the rest of /api/v0. Request bodies and
queries as ``dtr.api.operations`` models. The OpenAPI document is made from these.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import Field
from typing_extensions import TypedDict

from dtr.api.operations import Body, PageQuery, Query
from dtr.jobs.shapes import Job

# -- answers -------------------------------------------------------------------------------------


class License(TypedDict):
    """As the package declares it: ``type`` ``spdx`` (``name`` is a normalised SPDX expression),
    ``text`` (free text) or ``none``; ``url`` the SPDX page of a single license."""

    name: str
    type: str
    url: str


class VulnInfo(TypedDict):
    id: str
    #: The CVE this is (its id, or its first CVE alias); '' if none.
    cve: str
    cvss: float | None
    summary: str


class VulnFinding(TypedDict):
    vuln: VulnInfo
    #: ``fixed``, ``not_fixed``, ``will_not_fix``.
    fix_state: str
    fixed_version: str
    #: DTR's band: critical (CVSS >= 7), major (4 to < 7), minor (< 4).
    band: str
    #: The vendor's or advisory's own severity.
    severity: str
    cvss_vector: str
    aliases: list[str]
    #: Hidden by an override (counted under ``hidden``, not in its band).
    hidden: bool
    override_id: int | None
    override_reason: str


class ScanComponent(TypedDict):
    component: str
    version: str
    fullpath: list[str]
    license: License
    vulns: list[VulnFinding]
    ecosystem: str
    purl: str
    source_name: str
    source_version: str


class LayerDetail(TypedDict):
    #: The layer blob's digest without its algorithm (DTR's field); ``digest`` with it.
    sha256sum: str
    digest: str
    components: list[ScanComponent]


class ScanSummary(TypedDict):
    """One image's (one platform's) last scan: counts of the findings no override hides, by band,
    and of the hidden ones."""

    namespace: str
    reponame: str
    tag: str
    #: The platform image's manifest digest; ``index_digest`` the index the tag names, if any.
    digest: str
    index_digest: str | None
    os: str
    architecture: str
    critical: int
    major: int
    minor: int
    hidden: int
    #: DTR's codes: 0 failed, 1 unscanned, 2 scanning, 3 pending, 4 scanned, 5 checking, 6 completed.
    last_scan_status: int
    check_completed_at: str | None
    scanned_at: str | None
    should_rescan: bool
    has_foreign_layers: bool
    error: str | None
    distribution: str


class ScanResult(ScanSummary):
    """With ``detailed=true``: the components each layer introduced, and their findings."""

    layer_details: NotRequired[list[LayerDetail]]


class RepositoryScans(TypedDict):
    """Each tag's image (each platform of a multi-platform tag) and its counts."""

    namespace: str
    reponame: str
    images: list[ScanSummary]


class FoundComponent(TypedDict):
    component: str
    version: str
    ecosystem: str
    purl: str
    layer: str
    license: str
    #: Filled for a search by vulnerability: the finding on this component.
    fix_state: NotRequired[str]
    fixed_version: NotRequired[str]
    band: NotRequired[str]
    hidden: NotRequired[bool]


class FoundImage(TypedDict):
    namespace: str
    reponame: str
    digest: str
    tags: list[str]
    os: str
    architecture: str
    last_scan_status: int
    components: list[FoundComponent]


class FoundImages(TypedDict):
    images: list[FoundImage]


class LayerPackage(TypedDict):
    component: str
    version: str
    ecosystem: str
    license: str
    fullpath: list[str]


class LayerSummary(TypedDict):
    """What a layer blob holds, as indexed, and the images (of repositories the caller may read)
    built on it."""

    digest: str
    status: str
    error: str | None
    indexed_at: str | None
    distribution: str
    files: int
    size: int
    components: list[LayerPackage]
    images: list[FoundImage]


class Feed(TypedDict):
    name: str
    url: str
    version: int
    records: int
    updatedAt: str | None
    checkedAt: str | None
    lastError: str | None
    lastErrorAt: str | None


class ScannerStatus(TypedDict):
    """The vulnerability database: ``dbVersion`` grows with every feed import."""

    enabled: bool
    dbVersion: int
    lastDBUpdate: str | None
    lastDBUpdateFailed: bool
    lastDBUpdateError: str | None
    feeds: list[Feed]


class ScanJobs(TypedDict):
    """The scan jobs queued."""

    jobs: list[Job]


class AttachedSbom(TypedDict):
    """An SBOM pushed as an OCI artifact referring to its image (``subject``): the artifact
    manifest's ``digest``, its ``artifactType``, and the SBOM's size in bytes."""

    digest: str
    artifactType: str
    subject: str
    size: int


class Override(TypedDict):
    id: int
    vulnId: str
    #: ``namespace/repository``, ``namespace`` or '' (the whole registry).
    scope: str
    digest: str
    component: str
    reason: str
    actor: str
    createdAt: str | None


class OverrideList(TypedDict):
    overrides: list[Override]


#: An SBOM document (SPDX 2.3 or CycloneDX 1.6 JSON).
Document = dict[str, Any]

# -- requests ------------------------------------------------------------------------------------


class NewOverride(Body):
    """Hide ``vulnId`` for one image (``digest``, with ``scope`` its repository) or for every image
    of a repository or namespace (``scope``; '' for the whole registry: site admins), optionally
    only on one ``component`` (a package or source package name)."""

    vuln_id: Annotated[str, Field(min_length=1, max_length=128)]
    scope: Annotated[str, Field(max_length=255)]
    digest: Annotated[str, Field(max_length=200)] = ""
    component: Annotated[str, Field(max_length=255)] = ""
    reason: Annotated[str, Field(min_length=1, max_length=4000)]


# -- queries -------------------------------------------------------------------------------------


class ResultQuery(Query):
    detailed: bool = Field(False, description="with the components of each layer and their findings")


class ComponentQuery(PageQuery):
    version: str | None = Field(None, max_length=255, description="only this version (or versions it is a "
                                "prefix of at a dot: 2.14 finds 2.14.1)")


class OverridesQuery(Query):
    repository: str | None = Field(None, max_length=255, description="the overrides that apply in this "
                                   "repository (namespace/name); without it, every override (site admins)")
    vuln_id: str | None = Field(None, max_length=128, description="only overrides of this vulnerability")


class SbomQuery(Query):
    format: Literal["spdx", "cyclonedx"] = Field("spdx", description="SPDX 2.3 JSON or CycloneDX 1.6 JSON")


class UpdateQuery(Query):
    online: bool = Field(True, description="false: import the offline bundle in the multipart field upload")

"""The JSON shapes of ``dtr.images`` (answers of ``/api/v0`` and what the web UI renders)."""

from __future__ import annotations

from typing_extensions import TypedDict

from dtr.images.history import LayerLine


class ImagePlatform(TypedDict):
    """An image's platform; ``digest`` is the platform image's manifest (an index's child, or
    the tag's own manifest)."""

    digest: str
    os: str
    architecture: str
    variant: str


class TagScanSummary(TypedDict):
    """The latest scan's counts by band (overrides of the repository applied); for an index, the
    sum over its scanned platform images. ``status``: DTR's last_scan_status of the image (for an
    index, the lowest of its images': 0 failed .. 6 completed)."""

    critical: int
    major: int
    minor: int
    status: int
    scannedAt: str | None


class Tag(TypedDict):
    name: str
    digest: str
    mediaType: str
    #: Bytes a pull of every platform fetches: the manifest and each distinct blob it needs.
    size: int
    #: Who pushed the tag last ('' when anonymous or unknown).
    author: str
    createdAt: str
    updatedAt: str
    #: When the tag was last pulled (recorded every few seconds), None if never since recording began.
    lastPulled: str | None
    platforms: list[ImagePlatform]
    #: A trusted signature: in Notary at this digest, or an OCI signature verified by a trusted key.
    signed: bool
    inNotary: bool
    ociSigned: bool
    #: None when no image of the tag was scanned.
    scanSummary: TagScanSummary | None


class TagList(TypedDict):
    tags: list[Tag]


class ImageConfig(TypedDict):
    """What the image config says of how the image runs (absent fields: '' , [] or None)."""

    digest: str
    mediaType: str
    size: int
    os: str
    architecture: str
    variant: str
    created: str | None
    author: str
    labels: dict[str, str]
    env: list[str]
    entrypoint: list[str] | None
    cmd: list[str] | None
    workingDir: str
    user: str
    exposedPorts: list[str]


class ImageDetail(TypedDict):
    """One image: its config (None for an artifact whose config is not an image config) and its
    Dockerfile, instruction by instruction with the layer each made."""

    config: ImageConfig | None
    layers: list[LayerLine]


class ManifestChild(TypedDict):
    """An index's entry: its platform and, for an image stored here, its detail (None otherwise,
    or beyond the first ``MAX_CHILDREN`` entries: ask for it by digest)."""

    digest: str
    mediaType: str
    size: int
    platform: ImagePlatform
    image: ImageDetail | None


class ManifestDetail(TypedDict):
    """A manifest by tag or digest: an image (``image``) or an index (``manifests``)."""

    repository: str
    digest: str
    mediaType: str
    size: int
    image: ImageDetail | None
    manifests: list[ManifestChild] | None


class RepositoryResult(TypedDict):
    id: int
    namespace: str
    name: str


class NamespaceResult(TypedDict):
    name: str
    isOrg: bool


class AccountResult(TypedDict):
    id: int
    name: str
    isOrg: bool


class SearchResults(TypedDict):
    """``accountResults`` is empty but for site admins."""

    repositoryResults: list[RepositoryResult]
    namespaceResults: list[NamespaceResult]
    accountResults: list[AccountResult]

"""The JSON of the trusted keys and image signatures routes of ``/api/v0`` (camelCase, as the
rest of /api/v0); the OpenAPI document is made from these."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from typing_extensions import TypedDict

from dtr.api.operations import Body

KEY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


class TrustedKey(TypedDict):
    id: int
    #: The namespace (``ns``) or repository (``ns/repo``) whose images the key may sign.
    scope: str
    name: str
    #: ``public-key`` or ``certificate``.
    kind: str
    #: Lowercase hex SHA-256 of the key's DER SubjectPublicKeyInfo.
    fingerprint: str
    #: The PEM public key or certificate as registered.
    pem: str
    createdBy: str
    createdAt: str


class TrustedKeyList(TypedDict):
    trustedKeys: list[TrustedKey]


class NewTrustedKey(Body):
    """A public key or certificate (one PEM block) trusted to sign the scope's images."""

    name: Annotated[str, Field(min_length=1, max_length=100, pattern=KEY_NAME_PATTERN)]
    pem: Annotated[str, Field(min_length=1, max_length=65536, description="PEM: PUBLIC KEY or CERTIFICATE")]


class Signature(TypedDict):
    #: ``cosign``, ``sigstore-bundle``, ``notation``, ``attestation``, ``sbom`` or ``artifact``.
    type: str
    #: The digest of the signature's (artifact's) manifest.
    digest: str
    artifactType: str | None
    #: ``referrers`` (its ``subject`` is the image) or ``tag <cosign tag>``.
    foundBy: str
    #: Who signed: ``key sha256:<fingerprint>`` or the certificate's SANs and issuer; '' if unknown.
    identity: str
    verified: bool
    #: The name of the trusted key the signature verifies with (when ``verified``).
    trustedKey: str | None
    #: Why it is not verified.
    reason: str | None
    #: The layer of a manifest holding several signatures (cosign).
    layer: int | None


class NotarySigner(TypedDict):
    #: The GUN (registry host and repository) whose trust data signs the tag.
    gun: str
    #: ``targets`` or a delegation (``targets/releases``, ``targets/<signer>``).
    role: str
    #: The digest the role signs the tag as.
    digest: str
    #: Whether that is the tag's current digest (else the tag moved since it was signed).
    current: bool
    #: The role's key ids and, for each, the SPKI fingerprint a trusted key is registered under.
    keys: dict[str, str]


class ImageSignatures(TypedDict):
    repository: str
    #: The image's manifest digest (the reference resolved).
    digest: str
    #: Whether an OCI signature verifies with a trusted key of the repository or its namespace.
    trusted: bool
    signatures: list[Signature]
    #: DTR's inNotary: the tag is signed in Notary at its current digest (false for a digest).
    inNotary: bool
    #: The tag's Notary signatures (by every signer, current or not); empty for a digest.
    notary: list[NotarySigner]

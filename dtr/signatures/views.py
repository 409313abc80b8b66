"""``/api/v0`` trusted keys (of a repository, of a namespace) and an image's OCI signatures. Each
handler is a typed operation (``dtr.api.operations``) calling its use case in ``trustedkeys``
with the request's ``Caller``."""

from __future__ import annotations

from aiohttp import web

from dtr.api.errors import codes
from dtr.api.operations import add_all, operation
from dtr.auth.api import principal
from dtr.keys import AUTH, DATABASE, STORAGE
from dtr.signatures import shapes as s
from dtr.signatures import trustedkeys


def caller(request: web.Request) -> trustedkeys.Caller:
    return trustedkeys.Caller(request.config_dict[DATABASE].engine, principal(request), request.remote or "",
                              request.config_dict[AUTH], request.config_dict[STORAGE])


_REPO = (codes.NO_SUCH_REPOSITORY,)
_CHANGE = (codes.FORBIDDEN,)


@operation(*_REPO)
async def list_repo_trusted_keys(request: web.Request, namespace: str, repo: str) -> s.TrustedKeyList:
    """The public keys and certificates trusted to sign this repository's images (besides its
    namespace's); read-only access."""
    return {"trustedKeys": await trustedkeys.list_keys(caller(request), namespace, repo)}


@operation(*_REPO, *_CHANGE, codes.CONFLICT, status=201)
async def add_repo_trusted_key(request: web.Request, namespace: str, repo: str,
                               body: s.NewTrustedKey) -> s.TrustedKey:
    """Trust a public key or certificate (one PEM block) to sign this repository's images; admin
    access. A private key, an RSA key under 2048 bits or text that does not parse is refused."""
    return await trustedkeys.add_key(caller(request), namespace, repo, body)


@operation(*_REPO, *_CHANGE, codes.NOT_FOUND)
async def delete_repo_trusted_key(request: web.Request, namespace: str, repo: str, name: str) -> None:
    """Stop trusting a key of this repository; admin access."""
    await trustedkeys.delete_key(caller(request), namespace, repo, name)


@operation(codes.NO_SUCH_NAMESPACE)
async def list_namespace_trusted_keys(request: web.Request, namespace: str) -> s.TrustedKeyList:
    """The public keys and certificates trusted to sign every image of the namespace."""
    return {"trustedKeys": await trustedkeys.list_keys(caller(request), namespace, None)}


@operation(codes.NO_SUCH_NAMESPACE, *_CHANGE, codes.CONFLICT, status=201)
async def add_namespace_trusted_key(request: web.Request, namespace: str, body: s.NewTrustedKey) -> s.TrustedKey:
    """Trust a public key or certificate to sign every image of the namespace; admins of the
    namespace."""
    return await trustedkeys.add_key(caller(request), namespace, None, body)


@operation(codes.NO_SUCH_NAMESPACE, *_CHANGE, codes.NOT_FOUND)
async def delete_namespace_trusted_key(request: web.Request, namespace: str, name: str) -> None:
    """Stop trusting a key of the namespace; admins of the namespace."""
    await trustedkeys.delete_key(caller(request), namespace, None, name)


@operation(*_REPO, codes.NO_SUCH_TAG, codes.NOT_FOUND)
async def get_image_signatures(request: web.Request, namespace: str, repo: str,
                               reference: str) -> s.ImageSignatures:
    """The OCI signatures (cosign, Sigstore bundles, notation) and other artifacts (attestations,
    SBOMs) of the image a tag or digest names, found through referrers and cosign's tags, each
    verified against the trusted keys of the repository and its namespace."""
    return await trustedkeys.signatures(caller(request), namespace, repo, reference)


def register(app: web.Application) -> None:
    """The signatures routes of /api/v0."""
    add_all(app.router, (
        ("GET", "/repositories/{namespace}/{repo}/trustedKeys", list_repo_trusted_keys),
        ("POST", "/repositories/{namespace}/{repo}/trustedKeys", add_repo_trusted_key),
        ("DELETE", "/repositories/{namespace}/{repo}/trustedKeys/{name}", delete_repo_trusted_key),
        ("GET", "/namespaces/{namespace}/trustedKeys", list_namespace_trusted_keys),
        ("POST", "/namespaces/{namespace}/trustedKeys", add_namespace_trusted_key),
        ("DELETE", "/namespaces/{namespace}/trustedKeys/{name}", delete_namespace_trusted_key),
        ("GET", "/repositories/{namespace}/{repo}/signatures/{reference}", get_image_signatures),
    ))

"""A small async client of a remote OCI distribution registry, for mirroring.

- ``Remote(endpoint, credentials, ca_pem)``: ``endpoint`` is ``https://host[:port]`` (or
  ``http://`` for a plain-HTTP registry); a CA PEM, when given, is the only one trusted.
- Authentication follows the remote's challenge: ``Bearer realm=,service=,scope=`` gets a token
  from the realm (Docker token auth, the credentials sent as Basic), ``Basic`` sends them
  directly. A token without a username is sent as a Bearer token as it is.
- Blobs are streamed, never held whole: ``upload_blob`` takes a function opening the blob at an
  offset. Blobs up to ``monolithic_max`` go in one POST + PUT; larger ones in PATCH chunks of
  ``chunk_size``; a chunk that fails (connection lost, 5xx, timeout) is resumed from the
  ``Range`` the remote reports for the upload (``GET`` of its location), after a back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import re
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp

log = logging.getLogger("dtr.mirroring.remote")

MANIFEST_TYPES = ", ".join((
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))
#: Manifests larger than this are refused (the registry's own limit is 4 MiB).
MAX_MANIFEST = 4 << 20
#: Blobs up to this size are uploaded in one request.
MONOLITHIC_MAX = 16 << 20
CHUNK_SIZE = 64 << 20
#: Attempts at one chunk (resumed from the remote's Range each time) before the upload fails.
CHUNK_ATTEMPTS = 6
RETRY_DELAY = 1.0
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class RemoteError(Exception):
    """The remote answered an error (``status``), or could not be reached (``status`` 0)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class Credentials:
    """A username and password (or access token used as one); a token alone is a Bearer token."""

    username: str | None = None
    secret: str | None = None

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, secret={'***' if self.secret else None})"


#: Opens a blob's bytes at an offset (the bytes from there to its end).
Opener = Callable[[int], AsyncIterator[bytes]]


def normalize_endpoint(host: str) -> str:
    """``scheme://host[:port]`` of a remote host given with or without a scheme (https by
    default); ValueError when it is not one."""
    raw = host.strip().rstrip("/")
    if "://" not in raw:
        raw = "https://" + raw
    url = urllib.parse.urlsplit(raw)
    if url.scheme not in ("http", "https") or not url.hostname or url.path or url.query or url.fragment \
            or url.username or url.password:
        raise ValueError("expected https://host[:port] (or http:// for a plain-HTTP registry)")
    try:
        url.port  # noqa: B018  (a bad port raises)
    except ValueError:
        raise ValueError("the port is not a number from 1 to 65535") from None
    return f"{url.scheme}://{url.netloc}"


def ssl_context(ca_pem: str | None) -> ssl.SSLContext | None:
    """A TLS context trusting only ``ca_pem`` (None: the system's CAs); ValueError for bad PEM."""
    if not ca_pem:
        return None
    try:
        return ssl.create_default_context(cadata=ca_pem)
    except (ssl.SSLError, ValueError) as e:
        raise ValueError(f"the CA is not a PEM certificate: {e}") from None


class Remote:
    """One remote registry; use as ``async with Remote(...) as r``."""

    def __init__(self, endpoint: str, credentials: Credentials | None = None, ca_pem: str | None = None, *,
                 chunk_size: int = CHUNK_SIZE, monolithic_max: int = MONOLITHIC_MAX,
                 timeout: float = 300.0) -> None:
        self.endpoint = normalize_endpoint(endpoint)
        self.credentials = credentials or Credentials()
        self.chunk_size, self.monolithic_max = chunk_size, monolithic_max
        self._ssl = ssl_context(ca_pem)
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None
        #: scope -> Authorization header value
        self._auth: dict[str, str] = {}
        #: Bytes of blobs sent, and chunked uploads resumed after a failure (for logs and tests).
        self.sent = 0
        self.resumed = 0

    async def __aenter__(self) -> Remote:
        self._session = aiohttp.ClientSession(timeout=self._timeout, auto_decompress=False,
                                              connector=aiohttp.TCPConnector(ssl=self._ssl or True))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    # -- requests and authentication --------------------------------------------------------

    def _url(self, path: str) -> str:
        return path if "://" in path else f"{self.endpoint}{path}"

    @contextlib.asynccontextmanager
    async def _request(self, method: str, path: str, scope: str, *, headers: dict[str, str] | None = None,
                       body: Callable[[], Any] | None = None, expect: tuple[int, ...] = (200,),
                       ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A request authenticated for ``scope`` (``repository:name:actions``; a 401 is answered
        once, after getting credentials for its challenge); RemoteError unless the status is one
        of ``expect``. ``body`` makes a fresh request body for each try."""
        assert self._session is not None, "use Remote in async with"
        for attempt in (1, 2):
            h = dict(headers or {})
            if scope in self._auth:
                h["Authorization"] = self._auth[scope]
            try:
                resp = await self._session.request(method, self._url(path), headers=h,
                                                   data=body() if body else None, allow_redirects=True)
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                raise RemoteError(f"{method} {self.endpoint}: {type(e).__name__}: {e}") from None
            try:
                if resp.status == 401 and attempt == 1:
                    challenge = resp.headers.get("WWW-Authenticate", "")
                    await self._authenticate(challenge, scope)
                    continue
                if resp.status not in expect:
                    raise RemoteError(f"{method} {urllib.parse.urlsplit(str(resp.url)).path}: {resp.status} "
                                      f"{(await resp.text(errors='replace'))[:300].strip()}", resp.status)
                yield resp
                return
            finally:
                resp.release()

    async def _authenticate(self, challenge: str, scope: str) -> None:
        scheme, _, rest = challenge.partition(" ")
        user, secret = self.credentials.username, self.credentials.secret
        if scheme.lower() == "basic":
            if secret is None:
                raise RemoteError("the remote asks for credentials and the policy has none", 401)
            self._auth[scope] = aiohttp.BasicAuth(user or "", secret).encode()
            return
        if scheme.lower() != "bearer":
            raise RemoteError(f"the remote asks for unsupported authentication {scheme[:20]!r}", 401)
        if secret is not None and user is None:
            self._auth[scope] = f"Bearer {secret}"
            return
        params = dict(_CHALLENGE.findall(rest))
        realm = params.get("realm")
        if not realm:
            raise RemoteError("the remote's Bearer challenge names no realm", 401)
        query = [("service", params["service"])] if "service" in params else []
        scopes = {s for s in (params.get("scope"), scope) if s}
        query += [("scope", s) for s in sorted(scopes)]
        if user is not None:
            query.append(("account", user))
        auth = aiohttp.BasicAuth(user or "", secret or "") if secret is not None else None
        assert self._session is not None
        try:
            async with self._session.get(realm, params=query, auth=auth) as resp:
                if resp.status != 200:
                    raise RemoteError(f"the remote's token service refused the credentials: {resp.status}",
                                      resp.status)
                doc = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as e:
            raise RemoteError(f"getting a token from {realm[:200]}: {e}") from None
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str):
            raise RemoteError("the remote's token service answered no token")
        self._auth[scope] = f"Bearer {token}"

    # -- the API ----------------------------------------------------------------------------

    async def ping(self, repository: str) -> None:
        """Check the endpoint answers /v2/ and the credentials get pull access to ``repository``."""
        async with self._request("GET", "/v2/", _scope(repository, "pull")):
            pass

    async def has_blob(self, repository: str, digest: str, push: bool = False) -> bool:
        async with self._request("HEAD", f"/v2/{repository}/blobs/{digest}",
                                 _scope(repository, "pull,push" if push else "pull"), expect=(200, 404)) as r:
            return r.status == 200

    async def mount(self, repository: str, digest: str, source: str) -> str | None:
        """Mount ``digest`` from ``source`` on the remote: None when mounted, else the location
        of the upload the remote started instead."""
        scope = _scope(repository, "pull,push")
        q = urllib.parse.urlencode({"mount": digest, "from": source})
        async with self._request("POST", f"/v2/{repository}/blobs/uploads/?{q}", scope, expect=(201, 202)) as r:
            return None if r.status == 201 else _location(r)

    async def start_upload(self, repository: str) -> str:
        scope = _scope(repository, "pull,push")
        async with self._request("POST", f"/v2/{repository}/blobs/uploads/", scope, expect=(202,)) as r:
            return _location(r)

    async def upload_blob(self, repository: str, digest: str, size: int, open_at: Opener,
                          location: str | None = None, offset: int = 0,
                          on_location: Callable[[str], Awaitable[None]] | None = None) -> None:
        """Upload the blob (``open_at(offset)`` streams it from ``offset``), in one request when it
        is small, else in resumable chunks; ``location``: an upload already started, holding
        ``offset`` bytes (``upload_status``). ``on_location`` is told, for chunked uploads, each
        location the remote gives (where another run can resume: ``upload_status``)."""
        scope = _scope(repository, "pull,push")
        location = location or await self.start_upload(repository)
        if size <= self.monolithic_max:
            async with self._request("PUT", _with(location, digest=digest), scope, expect=(201,),
                                     headers={"Content-Type": "application/octet-stream",
                                              "Content-Length": str(size)},
                                     body=lambda: _counted(self, open_at(0))):
                return
        failures = 0
        if on_location is not None:
            await on_location(location)
        while offset < size:
            end = min(offset + self.chunk_size, size)
            start = offset
            try:
                async with self._request("PATCH", location, scope, expect=(202,), headers={
                        "Content-Type": "application/octet-stream", "Content-Length": str(end - start),
                        "Content-Range": f"{start}-{end - 1}"},
                        body=functools.partial(self._chunk, open_at, start, end - start)) as r:
                    location = _location(r)
                    offset = _range_end(r, start)
                failures = 0
                if on_location is not None:
                    await on_location(location)
            except RemoteError as e:
                failures += 1
                if failures >= CHUNK_ATTEMPTS or e.status in (400, 401, 403, 404, 416):
                    raise
                await asyncio.sleep(RETRY_DELAY * 2 ** (failures - 1))
                try:
                    location, offset = await self.upload_status(repository, location, offset)
                except RemoteError as lost:
                    if lost.status not in (400, 404):
                        raise
                    # The remote dropped the upload (Go's distribution does after a cut-off chunk).
                    location, offset = await self.start_upload(repository), 0
                self.resumed += 1
                log.info("resuming the upload of %s to %s at byte %d after: %s", digest, repository, offset, e)
        async with self._request("PUT", _with(location, digest=digest), scope, expect=(201,),
                                 headers={"Content-Length": "0"}):
            pass

    def _chunk(self, open_at: Opener, start: int, length: int) -> AsyncIterator[bytes]:
        return _counted(self, _limited(open_at(start), length))

    async def upload_status(self, repository: str, location: str, known: int = 0) -> tuple[str, int]:
        """Where an upload stands: (its location, the bytes the remote holds; ``known`` when it
        does not say). RemoteError 404 (or 400) when the remote has no such upload."""
        async with self._request("GET", location, _scope(repository, "pull,push"), expect=(204,)) as r:
            return _location(r) if "Location" in r.headers else location, _range_end(r, known)

    async def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str | None:
        """PUT a manifest; the remote's ``OCI-Subject`` answer (an OCI 1.1 registry names the
        subject of a manifest that has one; None from one without the referrers API)."""
        async with self._request("PUT", f"/v2/{repository}/manifests/{reference}", _scope(repository, "pull,push"),
                                 headers={"Content-Type": media_type}, body=lambda: body, expect=(201,)) as r:
            return r.headers.get("OCI-Subject")

    async def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The digest of the manifest at ``reference`` (None: none there)."""
        async with self._request("HEAD", f"/v2/{repository}/manifests/{reference}", _scope(repository, "pull"),
                                 headers={"Accept": MANIFEST_TYPES}, expect=(200, 404)) as r:
            return r.headers.get("Docker-Content-Digest") if r.status == 200 else None

    async def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str]:
        """(bytes, media type) of a manifest."""
        async with self._request("GET", f"/v2/{repository}/manifests/{reference}", _scope(repository, "pull"),
                                 headers={"Accept": MANIFEST_TYPES}) as r:
            if (r.content_length or 0) > MAX_MANIFEST:
                raise RemoteError(f"the manifest {reference} is larger than {MAX_MANIFEST} bytes")
            body = await r.content.read(MAX_MANIFEST + 1)
            if len(body) > MAX_MANIFEST:
                raise RemoteError(f"the manifest {reference} is larger than {MAX_MANIFEST} bytes")
            return body, r.headers.get("Content-Type", "").split(";")[0].strip()

    async def blob(self, repository: str, digest: str) -> AsyncIterator[bytes]:
        """The blob's bytes, streamed."""
        async with self._request("GET", f"/v2/{repository}/blobs/{digest}", _scope(repository, "pull")) as r:
            async for chunk in r.content.iter_chunked(1 << 20):
                yield chunk

    async def referrers(self, repository: str, digest: str) -> list[dict[str, Any]]:
        """The descriptors of the manifests whose subject is ``digest``: the remote's referrers
        API (``GET /v2/<name>/referrers/<digest>``, following ``Link`` pages) or, where it answers
        404 (no such API), the index kept at the referrers tag schema (``referrers_index``)."""
        found: list[dict[str, Any]] = []
        path: str | None = f"/v2/{repository}/referrers/{digest}"
        while path:
            try:
                async with self._request("GET", path, _scope(repository, "pull"),
                                         headers={"Accept": "application/vnd.oci.image.index.v1+json"}) as r:
                    doc = await r.json(content_type=None)
                    nxt = r.links.get("next")
                    path = str(nxt["url"]) if nxt else None
            except RemoteError as e:
                if e.status != 404 or found:
                    raise
                return await self.referrers_index(repository, digest)
            found.extend(_descriptors(doc))
        return found

    async def referrers_index(self, repository: str, digest: str) -> list[dict[str, Any]]:
        """The descriptors of the index at ``digest``'s referrers tag (OCI distribution-spec 1.1,
        "referrers tag schema", ``sha256-<hex>``), which clients of a registry without the
        referrers API keep; [] when there is none."""
        try:
            body, _ = await self.get_manifest(repository, referrers_tag(digest))
        except RemoteError as e:
            if e.status != 404:
                raise
            return []
        try:
            return _descriptors(json.loads(body))
        except ValueError:
            raise RemoteError(f"the remote's referrers tag of {digest} is not JSON") from None

    async def list_tags(self, repository: str) -> list[str]:
        """Every tag of the remote repository (following ``Link`` pages)."""
        tags: list[str] = []
        path: str | None = f"/v2/{repository}/tags/list?n=1000"
        while path:
            async with self._request("GET", path, _scope(repository, "pull")) as r:
                doc = await r.json(content_type=None)
                nxt = r.links.get("next")
                path = str(nxt["url"]) if nxt else None
            found = doc.get("tags") if isinstance(doc, dict) else None
            tags.extend(t for t in (found or []) if isinstance(t, str))
        return tags


def referrers_tag(digest: str) -> str:
    """The referrers tag schema's tag of ``digest``: ``<alg>-<hex>`` (truncated to 32 and 64)."""
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm[:32]}-{hexpart[:64]}"


def _descriptors(doc: Any) -> list[dict[str, Any]]:
    """The well-formed descriptors of an index document (``manifests`` entries with a digest)."""
    found = doc.get("manifests") if isinstance(doc, dict) else None
    return [d for d in (found if isinstance(found, list) else []) if isinstance(d, dict)
            and isinstance(d.get("digest"), str) and isinstance(d.get("mediaType"), str)]


def _scope(repository: str, actions: str) -> str:
    return f"repository:{repository}:{actions}"


def _location(r: aiohttp.ClientResponse) -> str:
    loc = r.headers.get("Location")
    if not loc:
        raise RemoteError(f"{r.method} {r.url.path}: the answer has no Location")
    return urllib.parse.urljoin(str(r.url), loc)


def _with(location: str, **query: str) -> str:
    sep = "&" if "?" in location else "?"
    return f"{location}{sep}{urllib.parse.urlencode(query)}"


def _range_end(r: aiohttp.ClientResponse, known: int) -> int:
    """The bytes an upload holds from its ``Range: 0-<last>`` (``0-0`` is ambiguous in Go's
    distribution: none or one byte; ``known`` decides)."""
    m = re.fullmatch(r"(?:bytes=)?0-(\d+)", r.headers.get("Range", "").strip())
    if not m:
        raise RemoteError(f"{r.method} {r.url.path}: the answer has no Range")
    last = int(m.group(1))
    return 0 if last == 0 and known == 0 else last + 1


async def _limited(chunks: AsyncIterator[bytes], n: int) -> AsyncIterator[bytes]:
    """The first ``n`` bytes of ``chunks`` (the rest is not read)."""
    try:
        async for chunk in chunks:
            if len(chunk) >= n:
                yield chunk[:n]
                return
            n -= len(chunk)
            yield chunk
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


async def _counted(remote: Remote, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        remote.sent += len(chunk)
        yield chunk

"""The pull-through cache: the registry's miss handler (``RegistryService.misses``) for the
namespaces configured as caches of an upstream registry (``dtr.pullcache.settings``).

- A manifest dtr lacks (by tag or digest) is fetched upstream, its digest checked (against the
  reference, or the upstream's ``Docker-Content-Digest``) and served at once; it is stored as an
  ordinary manifest (``RegistryService.put_manifest``) by a background task once everything it
  references is stored (blobs, an index's child manifests, fetched upstream), so the registry's
  invariant holds: a manifest row only with all it references. Until then it is served from memory.
- A blob dtr lacks is streamed from upstream to the client while it is written through the
  normal upload path (``Uploads.finish``): it becomes visible only once its digest is verified.
  The last chunk reaches the client only after that: a blob whose digest does not match is
  never served whole (the connection is cut) and nothing is stored. A ``Range`` request is
  answered 206 with its bytes (416 when the upstream's size cannot satisfy it) while the whole
  blob is fetched and stored the same way: its last bytes wait for the verification too. A client that goes away
  cancels the upload. One fetch per (repository, digest) at a time in a process: a second pull
  waits, then reads the stored blob.
- A tag served from the cache is checked upstream (HEAD) once its ``tagTTL`` has passed since
  its last check (in memory, per process); a new digest is fetched. An upstream that is down,
  rate limiting or failing leaves the cached content served; uncached content is refused with
  the upstream's error (``dtr.pullcache.upstream``).
- A tag list shows the upstream's tags with the cached ones (the upstream asked at most once per
  ``tagTTL``); while the upstream is down, the cached ones.
- Pushes and deletes in a cache namespace are refused (DENIED).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import aiohttp
from aiohttp import web

from dtr.pullcache.settings import ConfigCache
from dtr.pullcache.upstream import Upstream
from dtr.registry.errors import RegistryError, codes
from dtr.registry.events import SYSTEM
from dtr.registry.inputs import byte_range
from dtr.registry.manifests import ParsedManifest, parse_manifest
from dtr.registry.names import compute_digest, is_digest
from dtr.registry.service import RegistryService, StoredManifest

log = logging.getLogger("dtr.pullcache")

CHUNK = 1 << 20
_MISSING = (codes.MANIFEST_UNKNOWN.code, codes.NAME_UNKNOWN.code)


def _tampered(upstream: str, what: str, expected: str, actual: str) -> RegistryError:
    log.warning("the upstream %s sent %s whose digest does not match", upstream, what,
                extra={"expected": expected, "actual": actual})
    return RegistryError(codes.UNAVAILABLE, detail={"upstream": upstream, "expected": expected, "actual": actual},
                         message=f"the upstream {upstream} sent {what} whose digest does not match; "
                                 "nothing was cached")


class PullThrough:
    """The miss handler (see the module); ``running()`` stops its background work at shutdown."""

    def __init__(self, registry: RegistryService, configs: ConfigCache, max_manifest_size: int) -> None:
        self.registry, self.configs, self.max_manifest_size = registry, configs, max_manifest_size
        self._upstreams: dict[str, Upstream] = {}
        #: (repository, tag) -> when the tag was last fetched or checked upstream (monotonic).
        self._checked: dict[tuple[str, str], float] = {}
        #: repository -> (when, the upstream's tags then), for tag lists (monotonic).
        self._tag_lists: dict[str, tuple[float, list[str]]] = {}
        #: Manifests fetched and served, not yet stored, by (repository, reference).
        self._pending: dict[tuple[str, str], StoredManifest] = {}
        self._fetches: dict[tuple[str, str], tuple[asyncio.Lock, list[int]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for upstream in self._upstreams.values():
                await upstream.close()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _upstream(self, name: str) -> tuple[Upstream, str] | None:
        """The upstream of ``name``'s namespace and ``name`` without it; None: not a cache."""
        namespace, sep, repo = name.partition("/")
        cfg = await self.configs.get(namespace) if sep else None
        if cfg is None:
            return None
        upstream = self._upstreams.get(namespace)
        if upstream is None or upstream.cfg is not cfg:
            if upstream is not None:
                self._spawn(upstream.close())
            upstream = self._upstreams[namespace] = Upstream(cfg)
        return upstream, repo

    async def refuse_change(self, name: str) -> None:
        """DENIED if ``name`` is in a cache namespace: its content comes from the upstream only."""
        found = await self._upstream(name)
        if found is not None:
            raise RegistryError(codes.DENIED, detail={"upstream": found[0].cfg.upstream},
                                message=f"{name.partition('/')[0]} is a pull-through cache of {found[0].cfg.upstream}: "
                                        "its repositories are read-only (push to another namespace)")

    # -- tags -----------------------------------------------------------------------------------

    async def tags(self, name: str) -> list[str] | None:
        """The tags a client listing ``name`` in a cache namespace sees, in the spec's order: the
        upstream's (asked again once ``tagTTL`` has passed) and those cached; None for other
        namespaces. While the upstream cannot answer, the cached tags only (RegistryError when
        none is cached either)."""
        found = await self._upstream(name)
        if found is None:
            return None
        upstream, repo = found
        try:
            cached: list[str] | None = (await self.registry.list_tags(name, None, None))[0]
        except RegistryError as e:
            if e.code.code != codes.NAME_UNKNOWN.code:
                raise
            cached = None
        listed = self._tag_lists.get(name)
        if listed is None or time.monotonic() - listed[0] >= upstream.cfg.tag_ttl:
            try:
                listed = self._tag_lists[name] = (time.monotonic(), await upstream.tags(repo))
            except RegistryError as e:
                if cached is None:
                    raise
                log.info("listing the cached tags of %s only: %s", name, e.message)
                self._tag_lists.pop(name, None)
                listed = (0.0, [])
        return sorted({*(cached or ()), *listed[1]}, key=lambda t: (t.lower(), t))

    # -- manifests ------------------------------------------------------------------------------

    async def manifest(self, name: str, reference: str) -> StoredManifest | None:
        """The manifest to serve for a pull of ``name`` in a cache namespace, None for other
        namespaces (the registry then serves its own)."""
        found = await self._upstream(name)
        if found is None:
            return None
        upstream, repo = found
        key = (name, reference)
        if (pending := self._pending.get(key)) is not None:
            return pending
        try:
            local: StoredManifest | None = await self.registry.get_manifest(name, reference)
        except RegistryError as e:
            if e.code.code not in _MISSING:
                raise
            local = None
        if local is not None:
            if is_digest(reference) or time.monotonic() - self._checked.get(key, float("-inf")) < upstream.cfg.tag_ttl:
                return local
            try:
                resp = await upstream.fetch("HEAD", repo, "manifests", reference, codes.MANIFEST_UNKNOWN)
                resp.release()
            except RegistryError as e:
                log.info("serving the cached %s:%s: checking it upstream failed: %s", name, reference, e.message)
                self._checked[key] = time.monotonic()
                return local
            self._checked[key] = time.monotonic()
            if resp.headers.get("Docker-Content-Digest") == local.digest:
                return local
        stored, parsed = await self._fetch_manifest(upstream, repo, reference)
        if not is_digest(reference):
            self._checked[key] = time.monotonic()
        self._pending[key] = self._pending[(name, stored.digest)] = stored
        self._spawn(self._store(upstream, name, repo, reference, stored, parsed))
        return stored

    async def _fetch_manifest(self, upstream: Upstream, repo: str, reference: str
                              ) -> tuple[StoredManifest, ParsedManifest]:
        """A manifest from upstream, its digest checked, parsed as a push's would be."""
        resp = await upstream.fetch("GET", repo, "manifests", reference, codes.MANIFEST_UNKNOWN)
        async with resp:
            body = await resp.content.read(self.max_manifest_size + 1)
            media_type = resp.headers.get("Content-Type")
            claimed = resp.headers.get("Docker-Content-Digest")
        if len(body) > self.max_manifest_size:
            raise RegistryError(codes.MANIFEST_TOO_LARGE, detail={"limit": self.max_manifest_size},
                                message=f"the upstream's manifest is larger than the limit of "
                                        f"{self.max_manifest_size} bytes")
        expected = reference if is_digest(reference) else claimed
        algorithm = expected.partition(":")[0] if expected and is_digest(expected) else "sha256"
        digest = compute_digest(body, algorithm)
        if expected is not None and digest != expected:
            raise _tampered(upstream.cfg.upstream, "a manifest", expected, digest)
        parsed = parse_manifest(body, media_type)
        return StoredManifest(digest, parsed.media_type, body, parsed.subject), parsed

    async def _store(self, upstream: Upstream, name: str, repo: str, reference: str, stored: StoredManifest,
                     parsed: ParsedManifest) -> None:
        """Fetch what ``stored`` references, then store it (and its tag); forget it as pending."""
        try:
            await self._complete(upstream, name, repo, parsed)
            await self.registry.put_manifest(name, reference, stored.payload, stored.media_type, SYSTEM)
        except (TimeoutError, RegistryError, aiohttp.ClientError, OSError) as e:
            log.warning("could not cache %s@%s: %s", name, reference, getattr(e, "message", e))
        finally:
            self._pending.pop((name, reference), None)
            self._pending.pop((name, stored.digest), None)

    async def _complete(self, upstream: Upstream, name: str, repo: str, parsed: ParsedManifest) -> None:
        """Store every blob and child manifest ``parsed`` references that ``name`` lacks."""
        for digest in parsed.blobs:
            async with self._single(name, digest):
                if await self.registry.blob_size(name, digest) is None:
                    async with await upstream.fetch("GET", repo, "blobs", digest, codes.BLOB_UNKNOWN) as resp:
                        await self._store_blob(upstream, name, digest, resp.content.iter_chunked(CHUNK))
        for digest in parsed.manifests:
            try:
                await self.registry.get_manifest(name, digest)
                continue
            except RegistryError as e:
                if e.code.code not in _MISSING:
                    raise
            child, child_parsed = await self._fetch_manifest(upstream, repo, digest)
            await self._complete(upstream, name, repo, child_parsed)
            await self.registry.put_manifest(name, digest, child.payload, child.media_type, SYSTEM)

    # -- blobs ----------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _single(self, name: str, digest: str) -> AsyncIterator[None]:
        """One fetch of (``name``, ``digest``) at a time in this process."""
        key = (name, digest)
        lock, users = self._fetches.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._fetches[key]

    async def _store_blob(self, upstream: Upstream, name: str, digest: str, chunks: AsyncIterator[bytes]) -> None:
        """Write ``chunks`` as blob ``digest`` of ``name`` through an upload: visible only if the
        digest matches; the upload is cancelled on any failure (nothing left half-visible)."""
        uploads = self.registry.uploads
        upload_id = await uploads.start(name, SYSTEM)
        try:
            await uploads.finish(name, upload_id, digest, chunks)
        except RegistryError as e:
            if e.code is codes.DIGEST_INVALID:
                raise _tampered(upstream.cfg.upstream, f"blob {digest}", digest, str(e.detail.get("actual"))) from None
            raise
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(uploads.cancel(name, upload_id))
            raise

    async def blob(self, request: web.Request, name: str, digest: str) -> web.StreamResponse | None:
        """On a blob miss in a cache namespace: a HEAD answered from the upstream's HEAD, a GET
        streamed from upstream while stored; None when ``name`` is no cache or the blob was stored
        meanwhile (the registry then serves its own)."""
        found = await self._upstream(name)
        if found is None:
            return None
        upstream, repo = found
        headers = {"Docker-Content-Digest": digest, "Content-Type": "application/octet-stream"}
        if request.method == "HEAD":
            resp = await upstream.fetch("HEAD", repo, "blobs", digest, codes.BLOB_UNKNOWN)
            resp.release()
            return web.Response(headers={**headers, "Content-Length": resp.headers.get("Content-Length", "0")})
        async with self._single(name, digest):
            if await self.registry.blob_size(name, digest) is not None:
                return None
            async with await upstream.fetch("GET", repo, "blobs", digest, codes.BLOB_UNKNOWN) as resp:
                size = resp.content_length
                wanted = byte_range(request, size) if size is not None else None
                if wanted is not None and not wanted:
                    return web.Response(status=416, headers={**headers, "Content-Range": f"bytes */{size}"})
                out = web.StreamResponse(status=206 if wanted else 200, headers={
                    **headers, "Docker-Distribution-API-Version": "registry/2.0"})
                if wanted:
                    out.headers["Content-Range"] = f"bytes {wanted.start}-{wanted.stop - 1}/{size}"
                    out.content_length = len(wanted)
                elif size is not None:
                    out.content_length = size
                await out.prepare(request)
                held: list[bytes] = []
                at = 0

                async def relay() -> AsyncIterator[bytes]:
                    nonlocal at
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        part = chunk[max(wanted.start - at, 0):max(wanted.stop - at, 0)] if wanted else chunk
                        at += len(chunk)
                        if part:
                            if held:
                                await out.write(held.pop())
                            held.append(part)
                        yield chunk

                try:
                    await self._store_blob(upstream, name, digest, relay())
                except (TimeoutError, RegistryError, aiohttp.ClientError, ConnectionError):
                    if request.transport is not None:
                        request.transport.close()  # the client must not take a short or wrong body as whole
                    return out
        if held:
            await out.write(held.pop())
        await out.write_eof()
        return out

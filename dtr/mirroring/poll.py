"""Poll mirroring's fetch: the remote repository's tags that match a policy, fetched into the local
repository when their digest differs from the local tag's.

Everything is written through the registry's own use cases (``RegistryService``): a blob goes
through an upload session (``Uploads.start/append/finish``), so its bytes are verified against
their digest before the blob becomes visible; manifests go through ``put_manifest``, so the usual
rules apply (everything referenced present, immutable tags refused). A blob the local registry
already holds in another repository is linked (mounted), not fetched. A manifest is fetched by
digest and checked against it; an index is fetched whole (each child manifest, then the index).

Each matching tag's artifacts follow, at every poll (a signature often comes after its image): the
referrers the remote lists (its referrers API, or the referrers tag schema's index where it has no
such API: ``Remote.referrers``) fetched by digest, and cosign's ``sha256-<hex>.sig/.att/.sbom``
tags of the image under their tag, each only when the local repository lacks it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable

from dtr.mirroring.remote import Remote, RemoteError
from dtr.registry.errors import RegistryError
from dtr.registry.events import SYSTEM
from dtr.registry.manifests import parse_manifest
from dtr.registry.names import TAG_RE, compute_digest
from dtr.registry.service import RegistryService
from dtr.signatures.kinds import cosign_tag


@dataclasses.dataclass
class Poller:
    """Fetches tags of ``source`` on ``remote`` into ``local``."""

    remote: Remote
    registry: RegistryService
    local: str
    source: str
    matches: Callable[[str], bool]
    log: Callable[[str], None] = lambda _: None
    check_stop: Callable[[], None] = lambda: None
    blobs_fetched: int = 0
    artifacts_fetched: int = 0

    async def poll(self) -> list[tuple[str, str]]:
        """Fetch every matching tag that changed; the (tag, digest) pairs fetched."""
        remote_tags = set(await self.remote.list_tags(self.source))
        tags = sorted(t for t in remote_tags if TAG_RE.fullmatch(t) and self.matches(t))
        self.log(f"{len(tags)} matching tag(s) in {self.remote.endpoint}/{self.source}")
        fetched = []
        for tag in tags:
            self.check_stop()
            digest = await self.remote.manifest_digest(self.source, tag)
            if digest is None:
                continue  # deleted since the listing
            if await self._local_digest(tag) != digest:
                await self._fetch_manifest(digest, tag)
                self.log(f"fetched {self.source}:{tag} ({digest}) into {self.local}:{tag}")
                fetched.append((tag, digest))
            await self._fetch_artifacts(digest, remote_tags)
        return fetched

    async def _fetch_artifacts(self, digest: str, remote_tags: set[str]) -> None:
        """Fetch the artifacts of image ``digest`` the local repository lacks."""
        wanted: list[tuple[str, str | None]] = [
            (d["digest"], None) for d in await self.remote.referrers(self.source, digest)]
        for suffix in ("sig", "att", "sbom"):
            tag = cosign_tag(digest, suffix)
            if tag is not None and tag in remote_tags:
                found = await self.remote.manifest_digest(self.source, tag)
                if found is not None:
                    wanted.append((found, tag))
        for found, tag in wanted:
            if await self._local_digest(tag or found) != found:
                await self._fetch_manifest(found, tag)
                self.artifacts_fetched += 1
                self.log(f"fetched {tag or 'referrer'} {found} of {digest}")

    async def _local_digest(self, reference: str) -> str | None:
        try:
            return (await self.registry.get_manifest(self.local, reference)).digest
        except RegistryError:
            return None

    async def _fetch_manifest(self, digest: str, tag: str | None) -> None:
        body, media_type = await self.remote.get_manifest(self.source, digest)
        actual = compute_digest(body, digest.partition(":")[0])
        if actual != digest:
            raise RemoteError(f"the remote's manifest {digest} has digest {actual}")
        parsed = parse_manifest(body, media_type)
        for child in parsed.manifests:
            if await self._local_digest(child) != child:
                await self._fetch_manifest(child, None)
        for blob in parsed.blobs:
            await self._fetch_blob(blob)
        await self.registry.put_manifest(self.local, tag or digest, body, media_type, SYSTEM)

    async def _fetch_blob(self, digest: str) -> None:
        if await self.registry.blob_size(self.local, digest) is not None:
            return
        if await self.registry.mount(self.local, digest, None, None, SYSTEM):
            return
        uploads = self.registry.uploads
        upload = await uploads.start(self.local, SYSTEM)
        try:
            await uploads.append(self.local, upload, self.remote.blob(self.source, digest))
            await uploads.finish(self.local, upload, digest, None)  # verifies the digest
        except BaseException:
            with contextlib.suppress(Exception):
                await uploads.cancel(self.local, upload)
            raise
        self.blobs_fetched += 1

"""Push mirroring's copy: a local tag's manifest (an index with each child manifest) and the
blobs the remote lacks, streamed from dtr's storage to the remote repository.

Each blob is checked first (HEAD): one the remote holds is not sent again. Otherwise it is
mounted from another remote repository that a push policy of this remote mirrors to (``mount_from``)
where the remote allows, else uploaded (``Remote.upload_blob``: small blobs at once, large ones in
resumable chunks). Child manifests the remote holds are not sent again either; the tag's manifest
is always put last, so the remote's tag moves only once everything it needs is there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence

from dtr.mirroring.remote import Remote
from dtr.registry.manifests import parse_manifest
from dtr.registry.names import blob_path
from dtr.registry.service import RegistryService, StoredManifest


class MissingBlob(Exception):
    """A blob the manifest names is gone from the local repository (deleted since)."""


@dataclasses.dataclass
class PushStats:
    blobs_sent: int = 0
    blobs_present: int = 0
    blobs_mounted: int = 0
    manifests_sent: int = 0


@dataclasses.dataclass
class Pusher:
    """Copies manifests of ``local`` to ``target`` on ``remote``."""

    remote: Remote
    registry: RegistryService
    local: str
    target: str
    mount_from: Sequence[str] = ()
    log: Callable[[str], None] = lambda _: None
    stats: PushStats = dataclasses.field(default_factory=PushStats)

    async def push_tag(self, tag: str, remote_tag: str) -> str:
        """Push the local ``tag`` as ``remote_tag``; its manifest digest (RegistryError
        MANIFEST_UNKNOWN when the tag is gone)."""
        manifest = await self.registry.get_manifest(self.local, tag)
        await self._push_manifest(manifest, remote_tag)
        self.log(f"pushed {self.local}:{tag} ({manifest.digest}) to {self.remote.endpoint}/{self.target}:"
                 f"{remote_tag}")
        return manifest.digest

    async def _push_manifest(self, manifest: StoredManifest, reference: str) -> None:
        parsed = parse_manifest(manifest.payload, manifest.media_type)
        for child in parsed.manifests:
            if await self.remote.manifest_digest(self.target, child) == child:
                continue
            await self._push_manifest(await self.registry.get_manifest(self.local, child), child)
        for digest in parsed.blobs:
            await self._push_blob(digest)
        await self.remote.put_manifest(self.target, reference, manifest.payload, manifest.media_type)
        self.stats.manifests_sent += 1

    async def _push_blob(self, digest: str) -> None:
        if await self.remote.has_blob(self.target, digest, push=True):
            self.stats.blobs_present += 1
            return
        size = await self.registry.blob_size(self.local, digest)
        if size is None:
            raise MissingBlob(f"blob {digest} is no longer in {self.local}")
        location = None
        for source in self.mount_from:
            if source == self.target:
                continue
            location = await self.remote.mount(self.target, digest, source)
            if location is None:
                self.stats.blobs_mounted += 1
                self.log(f"mounted {digest} from {source}")
                return
            break  # the remote started an upload instead: use it
        storage = self.registry.storage

        def open_at(offset: int) -> AsyncIterator[bytes]:
            return storage.reader(blob_path(digest), offset)

        await self.remote.upload_blob(self.target, digest, size, open_at, location)
        self.stats.blobs_sent += 1
        self.log(f"uploaded {digest} ({size} bytes)")

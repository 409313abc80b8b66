"""Push mirroring's copy: a local tag's manifest (an index with each child manifest) and the
blobs the remote lacks, streamed from dtr's storage to the remote repository.

Each blob is checked first (HEAD): one the remote holds is not sent again. Otherwise it is
mounted from another remote repository that a push policy of this remote mirrors to (``mount_from``)
where the remote allows, else uploaded (``Remote.upload_blob``: small blobs at once, large ones in
resumable chunks, where they stand kept in ``book``: a later run resumes an upload an earlier one
left rather than send the blob from its first byte). Child manifests the remote holds are not sent
again either; the tag's manifest is always put last, so the remote's tag moves only once everything it needs is there.
A manifest's blobs go ``BLOB_CONCURRENCY`` at a time (as skopeo and docker push layers), each on
its own connection.

Then the image's artifacts (``dtr.signatures.discover``: referrers, whose ``subject`` is the
image, and cosign's ``sha256-<hex>.sig/.att/.sbom`` tags) follow, each with its blobs, unless the
remote holds it already: a referrer by digest (a remote with the referrers API then lists it; one
without, which answers no ``OCI-Subject``, gets it added to the index at the referrers tag schema's
``sha256-<hex>``, as OCI distribution-spec 1.1 asks clients to do), a cosign tag under its tag.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from dtr.mirroring.remote import Remote, RemoteError, referrers_tag
from dtr.mirroring.uploads import UploadBook
from dtr.ops.tasks import bounded
from dtr.registry.manifests import OCI_INDEX, parse_manifest
from dtr.registry.names import blob_path
from dtr.registry.service import RegistryService, StoredManifest
from dtr.signatures.discover import Artifact, artifacts_of

#: Blobs of one manifest sent at once.
BLOB_CONCURRENCY = 4


class MissingBlob(Exception):
    """A blob the manifest names is gone from the local repository (deleted since)."""


@dataclasses.dataclass
class PushStats:
    blobs_sent: int = 0
    blobs_present: int = 0
    blobs_mounted: int = 0
    manifests_sent: int = 0
    referrers_sent: int = 0
    referrers_present: int = 0


@dataclasses.dataclass
class Pusher:
    """Copies manifests of ``local`` to ``target`` on ``remote``."""

    remote: Remote
    registry: RegistryService
    local: str
    target: str
    mount_from: Sequence[str] = ()
    log: Callable[[str], None] = lambda _: None
    #: Where chunked uploads stand, for a later run to resume them; None: not kept.
    book: UploadBook | None = None
    stats: PushStats = dataclasses.field(default_factory=PushStats)

    async def push_tag(self, tag: str, remote_tag: str) -> str:
        """Push the local ``tag`` as ``remote_tag``; its manifest digest (RegistryError
        MANIFEST_UNKNOWN when the tag is gone)."""
        manifest = await self.registry.get_manifest(self.local, tag)
        await self._push_manifest(manifest, remote_tag)
        self.log(f"pushed {self.local}:{tag} ({manifest.digest}) to {self.remote.endpoint}/{self.target}:"
                 f"{remote_tag}")
        await self.push_artifacts(manifest.digest)
        return manifest.digest

    async def push_artifacts(self, digest: str) -> None:
        """Push the artifacts of image ``digest`` the remote lacks (see the module's docstring)."""
        async with self.registry.engine.connect() as conn:
            found = (await artifacts_of(conn, self.local, [digest])).get(digest, [])
        unlisted = []
        for artifact in found:
            reference = artifact.tag or artifact.digest
            if await self.remote.manifest_digest(self.target, reference) == artifact.digest:
                self.stats.referrers_present += 1
                continue
            subject = await self._push_manifest(await self.registry.get_manifest(self.local, artifact.digest),
                                                reference)
            self.stats.referrers_sent += 1
            self.log(f"pushed {artifact.kind.value} {artifact.digest} of {digest} ({artifact.found_by})")
            if artifact.tag is None and subject is None:
                unlisted.append(_descriptor(artifact))
        if unlisted:
            await self._list_in_tag(digest, unlisted)

    async def _list_in_tag(self, subject: str, added: list[dict[str, Any]]) -> None:
        """Add ``added`` to the index at ``subject``'s referrers tag on the remote."""
        current = await self.remote.referrers_index(self.target, subject)
        known = {d["digest"] for d in current}
        new = [d for d in added if d["digest"] not in known]
        if new:
            body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": current + new}).encode()
            await self.remote.put_manifest(self.target, referrers_tag(subject), body, OCI_INDEX)
            self.log(f"listed {len(new)} referrer(s) of {subject} at the remote's tag {referrers_tag(subject)}")

    async def _push_manifest(self, manifest: StoredManifest, reference: str) -> str | None:
        parsed = parse_manifest(manifest.payload, manifest.media_type)
        for child in parsed.manifests:
            if await self.remote.manifest_digest(self.target, child) == child:
                continue
            await self._push_manifest(await self.registry.get_manifest(self.local, child), child)
        await bounded(dict.fromkeys(parsed.blobs), self._push_blob, BLOB_CONCURRENCY)
        subject = await self.remote.put_manifest(self.target, reference, manifest.payload, manifest.media_type)
        self.stats.manifests_sent += 1
        return subject

    async def _push_blob(self, digest: str) -> None:
        if await self.remote.has_blob(self.target, digest, push=True):
            self.stats.blobs_present += 1
            return
        size = await self.registry.blob_size(self.local, digest)
        if size is None:
            raise MissingBlob(f"blob {digest} is no longer in {self.local}")
        location, offset = await self._resumable(digest, size)
        for source in () if location else self.mount_from:
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

        book = self.book if size > self.remote.monolithic_max else None
        await self.remote.upload_blob(self.target, digest, size, open_at, location, offset,
                                      functools.partial(book.save, digest) if book else None)
        if book is not None:
            await book.forget(digest)
        self.stats.blobs_sent += 1
        self.log(f"uploaded {digest} ({size} bytes)")

    async def _resumable(self, digest: str, size: int) -> tuple[str | None, int]:
        """An upload of ``digest`` an earlier run left at the remote, and the bytes it holds
        (None, 0: there is none to resume)."""
        if self.book is None or size <= self.remote.monolithic_max or not (saved := await self.book.find(digest)):
            return None, 0
        try:
            location, offset = await self.remote.upload_status(self.target, saved)
        except RemoteError as e:
            if e.status not in (400, 404):
                raise
            self.log(f"the upload of {digest} an earlier run started is gone from the remote: starting again")
            return None, 0
        if offset > size:
            return None, 0
        self.remote.resumed += 1
        self.log(f"resuming the upload of {digest} an earlier run left at byte {offset} of {size}")
        return location, offset


def _descriptor(artifact: Artifact) -> dict[str, Any]:
    """The referrers index's descriptor of ``artifact``."""
    d: dict[str, Any] = {"mediaType": artifact.media_type, "digest": artifact.digest, "size": len(artifact.payload)}
    if artifact.artifact_type:
        d["artifactType"] = artifact.artifact_type
    if artifact.annotations:
        d["annotations"] = artifact.annotations
    return d


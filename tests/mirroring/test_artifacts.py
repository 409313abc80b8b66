"""An image's artifacts (an SBOM referrer, cosign's ``.sig`` tag) are mirrored with it: pushed to
a second dtr (referrers API) and to Go's reference registry (2.8: no referrers API, so the
referrers tag schema's index), and polled back from each."""

from __future__ import annotations

import json
from collections.abc import Callable

import aiohttp

from tests.clients.engines import ReferenceRegistry
from tests.mirroring.conftest import LOCAL, api, job, random_image
from tests.oci import (
    ALL_MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    digest_of,
    dumps,
    get,
    push_blob,
    push_image,
    put_manifest,
)
from tests.servers import DtrProcess
from tests.signatures import makers as mk


async def _artifacts(http: aiohttp.ClientSession, base: str, repo: str) -> tuple[str, mk.Artifact, mk.Artifact, str]:
    """Push image ``v1``, an SBOM referring to it and its cosign signature tag to ``repo``:
    (the image's digest, the SBOM, the signature, the signature's tag)."""
    config, layers, manifest = random_image(1000)
    await push_image(http, base, repo, "v1", config, layers)
    digest = digest_of(manifest)
    sbom = mk.referrer("application/spdx+json", "application/spdx+json", dumps({"spdxVersion": "SPDX-2.3"}),
                       (OCI_MANIFEST, digest, len(manifest)))
    sig = mk.cosign_signature([(mk.simple_signing(digest), b"not checked here", None)])
    sig_tag = f"sha256-{digest.partition(':')[2]}.sig"
    for artifact, ref in ((sbom, sbom.digest), (sig, sig_tag)):
        for blob in artifact.blobs:
            await push_blob(http, base, repo, blob)
        status, info = await put_manifest(http, base, repo, ref, artifact.manifest)
        assert status == 201, info
    return digest, sbom, sig, sig_tag


def _run(proc: DtrProcess, repo: str, kind: str, body: dict[str, object]) -> dict[str, object]:
    """Create a disabled policy (no run but ours) and run it: the ended job, asserted done."""
    policy = api(proc, "POST", f"/repositories/{repo}/{kind}MirroringPolicies", {**body, "enabled": False},
                 expect=201)
    run = api(proc, "POST", f"/repositories/{repo}/{kind}MirroringPolicies/{policy['id']}/run", expect=202)
    ended = job(proc, run["id"], timeout=120)
    assert ended["status"] == "done", ended
    return ended


async def _poll_back(http: aiohttp.ClientSession, local: DtrProcess, remote_url: str, digest: str,
                     sbom: mk.Artifact, sig: mk.Artifact, sig_tag: str) -> None:
    """A poll of ``mirror/app:v1`` into ``test/back`` brings the SBOM and the signature too."""
    await push_image(http, local.url, "test/back", "seed", *random_image(10)[:2])
    polled = _run(local, "test/back", "poll", {"remoteHost": remote_url, "remoteRepository": "mirror/app",
                                              "rules": [{"field": "tag", "operator": "eq", "values": ["v1"]}]})
    assert polled["result"] == {**polled["result"], "tags": ["v1"], "artifactsFetched": 2}, polled
    assert await _referrers(http, local.url, "test/back", digest) == [sbom.digest]
    assert await get(http, f"{local.url}/v2/test/back/manifests/{sig_tag}") == (200, sig.manifest)
    assert await get(http, f"{local.url}/v2/test/back/manifests/{sbom.digest}") == (200, sbom.manifest)
    again = _run(local, "test/back", "poll", {"remoteHost": remote_url, "remoteRepository": "mirror/app",
                                             "rules": [{"field": "tag", "operator": "eq", "values": ["v1"]}]})
    assert again["result"] == {"tags": [], "blobsFetched": 0, "artifactsFetched": 0}, again


async def _referrers(http: aiohttp.ClientSession, base: str, repo: str, digest: str) -> list[str]:
    status, body = await get(http, f"{base}/v2/{repo}/referrers/{digest}", OCI_INDEX)
    assert status == 200, body
    return [d["digest"] for d in json.loads(body)["manifests"]]


async def test_push_and_poll_mirroring_carry_referrers_and_cosign_tags_to_and_from_a_dtr(
        local: DtrProcess, dtr_factory: Callable[..., DtrProcess], http: aiohttp.ClientSession) -> None:
    remote = dtr_factory(LOCAL)
    digest, sbom, sig, sig_tag = await _artifacts(http, local.url, "test/app")
    body = {"remoteHost": remote.url, "remoteRepository": "mirror/app",
            "rules": [{"field": "tag", "operator": "eq", "values": ["v1"]}]}
    first = _run(local, "test/app", "push", body)
    assert (first["result"]["referrers_sent"], first["result"]["referrers_present"]) == (2, 0), first
    assert await _referrers(http, remote.url, "mirror/app", digest) == [sbom.digest]  # with its subject
    assert await get(http, f"{remote.url}/v2/mirror/app/manifests/{sig_tag}") == (200, sig.manifest)
    status, _ = await get(http, f"{remote.url}/v2/mirror/app/manifests/sha256-{digest.partition(':')[2]}",
                          ALL_MANIFEST_TYPES)
    assert status == 404  # an OCI 1.1 registry lists referrers itself: no referrers tag

    again = _run(local, "test/app", "push", body)
    assert (again["result"]["referrers_sent"], again["result"]["referrers_present"]) == (0, 2), again
    await _poll_back(http, local, remote.url, digest, sbom, sig, sig_tag)


async def test_push_and_poll_mirroring_use_the_referrers_tag_with_the_reference_registry(
        local: DtrProcess, reference: Callable[..., ReferenceRegistry], http: aiohttp.ClientSession) -> None:
    remote = reference()
    digest, sbom, sig, sig_tag = await _artifacts(http, local.url, "test/app")
    first = _run(local, "test/app", "push", {"remoteHost": remote.url, "remoteRepository": "mirror/app",
                                            "rules": [{"field": "tag", "operator": "eq", "values": ["v1"]}]})
    assert first["result"]["referrers_sent"] == 2, first
    assert "at the remote's tag sha256-" in first["log"], first["log"]
    async with http.get(f"{remote.url}/v2/mirror/app/referrers/{digest}") as r:
        assert r.status == 404  # docker-registry 2.8 has no referrers API
    status, raw = await get(http, f"{remote.url}/v2/mirror/app/manifests/sha256-{digest.partition(':')[2]}",
                            OCI_INDEX)
    assert status == 200, raw
    assert [d["digest"] for d in json.loads(raw)["manifests"]] == [sbom.digest]
    assert await get(http, f"{remote.url}/v2/mirror/app/manifests/{sig_tag}") == (200, sig.manifest)
    await _poll_back(http, local, remote.url, digest, sbom, sig, sig_tag)

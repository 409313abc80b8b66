"""Garbage collection keeps an image's signatures while the image is in its repository and takes
them with it: OCI 1.1 referrers (a Sigstore bundle) and cosign's tag-scheme ``.sig`` manifest and
tag alike, whether the image was deleted through the API or collected in the same run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.auth.client import Client
from tests.clients.engines import Skopeo, Umoci
from tests.jobs.conftest import api, wait_job
from tests.oci import digest_of
from tests.servers import DtrProcess
from tests.signatures import makers as mk
from tests.signatures.conftest import Site

REPO = "signed/app"


def _sign(site: Site, subject: tuple[str, str, int]) -> tuple[mk.Artifact, mk.Artifact]:
    """A cosign ``.sig`` (tag scheme) and a Sigstore bundle (referrer) of ``subject``, pushed with skopeo."""
    key = mk.ec_key()
    payload = mk.simple_signing(subject[1])
    sig = mk.cosign_signature([(payload, mk.sign(key, payload), None)])
    site.push_layout(REPO, f"sha256-{subject[1][7:]}.sig", sig)
    bundle = mk.referrer(mk.BUNDLE, mk.BUNDLE, mk.bundle_message(subject[1], key), subject)
    site.push_layout(REPO, bundle.digest, bundle)
    return sig, bundle


async def _gc(http: aiohttp.ClientSession, base: str) -> dict:  # type: ignore[type-arg]
    job = await api(http, "POST", f"{base}/api/v0/jobs", {"action": "gc", "parameters": {"grace_period": 0}})
    final = await wait_job(http, base, job["id"], within=120)
    assert final["status"] == "done", final
    return dict(final["result"])


async def _status(http: aiohttp.ClientSession, url: str) -> int:
    async with http.head(url, headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}) as r:
        return r.status


async def test_signatures_live_and_die_with_their_image(dtr_factory: Callable[..., DtrProcess], skopeo: Skopeo,
                                                        umoci: Umoci, busybox: str, tmp_path: Path,
                                                        http: aiohttp.ClientSession) -> None:
    proc = dtr_factory()
    site = Site(proc, Client(proc.url), skopeo, umoci, busybox, tmp_path, auth=None)
    images = {name: site.push_image(REPO, name) for name in ("kept", "deleted", "untagged")}
    signed = {name: _sign(site, subject) for name, subject in images.items()}
    base = f"{proc.url}/v2/{REPO}"

    def sig_tag(name: str) -> str:
        return f"sha256-{images[name][1][7:]}.sig"

    await _gc(http, proc.url)  # every image lives: so do its signatures
    for name, (_, bundle) in signed.items():
        assert await _status(http, f"{base}/manifests/{sig_tag(name)}") == 200
        assert await _status(http, f"{base}/manifests/{bundle.digest}") == 200

    async with http.delete(f"{base}/manifests/{images['deleted'][1]}") as r:
        assert r.status == 202
    async with http.delete(f"{base}/manifests/untagged") as r:
        assert r.status == 202
    # Deleting an image leaves its cosign tag until GC (pushed again in time, it is signed still).
    assert await _status(http, f"{base}/manifests/{sig_tag('deleted')}") == 200

    result = await _gc(http, proc.url)
    for name in ("deleted", "untagged"):
        sig, bundle = signed[name]
        assert await _status(http, f"{base}/manifests/{sig_tag(name)}") == 404
        for gone in (sig.digest, bundle.digest, images[name][1]):
            assert await _status(http, f"{base}/manifests/{gone}") == 404
        async with http.head(f"{base}/blobs/{digest_of(sig.blobs[1])}") as r:
            assert r.status == 404  # the payload blob collected too
    sig, bundle = signed["kept"]
    assert await _status(http, f"{base}/manifests/{sig_tag('kept')}") == 200
    assert await _status(http, f"{base}/manifests/{bundle.digest}") == 200
    async with http.get(f"{base}/tags/list") as r:
        assert sorted((await r.json())["tags"]) == sorted(["kept", sig_tag("kept")])
    assert result["manifests"] == 5  # "untagged" and the four signatures; "deleted" went through the API

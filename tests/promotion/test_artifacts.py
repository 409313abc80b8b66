"""A promoted image's artifacts go with it: its referrers (by digest, with their subject) and its
cosign tags, and those that come after the image on a later evaluation."""

from __future__ import annotations

import json
import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.oci import OCI_MANIFEST, digest_of, dumps, get, push_blob, push_image, put_manifest
from tests.promotion.conftest import Client, api, create_policy, new_repo, rule, settle, tags
from tests.signatures import makers as mk


async def _push(client: Client, base: str, repo: str, artifact: mk.Artifact, ref: str | None = None) -> None:
    for blob in artifact.blobs:
        await push_blob(client.session, base, repo, blob)
    status, info = await put_manifest(client.session, base, repo, ref or artifact.digest, artifact.manifest)
    assert status == 201, info


async def _referrers(client: Client, base: str, repo: str, digest: str) -> set[str]:
    status, body = await get(client.session, f"{base}/v2/{repo}/referrers/{digest}")
    assert status == 200, body
    return {d["digest"] for d in json.loads(body)["manifests"]}


async def test_a_promotion_copies_the_images_referrers_and_cosign_tags_and_later_ones(
        app_client: Client, app_base: str, engine_: AsyncEngine) -> None:
    source, target = await new_repo(app_client, app_base), await new_repo(app_client, app_base)
    config = dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                    "config": {"Labels": {"id": uuid.uuid4().hex}}})
    body = await push_image(app_client.session, app_base, source, "v1", config, [uuid.uuid4().bytes * 64])
    digest = digest_of(body)
    subject = (OCI_MANIFEST, digest, len(body))
    sbom = mk.referrer("application/spdx+json", "application/spdx+json", dumps({"spdxVersion": "SPDX-2.3"}), subject)
    await _push(app_client, app_base, source, sbom)
    sig_tag = f"sha256-{digest.partition(':')[2]}.sig"
    sig = mk.cosign_signature([(mk.simple_signing(digest), b"not checked here", None)])
    await _push(app_client, app_base, source, sig, sig_tag)
    await settle(engine_)

    policy = await create_policy(app_client, source, target, [rule("tag", "eq", "v1")])
    status, _ = await api(app_client, "POST", f"/repositories/{source}/promotionPolicies/{policy['id']}/run")
    assert status == 202
    await settle(engine_)
    assert await tags(engine_, target) == {"v1": digest, sig_tag: sig.digest}
    assert await _referrers(app_client, app_base, target, digest) == {sbom.digest}

    # an attestation pushed after the promotion follows at the next evaluation; the tag stays
    later = mk.referrer(mk.IN_TOTO, mk.IN_TOTO, mk.in_toto(digest), subject)
    await _push(app_client, app_base, source, later)
    status, _ = await api(app_client, "POST", f"/repositories/{source}/promotionPolicies/{policy['id']}/run")
    assert status == 202
    await settle(engine_)
    assert await _referrers(app_client, app_base, target, digest) == {sbom.digest, later.digest}
    assert await tags(engine_, target) == {"v1": digest, sig_tag: sig.digest}

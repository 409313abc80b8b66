"""The signed-images-only policy, with real clients: an unsigned tag is refused by tag (403
DENIED naming it), pulls by digest go on, a cosign signature verified by a trusted key lets the
tag through, and a namespace's setting covers its repositories."""

from __future__ import annotations

import json

from tests.oci import ALL_MANIFEST_TYPES
from tests.signatures import makers as mk
from tests.signatures.conftest import Site, World

ACCEPT = {"Accept": ALL_MANIFEST_TYPES}


def _policy(site: Site, scope: str, on: bool) -> dict:  # type: ignore[type-arg]
    path = f"/repositories/{scope}" if "/" in scope else f"/namespaces/{scope}"
    r = site.client.api("PUT", f"{path}/signingPolicy", site.auth, {"signedOnly": on}, expect=200)
    return dict(r.json())


def test_signed_only_refuses_an_unsigned_tag_until_a_trusted_signature_exists(site: Site, world: World) -> None:
    repo = site.new_repo(world.org)
    _, digest, _ = site.push_image(repo, "v1")
    assert site.v2("GET", repo, "manifests/v1", ACCEPT).status == 200

    got = _policy(site, repo, True)
    assert got["signedOnly"] is True and got["enforced"] is True and got["scope"] == repo
    for method in ("GET", "HEAD"):
        r = site.v2(method, repo, "manifests/v1", ACCEPT)
        assert r.status == 403, r.body
    error = json.loads(site.v2("GET", repo, "manifests/v1", ACCEPT).body)["errors"][0]
    assert error["code"] == "DENIED" and f"{repo}:v1" in error["message"] and "signature" in error["message"]
    assert site.v2("GET", repo, f"manifests/{digest}", ACCEPT).status == 200  # by digest: not checked

    key = mk.ec_key()
    payload = mk.simple_signing(digest, f"{site.host}/{repo}")
    site.push_layout(repo, f"sha256-{digest[7:]}.sig", mk.cosign_signature([(payload, mk.sign(key, payload), None)]))
    assert site.v2("GET", repo, "manifests/v1", ACCEPT).status == 403  # signed, but by no trusted key
    site.trust(repo, "release", mk.public_pem(key))
    assert site.v2("GET", repo, "manifests/v1", ACCEPT).status == 200
    assert _policy(site, repo, False)["enforced"] is False


def test_a_namespace_policy_covers_its_repositories(site: Site, world: World) -> None:
    repo = site.new_repo(world.org)
    site.push_image(repo, "latest")
    got = _policy(site, world.org, True)
    try:
        assert got["scope"] == world.org and got["enforced"] is True
        r = site.client.api("GET", f"/repositories/{repo}/signingPolicy", site.auth, expect=200).json()
        assert r["signedOnly"] is False and r["enforced"] is True
        assert site.v2("GET", repo, "manifests/latest", ACCEPT).status == 403
    finally:
        _policy(site, world.org, False)
    assert site.v2("GET", repo, "manifests/latest", ACCEPT).status == 200

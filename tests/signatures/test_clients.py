"""OCI signatures pushed by real clients into a dtr with auth on, found and verified.

The image is a busybox image built with umoci and pushed with skopeo; cosign's tag-scheme
signature and the Sigstore bundle (the spec's exact manifest: ``artifactType``, empty config,
``subject``) go through OCI layouts with skopeo (``--preserve-digests``: pushed byte for byte);
the notation signature and an SBOM are pushed with PyPI's oras (its ``subject``). Every
signature object is made in tests/signatures/makers.py from the published specs with real keys.
"""

from __future__ import annotations

import datetime as dt

from tests.auth.world import World
from tests.oci import OCI_MANIFEST
from tests.signatures import makers as mk
from tests.signatures.conftest import Site


def _by_type(doc: dict, kind: str) -> list[dict]:  # type: ignore[type-arg]
    return [s for s in doc["signatures"] if s["type"] == kind]


def test_a_cosign_tag_scheme_signature_pushed_with_skopeo_is_verified_only_with_its_key(site: Site,
                                                                                      world: World) -> None:
    repo = site.new_repo(world.org)
    subject = site.push_image(repo, "v1")
    digest = subject[1]
    key, other = mk.ec_key(), mk.ec_key()
    payload = mk.simple_signing(digest, f"{site.host}/{repo}")
    sig = site.push_layout(repo, f"sha256-{digest[7:]}.sig", mk.cosign_signature([(payload, mk.sign(key, payload),
                                                                                   None)]))
    found = site.signatures(repo, "v1")
    assert found["digest"] == digest and found["trusted"] is False
    (cosign,) = _by_type(found, "cosign")
    assert cosign["digest"] == sig and cosign["foundBy"] == f"tag sha256-{digest[7:]}.sig"
    assert cosign["verified"] is False and "no trusted key" in cosign["reason"]

    site.trust(repo, "someone-else", mk.public_pem(other))
    assert _by_type(site.signatures(repo, "v1"), "cosign")[0]["verified"] is False  # a wrong key

    made = site.trust(repo, "release", mk.public_pem(key))
    found = site.signatures(repo, digest)  # by digest too
    (cosign,) = _by_type(found, "cosign")
    assert cosign["verified"] is True and cosign["trustedKey"] == "release" and found["trusted"] is True
    assert cosign["identity"] == f"key sha256:{made['fingerprint']}" and cosign["reason"] is None


def test_a_cosign_signature_of_another_image_or_tampered_is_not_verified(site: Site, world: World) -> None:
    repo = site.new_repo(world.org)
    digest = site.push_image(repo, "v1")[1]
    elsewhere = site.push_image(repo, "v2")[1]
    key = mk.ec_key()
    site.trust(world.org, f"ns-{repo[-6:]}", mk.public_pem(key))  # the namespace's keys count too
    theirs = mk.simple_signing(elsewhere)  # a valid signature, but of the other image
    ours = mk.simple_signing(digest)
    tampered = ours.replace(b"dtr tests", b"dtr t3sts")  # signed before the change
    site.push_layout(repo, f"sha256-{digest[7:]}.sig", mk.cosign_signature([
        (theirs, mk.sign(key, theirs), None), (tampered, mk.sign(key, ours), None)]))
    first, second = _by_type(site.signatures(repo, "v1"), "cosign")
    assert first["verified"] is False and elsewhere in first["reason"] and first["layer"] == 0
    assert second["verified"] is False and "no trusted key verifies" in second["reason"] and second["layer"] == 1
    assert site.signatures(repo, "v1")["trusted"] is False


def test_a_bundle_and_a_notation_signature_are_referrers_verified_by_key_and_by_ca(site: Site, world: World) -> None:
    repo = site.new_repo(world.org)
    subject = site.push_image(repo, "v1")
    media, digest, size = subject
    bundle_key = mk.ec_key()
    bundle = mk.referrer(mk.BUNDLE, mk.BUNDLE, mk.bundle_message(digest, bundle_key), subject,
                         {"dev.sigstore.bundle.content": "message-signature"})
    bundle_digest = site.push_layout(repo, bundle.digest, bundle)
    root, signer = mk.pki(mk.ec_key())
    jws = mk.notation_jws(subject, signer)
    notation_digest = site.oras_push(repo, "notation", {"signature.jws": (jws, mk.JWS)}, mk.NOTATION, subject,
                                     {"io.cncf.notary.x509chain.thumbprint#S256": mk.thumbprints(signer)})
    sbom_digest = site.oras_push(repo, "sbom", {"sbom.spdx.json": (b'{"spdxVersion": "SPDX-2.3"}',
                                                                   "application/spdx+json")},
                                 "application/spdx+json", subject)
    for tag in ("notation", "sbom"):  # as notation pushes: untagged, found through the subject only
        assert site.v2("DELETE", repo, f"manifests/{tag}").status == 202

    index = site.v2("GET", repo, f"referrers/{digest}").json()
    assert {d["digest"]: d.get("artifactType") for d in index["manifests"]} == {
        bundle_digest: mk.BUNDLE, notation_digest: mk.NOTATION, sbom_digest: "application/spdx+json"}
    only = site.v2("GET", repo, f"referrers/{digest}?artifactType={mk.NOTATION}").json()
    assert [d["digest"] for d in only["manifests"]] == [notation_digest]
    assert only["manifests"][0]["annotations"]["io.cncf.notary.x509chain.thumbprint#S256"]

    found = site.signatures(repo, "v1")
    kinds = {s["digest"]: s for s in found["signatures"]}
    assert {s["type"] for s in kinds.values()} == {"sigstore-bundle", "notation", "sbom"}
    assert all(s["foundBy"] == "referrers" for s in kinds.values())
    assert kinds[notation_digest]["verified"] is False
    assert kinds[notation_digest]["identity"].startswith("dev@example.com (issuer CN=dtr test intermediate CA")
    assert kinds[sbom_digest]["verified"] is False and kinds[sbom_digest]["reason"] == "not a signature (sbom)"

    site.trust(repo, "notation-root", mk.cert_pem(root.chain[0]))  # the CA: the chain leads to it
    site.trust(repo, "bundle-key", mk.public_pem(bundle_key))
    kinds = {s["digest"]: s for s in site.signatures(repo, "v1")["signatures"]}
    assert kinds[notation_digest]["verified"] is True and kinds[notation_digest]["trustedKey"] == "notation-root"
    assert kinds[bundle_digest]["verified"] is True and kinds[bundle_digest]["trustedKey"] == "bundle-key"
    assert media == OCI_MANIFEST and size > 0


def test_a_notation_signature_of_another_image_or_expired_or_tampered_is_not_verified(site: Site,
                                                                                      world: World) -> None:
    repo = site.new_repo(world.org)
    subject = site.push_image(repo, "v1")
    other = site.push_image(repo, "v2")
    root, signer = mk.pki(mk.ec_key())
    site.trust(repo, "root", mk.cert_pem(root.chain[0]))
    cases = {
        "target": mk.notation_jws(subject, signer, target=other[1]),
        "expired": mk.notation_jws(subject, signer, expiry=dt.datetime.now(dt.UTC) - dt.timedelta(days=1)),
        "tampered": mk.notation_jws(subject, signer).replace(b'"signature":"', b'"signature":"AA'),
    }
    pushed = {name: mk.referrer(mk.NOTATION, mk.JWS, jws, subject) for name, jws in cases.items()}
    for artifact in pushed.values():
        site.push_layout(repo, artifact.digest, artifact)
    kinds = {s["digest"]: s for s in site.signatures(repo, "v1")["signatures"]}
    assert other[1] in kinds[pushed["target"].digest]["reason"]
    assert "expired" in kinds[pushed["expired"].digest]["reason"]
    assert kinds[pushed["tampered"].digest]["reason"].startswith("not verified: ")
    assert not any(s["verified"] for s in kinds.values())

"""Verification in process (dtr's app on a real Postgres and storage): what verifies (cosign keys
and certificates chained to a registered CA, DSSE attestations, Sigstore DSSE bundles, notation
PS256 and ES256), hostile signature objects answered "not verified: <reason>" and never an error,
and the cache. Artifacts are pushed over /v2; verification is ``dtr.signatures.verify``'s."""

from __future__ import annotations

import base64
import copy
import json
import os
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from sqlalchemy import insert

from dtr.keys import DATABASE, STORAGE
from dtr.signatures import pem, verify
from dtr.signatures.verify import OciSignature, has_trusted_signature, image_signatures, trusted_keys
from tests.oci import OCI_INDEX, OCI_MANIFEST, digest_of, dumps, push_blob, push_image, put_manifest
from tests.signatures import makers as mk

REPO = "acme/app"
Client = TestClient[web.Request, web.Application]


async def _image(c: Client, base: str) -> tuple[str, str, int]:
    body = await push_image(c.session, base, REPO, "v1", os.urandom(40), [os.urandom(300)])
    return OCI_MANIFEST, digest_of(body), len(body)


async def _push(c: Client, base: str, artifact: mk.Artifact, tag: str | None = None) -> str:
    for blob in artifact.blobs:
        await push_blob(c.session, base, REPO, blob)
    status, info = await put_manifest(c.session, base, REPO, tag or artifact.digest, artifact.manifest)
    assert status == 201, info
    return artifact.digest


async def _trust(app: web.Application, name: str, text: str, scope: str = REPO) -> None:
    material = pem.parse(text)
    async with app[DATABASE].engine.begin() as conn:
        await conn.execute(insert(trusted_keys).values(scope=scope, name=name, kind=material.kind, pem=text,
                                                       fingerprint=material.fingerprint))


async def _found(app: web.Application, digest: str) -> dict[str, list[OciSignature]]:
    out: dict[str, list[OciSignature]] = {}
    for s in await image_signatures(app[DATABASE].engine, app[STORAGE], REPO, digest):
        out.setdefault(s.digest, []).append(s)
    return out


def _tag(digest: str, suffix: str) -> str:
    return f"sha256-{digest[7:]}.{suffix}"


async def test_what_verifies(app: web.Application, app_client: Client, app_base: str) -> None:
    c, base = app_client, app_base
    subject = await _image(c, base)
    digest = subject[1]
    root, leaf = mk.pki(mk.ec_key(), email="ci@example.com")
    rsa_root, rsa_leaf = mk.pki(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    key = mk.ec_key()
    payload = mk.simple_signing(digest)
    by_cert = await _push(c, base, mk.cosign_signature([(payload, mk.sign(leaf.key, payload), leaf)]),
                          _tag(digest, "sig"))
    envelope = dumps(mk.dsse_envelope(mk.in_toto(digest, "https://slsa.dev/provenance/v1"), key))
    att = mk.Artifact(dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                             "config": _config(envelope),
                             "layers": [_layer(mk.DSSE, envelope)]}), [_config_bytes(envelope), envelope])
    attestation = await _push(c, base, att, _tag(digest, "att"))
    bundle = await _push(c, base, mk.referrer(mk.BUNDLE, mk.BUNDLE, mk.bundle_dsse(digest, key), subject))
    es256 = await _push(c, base, mk.referrer(mk.NOTATION, mk.JWS, mk.notation_jws(subject, leaf), subject))
    ps256 = await _push(c, base, mk.referrer(mk.NOTATION, mk.JWS, mk.notation_jws(subject, rsa_leaf, alg="PS256"),
                                             subject))
    engine, storage = app[DATABASE].engine, app[STORAGE]
    assert not await has_trusted_signature(engine, storage, REPO, digest)

    await _trust(app, "ca", mk.cert_pem(root.chain[0]), scope="acme")  # the namespace's
    await _trust(app, "key", mk.public_pem(key))
    await _trust(app, "rsa-leaf", mk.cert_pem(rsa_leaf.chain[0]))  # the signing certificate itself
    found = await _found(app, digest)
    assert [(s.kind, s.verified, s.trusted_key) for s in found[by_cert]] == [("cosign", True, "ca")]
    assert found[by_cert][0].identity == "ci@example.com (issuer CN=dtr test intermediate CA)"
    assert [(s.kind, s.verified, s.trusted_key) for s in found[attestation]] == [("attestation", True, "key")]
    assert [(s.kind, s.verified, s.trusted_key) for s in found[bundle]] == [("sigstore-bundle", True, "key")]
    assert [(s.kind, s.verified, s.trusted_key) for s in found[es256]] == [("notation", True, "ca")]
    assert [(s.kind, s.verified, s.trusted_key) for s in found[ps256]] == [("notation", True, "rsa-leaf")]
    assert await has_trusted_signature(engine, storage, REPO, digest)
    assert rsa_root.chain


def _config_bytes(envelope: bytes) -> bytes:
    return dumps({"architecture": "", "os": "", "config": {},
                  "rootfs": {"type": "layers", "diff_ids": [digest_of(envelope)]}})


def _config(envelope: bytes) -> dict[str, Any]:
    data = _config_bytes(envelope)
    return {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest_of(data), "size": len(data)}


def _layer(media: str, data: bytes, annotations: dict[str, str] | None = None, digest: str | None = None
           ) -> dict[str, Any]:
    d: dict[str, Any] = {"mediaType": media, "digest": digest or digest_of(data), "size": len(data)}
    if annotations is not None:
        d["annotations"] = annotations
    return d


def _hostile_bundles(digest: str, key: ec.EllipticCurvePrivateKey) -> list[bytes]:
    good = mk.bundle_message(digest, key)
    doc = json.loads(good)
    variants: list[bytes] = [b"\xff\xfe not json", b"[]", b'{"mediaType": 5}', b"{" * 5000, dumps({})]
    for path, value in ((("mediaType",), "text/plain"), (("verificationMaterial",), None),
                        (("messageSignature", "signature"), "***"), (("messageSignature", "messageDigest"), []),
                        (("messageSignature", "messageDigest", "algorithm"), "MD5"),
                        (("verificationMaterial",), {"certificate": {"rawBytes": base64.b64encode(b"junk").decode()}}),
                        (("verificationMaterial",), {"x509CertificateChain": {"certificates": []}}),
                        (("messageSignature",), None)):
        v = copy.deepcopy(doc)
        target = v
        for p in path[:-1]:
            target = target[p]
        target[path[-1]] = value
        variants.append(dumps(v))
    statement_not_in_toto = dumps({"payloadType": "x", "payload": base64.b64encode(b"{}").decode(), "signatures": []})
    variants.append(dumps({**doc, "messageSignature": None, "dsseEnvelope": json.loads(
        statement_not_in_toto)}))
    return variants


def _hostile_envelopes(subject: tuple[str, str, int], signer: mk.Signer) -> list[bytes]:
    good = json.loads(mk.notation_jws(subject, signer))
    header = json.loads(base64.urlsafe_b64decode(good["protected"] + "=="))
    out = [b"null", dumps({**good, "extra": 1}), dumps({**good, "header": {"x5c": ["%%%"]}}),
           dumps({**good, "header": {"x5c": [base64.b64encode(b"junk").decode()]}}), dumps({**good, "header": []}),
           dumps({**good, "signature": "AAAA"}), dumps({**good, "payload": mk.b64url(b"not json")}),
           dumps({**good, "protected": "!!"}), dumps({**good, "payload": good["payload"] + "="})]
    for change in ({"alg": "none"}, {"alg": "PS256"}, {"cty": "text/plain"}, {"crit": ["unknown.header"]},
                   {"crit": "io.cncf.notary.signingScheme"}, {"io.cncf.notary.signingScheme": "other"},
                   {"io.cncf.notary.signingTime": "yesterday"}, {"io.cncf.notary.verificationPlugin": "p"}):
        out.append(dumps({**good, "protected": mk.b64url(dumps({**header, **change}))}))
    return out


async def test_hostile_signatures_are_not_verified_and_never_fail(app: web.Application, app_client: Client,
                                                                  app_base: str) -> None:
    c, base = app_client, app_base
    subject = await _image(c, base)
    digest = subject[1]
    key = mk.ec_key()
    root, leaf = mk.pki(key)
    await _trust(app, "key", mk.public_pem(key))
    await _trust(app, "root", mk.cert_pem(root.chain[0]))
    pushed: list[str] = []
    for blob in _hostile_bundles(digest, key):
        pushed.append(await _push(c, base, mk.referrer(mk.BUNDLE, mk.BUNDLE, blob, subject)))
    for blob in _hostile_envelopes(subject, leaf):
        pushed.append(await _push(c, base, mk.referrer(mk.NOTATION, mk.JWS, blob, subject)))
    big = os.urandom((4 << 20) + 1)  # over the size cap: never read
    pushed.append(await _push(c, base, mk.referrer(mk.BUNDLE, mk.BUNDLE, big, subject)))
    pushed.append(await _push(c, base, mk.referrer(mk.NOTATION, "application/cose", b"cbor", subject)))
    # cosign layers: no signature, bad base64, a payload that is no JSON, of the wrong type, a bad certificate
    payload = mk.simple_signing(digest)
    sig = base64.b64encode(mk.sign(key, payload)).decode()
    bad_layers = [
        (payload, {}), (payload, {"dev.cosignproject.cosign/signature": "not base64!"}),
        (b"\x00\x01", {"dev.cosignproject.cosign/signature": sig}),
        (payload.replace(b"cosign container image signature", b"atomic container signature"),
         {"dev.cosignproject.cosign/signature": sig}),
        (payload, {"dev.cosignproject.cosign/signature": sig, "dev.sigstore.cosign/certificate": "-----BEGIN X"}),
    ]
    layers, blobs = [], []
    for data, notes in bad_layers:
        layers.append(_layer(mk.SIMPLESIGNING, data, notes))
        blobs.append(data)
    config = _config_bytes(b"")
    cosign = mk.Artifact(dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {
        "mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest_of(config), "size": len(config)},
        "layers": layers}), [config, *blobs])
    sig_digest = await _push(c, base, cosign, _tag(digest, "sig"))
    empty_index = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
    assert (await put_manifest(c.session, base, REPO, _tag(digest, "att"), empty_index, OCI_INDEX))[0] == 201

    found = await _found(app, digest)
    assert set(pushed) | {sig_digest, digest_of(empty_index)} == set(found)
    everything = [s for listed in found.values() for s in listed]
    assert len(found[sig_digest]) == len(bad_layers)
    for s in everything:
        assert s.verified is False and s.reason and s.reason.startswith("not verified: "), s
        assert len(s.reason) <= 500
        assert s.reason != "not verified: the signature could not be processed", s  # a bug, logged
    assert not await has_trusted_signature(app[DATABASE].engine, app[STORAGE], REPO, digest)


async def test_results_are_cached_by_signature_and_key_state(app: web.Application, app_client: Client,
                                                             app_base: str) -> None:
    subject = await _image(app_client, app_base)
    key = mk.ec_key()
    payload = mk.simple_signing(subject[1])
    sig = await _push(app_client, app_base, mk.cosign_signature([(payload, mk.sign(key, payload), None)]),
                      _tag(subject[1], "sig"))
    before = (await _found(app, subject[1]))[sig][0]
    cached = [k for k in verify._cache if k[0] == sig]
    assert len(cached) == 1 and before.verified is False
    assert (await _found(app, subject[1]))[sig][0] == before  # answered from the cache
    await _trust(app, "late", mk.public_pem(key))  # a new key state: verified afresh
    assert (await _found(app, subject[1]))[sig][0].verified is True
    assert len([k for k in verify._cache if k[0] == sig]) == 2


def test_keys_accepted_and_refused() -> None:
    ed = ed25519.Ed25519PrivateKey.generate()
    assert pem.parse(mk.public_pem(ed)).kind == "public-key"  # type: ignore[arg-type]
    for curve in (ec.SECP384R1(), ec.SECP521R1()):
        assert pem.parse(mk.public_pem(mk.ec_key(curve))).kind == "public-key"
    for refused in (mk.public_pem(mk.ec_key(ec.SECP224R1())), mk.public_pem(mk.ec_key(ec.SECP256K1()))):
        try:
            pem.parse(refused)
        except pem.KeyRefused as e:
            assert "curve" in str(e)
        else:
            raise AssertionError("accepted")

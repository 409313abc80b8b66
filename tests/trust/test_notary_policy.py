"""Notary signatures in the API and under the signed-only policy, on the in-process app with real
Postgres: a tag signed in the repository's trust data (the files docker makes, tests.trust.tufclient)
is listed with its signer and passes the policy; once trusted keys are registered, only a signer
holding one of them counts; a moved tag is no longer signed."""

from __future__ import annotations

import uuid

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.api.helpers import Client, app_seed, image_of
from tests.oci import OCI_MANIFEST, digest_of
from tests.trust.test_notary_views import Trust


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


async def test_a_notary_signed_tag_is_listed_and_passes_the_signed_only_policy(app_client: Client,
                                                                               app_base: str) -> None:
    name = f"acme/n{uuid.uuid4().hex[:10]}"
    _, config, layer = await app_seed(app_client, app_base, name)
    body = image_of(config, layer)
    digest = digest_of(body)
    http = app_client.session

    async def pull(tag: str = "v1") -> int:
        async with http.get(f"{app_base}/v2/{name}/manifests/{tag}", headers={"Accept": OCI_MANIFEST}) as r:
            return r.status

    async def api(method: str, path: str, json: object = None) -> aiohttp.ClientResponse:
        r = await http.request(method, f"{app_base}/api/v0/repositories/{name}{path}", json=json)
        await r.read()
        return r

    assert (await api("PUT", "/signingPolicy", {"signedOnly": True})).status == 200
    assert await pull() == 403
    assert await pull(digest) == 200

    t = Trust(app_client, name)
    await t.fetch_keys()
    t.repo.add_target("v1", body)
    await t.publish({"root": t.repo.root(), "targets": t.repo.targets_file()})
    assert await pull() == 200
    r = await api("GET", "/signatures/v1")
    found = await r.json()
    assert found["inNotary"] is True and found["digest"] == digest
    (signer,) = found["notary"]
    assert signer["role"] == "targets" and signer["current"] is True and signer["gun"] == t.gun
    assert list(signer["keys"]) == [t.repo.targets_key.key_id]

    # Trusted keys registered: the signer must hold one.
    other = ec.generate_private_key(ec.SECP256R1())
    assert (await api("POST", "/trustedKeys", {"name": "other", "pem": _pem(other)})).status == 201
    assert await pull() == 403
    assert (await api("POST", "/trustedKeys", {"name": "ci", "pem": _pem(t.repo.targets_key.private)})).status == 201
    assert await pull() == 200

    # The tag moved to an unsigned image: refused, and the API says the signature is of another digest.
    moved = image_of(config, layer, annotations={"moved": "yes"})
    async with http.put(f"{app_base}/v2/{name}/manifests/v1", data=moved, headers={"Content-Type": OCI_MANIFEST}) as r:
        assert r.status == 201
    assert await pull() == 403
    found = await (await http.get(f"{app_base}/api/v0/repositories/{name}/signatures/v1")).json()
    assert found["inNotary"] is False and found["notary"][0]["current"] is False

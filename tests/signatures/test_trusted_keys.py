"""``/api/v0`` trusted keys against a dtr with auth on: who may list, add and remove them (a
repository's: its admins; a namespace's: the namespace's admins), what is refused (private keys,
weak keys, text that is no PEM) and that changes are audited."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.auth.client import Client
from tests.auth.constants import ADMIN_AUTH
from tests.auth.world import World
from tests.signatures import makers as mk


def _users(world: World, *roles: str) -> list[tuple[str, str]]:
    found = [world.users[r] for r in roles]
    assert all(u is not None for u in found)
    return [u for u in found if u is not None]


def test_repository_keys_are_listed_by_readers_and_changed_by_admins_only(client: Client, world: World) -> None:
    ro, rw, adm, outsider = _users(world, "ro", "rw", "adm", "outsider")
    path = f"/repositories/{world.app}/trustedKeys"
    key = mk.ec_key()
    pem = mk.public_pem(key)
    for who in (ro, rw):
        r = client.api("POST", path, who, {"name": "k", "pem": pem})
        assert r.status == 403 and r.error_code == "FORBIDDEN", r.body
    assert client.api("POST", path, outsider, {"name": "k", "pem": pem}).error_code == "NO_SUCH_REPOSITORY"
    assert client.api("POST", path, None, {"name": "k", "pem": pem}).status == 401

    made = client.api("POST", path, adm, {"name": "release-key", "pem": pem}, expect=201).json()
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert made["fingerprint"] == hashlib.sha256(spki).hexdigest()
    assert made["kind"] == "public-key" and made["scope"] == world.app and made["createdBy"] == adm[0]
    listed = client.api("GET", path, ro, expect=200).json()["trustedKeys"]
    assert [k["name"] for k in listed] == ["release-key"]
    assert client.api("GET", path, outsider).status == 404

    assert client.api("POST", path, adm, {"name": "release-key", "pem": mk.public_pem(mk.ec_key())}).status == 409
    assert client.api("POST", path, adm, {"name": "again", "pem": pem}).status == 409  # the same key
    assert client.api("DELETE", f"{path}/release-key", ro).status == 403
    client.api("DELETE", f"{path}/release-key", adm, expect=204)
    assert client.api("DELETE", f"{path}/release-key", adm).error_code == "NOT_FOUND"
    assert client.api("GET", path, ro, expect=200).json()["trustedKeys"] == []

    events = client.api("GET", f"/events?object={world.app}&pageSize=1000", ADMIN_AUTH, expect=200).json()["events"]
    types = [(e["type"], e["actor"]) for e in events if e["type"].startswith("trusted_key")]
    assert ("trusted_key_create", adm[0]) in types and ("trusted_key_delete", adm[0]) in types


def test_namespace_keys_are_changed_by_the_namespace_admins(client: Client, world: World) -> None:
    owner, adm, ro = _users(world, "owner", "adm", "ro")
    path = f"/namespaces/{world.org}/trustedKeys"
    root, _ = mk.pki(mk.ec_key())
    body = {"name": "org-ca", "pem": mk.cert_pem(root.chain[0])}
    assert client.api("POST", path, adm, body).status == 403  # admin of one repository only
    made = client.api("POST", path, owner, body, expect=201).json()
    assert made["kind"] == "certificate" and made["scope"] == world.org
    assert "org-ca" in [k["name"] for k in client.api("GET", path, ro, expect=200).json()["trustedKeys"]]
    assert client.api("GET", "/namespaces/no-such-namespace-here/trustedKeys", ro).error_code == "NO_SUCH_NAMESPACE"
    assert client.api("DELETE", f"{path}/org-ca", ro).status == 403
    client.api("DELETE", f"{path}/org-ca", owner, expect=204)
    assert "org-ca" not in [k["name"] for k in client.api("GET", path, ro, expect=200).json()["trustedKeys"]]


def test_private_weak_and_malformed_keys_are_refused_and_never_echoed(client: Client, world: World) -> None:
    (adm,) = _users(world, "adm")
    path = f"/repositories/{world.app}/trustedKeys"
    key = mk.ec_key()
    private = mk.private_pem(key)
    secret_line = private.splitlines()[1]
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    for pem, words in ((private, "private key"), (private + mk.public_pem(key), "private key"),
                       (mk.public_pem(weak), "1024 bits"), ("not a key", "PEM block"),
                       ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "does not parse"),
                       (mk.public_pem(key) * 2, "exactly one")):
        r = client.api("POST", path, adm, {"name": "bad", "pem": pem})
        assert r.status == 400 and r.error_code == "INVALID_PARAMETER", r.body
        assert words in r.error_message, r.error_message
        assert secret_line.encode() not in r.body
    assert client.api("POST", path, adm, {"name": "bad name!", "pem": mk.public_pem(key)}).status == 400
    assert client.api("POST", path, adm, {"name": "x", "pem": mk.public_pem(key), "extra": 1}).status == 400
    listed = client.api("GET", path, adm, expect=200).json()["trustedKeys"]
    assert all(k["name"] != "bad" for k in listed)
    strong = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    made = client.api("POST", path, adm, {"name": "rsa-2048", "pem": mk.public_pem(strong)}, expect=201).json()
    client.api("DELETE", f"{path}/{made['name']}", adm, expect=204)


def test_signatures_need_read_access_and_an_existing_reference(client: Client, world: World) -> None:
    ro, outsider = _users(world, "ro", "outsider")
    assert client.api("GET", f"/repositories/{world.app}/signatures/v1", outsider).status == 404
    doc = client.api("GET", f"/repositories/{world.app}/signatures/v1", ro, expect=200).json()
    assert doc["repository"] == world.app and doc["signatures"] == [] and doc["trusted"] is False
    assert client.api("GET", f"/repositories/{world.app}/signatures/nope", ro).error_code == "NO_SUCH_TAG"
    missing = "sha256:" + "0" * 64
    assert client.api("GET", f"/repositories/{world.app}/signatures/{missing}", ro).error_code == "NOT_FOUND"

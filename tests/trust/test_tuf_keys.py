"""Canonical JSON, strict loading, TUF key objects and every signature method notary verifies."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding

from dtr.trust import errors
from dtr.trust.canonical import MAX_DEPTH, canonical, load_json
from dtr.trust.tufkeys import PublicKey, generate_server_key, key_id, load_server_key, parse_key
from tests.trust.test_tuf_build import Key, b64, ec_key, make_cert, rsa_key

MSG = canonical({"_type": "Targets", "version": 1})


def test_canonical_sorted_compact_raw_utf8() -> None:
    obj = {"b": [1, True, None, False], "a": {"z": "x", "é": "ü\u2028", "A": -5}, "": 0}
    assert canonical(obj) == '{"":0,"a":{"A":-5,"z":"x","é":"ü\u2028"},"b":[1,true,null,false]}'.encode()


def test_canonical_escapes_only_quote_and_backslash() -> None:
    assert canonical('a"b\\c\n\t\x01</>&') == b'"a\\"b\\\\c\n\t\x01</>&"'


def test_canonical_key_order_is_bytewise() -> None:
    # U+FF5E sorts after U+00E9 in UTF-8 bytes and in code points; "B" before "a".
    assert canonical({"\uff5e": 1, "é": 2, "a": 3, "B": 4}) == '{"B":4,"a":3,"é":2,"\uff5e":1}'.encode()


@pytest.mark.parametrize("bad", [1.5, float("nan"), float("inf"), {"a": 1.0}, {1: "x"}, b"bytes", "\ud800"])
def test_canonical_refuses(bad: Any) -> None:
    with pytest.raises(ValueError):
        canonical(bad)


def test_load_json_then_canonical_is_whitespace_and_order_blind() -> None:
    a = load_json(b' { "b" : [ 1 , 2 ] ,\n "a" : "\\u00e9\\"" } ')
    b = load_json('{"a":"é\\"","b":[1,2]}'.encode())
    assert canonical(a) == canonical(b) == '{"a":"é\\"","b":[1,2]}'.encode()


@pytest.mark.parametrize("raw", [
    b'{"a":1,"a":2}', b'{"a":1.0}', b'{"a":1e3}', b'{"a":NaN}', b'{"a":Infinity}', b'{"a":-Infinity}',
    b'{"a":"\xff"}', "\ufeff{}".encode(), b'{"a":"\\ud800"}', b"[" * 100000 + b"]" * 100000,
    b"[" * (MAX_DEPTH + 2) + b"]" * (MAX_DEPTH + 2), b"", b"{", b'{"a":1} x', b"'a'",
    b'{"signed":{"a":{"b":1,"b":1}}}',
])
def test_load_json_malformed(raw: bytes) -> None:
    with pytest.raises(errors.TrustError) as e:
        load_json(raw)
    assert e.value.code is errors.MALFORMED_JSON


def test_load_json_accepts_nesting_up_to_limit() -> None:
    assert load_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None


def test_key_id_is_sha256_of_canonical_key_object() -> None:
    key = Key(ec_key())
    obj = '{"keytype":"ecdsa","keyval":{"private":null,"public":"' + key.public.public + '"}}'
    want = hashlib.sha256(obj.encode()).hexdigest()
    assert key.id == want == parse_key(key.obj).key_id == key_id("ecdsa", key.public.public)


@pytest.mark.parametrize("make", [
    lambda: Key(ed25519.Ed25519PrivateKey.generate()),
    lambda: Key(ec_key()),
    lambda: Key(ec_key(ec.SECP384R1())),
    lambda: Key(ec_key(ec.SECP521R1())),
    lambda: Key(rsa_key()),
    lambda: (lambda p: Key(p, cert=make_cert(p)))(ec_key()),
    lambda: (lambda p: Key(p, cert=make_cert(p)))(rsa_key()),
], ids=["ed25519", "ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "rsa", "ecdsa-x509", "rsa-x509"])
def test_every_key_type_signs_and_verifies(make: Any) -> None:
    key: Key = make()
    parsed = parse_key(json.loads(json.dumps(key.obj)))
    assert parsed == key.public
    sig = key.sign(MSG)
    raw = base64.b64decode(sig["sig"])
    assert parsed.verify(sig["method"], raw, MSG)
    assert parsed.verify(sig["method"].upper(), raw, MSG)  # notary lowercases methods
    assert not parsed.verify(sig["method"], raw, MSG + b" ")
    assert not parsed.verify(sig["method"], raw[:-1], MSG)
    assert not parsed.verify(sig["method"], b"", MSG)
    assert not parsed.verify("hmac", raw, MSG)


@pytest.mark.parametrize("x509", [False, True])
def test_rsa_methods(x509: bool) -> None:
    p = rsa_key()
    key = Key(p, cert=make_cert(p) if x509 else None)
    for method in ("rsapss", "rsapkcs1v15"):
        sig = key.sign(MSG, method)
        assert key.public.verify(method, base64.b64decode(sig["sig"]), MSG)
    pss = base64.b64decode(key.sign(MSG, "rsapss")["sig"])
    assert not key.public.verify("rsapkcs1v15", pss, MSG)
    # notary's PSS salt is 32 bytes exactly
    other_salt = p.sign(MSG, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=20), hashes.SHA256())
    assert not key.public.verify("rsapss", other_salt, MSG)
    # the pycrypto method reads a PEM "rsa" key only
    assert not key.public.verify("pycrypto-pkcs#1 pss", pss, MSG)


def test_pycrypto_pss_with_pem_rsa_key() -> None:
    key = Key(rsa_key(), pem_rsa=True)
    sig = base64.b64decode(key.sign(MSG, "rsapss")["sig"])
    assert parse_key(key.obj).verify("pycrypto-pkcs#1 pss", sig, MSG)


def test_rsa_below_2048_never_verifies() -> None:
    for x509 in (False, True):
        p = rsa_key(1024)
        key = Key(p, cert=make_cert(p) if x509 else None)
        for method in ("rsapss", "rsapkcs1v15"):
            assert not parse_key(key.obj).verify(method, base64.b64decode(key.sign(MSG, method)["sig"]), MSG)


def test_ecdsa_der_signatures_refused_like_notary() -> None:
    p = ec_key()
    key = Key(p)
    der = p.sign(MSG, ec.ECDSA(hashes.SHA256()))
    assert not key.public.verify("ecdsa", der, MSG)


def test_method_must_match_key_type() -> None:
    ed = Key(ed25519.Ed25519PrivateKey.generate())
    ecd = Key(ec_key())
    assert not ed.public.verify("ecdsa", base64.b64decode(ed.sign(MSG)["sig"]), MSG)
    assert not ecd.public.verify("eddsa", base64.b64decode(ecd.sign(MSG)["sig"]), MSG)
    assert not ecd.public.verify("rsapss", base64.b64decode(ecd.sign(MSG)["sig"]), MSG)


def _pub(key: Any) -> str:
    return b64(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


@pytest.mark.parametrize(("obj", "reason"), [
    ({"keytype": "dsa", "keyval": {"public": "AAAA"}}, "unknown key type"),
    ({"keytype": "ecdsa", "keyval": {"public": "not base64!"}}, "base64"),
    ({"keytype": "ed25519", "keyval": {"public": b64(b"x" * 31)}}, "32 bytes"),
    ({"keytype": "ecdsa", "keyval": {"public": b64(b"garbage")}}, "SubjectPublicKeyInfo"),
    ({"keytype": "ecdsa-x509", "keyval": {"public": b64(b"-----BEGIN CERTIFICATE-----\nAA\n")}}, "certificate"),
    ({"keytype": "rsa", "keyval": {"public": "PLACEHOLDER_EC"}}, "does not match"),
    ({"keytype": "ecdsa", "keyval": {"public": "PLACEHOLDER_EC", "private": "c2VjcmV0"}}, "private"),
    ({"keytype": "ecdsa"}, "keyval"),
    ("key", "keyval"),
    ({"keytype": 3, "keyval": {"public": "AAAA"}}, "keytype"),
])
def test_parse_key_refuses(obj: Any, reason: str) -> None:
    if isinstance(obj, dict) and obj.get("keyval", {}).get("public") == "PLACEHOLDER_EC":
        obj["keyval"]["public"] = _pub(ec_key().public_key())
    with pytest.raises(ValueError, match=reason):
        parse_key(obj)


def test_parse_key_refuses_unsupported_curve() -> None:
    with pytest.raises(ValueError, match="curve"):
        parse_key({"keytype": "ecdsa", "keyval": {"public": _pub(ec_key(ec.SECP256K1()).public_key())}})


def test_server_key_round_trip() -> None:
    key = generate_server_key()
    assert key.public.keytype == "ecdsa" and "private" not in repr(key)
    assert parse_key(key.public.key_object()) == key.public
    sig = key.sign(MSG)
    assert sig["method"] == "ecdsa" and sig["keyid"] == key.public.key_id
    assert key.public.verify("ecdsa", base64.b64decode(sig["sig"]), MSG)
    again = load_server_key("ecdsa", key.public.public, key.private_der())
    assert again.public == key.public
    assert again.public.verify("ecdsa", base64.b64decode(again.sign(MSG)["sig"]), MSG)
    with pytest.raises(ValueError):
        load_server_key("ecdsa", generate_server_key().public.public, key.private_der())
    with pytest.raises(ValueError):
        load_server_key("ecdsa", key.public.public, b"junk")


def test_ed25519_server_key_loads() -> None:
    p = ed25519.Ed25519PrivateKey.generate()
    der = p.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    pub = b64(p.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    key = load_server_key("ed25519", pub, der)
    sig = key.sign(MSG)
    assert sig["method"] == "eddsa"
    assert PublicKey("ed25519", pub, key_id("ed25519", pub)).verify("eddsa", base64.b64decode(sig["sig"]), MSG)

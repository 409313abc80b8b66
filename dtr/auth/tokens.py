"""Registry bearer tokens (distribution's token spec): ES256 JWTs signed with a key every replica
shares (kept in the database: ``dtr.cluster.secrets``), so any replica accepts any replica's tokens.

Access tokens carry the spec's ``access`` claim, already narrowed to what the subject may do, so
checking one needs no database: the signature (public key cached) and the expiry. Verified tokens
are memoised until they expire. Refresh tokens are JWTs of their own type that also carry the
account's credential generation (bumped on password reset and deactivation). Tokens issued to
a login with a personal access token say so (``"amr": ["pat"]``), and so do the tokens refreshed
from them: such a login may not create tokens or change passwords.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import secrets
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ALGORITHM = "ES256"
#: The ``amr`` claim (how the subject authenticated) of tokens issued to a personal access token login.
_PAT_AMR = ["pat"]
_CACHE_MAX = 8192


def new_key_pem() -> str:
    """A new P-256 signing key, PEM (PKCS#8)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def load_key(pem: str) -> ec.EllipticCurvePrivateKey:
    """The signing key in ``pem``; ValueError if it is not an unencrypted EC private key."""
    loaded = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ValueError("not an EC private key")
    return loaded


def key_id(public: ec.EllipticCurvePublicKey) -> str:
    """The libtrust-style key id: base32 of the DER key's SHA-256, first 240 bits, in groups of 4."""
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    return ":".join(b32[i:i + 4] for i in range(0, len(b32), 4))


@dataclasses.dataclass(frozen=True)
class AccessClaims:
    """A verified access token: subject ("" for anonymous), (type, name) -> granted actions, and
    whether the subject logged in with a personal access token."""

    subject: str
    expires: float
    access: dict[tuple[str, str], frozenset[str]]
    by_token: bool = False

    def allows(self, type_: str, name: str, action: str) -> bool:
        actions = self.access.get((type_, name))
        return actions is not None and (action in actions or "*" in actions)


class InvalidToken(Exception):
    """The token is malformed, badly signed, expired or meant for another service."""


class TokenSigner:
    def __init__(self, key: ec.EllipticCurvePrivateKey, issuer: str, service: str, ttl: int,
                 refresh_ttl: int) -> None:
        self._key = key
        self.public_key = key.public_key()
        self.kid = key_id(self.public_key)
        self.issuer, self.service, self.ttl, self.refresh_ttl = issuer, service, ttl, refresh_ttl
        self._verified: dict[str, AccessClaims] = {}

    def issue(self, subject: str, access: list[dict[str, Any]], by_token: bool = False) -> tuple[str, int, float]:
        """A signed access token for ``subject`` with ``access``: (token, expires_in, issued_at)."""
        now = int(time.time())
        claims: dict[str, Any] = {"iss": self.issuer, "sub": subject, "aud": self.service, "exp": now + self.ttl,
                                  "nbf": now - 5, "iat": now, "jti": secrets.token_urlsafe(12), "access": access}
        if by_token:
            claims["amr"] = _PAT_AMR
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid})
        return token, self.ttl, float(now)

    def issue_refresh(self, subject: str, generation: int, token_id: int = 0) -> str:
        """A refresh token for ``subject`` at credential ``generation``; ``token_id``: issued to a
        login with that personal access token (valid only while the token is)."""
        now = int(time.time())
        claims: dict[str, Any] = {"iss": self.issuer, "sub": subject, "aud": self.service,
                                  "exp": now + self.refresh_ttl, "iat": now, "jti": secrets.token_urlsafe(12),
                                  "typ": "refresh", "gen": generation}
        if token_id:
            claims["amr"] = _PAT_AMR
            claims["pat"] = token_id
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid})

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            return jwt.decode(token, self.public_key, algorithms=[ALGORITHM], audience=self.service,
                              issuer=self.issuer, options={"require": ["exp", "sub", "aud", "iss"]},
                              leeway=5)
        except jwt.PyJWTError as e:
            raise InvalidToken(str(e)) from None

    def verify_access(self, token: str) -> AccessClaims:
        """The claims of a valid access token (memoised until it expires); InvalidToken otherwise."""
        now = time.time()
        hit = self._verified.get(token)
        if hit is not None:
            if hit.expires > now:
                return hit
            del self._verified[token]
        claims = self._decode(token)
        if claims.get("typ") == "refresh":
            raise InvalidToken("a refresh token is not an access token")
        access: dict[tuple[str, str], frozenset[str]] = {}
        for entry in claims.get("access") or []:
            if isinstance(entry, dict):
                key = (str(entry.get("type", "")), str(entry.get("name", "")))
                access[key] = access.get(key, frozenset()) | frozenset(map(str, entry.get("actions") or []))
        result = AccessClaims(str(claims["sub"]), float(claims["exp"]), access, claims.get("amr") == _PAT_AMR)
        if len(self._verified) >= _CACHE_MAX:
            self._verified = {k: v for k, v in self._verified.items() if v.expires > now}
            if len(self._verified) >= _CACHE_MAX:
                self._verified.clear()
        self._verified[token] = result
        return result

    def verify_refresh(self, token: str) -> tuple[str, int, int | None]:
        """(subject, credential generation, personal access token id or None) of a valid refresh
        token; InvalidToken otherwise (also for one issued to an access token login without its id)."""
        claims = self._decode(token)
        if claims.get("typ") != "refresh" or not claims.get("sub"):
            raise InvalidToken("not a refresh token")
        token_id = None
        if claims.get("amr") == _PAT_AMR:
            token_id = claims.get("pat")
            if not isinstance(token_id, int) or isinstance(token_id, bool) or token_id <= 0:
                raise InvalidToken("a refresh token of an access token login without the token's id")
        return str(claims["sub"]), int(claims.get("gen", 0)), token_id

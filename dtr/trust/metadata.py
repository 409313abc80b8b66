"""A TUF role file read: ``{"signed": {...}, "signatures": [...]}``, its common fields (``_type``,
``version``, ``expires``), RFC 3339 times, role names, and threshold signature checks over
``canonical(signed)`` the way notary's ``signed.VerifySignatures`` counts them."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import posixpath
import re
from typing import Any

from dtr.trust import errors
from dtr.trust.canonical import canonical, load_json
from dtr.trust.tufkeys import PublicKey

ROOT, TARGETS, SNAPSHOT, TIMESTAMP = "root", "targets", "snapshot", "timestamp"
BASE_ROLES = (ROOT, TARGETS, SNAPSHOT, TIMESTAMP)
_DELEGATION = re.compile(r"^[-a-z0-9_/]+$")
_TIME = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)$")


def is_delegation(name: str) -> bool:
    """notary's ``data.IsDelegation``: ``targets/...``, ``^[-a-z0-9_/]+$``, shorter than 256, clean."""
    return (name.startswith("targets/") and _DELEGATION.match(name) is not None and len(name) < 256
            and posixpath.normpath(name) == name)


def valid_role(name: str) -> bool:
    """A base role or a delegation (notary's ``data.ValidRole``)."""
    return name in BASE_ROLES or is_delegation(name)


def parse_time(text: str) -> dt.datetime:
    """An RFC 3339 time (Go's ``time.Time`` JSON form, any fraction digits), aware; ValueError otherwise."""
    m = _TIME.match(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 time: {text[:64]!r}")
    year, month, day, hour, minute, second, frac, zone = m.groups()
    tz = dt.UTC
    if zone not in "Zz":
        sign = -1 if zone[0] == "-" else 1
        tz = dt.timezone(sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    micro = int((frac or "0")[:6].ljust(6, "0"))
    return dt.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=tz)


def format_time(t: dt.datetime) -> str:
    """RFC 3339 in UTC to the second, as ``expires`` is written."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def go_time(t: dt.datetime) -> str:
    """Go's ``Mon Jan 2 15:04:05 MST 2006`` layout, as notary's expiry errors print the time it parsed:
    in its own offset, the zone ``UTC`` for offset 0, else ``+hhmm`` (notary-server running in UTC)."""
    offset = t.utcoffset() or dt.timedelta(0)
    zone = "UTC" if not offset else f"{t:%z}"
    return f"{t:%a %b} {t.day} {t:%H:%M:%S} {zone} {t.year}"


@dataclasses.dataclass(frozen=True)
class Signature:
    keyid: str
    method: str
    sig: bytes


@dataclasses.dataclass(frozen=True)
class Envelope:
    """One role file: its ``signed`` object, common fields and signatures."""

    signed: dict[str, Any]
    signatures: tuple[Signature, ...]
    type: str
    version: int
    expires: dt.datetime

    def expired(self, now: dt.datetime) -> bool:
        return self.expires < now

    def count_valid(self, keys: dict[str, PublicKey]) -> int:
        """How many distinct keys of ``keys`` signed ``canonical(signed)`` validly."""
        msg = canonical(self.signed)
        valid = {s.keyid for s in self.signatures if s.keyid in keys and keys[s.keyid].verify(s.method, s.sig, msg)}
        return len(valid)

    def signature_error(self, keys: dict[str, PublicKey], threshold: int, role: str) -> str | None:
        """notary's ``VerifySignatures`` failure message, or None when ``threshold`` keys signed."""
        if not self.signatures:
            return "tuf: data has no signatures"
        if threshold < 1:
            return "valid signatures did not meet threshold"
        if self.count_valid(keys) < threshold:
            return f"valid signatures did not meet threshold for {role}"
        return None


def _signature(obj: Any) -> Signature:
    if not isinstance(obj, dict):
        raise ValueError("a signature is an object")
    keyid, method, sig = obj.get("keyid", ""), obj.get("method", ""), obj.get("sig", "")
    if not isinstance(keyid, str) or not isinstance(method, str) or not isinstance(sig, str):
        raise ValueError("signature fields are strings")
    try:
        raw = base64.b64decode(sig.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("signature is not base64") from None
    return Signature(keyid, method.lower(), raw)


def parse_envelope(raw: bytes) -> Envelope:
    """A role file parsed strictly: MALFORMED_JSON when it isn't JSON of the TUF file shape
    (where notary-server's decoding of ``{"signed": {"_type","expires","version"}, "signatures"}`` fails)."""
    obj = load_json(raw)
    try:
        if not isinstance(obj, dict) or not isinstance(obj.get("signed"), dict):
            raise ValueError("no signed object")
        signed = obj["signed"]
        sigs = obj.get("signatures")
        sigs = [] if sigs is None else sigs
        if not isinstance(sigs, list):
            raise ValueError("signatures is not a list")
        typ, version, expires = signed.get("_type", ""), signed.get("version", 0), signed.get("expires")
        if not isinstance(typ, str) or not isinstance(version, int) or isinstance(version, bool):
            raise ValueError("bad _type or version")
        if not -(1 << 63) <= version < 1 << 63:
            raise ValueError("version out of range")
        when = dt.datetime(1, 1, 1, tzinfo=dt.UTC) if expires is None else parse_time(expires)
        return Envelope(signed, tuple(_signature(s) for s in sigs), typ, version, when)
    except (ValueError, TypeError, OverflowError):
        raise errors.TrustError(errors.MALFORMED_JSON) from None


def signed_expiry(raw: bytes) -> dt.datetime:
    """signed.expires of a role file (MALFORMED_JSON when unreadable)."""
    return parse_envelope(raw).expires


def signed_version(raw: bytes) -> int:
    """signed.version of a role file (MALFORMED_JSON when unreadable)."""
    return parse_envelope(raw).version

"""The key that seals the server-held Notary private keys at rest (AES-256-GCM).

The sealing key is 32 random bytes, base64 in a file: ``TrustConfig.sealing_key_file`` or
``data_dir/trust/sealing.key``, made on first use (mode 0600, atomically: a replica racing to
make it too reads the one that won). Replicas must share it. A sealed blob starts with a
version, the sealing key's id (a hash, not the key) and the nonce, so a blob sealed under another
key fails with an error naming both ids. Each blob is bound to its context (GUN, role, key id):
a sealed private key copied to another row does not open. Keys never reach a log or a message.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dtr.config import Config

_MAGIC = b"dtrseal1"
_ID_LEN = 8
_NONCE_LEN = 12


class SealingError(Exception):
    """The sealing key is unusable or a sealed blob does not open under it (the message says why,
    naming key ids only)."""


def key_id(key: bytes) -> str:
    """A sealing key's public id: 16 hex digits of a hash (tells keys apart, reveals nothing)."""
    return hashlib.sha256(b"dtr-sealing-key-id\0" + key).hexdigest()[:2 * _ID_LEN]


def sealing_key_path(cfg: Config) -> Path:
    if cfg.trust.sealing_key_file:
        return Path(cfg.trust.sealing_key_file)
    return cfg.data_path / "trust" / "sealing.key"


def _parse(raw: bytes, path: Path) -> bytes:
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except binascii.Error:
        raise SealingError(f"{path}: not base64 (the sealing key file holds 32 random bytes, base64)") from None
    if len(key) != 32:
        raise SealingError(f"{path}: the sealing key must be 32 bytes, this one has {len(key)}")
    return key


def load_or_create(path: Path, create: bool = True) -> bytes:
    """The sealing key in ``path``; with ``create``, made if missing (0600, never overwriting one
    a concurrent process wrote first: the file appears whole through a hard link or not at all)."""
    try:
        return _parse(path.read_bytes(), path)
    except FileNotFoundError:
        if not create:
            raise SealingError(f"{path}: no sealing key") from None
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(base64.b64encode(secrets.token_bytes(32)) + b"\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another replica made it first: use theirs
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return _parse(path.read_bytes(), path)


class Sealer:
    """Seals and unseals private key bytes under one sealing key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise SealingError("the sealing key must be 32 bytes")
        self._aead = AESGCM(key)
        self.key_id = key_id(key)

    @classmethod
    def from_config(cls, cfg: Config) -> Sealer:
        return cls(load_or_create(sealing_key_path(cfg)))

    def __repr__(self) -> str:
        return f"Sealer(key_id={self.key_id})"

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        """``plaintext`` encrypted and bound to ``context`` (what the blob is for)."""
        nonce = secrets.token_bytes(_NONCE_LEN)
        return _MAGIC + bytes.fromhex(self.key_id) + nonce + self._aead.encrypt(nonce, plaintext, context)

    def unseal(self, blob: bytes, context: bytes) -> bytes:
        """The plaintext of ``blob`` sealed for ``context``; SealingError when it was sealed under
        another key, for another context, or is damaged."""
        head = len(_MAGIC) + _ID_LEN
        if len(blob) < head + _NONCE_LEN + 16 or not blob.startswith(_MAGIC):
            raise SealingError("not a sealed key (unknown format)")
        sealed_id = blob[len(_MAGIC):head].hex()
        if sealed_id != self.key_id:
            raise SealingError(f"the key was sealed under sealing key {sealed_id}, but the configured sealing key "
                               f"is {self.key_id}: every replica needs the same trust.sealing_key_file")
        nonce = blob[head:head + _NONCE_LEN]
        try:
            return self._aead.decrypt(nonce, blob[head + _NONCE_LEN:], context)
        except InvalidTag:
            raise SealingError(f"a sealed key does not open under sealing key {self.key_id} "
                               "(damaged, or stored for another repository or role)") from None

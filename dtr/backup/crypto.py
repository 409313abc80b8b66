"""The encrypted form of a backup: a passphrase-derived key and AES-256-GCM in fixed-size chunks.

Layout: a header (``MAGIC``, format version, scrypt's cost parameters and salt, the chunk size,
a passphrase check), then chunks of ``chunk_size`` plaintext bytes each (the last one shorter,
possibly empty), each sealed with AES-GCM under the nonce ``counter`` (the chunk's index) and the
associated data ``header + final flag``. So a wrong passphrase is told apart from damage (the
check), and a flipped bit, a dropped, repeated or reordered chunk, a truncation at any point or
an edited header all fail authentication: the reader never hands out unauthenticated bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from dtr.backup.errors import BackupError

MAGIC = b"DTRBKENC"
VERSION = 1
CHUNK = 1 << 20
TAG = 16
#: scrypt: 2**15 x 8 x 128 bytes = 32 MiB of memory, a fraction of a second per guess.
LOG_N, R, P = 15, 8, 1
_HEADER = struct.Struct(">8sBBBBB16sI16s")


def is_encrypted(head: bytes) -> bool:
    """Whether a file starting with ``head`` (its first 8 bytes or more) is an encrypted backup."""
    return head[:len(MAGIC)] == MAGIC


def _derive(passphrase: str, salt: bytes, log_n: int, r: int, p: int) -> tuple[bytes, bytes]:
    """(the AES key, the passphrase check stored in the header)."""
    out = Scrypt(salt=salt, length=64, n=1 << log_n, r=r, p=p).derive(passphrase.encode())
    return out[:32], hashlib.sha256(out[32:]).digest()[:16]


def _nonce(counter: int) -> bytes:
    return b"\0\0\0\0" + counter.to_bytes(8, "big")


class EncryptingWriter:
    """A write-only stream that seals what is written into ``out`` chunk by chunk; ``close``
    writes the final chunk (it does not close ``out``)."""

    def __init__(self, out: BinaryIO, passphrase: str) -> None:
        salt = os.urandom(16)
        key, check = _derive(passphrase, salt, LOG_N, R, P)
        self._header = _HEADER.pack(MAGIC, VERSION, 1, LOG_N, R, P, salt, CHUNK, check)
        out.write(self._header)
        self._out, self._aead, self._buf, self._counter = out, AESGCM(key), bytearray(), 0

    def _seal(self, data: bytes, final: bool) -> None:
        self._out.write(self._aead.encrypt(_nonce(self._counter), data, self._header + bytes([final])))
        self._counter += 1

    def write(self, data: bytes) -> int:
        self._buf += data
        # A chunk is sealed as not final only once more bytes are known to follow it.
        while len(self._buf) > CHUNK:
            self._seal(bytes(self._buf[:CHUNK]), False)
            del self._buf[:CHUNK]
        return len(data)

    def close(self) -> None:
        self._seal(bytes(self._buf), True)
        self._buf.clear()


class DecryptingReader:
    """A read-only stream of the plaintext of the encrypted backup ``src``; ``BackupError`` on a
    wrong passphrase, on damage and on tampering (before any byte of a bad chunk is returned)."""

    def __init__(self, src: BinaryIO, passphrase: str) -> None:
        header = src.read(_HEADER.size)
        if len(header) < _HEADER.size:
            raise BackupError("the encrypted backup is truncated (its header is incomplete)")
        magic, version, kdf, log_n, r, p, salt, chunk, check = _HEADER.unpack(header)
        if magic != MAGIC or version != VERSION or kdf != 1:
            raise BackupError(f"unknown encrypted backup format (version {version}); is it from a newer dtr?")
        if not (10 <= log_n <= 20 and 1 <= r <= 16 and 1 <= p <= 4 and 1024 <= chunk <= 16 * CHUNK):
            raise BackupError("the encrypted backup's header is damaged (impossible parameters)")
        key, expected = _derive(passphrase, salt, log_n, r, p)
        if not hmac.compare_digest(check, expected):
            raise BackupError("wrong passphrase for this backup (or its header is damaged)")
        self._src, self._header, self._aead, self._size = src, header, AESGCM(key), chunk + TAG
        self._counter, self._plain, self._pos, self._done = 0, b"", 0, False
        self._next = self._read_chunk()
        #: Bytes of ``src`` consumed so far (for progress).
        self.consumed = len(header) + len(self._next)

    def _read_chunk(self) -> bytes:
        parts, want = [], self._size
        while want and (part := self._src.read(want)):
            parts.append(part)
            want -= len(part)
        return b"".join(parts)

    def _open_next(self) -> None:
        sealed = self._next
        if not sealed:
            raise BackupError("the encrypted backup is truncated (no final chunk)")
        self._next = b"" if len(sealed) < self._size else self._read_chunk()
        self.consumed += len(self._next)
        final = not self._next
        try:
            self._plain = self._aead.decrypt(_nonce(self._counter), sealed, self._header + bytes([final]))
            self._pos = 0
        except InvalidTag:
            raise BackupError(f"the backup is damaged or was tampered with: chunk {self._counter} "
                              "fails authentication") from None
        self._counter += 1
        self._done = final

    def read(self, n: int = -1) -> bytes:
        out = bytearray()
        while n < 0 or len(out) < n:
            left = len(self._plain) - self._pos
            if not left:
                if self._done:
                    break
                self._open_next()
                continue
            take = left if n < 0 else min(n - len(out), left)
            out += self._plain[self._pos:self._pos + take]
            self._pos += take
        return bytes(out)

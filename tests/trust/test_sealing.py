"""The sealing key of the server-held Notary keys (``dtr.trust.sealing``): made once, 0600, never
overwritten by a racing replica; sealed blobs open only under their key and context."""

from __future__ import annotations

import base64
import secrets
import stat
import threading
from pathlib import Path

import pytest

from dtr.trust.sealing import Sealer, SealingError, load_or_create


def test_the_key_file_is_made_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "trust" / "sealing.key"
    key = load_or_create(path)
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert base64.b64decode(path.read_bytes()) == key
    assert load_or_create(path) == key
    assert [p.name for p in path.parent.iterdir()] == ["sealing.key"]  # no temporary file left


def test_racing_replicas_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "sealing.key"
    got: list[bytes] = []
    barrier = threading.Barrier(8)

    def make() -> None:
        barrier.wait()
        got.append(load_or_create(path))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(got) == 8 and len(set(got)) == 1
    assert base64.b64decode(path.read_bytes()) == got[0]


@pytest.mark.parametrize("content", [b"not base64!", base64.b64encode(b"short")])
def test_a_bad_key_file_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "sealing.key"
    path.write_bytes(content)
    with pytest.raises(SealingError, match="sealing key"):
        load_or_create(path)
    assert path.read_bytes() == content  # never replaced


def test_sealed_keys_open_only_under_their_key_and_context() -> None:
    secret = secrets.token_bytes(100)
    a, b = Sealer(secrets.token_bytes(32)), Sealer(secrets.token_bytes(32))
    blob = a.seal(secret, b"gun\0snapshot")
    assert secret not in blob
    assert a.unseal(blob, b"gun\0snapshot") == secret
    assert a.seal(secret, b"gun\0snapshot") != blob  # a fresh nonce each time
    with pytest.raises(SealingError) as e:
        b.unseal(blob, b"gun\0snapshot")
    assert a.key_id in str(e.value) and b.key_id in str(e.value)
    with pytest.raises(SealingError, match="does not open"):
        a.unseal(blob, b"other\0snapshot")
    with pytest.raises(SealingError, match="does not open"):
        a.unseal(blob[:-1] + bytes([blob[-1] ^ 1]), b"gun\0snapshot")
    with pytest.raises(SealingError, match="unknown format"):
        a.unseal(b"garbage", b"gun\0snapshot")
    assert "key_id" in repr(a) and base64.b64encode(secret).decode() not in repr(a)

"""The layer reader: formats (gzip, zstd, plain; ustar, GNU, PAX; GNU tar's sparse files),
whiteouts, hostile layers (each refused with a ``LayerError`` saying what and where), and
``index_layer`` over the filesystem storage driver, stopped mid-way."""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import subprocess
import tarfile
from pathlib import Path
from typing import ClassVar

import pytest

from dtr.scanning.indexers.base import Indexer
from dtr.scanning.layer import index_layer, index_stream
from dtr.scanning.types import LayerError, LayerIndex
from dtr.storage.config import StorageConfig
from dtr.storage.factory import create_driver
from tests.scanning.layer_data import compress, reader, tar_layer


class Recorder(Indexer):
    """Wants every file under ``want`` and records what it was offered and given."""

    name: ClassVar[str] = "recorder"

    def __init__(self, want: str = "", limit: int = 64 << 20) -> None:
        self.want, self._limit = want, limit
        self.offered: list[tuple[str, int, int]] = []
        self.given: dict[str, bytes] = {}
        self.finished = False

    def wants(self, path: str, size: int, mode: int) -> bool:
        self.offered.append((path, size, mode))
        return path.startswith(self.want)

    def limit(self, path: str) -> int:
        return self._limit

    def add(self, path: str, data: bytes) -> None:
        self.given[path] = data

    def finish(self, index: LayerIndex) -> None:
        self.finished = True


def _index(blob: bytes, *indexers: Indexer, max_size: int | None = None) -> LayerIndex:
    if max_size is None:
        return index_stream(reader(blob), list(indexers))
    return index_stream(reader(blob), list(indexers), max_size=max_size)


def _refused(blob: bytes, *indexers: Indexer, max_size: int | None = None) -> str:
    with pytest.raises(LayerError) as e:
        _index(blob, *indexers, max_size=max_size)
    return str(e.value)


def _files(n: int = 3, size: int = 1000) -> list[tuple[str, bytes]]:
    return [(f"dir/file{i}", os.urandom(size)) for i in range(n)]


@pytest.mark.parametrize("how", ["plain", "gzip", "zstd"])
@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_formats_give_files_and_names(how: str, fmt: int) -> None:
    long_dir = "/".join(["d" * 40] * 4)  # 163 characters: ustar prefix, GNU long name, PAX path
    entries = [*_files(), (f"./{long_dir}/f", b"long"), ("big", os.urandom(3 << 20)), ("./etc/x", b"x")]
    rec = Recorder()
    index = _index(compress(tar_layer(entries, fmt), how), rec)
    assert [p for p, _, _ in rec.offered] == ["dir/file0", "dir/file1", "dir/file2", f"{long_dir}/f", "big", "etc/x"]
    assert rec.given == {p.removeprefix("./"): d for p, d in entries}
    assert (rec.offered[0][1], rec.offered[0][2]) == (1000, 0o644)
    assert index.files == 6
    layer_size = len(tar_layer(entries, fmt))
    assert layer_size - 10240 < index.size <= layer_size  # read up to the end-of-archive block
    assert rec.finished


def test_wanted_files_read_up_to_the_largest_limit() -> None:
    small, large = Recorder("dir/", limit=500), Recorder("dir/file1", limit=2000)
    entries = [*_files(), ("dir/tiny", b"t")]
    _index(tar_layer(entries), small, large)
    assert small.given == {"dir/tiny": b"t"}
    assert large.given == {"dir/file1": entries[1][1]}


def test_whiteouts_and_opaque_dirs() -> None:
    layer = tar_layer(
        [
            ("./etc/.wh.passwd", b""),
            ("usr/share/doc/.wh..wh..opq", b""),
            (".wh.tmp", b""),
            ("var/.wh..wh.plnk", b""),  # aufs metadata: ignored
            ("etc/keep", b"k"),
        ]
    )
    rec = Recorder()
    index = _index(compress(layer, "gzip"), rec)
    assert index.whiteouts == ["etc/passwd", "tmp"]
    assert index.opaque_dirs == ["usr/share/doc"]
    assert [p for p, _, _ in rec.offered] == ["etc/keep"] and index.files == 1


def test_whiteout_of_dotdot_refused() -> None:
    assert _refused(tar_layer([("etc/.wh...", b"")])) == "etc/.wh...: a whiteout of '..'"
    assert _refused(tar_layer([("etc/.wh..", b"")])) == "etc/.wh..: a whiteout of '.'"


def test_links_are_never_followed() -> None:
    """A symlink loop and links to a wanted file: indexed fine, links not offered."""
    hard = tarfile.TarInfo("etc/hard")
    hard.type, hard.linkname = tarfile.LNKTYPE, "etc/os-release"
    layer = tar_layer(
        [
            ("a", None, "b"),
            ("b", None, "a"),
            ("loop", None, "."),
            ("etc/os-release", b"ID=x\n"),
            ("etc/soft", None, "os-release"),
            hard,
        ]
    )
    rec = Recorder()
    index = _index(layer, rec)
    assert rec.given == {"etc/os-release": b"ID=x\n"} and index.files == 1


def test_gnu_sparse_files_are_not_expanded(tmp_path: Path) -> None:
    """GNU tar's own sparse entries (old GNU and PAX 1.0) of a 4 TiB file with a little data:
    offered with their real size, never expanded nor read."""
    root = tmp_path / "root"
    root.mkdir()
    with open(root / "huge", "wb") as f:
        f.seek(1 << 30)
        f.write(b"data in the middle")
        f.truncate(4 << 40)
    (root / "after").write_bytes(b"after")
    for fmt in ("gnu", "posix"):
        layer = tmp_path / f"{fmt}.tar"
        subprocess.run(
            ["tar", "--sparse", f"--format={fmt}", "-C", str(root), "-cf", str(layer), "huge", "after"], check=True
        )
        assert layer.stat().st_size < 1 << 20
        rec = Recorder()
        index = _index(layer.read_bytes(), rec)
        assert [(p, s) for p, s, _ in rec.offered] == [("huge", 4 << 40), ("after", 5)]
        assert rec.given == {"after": b"after"}
        assert index.warnings == ["huge: a sparse file, not read"]
        assert index.files == 2


def test_huge_declared_size_with_truncated_data() -> None:
    info = tarfile.TarInfo("var/huge")
    info.size = 5 << 40
    header = info.tobuf(tarfile.PAX_FORMAT)
    blob = header + os.urandom(4096)
    message = _refused(blob, Recorder("nothing"))
    assert message.startswith("truncated layer: the tar data ends inside 'var/huge'")


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../etc/passwd", "'..' in an entry path"),
        ("usr/../../x", "'..' in an entry path"),
        ("/etc/passwd", "absolute path"),
    ],
)
def test_hostile_paths(name: str, problem: str) -> None:
    message = _refused(compress(tar_layer([("ok", b"1"), (name, b"x")]), "gzip"), Recorder())
    assert message == f"{name!r}: {problem}" + (" (escapes the layer root)" if ".." in problem else " in the layer")


def test_nul_in_a_name() -> None:
    info = tarfile.TarInfo("etc/harmless")
    info.pax_headers = {"path": "etc/os-release\0.evil"}
    assert _refused(tar_layer([info])) == "'etc/os-release\\x00.evil': NUL in an entry name"
    long = b"etc/" + b"x" * 120 + b"\0hidden"
    gnu = tarfile.TarInfo("././@LongLink")
    gnu.type, gnu.size = tarfile.GNUTYPE_LONGNAME, len(long) + 1
    blob = gnu.tobuf(tarfile.GNU_FORMAT) + long + b"\0" * (512 - len(long)) + tar_layer([("short", b"")])
    assert "NUL in an entry name" in _refused(blob)


def test_corrupt_gzip() -> None:
    blob = bytearray(compress(tar_layer(_files(20, 10_000)), "gzip"))
    blob[len(blob) // 2 : len(blob) // 2 + 64] = bytes(64)
    assert _refused(bytes(blob), Recorder()).startswith("corrupt gzip data:")


def test_truncated_gzip() -> None:
    blob = compress(tar_layer(_files(20, 10_000)), "gzip")
    assert _refused(blob[: len(blob) // 2], Recorder()) == (
        "truncated gzip data: the blob ends inside the compressed stream"
    )


GPL = Path("/usr/share/common-licenses/GPL-3").read_bytes()  # real text, compressible


def _texts(n: int = 40) -> list[tuple[str, bytes]]:
    return [(f"doc/{i}", GPL) for i in range(n)]


def test_truncated_zstd() -> None:
    blob = compress(tar_layer(_texts()), "zstd")
    for cut in (len(blob) // 2, 100):
        assert _refused(blob[:cut], Recorder()) == "truncated zstd data: the blob ends inside the compressed stream"


def test_corrupt_zstd() -> None:
    blob = bytearray(compress(tar_layer(_texts()), "zstd"))
    blob[len(blob) // 2 : len(blob) // 2 + 64] = bytes(range(64))
    assert _refused(bytes(blob), Recorder()).startswith("corrupt zstd data:")


def test_garbage() -> None:
    message = _refused(os.urandom(100_000), Recorder())
    assert message.startswith("not a tar archive, or a corrupt one: bad header checksum at byte 0")


def test_tar_without_end_of_archive_is_truncated() -> None:
    layer = tar_layer(_files(2))  # two headers, each with 1,000 bytes of data (two blocks)
    end = 2 * (512 + 1024)
    assert _refused(layer[: end - 100], Recorder()).startswith("truncated layer: the tar data ends inside 'dir/file1'")
    # Cut exactly after the last file's data: no end-of-archive block.
    assert _refused(layer[:end]) == (
        "truncated layer: the tar data ends after 'dir/file1', before its end-of-archive block (at byte 3072)"
    )


def test_decompression_bomb() -> None:
    info = tarfile.TarInfo("zeros")
    info.size = 200 << 20
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as gz:
        gz.write(info.tobuf())
        chunk = bytes(1 << 20)
        for _ in range(200):
            gz.write(chunk)
        gz.write(bytes(1024))
    blob = out.getvalue()
    assert len(blob) < 1 << 20
    assert _refused(blob, max_size=64 << 20) == (
        "over 64 MiB uncompressed: the layer is too big to scan (or a decompression bomb)"
    )
    assert _index(blob).size == 512 + (200 << 20) + 512


def test_multi_member_gzip_and_empty_blob() -> None:
    layer = tar_layer(_files())
    blob = gzip.compress(layer[:3000]) + gzip.compress(layer[3000:]) + bytes(100)
    rec = Recorder()
    assert _index(blob, rec).files == 3 and len(rec.given) == 3
    empty = _index(b"", rec)
    assert (empty.files, empty.size) == (0, 0)


def test_an_indexer_bug_names_indexer_and_file() -> None:
    class Broken(Recorder):
        name = "broken"

        def add(self, path: str, data: bytes) -> None:
            raise ValueError("oops")

    message = _refused(tar_layer(_files(1)), Broken())
    assert message == "dir/file0: the broken indexer failed: ValueError('oops')"


def test_many_entries_stream() -> None:
    """50,000 entries: counted, nothing kept."""
    info = tarfile.TarInfo("x")
    blocks = []
    for i in range(50_000):
        info.name = f"d/{i}"
        blocks.append(info.tobuf(tarfile.USTAR_FORMAT))
    blob = compress(b"".join(blocks) + bytes(1024), "zstd")
    index = _index(blob, Recorder("none"))
    assert index.files == 50_000


# --- index_layer -----------------------------------------------------------------------------


class Stop(Exception):
    pass


@pytest.fixture
def storage(tmp_path: Path):  # type: ignore[no-untyped-def]
    return create_driver(StorageConfig("filesystem", {"rootdirectory": str(tmp_path / "storage")}))


async def test_index_layer_reads_a_stored_blob(storage) -> None:  # type: ignore[no-untyped-def]
    entries = [*_files(40, 300_000), ("etc/os-release", b'ID=debian\nVERSION_ID="12"\n')]
    blob = compress(tar_layer(entries), "gzip")
    await storage.put_content("/blobs/layer", blob)
    seen: list[int] = []
    index = await index_layer(storage, "/blobs/layer", progress=seen.append, check_stop=lambda: None)
    assert index.distribution is not None and index.distribution.id == "debian"
    assert index.files == 41
    assert seen and seen == sorted(seen) and seen[-1] == len(blob)
    with pytest.raises(LayerError, match="truncated gzip"):
        await storage.put_content("/blobs/cut", blob[: len(blob) // 2])
        await index_layer(storage, "/blobs/cut")


async def test_index_layer_stopped_midway(storage) -> None:  # type: ignore[no-untyped-def]
    blob = tar_layer(_files(40, 1 << 20))  # 40 MiB, read in 1 MiB chunks
    await storage.put_content("/blobs/big", blob)
    calls = 0

    def check_stop() -> None:
        nonlocal calls
        calls += 1
        if calls == 5:
            raise Stop("stop requested")

    rec = Recorder()
    with pytest.raises(Stop):
        await index_layer(storage, "/blobs/big", [rec], check_stop=check_stop)
    assert calls == 5
    assert len(rec.offered) < 40 and not rec.finished


async def test_index_layer_cancelled(storage) -> None:  # type: ignore[no-untyped-def]
    blob = tar_layer(_files(40, 1 << 20))
    await storage.put_content("/blobs/big", blob)
    started = asyncio.Event()

    def check_stop() -> None:
        started.set()

    rec = Recorder()
    task = asyncio.create_task(index_layer(storage, "/blobs/big", [rec], check_stop=check_stop))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not rec.finished


def test_whiteouts_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dtr.scanning.layer.MAX_WHITEOUTS", 3)
    layer = tar_layer([(f"d/.wh.{i}", b"") for i in range(4)])
    assert _refused(layer) == "d/.wh.3: over 3 whiteouts in one layer"


def test_zstd_frames_and_skippable_frames() -> None:
    layer = tar_layer(_texts(3))
    skippable = b"\x5e\x2a\x4d\x18" + (4).to_bytes(4, "little") + b"meta"
    blob = compress(layer[:5000], "zstd") + skippable + compress(layer[5000:], "zstd")
    rec = Recorder()
    assert _index(blob, rec).files == 3 and rec.given == {f"doc/{i}": GPL for i in range(3)}
    assert _refused(compress(layer[:5000], "zstd") + b"garbage!" + compress(layer[5000:], "zstd")) == (
        "corrupt zstd data: data after the end of the zstd stream is not zstd"
    )

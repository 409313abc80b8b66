"""The rpm database indexer against real databases, checked against what rpm itself reads.

Real data: the CentOS 5-8 BerkeleyDB ``Packages`` files that Debian's
``golang-github-knqyf263-go-rpmdb-dev`` ships as test data; sqlite databases written by Debian's
``rpm`` (4.18) from those (``rpmdb --exportdb`` | ``rpmdb --importdb``) and from a package built
here with ``rpmbuild``. Debian's rpm has no ndb backend, so ndb files are written here from real
header blobs following rpm's ``lib/backend/ndb/rpmpkg.c`` layout (``write_ndb``).
"""

from __future__ import annotations

import shutil
import sqlite3
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from dtr.scanning.indexers import all_indexers
from dtr.scanning.indexers.base import MiB
from dtr.scanning.indexers.rpm import MAX_DB_SIZE, RpmIndexer, read_rpmdb, split_source_rpm
from dtr.scanning.types import LayerError, LayerIndex, Package

GO_RPMDB = Path("/usr/share/gocode/src/github.com/knqyf263/go-rpmdb/pkg/testdata")
BDB_DATABASES = ["centos5-plain", "centos6-devtools", "centos6-many", "centos6-plain", "centos7-devtools",
                 "centos7-httpd24", "centos7-many", "centos7-plain", "centos7-python35", "centos8-modularitylabel"]
QUERY_FORMAT = "%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\t%{ARCH}\t%{SOURCERPM}\t%{LICENSE}\n"

Row = tuple[str, str, str, str, str]


def go_rpmdb(name: str) -> Path:
    path = GO_RPMDB / name / "Packages"
    if not path.is_file():
        pytest.fail(f"{path} missing: apt-get install golang-github-knqyf263-go-rpmdb-dev "
                    "(scripts/install-test-deps.sh installs it)")
    return path


def rpm_tool(name: str = "rpm") -> str:
    tool = shutil.which(name)
    if tool is None:
        pytest.fail(f"{name} missing: apt-get install rpm (scripts/install-test-deps.sh installs it)")
    return tool


def rpm_query(dbpath: Path, *args: str, bdb: bool = False) -> str:
    backend = ["--define", "_db_backend bdb_ro"] if bdb else []
    return subprocess.run([rpm_tool(), "--dbpath", str(dbpath), *backend, *args],
                          check=True, capture_output=True, text=True).stdout


def rpm_rows(dbpath: Path, bdb: bool = False) -> list[Row]:
    """``rpm -qa`` as (name, epoch:version-release, arch, source rpm, license), gpg-pubkey included."""
    rows = []
    for line in rpm_query(dbpath, "-qa", "--qf", QUERY_FORMAT, bdb=bdb).splitlines():
        name, evr, arch, srpm, lic = line.split("\t")
        rows.append((name, evr, "" if arch == "(none)" else arch, "" if srpm == "(none)" else srpm, lic))
    return sorted(rows)


def our_rows(packages: list[Package]) -> list[Row]:
    """Our packages in rpm's query format (EPOCHNUM is 0 when there is no epoch)."""
    rows = []
    for p in packages:
        epoch, _, rest = p.version.rpartition(":")
        srpm = f"{p.source_name}-{p.source_version.rpartition(':')[2]}.src.rpm" if p.source_name else ""
        rows.append((p.name, f"{epoch or 0}:{rest}", p.arch, srpm, p.license))
    return sorted(rows)


def without_keys(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r[0] != "gpg-pubkey"]


def to_sqlite(src: Path, dbdir: Path) -> Path:
    """A sqlite rpmdb written by rpm from the BerkeleyDB database ``src``."""
    bdb_dir = dbdir / "bdb"
    bdb_dir.mkdir(parents=True)
    shutil.copy(src, bdb_dir / "Packages")
    exported = subprocess.run([rpm_tool("rpmdb"), "--exportdb", "--dbpath", str(bdb_dir), "--define",
                               "_db_backend bdb_ro"], check=True, capture_output=True).stdout
    subprocess.run([rpm_tool("rpmdb"), "--importdb", "--dbpath", str(dbdir)], input=exported, check=True,
                   capture_output=True)
    shutil.rmtree(bdb_dir)
    return dbdir / "rpmdb.sqlite"


def sqlite_blobs(path: Path) -> list[bytes]:
    con = sqlite3.connect(path)
    try:
        return [b for (b,) in con.execute("SELECT blob FROM Packages ORDER BY hnum")]
    finally:
        con.close()


def write_ndb(blobs: list[bytes]) -> bytes:
    """An rpm ndb ``Packages.db`` holding ``blobs`` (package index = position + 1), laid out as
    rpm's ``rpmpkg.c`` writes it: 32-byte header, slot pages, then 16-byte blocks of
    head + blob + padding + tail (Adler-32, length, magic)."""
    slot_pages = 1 + max(0, len(blobs) - 254 + 255) // 256
    header = struct.pack("<4sIIII12x", b"RpmP", 0, 1, slot_pages, len(blobs) + 1)
    slots, area, blkoff = [], bytearray(), slot_pages * 4096 // 16
    for idx, blob in enumerate(blobs, 1):
        blkcnt = (16 + len(blob) + 12 + 15) // 16
        chunk = struct.pack("<4sIII", b"BlbS", idx, 1, len(blob)) + blob
        chunk += bytes(blkcnt * 16 - 12 - len(chunk))
        chunk += struct.pack("<II4s", zlib.adler32(chunk), len(blob), b"BlbE")
        slots.append(struct.pack("<4sIII", b"Slot", idx, blkoff, blkcnt))
        area += chunk
        blkoff += blkcnt
    slot_area = header + b"".join(slots)
    slot_area += struct.pack("<4s12x", b"Slot") * ((slot_pages * 4096 - len(slot_area)) // 16)
    return slot_area + bytes(area)


def make_header(entries: list[tuple[int, int, int, bytes]]) -> bytes:
    """An rpm header blob from (tag, type, count, data) entries, data laid out in order."""
    index, store = b"", b""
    for tag, typ, count, data in entries:
        if typ == 4:
            store += bytes(-len(store) % 4)
        index += struct.pack(">IIiI", tag, typ, len(store), count)
        store += data
    return struct.pack(">II", len(entries), len(store)) + index + store


def strings(*values: str) -> bytes:
    return b"".join(v.encode() + b"\0" for v in values)


NAME_ENTRIES = [(1000, 6, 1, strings("old")), (1001, 6, 1, strings("1.0")), (1002, 6, 1, strings("1"))]


@pytest.fixture(scope="module")
def sqlite_dbs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """sqlite copies (written by rpm 4.18) of two CentOS databases."""
    base = tmp_path_factory.mktemp("rpm-sqlite")
    return {name: to_sqlite(go_rpmdb(name), base / name) for name in ("centos5-plain", "centos7-plain")}


@pytest.fixture(scope="module")
def built_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sqlite rpmdb holding one package built here with rpmbuild (epoch, files in nested directories)."""
    base = tmp_path_factory.mktemp("rpm-built")
    spec = base / "dtr-hello.spec"
    spec.write_text("""Name: dtr-hello
Epoch: 3
Version: 1.2.3
Release: 4.test
Summary: test package
License: MIT AND (Apache-2.0 OR BSD-3-Clause)
BuildArch: noarch
%description
A package for dtr's rpm indexer tests.
%install
mkdir -p %{buildroot}/usr/share/dtr-hello/sub %{buildroot}/etc
echo a > %{buildroot}/usr/share/dtr-hello/a.txt
echo b > %{buildroot}/usr/share/dtr-hello/sub/b.txt
echo c > %{buildroot}/etc/dtr-hello.conf
%files
/usr/share/dtr-hello
%config /etc/dtr-hello.conf
""")
    subprocess.run([rpm_tool("rpmbuild"), "-bb", "--define", f"_topdir {base / 'top'}", "--define",
                    "_build_id_links none", str(spec)], check=True, capture_output=True)
    (rpm_file,) = (base / "top" / "RPMS" / "noarch").glob("*.rpm")
    subprocess.run([rpm_tool(), "-i", "--justdb", "--nodeps", "--noscripts", "--dbpath", str(base / "db"),
                    str(rpm_file)], check=True, capture_output=True)
    return base / "db"


@pytest.mark.parametrize("name", BDB_DATABASES)
def test_berkeleydb_equals_rpm(name: str, tmp_path: Path) -> None:
    shutil.copy(go_rpmdb(name), tmp_path / "Packages")
    expected = rpm_rows(tmp_path, bdb=True)
    packages = read_rpmdb("var/lib/rpm/Packages", (tmp_path / "Packages").read_bytes())
    assert our_rows(packages) == without_keys(expected)
    assert {p.location for p in packages} == {"var/lib/rpm/Packages"}
    assert {p.ecosystem for p in packages} == {"rpm"}


def test_gpg_pubkeys_are_skipped(tmp_path: Path) -> None:
    shutil.copy(go_rpmdb("centos7-httpd24"), tmp_path / "Packages")
    assert len(rpm_rows(tmp_path, bdb=True)) - len(without_keys(rpm_rows(tmp_path, bdb=True))) == 3
    packages = read_rpmdb("var/lib/rpm/Packages", (tmp_path / "Packages").read_bytes())
    assert not [p for p in packages if p.name == "gpg-pubkey"]


@pytest.mark.parametrize("name", ["centos5-plain", "centos7-plain"])
def test_sqlite_equals_rpm(name: str, sqlite_dbs: dict[str, Path]) -> None:
    db = sqlite_dbs[name]
    assert db.read_bytes()[18:20] == b"\2\2"  # rpm leaves it in WAL mode
    packages = read_rpmdb("usr/lib/sysimage/rpm/rpmdb.sqlite", db.read_bytes())
    assert our_rows(packages) == without_keys(rpm_rows(db.parent))


def test_file_lists_equal_rpm(sqlite_dbs: dict[str, Path]) -> None:
    db = sqlite_dbs["centos7-plain"]
    expected: dict[str, set[str]] = {}
    query = "[%{=NAME}-%{=EPOCHNUM}:%{=VERSION}-%{=RELEASE}.%{=ARCH}\t%{FILENAMES}\n]"
    for line in rpm_query(db.parent, "-qa", "--qf", query).splitlines():
        nevra, path = line.split("\t")
        expected.setdefault(nevra, set()).add(path.lstrip("/"))
    packages = read_rpmdb("var/lib/rpm/rpmdb.sqlite", db.read_bytes())
    ours = {f"{p.name}-{p.version if ':' in p.version else '0:' + p.version}.{p.arch}": set(p.files)
            for p in packages if p.files}
    assert ours == {k: v for k, v in expected.items() if not k.startswith("gpg-pubkey")}
    bash = next(p for p in packages if p.name == "bash")
    assert set(bash.files) == {f.lstrip("/") for f in rpm_query(db.parent, "-ql", "bash").splitlines()}
    assert "usr/bin/bash" in bash.files


def test_built_package(built_db: Path) -> None:
    (package,) = read_rpmdb("var/lib/rpm/rpmdb.sqlite", (built_db / "rpmdb.sqlite").read_bytes())
    assert package == Package(
        ecosystem="rpm", name="dtr-hello", version="3:1.2.3-4.test", source_name="dtr-hello",
        source_version="3:1.2.3-4.test", arch="noarch", license="MIT AND (Apache-2.0 OR BSD-3-Clause)",
        location="var/lib/rpm/rpmdb.sqlite", files=package.files)
    assert sorted(package.files) == sorted(f.lstrip("/") for f in rpm_query(built_db, "-ql", "dtr-hello").split())
    assert set(package.files) == {"etc/dtr-hello.conf", "usr/share/dtr-hello", "usr/share/dtr-hello/a.txt",
                                  "usr/share/dtr-hello/sub", "usr/share/dtr-hello/sub/b.txt"}


def test_ndb_of_real_headers(sqlite_dbs: dict[str, Path]) -> None:
    db = sqlite_dbs["centos5-plain"]
    packages = read_rpmdb("usr/lib/sysimage/rpm/Packages.db", write_ndb(sqlite_blobs(db)))
    assert our_rows(packages) == without_keys(rpm_rows(db.parent))
    assert {p.location for p in packages} == {"usr/lib/sysimage/rpm/Packages.db"}


def test_old_filenames_and_missing_fields() -> None:
    blob = make_header([*NAME_ENTRIES, (1027, 8, 2, strings("/etc/old.conf", "/usr/bin/old"))])
    (package,) = read_rpmdb("var/lib/rpm/Packages.db", write_ndb([blob]))
    assert package == Package(ecosystem="rpm", name="old", version="1.0-1", location="var/lib/rpm/Packages.db",
                              files=("etc/old.conf", "usr/bin/old"))


def test_split_source_rpm() -> None:
    assert split_source_rpm("bash-4.2.46-34.el7.src.rpm") == ("bash", "4.2.46-34.el7")
    assert split_source_rpm("java-1.8.0-openjdk-1.8.0.181-3.b13.el7_5.src.rpm") == (
        "java-1.8.0-openjdk", "1.8.0.181-3.b13.el7_5")
    assert split_source_rpm("kernel-5.14.0-1.nosrc.rpm") == ("kernel", "5.14.0-1")
    assert split_source_rpm("nonsense.src.rpm") == ("", "")
    assert split_source_rpm("") == ("", "")


def test_indexer(sqlite_dbs: dict[str, Path]) -> None:
    assert any(isinstance(i, RpmIndexer) for i in all_indexers())
    indexer = RpmIndexer()
    for path in ("var/lib/rpm/Packages", "var/lib/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/Packages.db",
                 "usr/share/rpm/Packages"):
        assert indexer.wants(path, 1000, 0o644)
    for path in ("var/lib/rpm/Basenames", "var/lib/rpm/rpmdb.sqlite-wal", "opt/var/lib/rpm/Packages", "Packages"):
        assert not indexer.wants(path, 1000, 0o644)
    assert indexer.limit("var/lib/rpm/Packages") == MAX_DB_SIZE
    # One layer with a leftover BerkeleyDB next to the sqlite database it was converted to, and
    # an ostree-style database elsewhere: the newer format of each directory is reported.
    indexer.add("var/lib/rpm/Packages", go_rpmdb("centos7-plain").read_bytes())
    indexer.add("var/lib/rpm/rpmdb.sqlite", sqlite_dbs["centos5-plain"].read_bytes())
    indexer.add("usr/share/rpm/Packages", go_rpmdb("centos6-plain").read_bytes())
    index = LayerIndex()
    indexer.finish(index)
    assert index.package_dbs == ["var/lib/rpm/Packages", "var/lib/rpm/rpmdb.sqlite", "usr/share/rpm/Packages"]
    counts: dict[str, int] = {}
    for p in index.packages:
        counts[p.location] = counts.get(p.location, 0) + 1
    assert counts == {"var/lib/rpm/rpmdb.sqlite": 110, "usr/share/rpm/Packages": 129}


# --- hostile and broken databases ----------------------------------------------------------------


def test_over_the_size_limit() -> None:
    with pytest.raises(LayerError, match=r"var/lib/rpm/rpmdb.sqlite.*over the limit of 536870912"):
        RpmIndexer().wants("var/lib/rpm/rpmdb.sqlite", 512 * MiB + 1, 0o644)


@pytest.mark.parametrize("path", ["var/lib/rpm/Packages", "var/lib/rpm/Packages.db", "var/lib/rpm/rpmdb.sqlite"])
def test_not_a_database(path: str) -> None:
    for data in (b"", b"\0" * 8192, b"hello" * 1000):
        with pytest.raises(LayerError, match=f"^{path}: corrupt rpm database"):
            read_rpmdb(path, data)


def test_truncated(sqlite_dbs: dict[str, Path]) -> None:
    bdb = go_rpmdb("centos5-plain").read_bytes()
    with pytest.raises(LayerError, match=r"var/lib/rpm/Packages: corrupt rpm database \(bdb\): truncated"):
        read_rpmdb("var/lib/rpm/Packages", bdb[: len(bdb) // 2])
    sqlite = sqlite_dbs["centos5-plain"].read_bytes()
    with pytest.raises(LayerError, match=r"rpmdb.sqlite: corrupt rpm database \(sqlite\): SQLite"):
        read_rpmdb("var/lib/rpm/rpmdb.sqlite", sqlite[: len(sqlite) // 2])
    ndb = write_ndb(sqlite_blobs(sqlite_dbs["centos5-plain"]))
    with pytest.raises(LayerError, match=r"Packages.db: corrupt rpm database \(ndb\): package \d+: blocks"):
        read_rpmdb("var/lib/rpm/Packages.db", ndb[: len(ndb) // 2])


def bdb_pages(data: bytes) -> list[tuple[int, int, int]]:
    """(page number, type, next page) of every page of a little-endian BerkeleyDB file."""
    pagesize = struct.unpack_from("<I", data, 20)[0]
    return [(n, data[n * pagesize + 25], struct.unpack_from("<I", data, n * pagesize + 16)[0])
            for n in range(1, len(data) // pagesize)]


def set_next_page(data: bytearray, pgno: int, next_pgno: int) -> None:
    struct.pack_into("<I", data, pgno * struct.unpack_from("<I", data, 20)[0] + 16, next_pgno)


def test_bdb_page_cycles() -> None:
    real = go_rpmdb("centos5-plain").read_bytes()
    pages = bdb_pages(real)
    # A hash page's chain leading back to itself.
    data = bytearray(real)
    hash_page = next(n for n, typ, _ in pages if typ in (2, 13))  # unsorted (db 4.3) or sorted hash page
    set_next_page(data, hash_page, hash_page)
    with pytest.raises(LayerError, match="hash page cycle"):
        read_rpmdb("var/lib/rpm/Packages", bytes(data))
    # An overflow chain (a header spread over pages) leading back to its start.
    data = bytearray(real)
    overflow_page = next(n for n, typ, nxt in pages if typ == 7 and nxt)
    set_next_page(data, overflow_page, overflow_page)
    with pytest.raises(LayerError, match="overflow page cycle"):
        read_rpmdb("var/lib/rpm/Packages", bytes(data))
    # A chain pointing past the last page.
    data = bytearray(real)
    set_next_page(data, hash_page, 10**9)
    with pytest.raises(LayerError, match="page number 1000000000 outside"):
        read_rpmdb("var/lib/rpm/Packages", bytes(data))


def test_ndb_checksum(sqlite_dbs: dict[str, Path]) -> None:
    data = bytearray(write_ndb(sqlite_blobs(sqlite_dbs["centos5-plain"])[:3]))
    data[-100] ^= 0xFF
    with pytest.raises(LayerError, match="package 3: checksum mismatch"):
        read_rpmdb("var/lib/rpm/Packages.db", bytes(data))


@pytest.mark.parametrize(("blob", "reason"), [
    (struct.pack(">II", 0xFFFFFFFF, 0xFFFFFFFF), "header counts"),
    (make_header(NAME_ENTRIES)[:-1], "header counts"),
    (make_header([*NAME_ENTRIES, (1117, 8, 0x7FFFFFFF, strings("a"))]), "tag 1117: 2147483647 strings"),
    (make_header([*NAME_ENTRIES, (1116, 4, 0x40000000, b"\0" * 8)]), "tag 1116: 1073741824 integers"),
    (make_header([(1000, 6, 1, b"unterminated")]), "tag 1000: unterminated"),
    (make_header([*NAME_ENTRIES, (1116, 4, 1, b"\0\0\0\5"), (1117, 8, 1, strings("f")),
                  (1118, 8, 1, strings("/d/"))]), "file list: directory indexes"),
    (make_header([*NAME_ENTRIES, (1116, 4, 2, b"\0" * 8), (1117, 8, 1, strings("f")),
                  (1118, 8, 1, strings("/d/"))]), "file list: directory indexes"),
    (make_header([(1001, 6, 1, strings("1.0"))]), "no name"),
    (make_header([(1000, 8, 1, strings("a"))]), "tag 1000 is not a string"),
    (make_header(NAME_ENTRIES[:2]), "old: no version or release"),
], ids=["huge counts", "short data", "huge string count", "huge integer count", "unterminated string",
        "directory index out of range", "more indexes than names", "no name", "name of the wrong type",
        "no release"])
def test_corrupt_headers(blob: bytes, reason: str) -> None:
    good = make_header(NAME_ENTRIES)
    with pytest.raises(LayerError, match=f"Packages.db: corrupt rpm database \\(ndb\\): header 2: {reason}"):
        read_rpmdb("var/lib/rpm/Packages.db", write_ndb([good, blob]))


def test_offset_past_the_data() -> None:
    blob = bytearray(make_header(NAME_ENTRIES))
    struct.pack_into(">i", blob, 8 + 8, 1 << 20)  # the first entry's offset
    with pytest.raises(LayerError, match="tag 1000: offset 1048576"):
        read_rpmdb("var/lib/rpm/Packages.db", write_ndb([bytes(blob)]))


@pytest.mark.parametrize(("schema", "reason"), [
    ("CREATE VIEW Packages AS WITH RECURSIVE r(hnum, blob) AS (SELECT 1, x'00' UNION ALL "
     "SELECT hnum + 1, blob FROM r) SELECT hnum, blob FROM r", "no Packages table"),
    ("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, n INTEGER, blob BLOB AS (zeroblob(n)));"
     "INSERT INTO Packages (hnum, n) VALUES (1, 1000000000)", "SQLite: string or blob too big"),
    ("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB);"
     "INSERT INTO Packages VALUES (1, 'text')", "a Packages row holds a str"),
], ids=["endless view", "huge computed value", "not a blob"])
def test_hostile_sqlite(schema: str, reason: str, tmp_path: Path) -> None:
    path = tmp_path / "rpmdb.sqlite"
    con = sqlite3.connect(path)
    con.executescript(schema)
    con.close()
    with pytest.raises(LayerError, match=rf"^var/lib/rpm/rpmdb\.sqlite: corrupt rpm database \(sqlite\): {reason}"):
        read_rpmdb("var/lib/rpm/rpmdb.sqlite", path.read_bytes())

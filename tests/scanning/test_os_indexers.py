"""The os, dpkg and apk indexers on real data: this machine's dpkg database (checked against
``dpkg-query``), distroless-style ``status.d`` built from its stanzas, and a real Alpine's
``lib/apk/db/installed`` (checked against Alpine's own ``apk``)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from dtr.scanning.indexers import all_indexers
from dtr.scanning.indexers.apk import ApkIndexer, parse_installed
from dtr.scanning.indexers.dpkg import INSTALLED_STATES, DpkgIndexer
from dtr.scanning.indexers.os import OsIndexer, parse_os_release
from dtr.scanning.layer import index_stream
from dtr.scanning.types import Distribution, LayerError, LayerIndex, Package
from tests.scanning.layer_data import alpine, compress, reader, tar_layer

DPKG = Path("/var/lib/dpkg")
assert (DPKG / "status").exists(), "these tests read a Debian machine's dpkg database (dtr's CI is Debian)"


def _index(blob: bytes, indexers: list | None = None) -> LayerIndex:  # type: ignore[type-arg]
    return index_stream(reader(blob), all_indexers() if indexers is None else indexers)


@pytest.fixture(scope="module")
def dpkg_snapshot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[str, ...]]]:
    """A copy of this machine's dpkg status and file lists (an admindir), and what ``dpkg-query``
    says of it: (package, version, source, source version, arch) of each package whose files are
    on disk."""
    admin = tmp_path_factory.mktemp("dpkg")
    shutil.copyfile(DPKG / "status", admin / "status")
    (admin / "info").mkdir()
    (admin / "updates").mkdir()
    for lst in (DPKG / "info").glob("*.list"):
        shutil.copyfile(lst, admin / "info" / lst.name)
    for md5 in (DPKG / "info").glob("*.md5sums"):
        shutil.copyfile(md5, admin / "info" / md5.name)
    fmt = "${db:Status-Status}\t${Package}\t${Version}\t${source:Package}\t${source:Version}\t${Architecture}\n"
    out = subprocess.run(
        ["dpkg-query", f"--admindir={admin}", "-W", "-f", fmt], check=True, capture_output=True, text=True
    ).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    return admin, sorted(tuple(r[1:]) for r in rows if r[0] in INSTALLED_STATES)


def _rows(packages: list[Package]) -> list[tuple[str, ...]]:
    return sorted((p.name, p.version, p.source_name, p.source_version, p.arch) for p in packages)


@pytest.fixture(scope="module")
def dpkg_tar(dpkg_snapshot: tuple[Path, list[tuple[str, ...]]]) -> bytes:
    """A layer as ``docker build`` would make it of this machine's dpkg database: ``./``-prefixed
    names, ``etc/os-release`` a symlink to ``../usr/lib/os-release`` (as on Debian 12)."""
    admin, _ = dpkg_snapshot
    entries: list = [  # type: ignore[type-arg]
        ("./etc/os-release", None, "../usr/lib/os-release"),
        ("./usr/lib/os-release", Path("/usr/lib/os-release").read_bytes()),
        ("./etc/debian_version", Path("/etc/debian_version").read_bytes()),
        ("./var/lib/dpkg/status", (admin / "status").read_bytes()),
    ]
    entries += [(f"./var/lib/dpkg/info/{p.name}", p.read_bytes()) for p in sorted((admin / "info").glob("*.list"))]
    return tar_layer(entries)


@pytest.mark.parametrize("how", ["plain", "gzip", "zstd"])
def test_dpkg_matches_dpkg_query(dpkg_snapshot: tuple[Path, list[tuple[str, ...]]], dpkg_tar: bytes, how: str) -> None:
    admin, expected = dpkg_snapshot
    index = _index(compress(dpkg_tar, how))
    assert len(expected) > 100
    assert _rows(index.packages) == expected
    assert index.package_dbs == ["var/lib/dpkg/status"]
    assert {p.location for p in index.packages} == {"var/lib/dpkg/status"}
    assert index.distribution is not None
    assert index.distribution.id == "debian" and index.distribution.source == "usr/lib/os-release"
    # Owned files: each package's info list, as dpkg -L says (without the leading "/").
    by_name = {(p.name, p.arch): p for p in index.packages}
    dpkg = (
        by_name[("dpkg", "amd64")]
        if ("dpkg", "amd64") in by_name
        else next(p for p in index.packages if p.name == "dpkg")
    )
    listed = subprocess.run(
        ["dpkg-query", f"--admindir={admin}", "-L", "dpkg"], check=True, capture_output=True, text=True
    ).stdout.split("\n")
    assert list(dpkg.files) == [f.lstrip("/") for f in listed if f.strip("/.")]
    assert "usr/bin/dpkg" in dpkg.files
    assert sum(1 for p in index.packages if p.files) == len(list((admin / "info").glob("*.list")))


def test_dpkg_licenses_from_dep5_copyright(dpkg_snapshot: tuple[Path, list[tuple[str, ...]]]) -> None:
    """The ``Files: *`` license of each machine-readable copyright file, as awk reads it."""
    admin, expected = dpkg_snapshot
    names = sorted({row[0] for row in expected})
    copyrights = [Path(f"/usr/share/doc/{n}/copyright") for n in names]
    copyrights = [c for c in copyrights if c.is_file() and not c.is_symlink() and c.stat().st_size <= 1 << 20]
    entries: list = [("var/lib/dpkg/status", (admin / "status").read_bytes())]  # type: ignore[type-arg]
    entries += [(str(c).lstrip("/"), c.read_bytes()) for c in copyrights]
    index = _index(tar_layer(entries))
    awk = (
        "FNR==1{dep5=($0 ~ /^Format:.*(copyright-format|dep5)/); f=0} "
        "dep5 && /^Files:[ \\t]*\\*[ \\t]*$/{f=1; next} "
        'f && /^License:/{sub(/^License:[ \\t]*/, ""); sub(/[ \\t]+$/, ""); print FILENAME "\\t" $0; f=0; nextfile} '
        "/^[ \\t]*$/{f=0}"
    )
    out = subprocess.run(["awk", awk, *map(str, copyrights)], check=True, capture_output=True, text=True).stdout
    by_awk = {line.split("\t")[0].split("/")[4]: line.split("\t")[1] for line in out.splitlines()}
    found = {p.name: p.license for p in index.packages if p.license}
    assert len(by_awk) > 50
    assert found == {n: lic for n, lic in by_awk.items() if lic}
    assert found.get("bash") == "GPL-3+" and found.get("dpkg") == "GPL-2+"


def test_dpkg_distroless_status_d(dpkg_snapshot: tuple[Path, list[tuple[str, ...]]]) -> None:
    """``status.d``: one file per package (real stanzas; every other one without ``Status``), with
    the package's real ``.md5sums`` beside it."""
    admin, expected = dpkg_snapshot
    text = (admin / "status").read_text()
    entries: list = []  # type: ignore[type-arg]
    names = []
    for i, stanza in enumerate(s for s in re.split(r"\n\n+", text) if s.strip()):
        name = re.search(r"^Package: (\S+)", stanza, re.M)[1]  # type: ignore[index]
        arch = re.search(r"^Architecture: (\S+)", stanza, re.M)[1]  # type: ignore[index]
        if i % 2:
            stanza = re.sub(r"^Status: .*\n", "", stanza, flags=re.M)
        file = name if name not in names else f"{name}:{arch}"
        names.append(name)
        entries.append((f"var/lib/dpkg/status.d/{file}", stanza.encode() + b"\n"))
        for md5 in (admin / "info" / f"{name}.md5sums", admin / "info" / f"{name}:{arch}.md5sums"):
            if md5.exists():
                entries.append((f"var/lib/dpkg/status.d/{file}.md5sums", md5.read_bytes()))
    index = _index(tar_layer(entries))
    assert _rows(index.packages) == expected
    locations = [p.location for p in index.packages]
    assert len(set(locations)) == len(locations) == len(expected)
    assert sorted(index.package_dbs) == sorted(locations)
    assert not any(db.endswith(".md5sums") for db in index.package_dbs)
    bash = next(p for p in index.packages if p.name == "bash")
    assert bash.location == "var/lib/dpkg/status.d/bash"
    assert "usr/bin/bash" in bash.files or "bin/bash" in bash.files


def test_dpkg_status_not_installed_and_source_versions() -> None:
    status = (
        b"Package: gone\nStatus: deinstall ok config-files\nVersion: 1.0\n\n"
        b"Package: half\nStatus: install ok half-configured\nVersion: 2.0\nArchitecture: amd64\n\n"
        b"Package: removing\nStatus: deinstall ok installed\nVersion: 3.0\n\n"
        b"Package: held\nStatus: hold ok installed\nVersion: 1:4.0-1+b1\nSource: src (4.0-1)\n\n"
        b"Package: never\nStatus: purge ok not-installed\nVersion: 5.0\n"
    )
    index = _index(tar_layer([("var/lib/dpkg/status", status)]))
    assert _rows(index.packages) == [
        ("half", "2.0", "half", "2.0", "amd64"),
        ("held", "1:4.0-1+b1", "src", "4.0-1", ""),
        ("removing", "3.0", "removing", "3.0", ""),
    ]


def test_package_db_over_limit_is_refused(tmp_path: Path) -> None:
    """A 3 GiB ``status`` (a real sparse file, stored by GNU tar in a few KiB) is refused, named."""
    root = tmp_path / "root"
    (root / "var/lib/dpkg").mkdir(parents=True)
    with open(root / "var/lib/dpkg/status", "wb") as f:
        f.truncate(3 << 30)
    layer = tmp_path / "layer.tar"
    subprocess.run(["tar", "--sparse", "-C", str(root), "-cf", str(layer), "var"], check=True)
    with pytest.raises(LayerError) as e:
        _index(layer.read_bytes())
    assert str(e.value) == "var/lib/dpkg/status: 3 GiB is over the 256 MiB limit for package databases"


def test_empty_databases_are_still_listed() -> None:
    index = _index(tar_layer([("var/lib/dpkg/status", b""), ("lib/apk/db/installed", b"")]))
    assert index.packages == []
    assert index.package_dbs == ["var/lib/dpkg/status", "lib/apk/db/installed"]


def test_apk_matches_apk_itself() -> None:
    data = alpine()
    installed = (data / "installed").read_bytes()
    layer = tar_layer(
        [
            ("etc/os-release", None, "../usr/lib/os-release"),  # as on Alpine: never followed
            ("etc/alpine-release", (data / "alpine-release").read_bytes()),
            ("usr/lib/os-release", (data / "os-release").read_bytes()),
            ("lib/apk/db/installed", installed),
        ]
    )
    index = _index(compress(layer, "gzip"))
    apk_view = json.loads((data / "apk-query.json").read_text())
    assert len(apk_view) == installed.count(b"\nP:") + installed.startswith(b"P:") == 59
    found = sorted((p.name, p.version, p.source_name, p.license, p.arch, p.files) for p in index.packages)
    expected = sorted(
        (q["name"], q["version"], q["origin"], q["license"], q["arch"], tuple(q.get("contents", ()))) for q in apk_view
    )
    assert found == expected
    assert index.package_dbs == ["lib/apk/db/installed"]
    assert all(p.ecosystem == "apk" and p.location == "lib/apk/db/installed" for p in index.packages)
    busybox = next(p for p in index.packages if p.name == "busybox")
    assert "bin/busybox" in busybox.files
    # The P:/V: lines themselves, read with grep.
    grep = subprocess.run(["grep", "-E", "^[PV]:", str(data / "installed")], capture_output=True, text=True).stdout
    pairs = re.findall(r"^P:(.*)\nV:(.*)$", grep, re.M)
    assert sorted(pairs) == sorted((p.name, p.version) for p in index.packages)

    release = parse_os_release((data / "os-release").read_text())
    assert index.distribution == Distribution(
        id="alpine",
        version_id=release["VERSION_ID"],
        pretty_name=release["PRETTY_NAME"],
        source="usr/lib/os-release",
    )
    assert release["VERSION_ID"] == (data / "alpine-release").read_text().strip()
    assert release["VERSION_ID"].startswith("3.23.")


def test_apk_parse_origin_defaults_to_name() -> None:
    (pkg,) = parse_installed("P:foo\nV:1.0-r0\nF:usr/bin\nR:foo\nR:bar\nF:etc\nR:foo.conf\n")
    assert (pkg.source_name, pkg.files) == ("foo", ("usr/bin/foo", "usr/bin/bar", "etc/foo.conf"))


def _distribution(files: list[tuple[str, bytes]]) -> Distribution | None:
    return _index(tar_layer(files), [OsIndexer()]).distribution


def test_os_release_precedence() -> None:
    debian = Path("/usr/lib/os-release").read_bytes()  # this machine's (Debian)
    other = b'ID=ubuntu\nVERSION_ID="22.04"\nVERSION_CODENAME=jammy\nPRETTY_NAME="Ubuntu 22.04.4 LTS"\n'
    version = Path("/etc/debian_version").read_bytes()
    both = _distribution([("usr/lib/os-release", debian), ("etc/os-release", other), ("etc/debian_version", version)])
    assert both == Distribution("ubuntu", "22.04", "jammy", "Ubuntu 22.04.4 LTS", "etc/os-release")
    usr = _distribution([("etc/debian_version", version), ("./usr/lib/os-release", debian)])
    assert usr is not None and usr.source == "usr/lib/os-release"
    assert (usr.id, usr.version_id, usr.version_codename) == ("debian", "12", "bookworm")


def test_release_file_fallbacks() -> None:
    version = Path("/etc/debian_version").read_text().strip()  # "12.11" here
    fallback = _distribution([("etc/debian_version", version.encode())])
    assert fallback is not None
    assert (fallback.id, fallback.version_id, fallback.source) == (
        "debian",
        version.split(".")[0],
        "etc/debian_version",
    )
    assert _distribution([("etc/debian_version", b"trixie/sid\n")]) == Distribution(
        "debian", "", "trixie", "Debian trixie/sid", "etc/debian_version"
    )
    assert _distribution([("etc/alpine-release", b"3.19.1\n")]) == Distribution(
        "alpine", "3.19.1", "", "Alpine Linux v3.19.1", "etc/alpine-release"
    )
    centos = b"CentOS Linux release 7.9.2009 (Core)\n"
    rhel = b"Red Hat Enterprise Linux release 8.9 (Ootpa)\n"
    found = _distribution([("etc/redhat-release", rhel), ("etc/centos-release", centos)])
    assert found is not None and (found.id, found.version_id, found.source) == ("centos", "7", "etc/centos-release")
    found = _distribution([("etc/redhat-release", rhel)])
    assert found is not None and (found.id, found.version_id) == ("rhel", "8.9")
    assert _distribution([("etc/os-release", b"# no ID\nNAME=x\n")]) is None


def test_os_release_quoting() -> None:
    assert parse_os_release('A="x \\"y\\" \\$z"\nB=\'q\'\n# c\nC=plain\n') == {"A": 'x "y" $z', "B": "q", "C": "plain"}


def test_indexers_registered() -> None:
    names = [ix.name for ix in all_indexers()]
    assert {"os", "dpkg", "apk"} <= set(names)
    assert isinstance(all_indexers()[names.index("dpkg")], DpkgIndexer)
    assert isinstance(all_indexers()[names.index("apk")], ApkIndexer)


def test_tarinfo_names_are_normalised() -> None:
    info = tarfile.TarInfo("./etc//os-release")
    data = b"ID=debian\nVERSION_ID=12\n"
    info.size = len(data)
    assert _distribution([(info, data)]) == Distribution("debian", "12", source="etc/os-release")  # type: ignore[list-item]

"""The language-package indexers on real installs, compared with what the package managers and
toolchains themselves say (pip list, npm ls, gem list, Debian's maven-repo, go version -m)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import pytest

from dtr.scanning.indexers import all_indexers
from dtr.scanning.indexers.base import Indexer
from dtr.scanning.indexers.gem import GemIndexer
from dtr.scanning.indexers.go import BUILDINFO_MAGIC, GoIndexer, stdlib_version
from dtr.scanning.indexers.java import MAX_ARCHIVE, JavaIndexer, split_file_name
from dtr.scanning.indexers.npm import NpmIndexer, is_package_json
from dtr.scanning.indexers.python import PythonIndexer, is_metadata_path
from dtr.scanning.indexers.rust import RustIndexer
from dtr.scanning.types import LayerIndex
from tests.scanning.language_data import (
    AUDIT_JSON,
    elf_object,
    go_binaries,
    go_version_m,
    index_tree,
    npm_ls,
    npm_prefix,
    pip_list,
    pip_target,
    pom_properties,
    require,
    run,
    rust_binaries,
    zip_bomb_war,
    zip_bytes,
)

DIST_PACKAGES = Path("/usr/lib/python3/dist-packages")
JAVA = Path("/usr/share/java")


def findings(indexer: Indexer, path: str, data: bytes, mode: int = 0o755) -> LayerIndex:
    """One file through ``wants``/``add``/``finish``."""
    if indexer.wants(path, len(data), mode):
        indexer.add(path, data)
    index = LayerIndex()
    indexer.finish(index)
    return index


def top_level(index: LayerIndex, prefix: str) -> set[tuple[str, str]]:
    """Packages whose metadata is directly in the directory ``prefix`` (what ``pip list --path``
    lists; vendored copies deeper down are packages too, but pip does not list them)."""
    found = set()
    for p in index.packages:
        first, _, rest = p.location.removeprefix(prefix).partition("/")
        if first.endswith((".dist-info", ".egg-info")) and "/" not in rest:
            found.add((p.name, p.version))
    return found


def require_deb(package: str) -> None:
    if subprocess.run(["dpkg", "-s", package], capture_output=True).returncode != 0:
        pytest.fail(f"Debian package {package} is missing: apt-get install {package} "
                    "(scripts/install-test-deps.sh does)")


def test_all_indexers_lists_the_language_indexers() -> None:
    names = [i.name for i in all_indexers()]
    assert len(names) == len(set(names))
    assert {"python", "npm", "gem", "java", "go", "rust"} <= set(names)


# --- Python --------------------------------------------------------------------------------------

def test_python_pip_target_is_what_pip_list_says() -> None:
    target = pip_target()
    index = index_tree(PythonIndexer(), target, "app/lib/")
    assert {(p.name, p.version) for p in index.packages} == pip_list(target) == {
        ("requests", "2.19.1"), ("urllib3", "1.24.1"), ("Jinja2", "2.10")}
    by_name = {p.name: p for p in index.packages}
    assert by_name["requests"].location == "app/lib/requests-2.19.1.dist-info/METADATA"
    assert by_name["requests"].license == "Apache 2.0"
    assert by_name["urllib3"].license == "MIT"
    assert by_name["Jinja2"].license == "BSD"
    assert {p.ecosystem for p in index.packages} == {"pypi"}
    assert index.warnings == []


def test_python_debian_egg_info_is_what_pip_list_says() -> None:
    """Debian's python3-* packages install ``.egg-info`` directories (python3-jinja2) and bare
    ``.egg-info`` files (python3-pycparser) besides ``.dist-info``."""
    for package in ("python3-jinja2", "python3-pycparser"):
        require_deb(package)
    index = index_tree(PythonIndexer(), DIST_PACKAGES, "usr/lib/python3/dist-packages/")
    assert top_level(index, "usr/lib/python3/dist-packages/") == pip_list(DIST_PACKAGES)
    locations = {p.name: p.location for p in index.packages}
    assert locations["Jinja2"].endswith(".egg-info/PKG-INFO")
    assert locations["pycparser"] == "usr/lib/python3/dist-packages/pycparser-2.21.egg-info"
    assert index.warnings == []


def test_python_venv_site_packages_is_what_pip_list_says() -> None:
    site = Path(next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()))
    index = index_tree(PythonIndexer(), site)
    assert top_level(index, "") == pip_list(site)


def test_python_metadata_paths_and_limits() -> None:
    assert is_metadata_path("x/foo-1.0.dist-info/METADATA")
    assert is_metadata_path("x/foo.egg-info/PKG-INFO")
    assert is_metadata_path("x/foo-1.0-py3.11.egg-info")
    assert is_metadata_path("x/foo-1.0-py3.11.egg/EGG-INFO/PKG-INFO")
    assert not is_metadata_path("x/foo-1.0.dist-info/RECORD")
    assert not is_metadata_path("src/foo-1.0/PKG-INFO")  # an unpacked sdist
    assert not is_metadata_path("x/METADATA")
    indexer = PythonIndexer()
    assert not indexer.wants("x/big-1.0.dist-info/METADATA", 100 << 20, 0o644)
    index = findings(indexer, "x/broken-1.0.dist-info/METADATA", b"Metadata-Version: 2.1\nSummary: x\n")
    assert index.packages == []
    assert len(index.warnings) == 2 and "big-1.0.dist-info" in index.warnings[0]


# --- npm -----------------------------------------------------------------------------------------

def test_npm_install_is_what_npm_ls_says() -> None:
    prefix = npm_prefix()
    assert (prefix / "node_modules" / ".package-lock.json").is_file()
    index = index_tree(NpmIndexer(), prefix, "srv/app/")
    assert {(p.name, p.version) for p in index.packages} == npm_ls(prefix) == {
        ("lodash", "4.17.15"), ("minimist", "1.2.0")}
    by_name = {p.name: p for p in index.packages}
    assert by_name["lodash"].location == "srv/app/node_modules/lodash/package.json"
    assert by_name["lodash"].license == "MIT"
    assert by_name["minimist"].license == "MIT"
    assert index.warnings == []


def test_npm_package_json_paths_and_licenses() -> None:
    assert is_package_json("a/node_modules/lodash/package.json")
    assert is_package_json("a/node_modules/@babel/core/package.json")
    assert is_package_json("node_modules/a/node_modules/b/package.json")
    assert not is_package_json("a/node_modules/lodash/test/fixtures/package.json")
    assert not is_package_json("a/node_modules/.package-lock.json")
    assert not is_package_json("a/node_modules/@babel/package.json")
    assert not is_package_json("a/package.json")
    indexer = NpmIndexer()
    docs = {"a": {"name": "a", "version": "1.0.0", "license": {"type": "ISC"}},
            "b": {"name": "b", "version": "2.0.0", "licenses": [{"type": "MIT"}, {"type": "GPL-2.0"}]},
            "c": {"name": "c"}}
    files = {f"n/node_modules/{k}/package.json": json.dumps(v).encode() for k, v in docs.items()}
    files["n/node_modules/d/package.json"] = b"not json"
    for path, doc in files.items():
        if indexer.wants(path, len(doc), 0o644):
            indexer.add(path, doc)
    index = LayerIndex()
    indexer.finish(index)
    assert {(p.name, p.version, p.license) for p in index.packages} == {
        ("a", "1.0.0", "ISC"), ("b", "2.0.0", "MIT OR GPL-2.0")}
    assert len(index.warnings) == 1 and "node_modules/d/package.json" in index.warnings[0]


# --- Ruby ----------------------------------------------------------------------------------------

def test_gems_are_what_gem_list_says() -> None:
    """Debian's ruby: the default gems, the bundled gems and rubygems-integration's."""
    gem = require("gem", "apt-get install ruby")
    indexer = GemIndexer()
    for d in run(gem, "env", "gempath").strip().split(":"):
        for spec in sorted(Path(d).glob("specifications/**/*.gemspec")):
            path = str(spec).lstrip("/")
            data = spec.read_bytes()
            if indexer.wants(path, len(data), 0o644):
                indexer.add(path, data)
    index = LayerIndex()
    indexer.finish(index)
    expected = set()
    for line in run(gem, "list", "--local").splitlines():
        name, _, versions = line.partition(" (")
        for v in versions.rstrip(")").split(", "):
            expected.add((name, v.removeprefix("default: ").split(" ")[0]))
    assert {(p.name, p.version) for p in index.packages} == expected
    rake = next(p for p in index.packages if p.name == "rake")
    assert rake.license == "MIT" and rake.ecosystem == "gem"
    cgi = next(p for p in index.packages if p.name == "cgi")
    assert cgi.license == "Ruby OR BSD-2-Clause" and "/specifications/default/" in cgi.location
    assert index.warnings == []


def test_gemspec_older_forms() -> None:
    spec = (b"Gem::Specification.new do |spec|\n  spec.name = %q{rack}\n"
            b"  spec.version = Gem::Version.new(\"1.0.1\")\n  spec.license = 'MIT'\nend\n")
    index = findings(GemIndexer(), "gems/specifications/rack-1.0.1.gemspec", spec, 0o644)
    assert [(p.name, p.version, p.license) for p in index.packages] == [("rack", "1.0.1", "MIT")]
    index = findings(GemIndexer(), "gems/specifications/x-1.gemspec", b"# nothing\n", 0o644)
    assert index.packages == [] and len(index.warnings) == 1


# --- Java ----------------------------------------------------------------------------------------

def test_debian_jars_are_what_debian_maven_repo_says() -> None:
    """Every jar of /usr/share/java that carries its own pom.properties is reported as the
    group:artifact and version under which Debian's /usr/share/maven-repo links it."""
    require_deb("liblog4j2-java")
    index = index_tree(JavaIndexer(), JAVA, "usr/share/java/")
    found = {(p.location, p.name, p.version) for p in index.packages}
    repo = Path("/usr/share/maven-repo")
    expected = set()
    for link in repo.rglob("*.jar"):
        *group, artifact, version, _ = link.relative_to(repo).parts
        target = Path(os.path.realpath(link))
        if version == "debian" or version.endswith(".x") or target.parent != JAVA:
            continue
        with zipfile.ZipFile(target) as zf:
            if f"META-INF/maven/{'.'.join(group)}/{artifact}/pom.properties" not in zf.namelist():
                continue
        expected.add((f"usr/share/java/{target.name}", ".".join(group) + ":" + artifact, version))
    assert len(expected) > 20
    assert expected <= found
    log4j = run("dpkg-query", "-W", "-f", "${Version}", "liblog4j2-java").split("-")[0]
    assert ("usr/share/java/log4j-core.jar", "org.apache.logging.log4j:log4j-core", log4j) in found
    assert ("usr/share/java/log4j-api.jar", "org.apache.logging.log4j:log4j-api", log4j) in found
    assert index.warnings == []


def test_archive_file_names() -> None:
    assert split_file_name("log4j-1.2-api-2.19.0.jar") == ("log4j-1.2-api", "2.19.0")
    assert split_file_name("guava-31.1-jre.jar") == ("guava", "31.1-jre")
    assert split_file_name("jsr305-0.1~+svn49.jar") == ("jsr305", "0.1~+svn49")
    assert split_file_name("netty-codec-http2-4.1.50.Final.jar") == ("netty-codec-http2", "4.1.50.Final")
    assert split_file_name("guice.jar") == ("guice", "")


def test_jar_without_pom_properties_uses_manifest_and_file_name() -> None:
    require_deb("libmongodb-java")
    require_deb("libaopalliance-java")
    data = (JAVA / "bson-3.6.3.jar").read_bytes()
    index = findings(JavaIndexer(), "opt/lib/bson-3.6.3.jar", data, 0o644)
    assert [(p.name, p.version) for p in index.packages] == [("org.mongodb:bson", "3.6.3")]
    data = (JAVA / "aopalliance-1.0.jar").read_bytes()  # an empty manifest: the file name alone
    index = findings(JavaIndexer(), "opt/lib/aopalliance-1.0.jar", data, 0o644)
    assert [(p.name, p.version) for p in index.packages] == [("aopalliance", "1.0")]


def test_jar_bundling_another_projects_pom_properties() -> None:
    """Debian's guice.jar carries cglib's classes and pom.properties but none of its own: both
    are reported, guice from its manifest (with the manifest's license)."""
    require_deb("libguice-java")
    index = findings(JavaIndexer(), "opt/lib/guice.jar", (JAVA / "guice.jar").read_bytes(), 0o644)
    cglib = run("unzip", "-p", JAVA / "guice.jar", "META-INF/maven/cglib/cglib/pom.properties")
    cglib_version = next(line.split("=", 1)[1] for line in cglib.splitlines() if line.startswith("version="))
    guice_version = run("dpkg-query", "-W", "-f", "${Version}", "libguice-java").split("-")[0]
    assert {(p.name, p.version, bool(p.license)) for p in index.packages} == {
        ("cglib:cglib", cglib_version, False), ("guice", guice_version, True)}


def _war(tmp: Path) -> bytes:
    """A war with its own pom.properties and two real Debian jars in WEB-INF/lib."""
    require_deb("liblog4j2-java")
    require_deb("libcommons-io-java")
    return zip_bytes({
        "META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\r\nBundle-License: Apache-2.0\r\n\r\n",
        **pom_properties("com.example", "shop", "1.4.2"),
        "WEB-INF/web.xml": b"<web-app/>",
        "WEB-INF/lib/log4j-api-2.19.0.jar": (JAVA / "log4j-api.jar").read_bytes(),
        "WEB-INF/lib/commons-io-2.11.0.jar": (JAVA / "commons-io.jar").read_bytes(),
    })


def test_nested_archives_in_war_and_ear(tmp_path: Path) -> None:
    war = _war(tmp_path)
    ear = zip_bytes({"META-INF/application.xml": b"<application/>", "shop.war": war}, zipfile.ZIP_STORED)
    index = findings(JavaIndexer(), "opt/app/shop.ear", ear, 0o644)
    log4j = run("dpkg-query", "-W", "-f", "${Version}", "liblog4j2-java").split("-")[0]
    assert {(p.location, p.name, p.version, p.license) for p in index.packages} == {
        ("opt/app/shop.ear!/shop.war", "com.example:shop", "1.4.2", "Apache-2.0"),
        ("opt/app/shop.ear!/shop.war!/WEB-INF/lib/log4j-api-2.19.0.jar",
         "org.apache.logging.log4j:log4j-api", log4j, ""),
        ("opt/app/shop.ear!/shop.war!/WEB-INF/lib/commons-io-2.11.0.jar",
         "commons-io:commons-io", "2.11.0", ""),
    }
    assert index.warnings == []


def test_zip_bomb_is_skipped_with_a_warning() -> None:
    data = zip_bomb_war().read_bytes()
    assert len(data) < 2 << 20
    index = findings(JavaIndexer(), "srv/bomb.war", data, 0o644)
    assert index.packages == []
    assert len(index.warnings) == 1
    assert "srv/bomb.war!/WEB-INF/lib/bomb.jar" in index.warnings[0]
    assert f"{300 << 20} bytes over the {MAX_ARCHIVE} byte limit" in index.warnings[0]


def test_decompressed_bytes_budget(tmp_path: Path) -> None:
    war = _war(tmp_path)
    with zipfile.ZipFile(io.BytesIO(war)) as zf:
        sizes = {i.filename: i.file_size for i in zf.infolist()}
    with zipfile.ZipFile(JAVA / "log4j-api.jar") as zf:
        log4j_metadata = sum(i.file_size for i in zf.infolist()
                             if i.filename.endswith(("MANIFEST.MF", "pom.properties")))
    # What the war's own metadata and log4j-api (with its metadata) inflate to: not commons-io.
    budget = sum(size for name, size in sizes.items() if not name.endswith(".jar")) \
        + sizes["WEB-INF/lib/log4j-api-2.19.0.jar"] + log4j_metadata
    index = findings(JavaIndexer(max_decompressed=budget), "shop.war", war, 0o644)
    assert {p.name for p in index.packages} == {"com.example:shop", "org.apache.logging.log4j:log4j-api"}
    assert len(index.warnings) == 1
    assert "shop.war!/WEB-INF/lib/commons-io-2.11.0.jar" in index.warnings[0]
    assert "limit of what one archive may inflate to" in index.warnings[0]


def test_nesting_depth_limit() -> None:
    data = zip_bytes(pom_properties("g", "level6", "6"))
    for level in range(5, 0, -1):
        data = zip_bytes({**pom_properties("g", f"level{level}", str(level)), f"lib/level{level + 1}.jar": data})
    index = findings(JavaIndexer(), "a.jar", data, 0o644)
    assert [p.name for p in index.packages] == ["g:level1", "g:level2", "g:level3", "g:level4"]
    assert index.packages[3].location == "a.jar!/lib/level2.jar!/lib/level3.jar!/lib/level4.jar"
    assert len(index.warnings) == 1
    assert "level4.jar!/lib/level5.jar: archive nested deeper than 4 archives" in index.warnings[0]


def test_corrupt_and_oversized_archives_are_warnings() -> None:
    real = (JAVA / "log4j-api.jar").read_bytes()
    indexer = JavaIndexer()
    for path, data in [("a/truncated.jar", real[: len(real) // 2]), ("a/text.jar", b"not a zip\n")]:
        assert indexer.wants(path, len(data), 0o644)
        indexer.add(path, data)
    assert not indexer.wants("a/huge.war", MAX_ARCHIVE + 1, 0o644)
    assert not indexer.wants("a/readme.txt", 10, 0o644)
    index = LayerIndex()
    indexer.finish(index)
    assert index.packages == []
    assert [w.split(":")[0] for w in index.warnings] == ["a/truncated.jar", "a/text.jar", "a/huge.war"]


# --- Go ------------------------------------------------------------------------------------------

def _go_expected(binary: Path, location: str) -> set[tuple[str, str, str]]:
    go_version, modules = go_version_m(binary)
    assert go_version.startswith("go1.")
    return {(location, path, version) for path, version in modules} | {
        (location, "stdlib", "v" + go_version.removeprefix("go"))}


@pytest.mark.parametrize("binary", ["app", "localapp"])
def test_go_binary_is_what_go_version_m_says(binary: str) -> None:
    path = go_binaries() / binary
    index = findings(GoIndexer(), f"usr/local/bin/{binary}", path.read_bytes())
    found = {(p.location, p.name, p.version) for p in index.packages}
    assert found == _go_expected(path, f"usr/local/bin/{binary}")
    assert {p.ecosystem for p in index.packages} == {"golang"}
    assert index.warnings == []


def test_go_binary_modules() -> None:
    """What the two builds hold: a versioned main module, a dependency replaced by another module
    version, a dependency replaced by a local directory (left out), the main module ``(devel)``."""
    bins = go_binaries()
    app = findings(GoIndexer(), "app", (bins / "app").read_bytes())
    assert {(p.name, p.version) for p in app.packages} - {("stdlib", "v1.19.8")} == {
        ("example.com/app", "v1.0.0"), ("example.com/greet", "v1.2.0")}
    local = findings(GoIndexer(), "localapp", (bins / "localapp").read_bytes())
    assert {p.name for p in local.packages} == {"example.com/greetfork", "stdlib"}


def test_go_binary_without_section_headers() -> None:
    """Section headers removed (as sstrip does): the build info is found in the data segment."""
    data = bytearray((go_binaries() / "app").read_bytes())
    data[0x28:0x30] = bytes(8)  # e_shoff
    data[0x3C:0x40] = bytes(4)  # e_shnum, e_shstrndx
    index = findings(GoIndexer(), "app", bytes(data))
    assert ("example.com/app", "v1.0.0") in {(p.name, p.version) for p in index.packages}


def test_go_pre_118_pointer_format_is_a_warning() -> None:
    data = bytearray((go_binaries() / "app").read_bytes())
    at = data.find(BUILDINFO_MAGIC)
    data[at + 15] &= ~0x2  # the flags byte: strings by pointer, as before Go 1.18
    index = findings(GoIndexer(), "old", bytes(data))
    assert index.packages == []
    assert index.warnings == ["old: Go build info not read: build info in the pre-Go 1.18 pointer "
                              "format is not read"]


def test_go_indexer_ignores_other_files() -> None:
    plain_rust = (rust_binaries() / "plain").read_bytes()
    indexer = GoIndexer()
    assert not indexer.wants("x/data.bin", len(plain_rust), 0o644)  # no exec bit
    for path, data in [("bin/rust", plain_rust), ("bin/script", b"#!/bin/sh\necho hi there, this is a script\n" * 3)]:
        assert indexer.wants(path, len(data), 0o755)
        indexer.add(path, data)
    truncated = (go_binaries() / "app").read_bytes()[:100_000]
    indexer.add("bin/truncated", truncated)
    index = LayerIndex()
    indexer.finish(index)
    assert index.packages == []
    assert len(index.warnings) == 1 and index.warnings[0].startswith("bin/truncated: Go build info not read")


def test_stdlib_versions() -> None:
    assert stdlib_version("go1.19.8") == "v1.19.8"
    assert stdlib_version("go1.21") == "v1.21.0"
    assert stdlib_version("go1.21rc2") == "v1.21.0-rc.2"
    assert stdlib_version("go1.20beta1") == "v1.20.0-beta.1"
    assert stdlib_version("go1.22.1 X:boringcrypto") == "v1.22.1"
    assert stdlib_version("devel go1.23-1a2b3c") == ""


# --- Rust ----------------------------------------------------------------------------------------

RUNTIME = {(p["name"], p["version"]) for p in AUDIT_JSON["packages"]
           if p.get("kind", "runtime") == "runtime"}


def test_cargo_auditable_binary() -> None:
    bins = rust_binaries()
    objdump = require("objdump", "apt-get install binutils")
    assert ".dep-v0" in run(objdump, "-h", bins / "auditable")
    indexer = RustIndexer()
    for name in ("auditable", "plain"):
        data = (bins / name).read_bytes()
        assert indexer.wants(f"usr/bin/{name}", len(data), 0o755)
        indexer.add(f"usr/bin/{name}", data)
    index = LayerIndex()
    indexer.finish(index)
    assert {(p.location, p.name, p.version) for p in index.packages} == {
        ("usr/bin/auditable", name, version) for name, version in RUNTIME}
    assert ("cc", "1.0.83") not in RUNTIME and len(RUNTIME) == 4
    assert {p.ecosystem for p in index.packages} == {"cargo"}
    assert index.warnings == []


@pytest.mark.parametrize("target", ["elf32-big", "elf64-big", "elf32-little", "elf32-i386"])
def test_cargo_auditable_section_in_other_elf_classes(target: str, tmp_path: Path) -> None:
    data = elf_object(target, zlib.compress(json.dumps(AUDIT_JSON).encode()), tmp_path)
    index = findings(RustIndexer(), "lib/x.o", data)
    assert {(p.name, p.version) for p in index.packages} == RUNTIME


def test_cargo_auditable_bad_section_is_a_warning(tmp_path: Path) -> None:
    data = elf_object("elf64-x86-64", b"not zlib at all", tmp_path)
    index = findings(RustIndexer(), "bin/bad", data)
    assert index.packages == []
    assert len(index.warnings) == 1 and index.warnings[0].startswith("bin/bad: cargo-auditable data not read: not zlib")
    bomb = zlib.compress(b" " * (9 << 20))
    index = findings(RustIndexer(), "bin/bomb", elf_object("elf64-x86-64", bomb, tmp_path))
    assert index.packages == [] and "over 8388608 bytes" in index.warnings[0]


def test_binary_size_limit() -> None:
    indexer = RustIndexer()
    assert not indexer.wants("bin/huge", 300 << 20, 0o755)
    index = LayerIndex()
    indexer.finish(index)
    assert len(index.warnings) == 1 and index.warnings[0].startswith("bin/huge: executable of")

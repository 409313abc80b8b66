"""Image composition from layer rows, with this machine's real packages: its dpkg database (names,
versions, sources, owned files), its os-release, the test venv's Python distributions, a real
Debian jar and the Go toolchain's modules."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Sequence

from dtr.scanning.image import ImagePackage, LayerRows, compose
from dtr.scanning.types import OS_ECOSYSTEMS, Distribution, Package
from tests.scanning.match_data import (
    DPKG_STATUS,
    go_toolchain_modules,
    installed_deb,
    installed_debs,
    os_release,
    venv_python_packages,
)

SITE = "usr/local/lib/python3.11/site-packages"
_ids = itertools.count(1)


def layer(packages: Iterable[Package] = (), *, distribution: Distribution | None = None,
          whiteouts: Sequence[str] = (), opaque_dirs: Sequence[str] = (),
          package_dbs: Sequence[str] | None = None) -> LayerRows:
    """A layer's rows as the indexer stores them (fresh ``scan_packages`` ids, OS databases listed)."""
    rows = [(next(_ids), p) for p in packages]
    if package_dbs is None:
        package_dbs = sorted({p.location for _, p in rows if p.ecosystem in OS_ECOSYSTEMS})
    return LayerRows(digest=f"sha256:{next(_ids):064x}", distribution=distribution, packages=rows,
                     whiteouts=whiteouts, opaque_dirs=opaque_dirs, package_dbs=package_dbs)


def by_name(result: Sequence[ImagePackage]) -> dict[str, ImagePackage]:
    found = {p.package.name: p for p in result}
    assert len(found) == len(result), "one package per name expected here"
    return found


def row_id(rows: LayerRows, name: str) -> int:
    return next(i for i, p in rows.packages if p.name == name)


def test_dpkg_status_rewritten_by_every_layer() -> None:
    """apt in three layers: packages keep the layer that installed them; an upgrade is the
    upgrading layer's; a removed package disappears."""
    debs = sorted({p.name: p for p in installed_debs()}.values(), key=lambda p: p.name)  # one arch per name
    base, added = debs[:-5], debs[-5:]
    libssl = installed_deb("libssl3")
    upgraded = dataclasses.replace(libssl, version=libssl.version + "+deb12u1",
                                   source_version=(libssl.source_version or libssl.version) + "+deb12u1")
    layer0 = layer(base, distribution=os_release())
    layer1 = layer(base + added)
    layer2 = layer([upgraded if p.name == "libssl3" else p for p in base + added if p.name != "python3-requests"])
    distribution, result = compose([layer0, layer1, layer2])
    assert distribution == os_release()
    found = by_name(result)
    assert len(found) == len(debs) - 1 and "python3-requests" not in found
    for package in base:
        if package.name not in ("libssl3", "python3-requests"):
            image_package = found[package.name]
            assert (image_package.layer_index, image_package.layer_digest) == (0, layer0.digest)
            assert image_package.package_id == row_id(layer0, package.name)
            assert image_package.package == package
    for package in added:
        assert (found[package.name].layer_index, found[package.name].package_id) == (1, row_id(layer1, package.name))
    assert (found["libssl3"].layer_index, found["libssl3"].package.version) == (2, upgraded.version)
    assert found["libssl3"].package_id == row_id(layer2, "libssl3")
    assert [p.layer_index for p in result] == sorted(p.layer_index for p in result)


def test_empty_or_whited_out_database_loses_its_packages() -> None:
    debs = installed_debs()
    full = layer(debs)
    _, result = compose([full, layer(package_dbs=[DPKG_STATUS])])  # dpkg --purge of everything: empty status
    assert result == []
    _, result = compose([full, layer(whiteouts=["var/lib/dpkg"])])
    assert result == []
    _, result = compose([full, layer(opaque_dirs=["var/lib"])])
    assert result == []
    # a new database after the whiteout starts a new chain: its packages are that layer's
    again = layer(debs[:3])
    _, result = compose([full, layer(whiteouts=["var/lib/dpkg/status"]), again])
    assert [(p.layer_index, p.package_id) for p in result] == [(2, i) for i, _ in again.packages]
    # the same layer's opaque directory covers only the layers below it
    _, result = compose([full, layer(debs[:3], opaque_dirs=["var/lib/dpkg"])])
    assert len(result) == 3 and {p.layer_index for p in result} == {1}
    # a whiteout of a sibling with a common prefix deletes nothing
    _, result = compose([full, layer(whiteouts=["var/lib/dpkg/stat", "var/lib/dp"])])
    assert len(result) == len(debs)


def test_distroless_status_d_files_are_separate_databases() -> None:
    def status_d(name: str) -> Package:
        return dataclasses.replace(installed_deb(name), location=f"var/lib/dpkg/status.d/{name}")

    base = layer([status_d("libc6"), status_d("libssl3")], distribution=os_release())
    tz = layer([status_d("tzdata")])
    found = by_name(compose([base, tz])[1])
    assert {n: p.layer_index for n, p in found.items()} == {"libc6": 0, "libssl3": 0, "tzdata": 1}
    rewrite = layer([status_d("libc6")])
    found = by_name(compose([base, tz, layer(whiteouts=["var/lib/dpkg/status.d/libssl3"]), rewrite])[1])
    assert {n: p.layer_index for n, p in found.items()} == {"libc6": 0, "tzdata": 1}
    assert found["libc6"].package_id == row_id(base, "libc6")


def _python(name: str, version: str, site: str = SITE) -> Package:
    return Package(ecosystem="pypi", name=name, version=version, location=f"{site}/{name}-{version}.dist-info/METADATA")


def test_language_packages_owned_by_os_packages_are_not_reported() -> None:
    """python3-requests ships requests-2.28.1.egg-info: that is the deb (fixes backported), not a
    PyPI requests 2.28.1. The venv's distributions, and a pip-installed requests, are PyPI's."""
    deb = installed_deb("python3-requests")
    egg_info = next(f for f in deb.files if f.endswith(".egg-info/PKG-INFO"))
    owned = Package(ecosystem="pypi", name="requests", version="2.28.1", location=egg_info)
    pip_installed = _python("requests", "2.31.0")
    venv = list(venv_python_packages())
    # a deb that lists the dist-info directory only (a dpkg indexer may keep directories, and the leading /)
    dir_only = Package(ecosystem="deb", name="python3-foo", version="1.0-1", location=DPKG_STATUS,
                       files=("/usr/lib/python3/dist-packages/foo-1.0.dist-info/",))
    foo = _python("foo", "1.0", "usr/lib/python3/dist-packages")
    # a real Debian jar, and the same jar copied into an application (and one beside Debian's jars)
    java_deb = installed_deb("libmaven3-core-java")
    jar = "usr/share/java/maven3-artifact.jar"
    assert jar in java_deb.files
    debian_jar = Package(ecosystem="maven", name="org.apache.maven:maven-artifact", version="3.8.7", location=jar)
    app_jar = dataclasses.replace(debian_jar, location="opt/app/lib/maven3-artifact.jar")
    beside = dataclasses.replace(debian_jar, location="usr/share/java/app-bundle.jar!/lib/maven-artifact-3.8.7.jar")
    nested_owned = dataclasses.replace(debian_jar, location=jar + "!/META-INF/lib/inner.jar")
    base = layer([*installed_debs(), dir_only], distribution=os_release())
    apps = layer([owned, pip_installed, foo, *venv, debian_jar, app_jar, beside, nested_owned])
    _, result = compose([base, apps])
    language = {(p.package.name, p.package.location) for p in result if p.package.ecosystem not in OS_ECOSYSTEMS}
    expected = {(p.name, p.location) for p in [pip_installed, *venv, app_jar, beside]}
    assert language == expected
    # the owner removed (dpkg -r deletes its files: a whiteout too), the egg-info goes with it
    without_deb = layer([p for p in installed_debs() if p.name != "python3-requests"],
                        whiteouts=[egg_info.rsplit("/", 1)[0]])
    _, result = compose([base, apps, without_deb])
    assert ("requests", egg_info) not in {(p.package.name, p.package.location) for p in result}
    assert "python3-requests" not in {p.package.name for p in result}


def test_language_packages_by_location() -> None:
    venv = venv_python_packages()
    aiohttp = next(p for p in venv if p.name.lower() == "aiohttp")
    others = [p for p in venv if p is not aiohttp][:10]
    old = dataclasses.replace(aiohttp, version="3.8.1", location=f"{SITE}/aiohttp-3.8.1.dist-info/METADATA")
    layer0 = layer([*others, old])
    # pip install -U: the old dist-info directory whited out, the new one added
    layer1 = layer([aiohttp], whiteouts=[f"{SITE}/aiohttp-3.8.1.dist-info"])
    # the same METADATA file rewritten (a chmod -R, say): same package, still the first layer's
    layer2 = layer([aiohttp, others[0]])
    found = by_name(compose([layer0, layer1, layer2])[1])
    assert found[aiohttp.name].package.version == aiohttp.version
    assert (found[aiohttp.name].layer_index, found[aiohttp.name].package_id) == (1, row_id(layer1, aiohttp.name))
    assert (found[others[0].name].layer_index, found[others[0].name].package_id) == (0, row_id(layer0, others[0].name))
    assert len(found) == 11
    # an opaque site-packages in a later layer hides everything below it, not its own content
    found = by_name(compose([layer0, layer([aiohttp], opaque_dirs=[SITE])])[1])
    assert list(found) == [aiohttp.name] and found[aiohttp.name].layer_index == 1


def test_binaries_and_nested_archives_are_one_location() -> None:
    """A Go binary's modules share its path: a rebuilt binary replaces the set (a module kept at
    the same version keeps its first layer); a whiteout of an archive removes its nested jars."""
    modules = go_toolchain_modules()
    binary = "usr/local/bin/app"
    first = [Package(ecosystem="golang", name=m, version=v, location=binary) for m, v in modules]
    rebuilt = [*first[:2], dataclasses.replace(first[2], version="v9.9.9")]
    layer0, layer1 = layer(first), layer(rebuilt)
    found = by_name(compose([layer0, layer1])[1])
    assert {n: (p.package.version, p.layer_index) for n, p in found.items()} == {
        first[0].name: (first[0].version, 0), first[1].name: (first[1].version, 0), first[2].name: ("v9.9.9", 1)}
    log4j = Package(ecosystem="maven", name="org.apache.logging.log4j:log4j-core", version="2.14.1",
                    location="app/app.jar!/BOOT-INF/lib/log4j-core-2.14.1.jar")
    spring = Package(ecosystem="maven", name="org.springframework:spring-core", version="5.3.18",
                     location="app/app.jar!/BOOT-INF/lib/spring-core-5.3.18.jar")
    jars = layer([log4j, spring])
    assert len(compose([jars])[1]) == 2
    assert compose([jars, layer(whiteouts=["app/app.jar"])])[1] == []
    assert compose([jars, layer(whiteouts=["app"])])[1] == []
    assert len(compose([jars, layer(whiteouts=["app/app.ja"])])[1]) == 2


def test_distribution_is_the_newest_layers() -> None:
    bookworm = os_release()
    trixie = Distribution(id="debian", version_id="13", version_codename="trixie", source="etc/os-release")
    alpine = Distribution(id="alpine", version_id="3.19.1", source="etc/os-release")
    assert compose([])[0] is None
    assert compose([layer(distribution=bookworm), layer()])[0] == bookworm
    assert compose([layer(distribution=bookworm), layer(distribution=trixie), layer()])[0] == trixie
    assert compose([layer(distribution=bookworm), layer(whiteouts=["etc/os-release"])])[0] is None
    assert compose([layer(distribution=bookworm), layer(opaque_dirs=["etc"])])[0] is None
    # a layer's whiteouts apply to the layers below it, before its own files
    assert compose([layer(distribution=bookworm), layer(distribution=alpine, whiteouts=["etc"])])[0] == alpine
    # a whiteout of a file that is not the distribution's source keeps it
    usr_lib = dataclasses.replace(bookworm, source="usr/lib/os-release")
    assert compose([layer(distribution=usr_lib), layer(whiteouts=["etc/os-release"])])[0] == usr_lib

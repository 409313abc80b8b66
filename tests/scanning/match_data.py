"""Real data from this machine for the matcher and image tests: its dpkg database (packages, their
sources and owned files), its os-release, the Python packages of the test venv, the Go modules
vendored in the Go toolchain, and the (source package, CVE, fixed version) facts its Debian
changelogs record."""

from __future__ import annotations

import dataclasses
import functools
import glob
import gzip
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from dtr.scanning.types import Distribution, Package

DPKG_STATUS = "var/lib/dpkg/status"


def need(tool: str, debian_package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed: apt-get install -y --no-install-recommends {debian_package} "
                    "(scripts/install-test-deps.sh installs what the tests need)")
    return path


@functools.cache
def installed_debs() -> tuple[Package, ...]:
    """The installed packages as a dpkg indexer reports them (files without the leading ``/``)."""
    query = need("dpkg-query", "dpkg")
    out = subprocess.run(
        [query, "-W", "-f", "${db:Status-Abbrev}\t${Package}\t${Version}\t${source:Package}\t${source:Version}\t"
         "${Architecture}\n"], capture_output=True, text=True, check=True).stdout
    packages = []
    for line in out.splitlines():
        status, name, version, source, source_version, arch = line.split("\t")
        if not status.startswith("ii"):
            continue
        files: tuple[str, ...] = ()
        for list_file in (f"/var/lib/dpkg/info/{name}:{arch}.list", f"/var/lib/dpkg/info/{name}.list"):
            if Path(list_file).exists():
                files = tuple(p.lstrip("/") for p in Path(list_file).read_text().splitlines() if p not in ("/.", ""))
                break
        packages.append(Package(
            ecosystem="deb", name=name, version=version, arch=arch, location=DPKG_STATUS, files=files,
            source_name=source if source != name else "",
            source_version=source_version if source_version != version else ""))
    assert len(packages) > 100, "this machine's dpkg database is expected to be a real one"
    return tuple(packages)


def installed_deb(name: str) -> Package:
    found = [p for p in installed_debs() if p.name == name]
    if not found:
        pytest.fail(f"the Debian package {name} is expected here: apt-get install -y {name}")
    return found[0]


@functools.cache
def os_release() -> Distribution:
    fields = {}
    for line in Path("/etc/os-release").read_text().splitlines():
        key, _, value = line.partition("=")
        fields[key] = value.strip('"')
    return Distribution(id=fields["ID"], version_id=fields.get("VERSION_ID", ""),
                        version_codename=fields.get("VERSION_CODENAME", ""),
                        pretty_name=fields.get("PRETTY_NAME", ""), source="etc/os-release")


@functools.cache
def venv_python_packages() -> tuple[Package, ...]:
    """The test venv's installed distributions, located as the Python indexer locates them."""
    site = Path(next(p for p in sys.path if p.endswith("site-packages")))
    packages = []
    for metadata in sorted(site.glob("*.dist-info/METADATA")):
        fields = dict(line.split(": ", 1) for line in metadata.read_text(errors="replace").split("\n\n")[0].splitlines()
                      if ": " in line and not line.startswith(" "))
        packages.append(Package(ecosystem="pypi", name=fields["Name"], version=fields["Version"],
                                location="usr/local/lib/python3.11/site-packages/" + str(metadata.relative_to(site))))
    assert len(packages) > 20
    return tuple(packages)


def go_toolchain_modules() -> list[tuple[str, str]]:
    """(module, version) pairs vendored in the Go toolchain (what ``go version -m`` shows for its tools)."""
    goroot = subprocess.run([need("go", "golang-go"), "env", "GOROOT"], capture_output=True, text=True,
                            check=True).stdout.strip()
    found = set()
    for path in glob.glob(f"{goroot}/src/cmd/vendor/modules.txt"):
        for line in Path(path).read_text().splitlines():
            parts = line.split()
            if line.startswith("# ") and len(parts) >= 3 and parts[2].startswith("v"):
                found.add((parts[1], parts[2]))
    assert found
    return sorted(found)


def dpkg_compare(pairs: Sequence[tuple[str, str]]) -> list[int]:
    """dpkg's answers (-1, 0, 1) for version pairs, from ``dpkg --compare-versions`` (one shell;
    one dpkg run for a pair in ascending order, two for the others)."""
    dpkg = need("dpkg", "dpkg")
    script = (f'while IFS= read -r a && IFS= read -r b; do if {dpkg} --compare-versions "$a" lt "$b"; '
              f'then echo -1; elif {dpkg} --compare-versions "$a" gt "$b"; then echo 1; else echo 0; fi; done')
    out = subprocess.run(["sh", "-c", script], input="".join(f"{a}\n{b}\n" for a, b in pairs), capture_output=True,
                         text=True, check=True, timeout=300).stdout
    answers = [int(x) for x in out.split()]
    assert len(answers) == len(pairs)
    return answers


@dataclasses.dataclass(frozen=True)
class ChangelogFact:
    """A CVE a Debian changelog says ``fixed`` fixed (its oldest mention), and the version before it.
    A changelog's history is not always in dpkg order (a stable update made from a newer unstable
    upload lists that upload below it): tests ask dpkg what to expect."""

    source: str
    cve: str
    fixed: str
    previous: str


_HEADER = re.compile(r"^(\S+) \(([^)]+)\) [^;\n]*;", re.M)
_CVE = re.compile(r"CVE-[0-9]{4}-[0-9]{4,}")


@functools.cache
def changelog_facts() -> tuple[ChangelogFact, ...]:
    """CVE fixes recorded in the changelogs of the installed source packages (the changelog of the
    installed version: its newest entry is the installed source version)."""
    installed = {(p.source_name or p.name): (p.source_version or p.version) for p in installed_debs()}
    facts: dict[tuple[str, str], ChangelogFact] = {}
    for path in sorted(glob.glob("/usr/share/doc/*/changelog.Debian.gz")):
        with gzip.open(path, "rt", errors="replace") as f:
            text = f.read()
        heads = list(_HEADER.finditer(text))
        if not heads or installed.get(heads[0].group(1)) != heads[0].group(2):
            continue
        source = heads[0].group(1)  # older entries may carry an older name of the source package
        for i, head in enumerate(heads[:-1]):  # newest first; an entry without an older one is skipped
            body = text[head.end():heads[i + 1].start()]
            for cve in set(_CVE.findall(body)):
                # older entries come later and overwrite: the oldest mention is the fix
                facts[(source, cve)] = ChangelogFact(source, cve, head.group(2), heads[i + 1].group(2))
    assert len(facts) > 100, "the Debian changelogs here are expected to mention CVEs"
    return tuple(facts.values())

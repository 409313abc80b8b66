"""Ruby gems: the specifications RubyGems writes for installed gems.

Files read: ``.../specifications/*.gemspec`` and ``.../specifications/default/*.gemspec`` (the
default gems that ship with Ruby; ``gem list`` shows them too), which covers ``GEM_HOME``
directories and Debian's ``rubygems-integration`` directories. A gemspec is Ruby code; RubyGems
writes it in one form (``s.name = "rake".freeze``, ``s.version = "13.0.6"``,
``s.licenses = ["MIT".freeze]``), which is parsed with regular expressions (any receiver name,
the ``%q{}`` quoting of older RubyGems, ``Gem::Version.new(...)``, ``s.license = "MIT"``), with
the ``# stub: NAME VERSION`` line as a fallback for name and version. Several licenses are joined
with `` OR `` (a gem's list means "any of"). Ecosystem ``gem``, location the gemspec.
"""

from __future__ import annotations

import re

from dtr.scanning.indexers.base import FileIndexer, MiB
from dtr.scanning.types import Package

MAX_GEMSPEC = 4 * MiB

# A Ruby string literal: "..." or '...' (escapes allowed), or %q/%Q with one of four bracket pairs.
_STRING = (r"""(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'"""
           r"|%[qQ]?\{([^}]*)\}|%[qQ]?<([^>]*)>|%[qQ]?\(([^)]*)\)|%[qQ]?\[([^\]]*)\])")
_STRING_RE = re.compile(_STRING)


def _assignment(attr: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*\w+\.{attr}\s*=\s*(?:Gem::Version\.new\(\s*)?{_STRING}", re.M)


_NAME_RE = _assignment("name")
_VERSION_RE = _assignment("version")
_LICENSES_RE = re.compile(r"^\s*\w+\.licenses?\s*=\s*(\[[^\]]*\]|" + _STRING + ")", re.M)
_STUB_RE = re.compile(r"^# stub: (\S+) (\S+)", re.M)


def _literal(match: re.Match[str]) -> str:
    return next((g for g in match.groups()[-6:] if g is not None), "")


def is_gemspec_path(path: str) -> bool:
    parts = path.split("/")
    if len(parts) < 2 or not parts[-1].endswith(".gemspec"):
        return False
    return parts[-2] == "specifications" or (
        parts[-2] == "default" and len(parts) >= 3 and parts[-3] == "specifications")


def parse_gemspec(text: str) -> tuple[str, str, str]:
    """(name, version, license) of a generated gemspec; empty strings for what it lacks."""
    stub = _STUB_RE.search(text)
    name_m, version_m = _NAME_RE.search(text), _VERSION_RE.search(text)
    name = _literal(name_m) if name_m else (stub.group(1) if stub else "")
    version = _literal(version_m) if version_m else (stub.group(2) if stub else "")
    license_m = _LICENSES_RE.search(text)
    licenses: list[str] = []
    if license_m:
        licenses = [_literal(m) for m in _STRING_RE.finditer(license_m.group(1))]
    return name.strip(), version.strip(), " OR ".join(x for x in licenses if x)


class GemIndexer(FileIndexer):
    name = "gem"
    what = "gemspec"
    max_size = MAX_GEMSPEC

    def wants(self, path: str, size: int, mode: int) -> bool:
        if not is_gemspec_path(path):
            return False
        return self.fits(path, size)

    def add(self, path: str, data: bytes) -> None:
        name, version, license = parse_gemspec(data.decode("utf-8", "replace"))
        if not name or not version:
            self._warnings.append(f"{path}: gemspec without a readable name and version, skipped")
            return
        self._packages.append(Package(ecosystem="gem", name=name, version=version,
                                      license=license, location=path))


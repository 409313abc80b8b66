"""Python distributions: the core metadata of installed packages, anywhere in the layer.

Files read: ``*.dist-info/METADATA`` (wheels, pip), ``*.egg-info/PKG-INFO`` (setuptools, Debian's
python3-* packages), a bare ``*.egg-info`` file (distutils) and ``*.egg/EGG-INFO/PKG-INFO``.
Each is an RFC 822 header block: ``Name`` (reported as declared; the matcher normalises),
``Version``, and the license: ``License-Expression`` (metadata 2.4), else a one-line ``License``
(a multi-line one is the license's text, not its name), else the ``License :: ...`` classifiers'
last parts joined with ``, ``. Ecosystem ``pypi``, location the metadata file.
"""

from __future__ import annotations

from dtr.scanning.indexers.base import FileIndexer, MiB
from dtr.scanning.types import Package

#: Metadata files carry the long description; a bigger one is skipped with a warning.
MAX_METADATA = 16 * MiB


def is_metadata_path(path: str) -> bool:
    """Whether ``path`` is a distribution's metadata file."""
    parent, _, base = path.rpartition("/")
    directory = parent.rpartition("/")[2]
    if base == "METADATA":
        return directory.endswith(".dist-info")
    if base == "PKG-INFO":
        return directory.endswith(".egg-info") or (
            directory == "EGG-INFO" and parent.rpartition("/")[0].endswith(".egg"))
    return base.endswith(".egg-info")


def parse_headers(text: str) -> list[tuple[str, str]]:
    """The header fields (name, value; continuation lines joined with ``\\n``) before the body."""
    fields: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.strip():
            break
        if line[0] in " \t" and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + "\n" + line.strip())
        elif ":" in line:
            name, _, value = line.partition(":")
            fields.append((name.strip().lower(), value.strip()))
    return fields


def license_of(fields: list[tuple[str, str]]) -> str:
    values: dict[str, str] = {}
    for name, value in fields:
        values.setdefault(name, value)
    expression = values.get("license-expression", "")
    if expression:
        return expression
    text = values.get("license", "").strip()
    if text and "\n" not in text and text.upper() != "UNKNOWN":
        return text
    classifiers = [value.split("::")[-1].strip() for name, value in fields
                   if name == "classifier" and value.startswith("License ::")
                   and value.count("::") >= 2]
    return ", ".join(dict.fromkeys(classifiers))


class PythonIndexer(FileIndexer):
    name = "python"
    what = "Python metadata"
    max_size = MAX_METADATA

    def wants(self, path: str, size: int, mode: int) -> bool:
        if not is_metadata_path(path):
            return False
        return self.fits(path, size)

    def add(self, path: str, data: bytes) -> None:
        fields = parse_headers(data.decode("utf-8", "replace"))
        values = dict(reversed(fields))  # the first of repeated fields
        name, version = values.get("name", ""), values.get("version", "")
        if not name or not version:
            self._warnings.append(f"{path}: Python metadata without Name or Version, skipped")
            return
        self._packages.append(Package(ecosystem="pypi", name=name, version=version,
                                      license=license_of(fields), location=path))


"""npm packages: the ``package.json`` of each package directory under a ``node_modules``.

Files read: ``.../node_modules/NAME/package.json`` and ``.../node_modules/@SCOPE/NAME/package.json``
(the layout npm, yarn and pnpm install into), never a ``package.json`` deeper inside a package
(test fixtures, ``{"type": "module"}`` markers) nor ``node_modules/.package-lock.json``. Reported:
``name`` and ``version`` from the file (a file without both is no installed package: skipped),
``license`` (a string, the legacy ``{"type": ...}`` object, or the legacy ``licenses`` list joined
with `` OR ``). Ecosystem ``npm``, location the ``package.json``.
"""

from __future__ import annotations

import json
from typing import Any

from dtr.scanning.indexers.base import FileIndexer, MiB
from dtr.scanning.types import Package

MAX_PACKAGE_JSON = 8 * MiB


def is_package_json(path: str) -> bool:
    """Whether ``path`` is the manifest of a package directory inside a ``node_modules``."""
    parts = path.split("/")
    if len(parts) < 3 or parts[-1] != "package.json":
        return False
    if parts[-3] == "node_modules":
        return not parts[-2].startswith((".", "@"))
    return (len(parts) >= 4 and parts[-4] == "node_modules" and parts[-3].startswith("@")
            and len(parts[-3]) > 1 and not parts[-2].startswith("."))


def license_of(doc: dict[str, Any]) -> str:
    def one(value: Any) -> str:
        if isinstance(value, str):
            return value.strip()
        if isinstance(value, dict) and isinstance(value.get("type"), str):
            return str(value["type"]).strip()
        return ""

    text = one(doc.get("license"))
    if text:
        return text
    licenses = doc.get("licenses")
    if isinstance(licenses, list):
        return " OR ".join(t for t in (one(v) for v in licenses) if t)
    return one(licenses)


class NpmIndexer(FileIndexer):
    name = "npm"
    what = "package.json"
    max_size = MAX_PACKAGE_JSON

    def wants(self, path: str, size: int, mode: int) -> bool:
        if not is_package_json(path):
            return False
        return self.fits(path, size)

    def add(self, path: str, data: bytes) -> None:
        try:
            doc = json.loads(data.decode("utf-8-sig", "replace"))
        except ValueError as e:
            self._warnings.append(f"{path}: not JSON ({e}), skipped")
            return
        if not isinstance(doc, dict):
            return
        name, version = doc.get("name"), doc.get("version")
        if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
            return
        self._packages.append(Package(ecosystem="npm", name=name, version=version,
                                      license=license_of(doc), location=path))


"""Package URLs (purl, https://github.com/package-url/purl-spec) of the scanner's packages and images.

``package_url(ecosystem, name, version, arch=..., distro=...)`` follows each type's rules: ``deb``,
``apk`` and ``rpm`` under the distribution's id with ``arch`` and ``distro`` qualifiers (an rpm
epoch as the ``epoch`` qualifier), PyPI names normalised (PEP 503 with ``-``), npm scopes and
Maven groups as the namespace, Go module paths split at their last ``/``. Every component is
percent-encoded as the spec says; the result parses back to the same parts.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from dtr.scanning.types import Distribution

#: The purl namespace of an RPM distribution's os-release id (others: the id itself).
_RPM_VENDORS = {"rhel": "redhat", "centos": "centos", "fedora": "fedora", "rocky": "rocky",
                "almalinux": "almalinux", "amzn": "amazon", "ol": "oracle", "opensuse-leap": "opensuse",
                "sles": "suse", "mariner": "mariner", "azurelinux": "azurelinux"}
_EPOCH = re.compile(r"^(\d+):(.+)$")


def _enc(part: str) -> str:
    return quote(part, safe="")


def _path(path: str) -> str:
    return "/".join(_enc(p) for p in path.split("/") if p)


def distro_qualifier(distribution: Distribution | None) -> str:
    """``debian-12``, ``alpine-3.19.1``: the ``distro`` qualifier (empty without a distribution)."""
    if distribution is None or not distribution.id:
        return ""
    return f"{distribution.id}-{distribution.version_id}" if distribution.version_id else distribution.id


def package_url(ecosystem: str, name: str, version: str, *, arch: str = "",
                distribution: Distribution | None = None) -> str:
    """The purl of a package of ``ecosystem`` (``dtr.scanning.types.Ecosystem``); an unknown
    ecosystem is ``pkg:generic/NAME@VERSION``."""
    namespace, qualifiers = "", {}
    if ecosystem in ("deb", "apk", "rpm"):
        os_id = distribution.id if distribution is not None and distribution.id else \
            {"deb": "debian", "apk": "alpine", "rpm": "redhat"}[ecosystem]
        namespace = _RPM_VENDORS.get(os_id, os_id) if ecosystem == "rpm" else os_id
        if ecosystem == "rpm" and (m := _EPOCH.match(version)):
            qualifiers["epoch"], version = m.group(1), m.group(2)
        if arch:
            qualifiers["arch"] = arch
        if distro := distro_qualifier(distribution):
            qualifiers["distro"] = distro
        purl_type = ecosystem
        name = name.lower() if ecosystem != "rpm" else name
    elif ecosystem == "pypi":
        purl_type, name = "pypi", re.sub(r"[-_.]+", "-", name).lower()
    elif ecosystem == "npm":
        purl_type = "npm"
        if name.startswith("@") and "/" in name:
            namespace, name = name.split("/", 1)
    elif ecosystem == "maven":
        purl_type = "maven"
        if ":" in name:
            namespace, name = name.split(":", 1)
    elif ecosystem == "golang":
        purl_type = "golang"
        if "/" in name.strip("/"):
            namespace, name = name.strip("/").rsplit("/", 1)
    elif ecosystem in ("gem", "cargo"):
        purl_type = ecosystem
    else:
        purl_type = "generic"
    out = f"pkg:{purl_type}/"
    if namespace:
        out += _path(namespace) + "/"
    out += _enc(name)
    if version:
        out += "@" + _enc(version)
    if qualifiers:
        out += "?" + "&".join(f"{k}={_enc(v)}" for k, v in sorted(qualifiers.items()))
    return out


def image_url(repository: str, digest: str, *, registry: str = "", tag: str = "", arch: str = "") -> str:
    """The ``pkg:oci`` purl of an image manifest: its last path component and digest, with the
    registry's repository URL, the tag and the architecture as qualifiers."""
    qualifiers = {}
    if arch:
        qualifiers["arch"] = arch
    if registry:
        qualifiers["repository_url"] = f"{registry}/{repository}"
    if tag:
        qualifiers["tag"] = tag
    out = f"pkg:oci/{_enc(repository.rsplit('/', 1)[-1])}@{_enc(digest)}"
    if qualifiers:
        out += "?" + "&".join(f"{k}={_enc(v)}" for k, v in sorted(qualifiers.items()))
    return out

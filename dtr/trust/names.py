"""GUNs (notary's Globally Unique Names): the registry host, then the repository name."""

from __future__ import annotations

from dtr.registry.names import is_name

#: A GUN's longest accepted length (host and repository name).
MAX_GUN = 512


def gun_repository(gun: str) -> str | None:
    """The repository ``gun`` names, or None when ``gun`` is not a host followed by a valid
    repository name. The host is the first component when it looks like one the way Docker
    decides it (holds ``.`` or ``:``, or is ``localhost``): ``127.0.0.1:5000/ns/app`` -> ``ns/app``."""
    if len(gun) > MAX_GUN:
        return None
    host, sep, rest = gun.partition("/")
    if not sep or not host or not ("." in host or ":" in host or host == "localhost"):
        return None
    if any(c.isspace() or c in "/\\@#?" for c in host):
        return None
    return rest if is_name(rest) else None

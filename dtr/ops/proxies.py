"""The client behind a trusted load balancer (``http.trusted_proxies``).

``X-Forwarded-For``, ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` are believed only when the
TCP peer is in one of the trusted networks; then ``request.remote`` (logs, the audit log, login
throttling), ``request.scheme`` and ``request.host`` are what they say, and the token realm of
/v2 challenges follows the forwarded scheme and host unless ``http.external_url`` fixes it.
Anyone else's such headers are ignored. With no trusted proxy the middleware is not installed at
all: the hot path pays nothing.

The client is the rightmost ``X-Forwarded-For`` entry that is not itself a trusted proxy (entries
to its left are whatever the client sent). Proxies must *set* ``-Proto`` and ``-Host`` (replace,
not append): the first value is taken.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Request key: ``scheme://host`` the client used, as a trusted proxy forwarded it (absent otherwise).
FORWARDED_BASE = "dtr.forwarded_base"
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``text`` names (an IPv4-mapped IPv6 one as IPv4), else None."""
    try:
        ip = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _first(request: web.Request, header: str) -> str:
    return request.headers.get(header, "").split(",", 1)[0].strip()


def client_of(peer: str, forwarded_for: Sequence[str], networks: Sequence[Network]) -> str | None:
    """The client address behind ``peer`` given its ``X-Forwarded-For`` entries (left to right),
    or None when ``peer`` is not a trusted proxy. A malformed entry ends the walk at the hop
    that wrote it."""
    def trusted(ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        return ip is not None and any(ip.version == n.version and ip in n for n in networks)

    ip = _address(peer)
    if not trusted(ip):
        return None
    client = str(ip)
    for entry in reversed(forwarded_for):
        hop = _address(entry)
        if hop is None:
            break
        client = str(hop)
        if not trusted(hop):
            break
    return client


def proxy_middlewares(trusted_proxies: Sequence[str], external_url: str | None) -> list[Middleware]:
    """The middleware to install first (outermost) for ``http.trusted_proxies``; [] when none is
    trusted. ``external_url`` (when set) keeps fixing the token realm."""
    if not trusted_proxies:
        return []
    networks = [ipaddress.ip_network(c, strict=False) for c in trusted_proxies]

    @web.middleware
    async def forwarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = request.remote
        hops = [e for v in request.headers.getall("X-Forwarded-For", ()) for e in v.split(",") if e.strip()]
        client = client_of(peer, hops, networks) if peer else None
        if client is None:
            return await handler(request)
        proto, host = _first(request, "X-Forwarded-Proto").lower(), _first(request, "X-Forwarded-Host")
        # aiohttp computes remote, scheme and host once per request (reify caches them here);
        # setting them on this request object, unlike request.clone(), is seen by everything that
        # holds it, the access logger included.
        cache = request._cache
        cache.pop("url", None), cache.pop("secure", None)
        cache["remote"] = client
        if proto in ("http", "https"):
            cache["scheme"] = proto
        if host and _HOST.fullmatch(host):
            cache["host"] = host
        if external_url is None and (proto or host):
            request[FORWARDED_BASE] = f"{request.scheme}://{request.host}"
        return await handler(request)

    return [forwarded]


def forwarded_url(request: web.Request, path: str) -> str | None:
    """``path`` under the scheme and host a trusted proxy forwarded, else None (then use
    ``http.external_url``)."""
    base = request.get(FORWARDED_BASE)
    return None if base is None else f"{base}{path}"

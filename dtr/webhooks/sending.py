"""Sending one webhook request: the endpoint's checks, the signature, the POST.

- An endpoint is an ``http``/``https`` URL. Its host's addresses must lie outside
  ``webhooks.deny_networks``: a literal address is refused when the webhook is made
  (``check_endpoint``) and again when sent; a name is checked on every address it resolves to
  when sent (``_GuardedResolver``: the addresses connected to are the ones checked, so a name
  re-pointed after the check, DNS rebinding, still cannot reach a denied network).
- ``tlsCert`` is a PEM CA bundle the endpoint's certificate must chain to.
- Redirects are not followed (a 3xx is a failed attempt); each attempt has ``webhooks.timeout``.
- Headers: ``X-Dtr-Event``, ``X-Dtr-Delivery``, ``X-Dtr-Timestamp`` (unix seconds) and, with a
  secret, ``X-Dtr-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import socket
import ssl
import time
from types import TracebackType

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from dtr.config.schema import WebhooksConfig

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_ENDPOINT = 2048
#: The part of a receiver's answer read (and dropped): enough to end the exchange cleanly.
_READ_LIMIT = 64 * 1024


class EndpointRefused(ValueError):
    """The endpoint is not one dtr sends to; the message says why."""


def networks(cfg: WebhooksConfig) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in cfg.deny_networks)


def denied(address: str, deny: tuple[Network, ...]) -> bool:
    """``address`` (an IP, maybe with an IPv6 zone) is in a denied network (IPv4-mapped IPv6 as IPv4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in n for n in deny if n.version == ip.version)


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]").split("%", 1)[0]))
    except ValueError:
        return None


def check_endpoint(endpoint: str, deny: tuple[Network, ...]) -> URL:
    """The endpoint as a URL; EndpointRefused if it is no http(s) URL with a host, or names a
    denied address literally."""
    if len(endpoint) > MAX_ENDPOINT:
        raise EndpointRefused(f"endpoint: longer than {MAX_ENDPOINT} characters")
    try:
        url = URL(endpoint)
        host = url.host
    except (ValueError, TypeError):
        raise EndpointRefused("endpoint: not a URL") from None
    if url.scheme not in ("http", "https") or not host:
        raise EndpointRefused("endpoint: only http:// and https:// URLs with a host are allowed")
    if url.user is not None or url.password is not None:
        raise EndpointRefused("endpoint: credentials in the URL are not allowed (use httpSecret)")
    literal = _literal(host)
    if literal is not None and denied(literal, deny):
        raise EndpointRefused(f"endpoint: the address {literal} is in a denied network (webhooks.deny_networks)")
    return url


def ssl_context(tls_cert: str | None) -> ssl.SSLContext | None:
    """A client context trusting the PEM CA bundle ``tls_cert`` (None: the system's CAs);
    EndpointRefused when it holds no usable certificate."""
    if not tls_cert:
        return None
    try:
        return ssl.create_default_context(cadata=tls_cert)
    except (ssl.SSLError, ValueError):
        raise EndpointRefused("tlsCert: not a PEM CA certificate (bundle)") from None


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """``X-Dtr-Signature``'s value: ``sha256=`` and the hex HMAC-SHA256 of ``<timestamp>.<body>``."""
    return "sha256=" + hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


class _GuardedResolver(AbstractResolver):
    """The default resolver, without the addresses in denied networks (OSError if none is left)."""

    def __init__(self, deny: tuple[Network, ...]) -> None:
        self._resolver = DefaultResolver()
        self._deny = deny

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        found = await self._resolver.resolve(host, port, family)
        allowed = [r for r in found if not denied(r["host"], self._deny)]
        if not allowed:
            raise OSError(f"{host} resolves only to denied addresses (webhooks.deny_networks)")
        return allowed

    async def close(self) -> None:
        await self._resolver.close()


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One attempt: the receiver's status code (None: no answer) or what went wrong, and how long."""

    status: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None


class Sender:
    """An HTTP client for deliveries (``async with``): ``send`` makes one attempt."""

    def __init__(self, cfg: WebhooksConfig) -> None:
        self._deny = networks(cfg)
        self._timeout = aiohttp.ClientTimeout(total=cfg.timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Sender:
        connector = aiohttp.TCPConnector(resolver=_GuardedResolver(self._deny), limit=0, force_close=True)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout, auto_decompress=False)
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, endpoint: str, body: bytes, event_type: str, delivery: str, secret: bytes | None,
                   tls_cert: str | None) -> Outcome:
        """POST ``body`` to ``endpoint``; never raises for the endpoint's faults (they are the outcome)."""
        assert self._session is not None, "use Sender in async with"
        start = time.monotonic()
        timestamp = int(time.time())
        headers = {"Content-Type": "application/json", "X-Dtr-Event": event_type, "X-Dtr-Delivery": delivery,
                   "X-Dtr-Timestamp": str(timestamp), "User-Agent": "dtr-webhooks"}
        if secret:
            headers["X-Dtr-Signature"] = sign(secret, timestamp, body)
        status: int | None = None
        error: str | None = None
        try:
            check_endpoint(endpoint, self._deny)
            context = ssl_context(tls_cert)
            async with self._session.post(endpoint, data=body, headers=headers, allow_redirects=False,
                                          ssl=context if context is not None else True) as r:
                status = r.status
                await r.content.read(_READ_LIMIT)
            if not 200 <= status < 300:
                error = f"the receiver answered {status}"
        except EndpointRefused as e:
            error = str(e)
        except TimeoutError:
            error = f"no answer within {self._timeout.total:g}s"
        except aiohttp.ClientConnectorError as e:  # its own text leaves out why (a denied address...)
            error = f"cannot connect to {e.host}:{e.port}: {e.os_error}"[:1000]
        except (aiohttp.ClientError, OSError, ValueError) as e:
            error = f"{type(e).__name__}: {e}"[:1000]
        return Outcome(status, error, int((time.monotonic() - start) * 1000))

"""The upstream registry of a cache namespace, over HTTP: GET and HEAD of manifests and blobs,
with Docker token auth (a ``Bearer`` challenge: a token from its realm for the repository's
``pull`` scope, asked with the basic credentials if any) or basic auth, and the setting's CA.

An answer dtr cannot use becomes the registry error the client gets: unreachable (refused,
timed out) and 5xx are 503 UNAVAILABLE, 429 is TOOMANYREQUESTS with the upstream's
``Retry-After``, 404 is the caller's ``missing`` code, a refused login is DENIED. Messages name
the upstream's URL, never its credentials.
"""

from __future__ import annotations

import re
import ssl
import time
import urllib.parse
from typing import Any

import aiohttp

from dtr.errors import ErrorCode
from dtr.pullcache.settings import CacheConfig
from dtr.registry.errors import RegistryError, codes

#: Connecting and each read: an upstream silent for longer counts as down.
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
#: Every manifest media type dtr stores, for the upstream's content negotiation.
ACCEPT = ", ".join((
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json"))
#: Tags asked per page of an upstream's tag list, and the most listed.
TAGS_PAGE = 1000
MAX_TAGS = 10000
_PARAM = re.compile(r'(\w+)="([^"]*)"')


class Upstream:
    """One cache namespace's upstream (a session of its own: its CA, its connection pool)."""

    def __init__(self, cfg: CacheConfig) -> None:
        self.cfg = cfg
        ctx: ssl.SSLContext | bool = True
        if cfg.ca:
            ctx = ssl.create_default_context(cadata=cfg.ca)
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT),
            connector=aiohttp.TCPConnector(ssl=ctx), auto_decompress=False)
        self._basic = aiohttp.BasicAuth(cfg.username, cfg.password or "") if cfg.username else None
        #: Per repository: the Authorization header that worked, and until when (monotonic).
        self._auth: dict[str, tuple[str, float]] = {}

    async def close(self) -> None:
        await self.session.close()

    def repository(self, repo: str) -> str:
        """The upstream's name of the cached repository ``repo`` (without the cache namespace)."""
        return f"{self.cfg.upstream_namespace}/{repo}" if self.cfg.upstream_namespace else repo

    async def fetch(self, method: str, repo: str, kind: str, reference: str, missing: ErrorCode
                    ) -> aiohttp.ClientResponse:
        """The upstream's 200 answer to ``method`` of ``/v2/<repo>/<kind>/<reference>`` (the caller
        releases it), or the RegistryError the client gets (see the module)."""
        name = self.repository(repo)
        headers = {"Accept": ACCEPT} if kind == "manifests" else {}
        return await self._send(method, f"{self.cfg.upstream}/v2/{name}/{kind}/{reference}", name, headers,
                                missing, reference)

    async def tags(self, repo: str) -> list[str]:
        """The tags of ``repo`` upstream (its pages followed, at most ``MAX_TAGS``), or the
        RegistryError the client gets (NAME_UNKNOWN when the upstream has no such repository)."""
        name = self.repository(repo)
        url: str | None = f"{self.cfg.upstream}/v2/{name}/tags/list?n={TAGS_PAGE}"
        found: list[str] = []
        while url is not None and len(found) < MAX_TAGS:
            async with await self._send("GET", url, name, {}, codes.NAME_UNKNOWN, name) as resp:
                try:
                    body: Any = await resp.json(content_type=None)
                except (ValueError, TimeoutError, aiohttp.ClientError) as e:
                    raise self._down(f"its tag list is not JSON: {e}") from None
                following = resp.links["next"].get("url") if "next" in resp.links else None
                url = urllib.parse.urljoin(url, str(following)) if following else None
            page = body.get("tags") if isinstance(body, dict) else None
            if page is None:
                break
            if not isinstance(page, list) or not all(isinstance(t, str) for t in page):
                raise self._down("its tag list is malformed")
            found.extend(page)
        return found[:MAX_TAGS]

    async def _send(self, method: str, url: str, name: str, headers: dict[str, str], missing: ErrorCode,
                    reference: str) -> aiohttp.ClientResponse:
        """``fetch`` of any URL of repository ``name`` upstream."""
        try:
            for attempt in range(2):
                auth = self._auth.get(name)
                if auth is not None and auth[1] > time.monotonic():
                    headers["Authorization"] = auth[0]
                resp = await self.session.request(method, url, headers=headers)
                if resp.status != 401 or attempt:
                    break
                challenge = resp.headers.get("WWW-Authenticate", "")
                resp.release()
                await self._login(name, challenge)
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise self._down(f"{type(e).__name__}: {e}") from None
        if resp.status == 200:
            return resp
        resp.release()
        raise self._refusal(resp, missing, reference)

    async def _login(self, name: str, challenge: str) -> None:
        """Answer a 401's challenge: a token for ``name`` (Bearer) or the basic credentials."""
        scheme = challenge.partition(" ")[0].lower()
        if scheme == "basic" and self._basic is not None:
            self._auth[name] = (self._basic.encode(), float("inf"))
            return
        if scheme != "bearer":
            raise RegistryError(codes.DENIED, message=f"the upstream {self.cfg.upstream} asks for credentials "
                                                      "the cache setting does not have")
        params = dict(_PARAM.findall(challenge))
        if "realm" not in params:
            raise self._down("a Bearer challenge without a realm")
        query = {"scope": f"repository:{name}:pull"}
        if "service" in params:
            query["service"] = params["service"]
        async with self.session.get(params["realm"], params=query, auth=self._basic) as resp:
            if resp.status in (401, 403):
                raise RegistryError(codes.DENIED, message=f"the upstream {self.cfg.upstream} refused the cache's "
                                                          "credentials")
            if resp.status != 200:
                raise self._refusal(resp, codes.DENIED, "token")
            body: Any = await resp.json(content_type=None)
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str):
            raise self._down("its token server answered no token")
        expires = body.get("expires_in", 60)
        self._auth[name] = (f"Bearer {token}",
                            time.monotonic() + max(float(expires) if isinstance(expires, int) else 60.0, 10) - 5)

    def _down(self, why: str) -> RegistryError:
        return RegistryError(codes.UNAVAILABLE, detail={"upstream": self.cfg.upstream},
                             message=f"the upstream registry {self.cfg.upstream} is unavailable ({why}); "
                                     "only content already cached can be pulled",
                             headers={"Retry-After": "30"})

    def _refusal(self, resp: aiohttp.ClientResponse, missing: ErrorCode, reference: str) -> RegistryError:
        status = resp.status
        if status == 404:
            return RegistryError(missing, detail={"reference": reference, "upstream": self.cfg.upstream},
                                 message=f"{missing.message} (nor to the upstream {self.cfg.upstream})")
        if status == 429:
            retry = resp.headers.get("Retry-After")
            return RegistryError(codes.TOOMANYREQUESTS, detail={"upstream": self.cfg.upstream},
                                 message=f"the upstream registry {self.cfg.upstream} is rate limiting this cache; "
                                         "try again later", headers={"Retry-After": retry} if retry else None)
        if status in (401, 403):
            return RegistryError(codes.DENIED, detail={"upstream": self.cfg.upstream, "status": status},
                                 message=f"the upstream {self.cfg.upstream} refused access ({status})")
        return self._down(f"it answered {status}")

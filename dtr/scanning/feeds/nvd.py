"""NVD's CVE API 2.0: summaries and CVSS as ``VulnInfo`` rows, fetched page by page.

A page is ``{resultsPerPage, startIndex, totalResults, vulnerabilities: [{cve: {id, published,
lastModified, descriptions, metrics: {cvssMetricV31, cvssMetricV30, cvssMetricV40, cvssMetricV2}}}]}``.
The first import reads every CVE; later ones only those modified since (``lastModStartDate``/
``lastModEndDate``, at most 120 days per query as the API requires). NVD asks clients to pause
between requests (6 s without an API key, well under 1 s with one); ``page_delay`` sets it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from dtr.scanning.feeds import FeedError, VulnInfo, parse_time, summary_of

PAGE_SIZE = 2000
#: The API's longest lastModStartDate..lastModEndDate window.
MAX_WINDOW = dt.timedelta(days=120)
#: Pauses between requests that keep within NVD's published rate limits.
DELAY_WITHOUT_KEY = 6.0
DELAY_WITH_KEY = 0.6
#: Tries per page (NVD answers 403/429/503 when overloaded or rate limited).
ATTEMPTS = 3
_METRICS = ("cvssMetricV31", "cvssMetricV30", "cvssMetricV40", "cvssMetricV2")


def _cvss(metrics: object) -> tuple[float | None, str]:
    """The preferred CVSS (v3.1, v3.0, v4.0, v2; NVD's own "Primary" entry before others)."""
    if not isinstance(metrics, dict):
        return None, ""
    for key in _METRICS:
        entries = [m for m in metrics.get(key) or () if isinstance(m, dict) and isinstance(m.get("cvssData"), dict)]
        entries.sort(key=lambda m: m.get("type") != "Primary")
        for m in entries:
            data = m["cvssData"]
            value = data.get("baseScore")
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value), str(data.get("vectorString") or "")
    return None, ""


def vuln_info(item: Any) -> VulnInfo | None:
    """One ``vulnerabilities[]`` entry, or None if it is no CVE entry."""
    cve = item.get("cve") if isinstance(item, dict) else None
    if not isinstance(cve, dict) or not isinstance(cve.get("id"), str):
        return None
    descriptions = [d for d in cve.get("descriptions") or () if isinstance(d, dict)]
    text = next((d.get("value") for d in descriptions if d.get("lang") == "en"), None)
    if text is None and descriptions:
        text = descriptions[0].get("value")
    score, vector = _cvss(cve.get("metrics"))
    return VulnInfo(id=cve["id"], summary=summary_of(text), cvss_score=score, cvss_vector=vector,
                    published_at=parse_time(cve.get("published")), modified_at=parse_time(cve.get("lastModified")))


def parse_page(data: bytes, *, name: str = "NVD page") -> tuple[int, int, list[VulnInfo]]:
    """(totalResults, entries on the page, the page's vulnerabilities) of one API response."""
    try:
        page = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise FeedError(f"{name}: malformed JSON: {e}") from None
    if not isinstance(page, dict) or not isinstance(page.get("totalResults"), int) \
            or not isinstance(page.get("vulnerabilities"), list):
        raise FeedError(f"{name}: not a CVE API 2.0 response (totalResults, vulnerabilities)")
    infos = [info for item in page["vulnerabilities"] if (info := vuln_info(item)) is not None]
    return page["totalResults"], len(page["vulnerabilities"]), infos


def windows(since: dt.datetime | None, until: dt.datetime) -> list[tuple[dt.datetime, dt.datetime] | None]:
    """The queries to make: one unbounded (None) on a first import, else ``since..until`` cut into
    windows of at most ``MAX_WINDOW``."""
    if since is None:
        return [None]
    out: list[tuple[dt.datetime, dt.datetime] | None] = []
    start = since
    while start < until:
        end = min(start + MAX_WINDOW, until)
        out.append((start, end))
        start = end
    return out


def _stamp(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000+00:00")


async def fetch(session: aiohttp.ClientSession, url: str, *, api_key: str | None, since: dt.datetime | None,
                until: dt.datetime, page_delay: float | None = None, page_size: int = PAGE_SIZE,
                time_limit: float = 600.0, log: Callable[[str], None] = lambda _: None
                ) -> AsyncIterator[list[VulnInfo]]:
    """Every page's vulnerabilities modified in ``since..until`` (all of them if ``since`` is None).
    Raises ``FeedError`` when a page cannot be had after ``ATTEMPTS`` tries or is malformed."""
    delay = page_delay if page_delay is not None else (DELAY_WITH_KEY if api_key else DELAY_WITHOUT_KEY)
    headers = {"apiKey": api_key} if api_key else {}
    first = True
    for window in windows(since, until):
        start = 0
        while True:
            params = {"startIndex": str(start), "resultsPerPage": str(page_size)}
            if window is not None:
                params |= {"lastModStartDate": _stamp(window[0]), "lastModEndDate": _stamp(window[1])}
            body = b""
            for attempt in range(ATTEMPTS):
                if not first:
                    await asyncio.sleep(delay * (attempt + 1))
                first = False
                try:
                    async with session.get(url, params=params, headers=headers,
                                           timeout=aiohttp.ClientTimeout(total=time_limit)) as resp:
                        if resp.status == 200:
                            body = await resp.read()
                            break
                        error = f"HTTP {resp.status}"
                except (aiohttp.ClientError, TimeoutError) as e:
                    error = str(e) or type(e).__name__
                log(f"NVD page at {start}: {error} (try {attempt + 1} of {ATTEMPTS})")
            else:
                raise FeedError(f"the page at startIndex {start} could not be fetched: {error}")
            total, count, infos = parse_page(body, name=f"the page at startIndex {start}")
            yield infos
            start += count
            if not count or start >= total:
                break

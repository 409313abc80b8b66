"""Pages from templates (``dtr/ui/templates``, Jinja2 with autoescaping on everything): the
environment, what every page's context has, the filters, and the error page.

Every value reaches HTML escaped; the one exception is ``markdown``, whose output is made by
markdown-it with raw HTML off (a description's ``<script>`` is text) and unsafe link schemes
(``javascript:``, ``vbscript:``, ``file:``, most ``data:``) refused.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web
from markdown_it import MarkdownIt
from markupsafe import Markup

from dtr.keys import CONFIG
from dtr.ui.security import visitor
from dtr.ui.static import StaticFiles

#: Raw HTML off: a description's tags are shown as text.
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
STATIC: web.AppKey[StaticFiles] = web.AppKey("ui_static", StaticFiles)
#: The navigation bar: (label, URL path, for site admins only); a page group adds itself here (``dtr.ui.views``).
NAV: web.AppKey[list[tuple[str, str, bool]]] = web.AppKey("ui_nav", list)


def markdown(text: str) -> Markup:
    """``text`` (Markdown) as safe HTML."""
    return Markup(_MARKDOWN.render(text or ""))  # markdown-it escapes text; raw HTML is off


def size(n: int | None) -> str:
    """Bytes for people: ``1.5 MB`` (powers of 1000, as docker shows them)."""
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def when(value: dt.datetime | str | None) -> str:
    """A time (or an ISO 8601 string, as the JSON shapes carry it) in UTC, to the minute."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return "" if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def setup_templates(app: web.Application, static: StaticFiles) -> None:
    env = aiohttp_jinja2.setup(app, loader=jinja2.PackageLoader("dtr.ui", "templates"),
                               autoescape=True, undefined=jinja2.StrictUndefined,
                               trim_blocks=True, lstrip_blocks=True)
    env.filters.update(markdown=markdown, size=size, when=when)
    env.globals["static"] = static.url
    app[STATIC] = static


def render(request: web.Request, template: str, context: dict[str, Any], status: int = 200) -> web.Response:
    """The page ``template`` with ``context`` and what every page shows (the visitor, the CSRF
    token, the navigation)."""
    v = visitor(request)
    base = {"visitor": v, "user": v.principal, "csrf": v.csrf, "path": request.path,
            "registry_host": urlsplit(request.config_dict[CONFIG].external_url).netloc or request.host}
    base["nav"] = [(label, href) for label, href, admin in request.app[NAV] if v.principal.is_admin or not admin]
    return aiohttp_jinja2.render_template(template, request, {**base, **context}, status=status)


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    titles = {400: "Bad request", 403: "Not allowed", 404: "Not found", 409: "Conflict", 429: "Too many requests"}
    return render(request, "error.html", {"title": titles.get(status, "Error"), "message": message}, status)

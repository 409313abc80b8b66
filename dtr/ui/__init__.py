"""The web admin UI at ``/``: server-rendered pages (Jinja2, autoescaped) from the same use cases
the JSON API calls, browser sessions in Postgres (``sessions``), CSRF and security headers on
every response (``security``), a vendored htmx for partial updates (``static``).

Pages live in ``dtr.ui.views``: one module per page group, each with a ``register(router)`` and
its navigation entry (``dtr.ui.views.PAGES``).
"""

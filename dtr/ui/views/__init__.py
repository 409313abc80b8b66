"""The UI's pages, one module per page group. Adding a page: a module here with a
``register(app)`` adding its routes (under ``/ui/``, handlers wrapped in ``common.signed_in``,
forms read with ``common.Form``, use cases called with ``common.accounts_caller``/``repo_caller``),
its templates extending ``base.html``, and a line in ``GROUPS`` (and ``NAV`` for the menu)."""

from __future__ import annotations

from dtr.ui.views import entry, events, repo_access, repo_hooks, repo_mirroring, repo_pruning, repositories, repository

#: Every page group; each one's ``register(app)`` adds its routes to the UI application.
GROUPS = (entry, repositories, repository, repo_access, repo_pruning, repo_hooks, repo_mirroring, events)
#: The navigation bar: (label, path).
NAV = [("Repositories", "/ui/repositories"), ("Events", "/ui/events")]

"""The UI's pages, one module per page group. Adding a page: a module here with a
``register(app)`` adding its routes (under ``/ui/``, handlers wrapped in ``common.signed_in``,
forms read with ``common.Form``, use cases called with ``common.accounts_caller``/``repo_caller``),
its templates extending ``base.html``, and a line in ``GROUPS`` (and ``NAV`` for the menu)."""

from __future__ import annotations

from dtr.ui.views import (
    admin_ldap,
    admin_orgs,
    admin_settings,
    admin_users,
    entry,
    events,
    image,
    jobs,
    repo_access,
    repo_hooks,
    repo_mirroring,
    repo_pruning,
    repositories,
    repository,
    schedules,
    storage,
    tokens,
)

#: Every page group; each one's ``register(app)`` adds its routes to the UI application.
GROUPS = (entry, repositories, repository, image, repo_access, repo_pruning, repo_hooks, repo_mirroring, events,
          schedules, jobs, storage, tokens, admin_settings, admin_users, admin_orgs, admin_ldap)
#: The navigation bar: (label, path, for site admins only).
NAV = [("Repositories", "/ui/repositories", False), ("Events", "/ui/events", True), ("Jobs", "/ui/jobs", True),
       ("Storage", "/ui/storage", True), ("Admin", "/ui/admin", True)]

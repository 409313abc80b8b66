"""The index ``dtr.images.search`` finds repositories by with their name's part after the
namespace (``acme/webapp`` by ``web``); prefix matches of whole names use the names' unique index."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Index, Table, func

from dtr.registry.models import Repository

repositories = cast(Table, Repository.__table__)

#: The name without its namespace (all after the first ``/``), collation C as the name's, so a
#: ``LIKE 'prefix%'`` is an index range.
repo_part = func.substr(repositories.c.name, func.strpos(repositories.c.name, "/") + 1)
Index("ix_repositories_repo_part", repo_part)

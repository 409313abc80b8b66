"""All models' metadata in one place, for migrations and the models-vs-migrations check."""

from __future__ import annotations

import dtr.registry.models  # noqa: F401  (registers the tables)
from dtr.db.base import Base

metadata = Base.metadata

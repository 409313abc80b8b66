"""All models' metadata in one place, for migrations and the models-vs-migrations check."""

from __future__ import annotations

# Imported for their side effect: each registers its tables on Base.metadata.
import dtr.audit.models
import dtr.auth.models
import dtr.cluster.models
import dtr.images.models
import dtr.jobs.models
import dtr.mirroring.models
import dtr.promotion.models
import dtr.pullcache.models
import dtr.registry.models
import dtr.scanning.models
import dtr.signatures.models
import dtr.trust.models
import dtr.ui.models
import dtr.webhooks.models  # noqa: F401
from dtr.db.base import Base

metadata = Base.metadata

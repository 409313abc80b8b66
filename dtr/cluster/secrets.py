"""Secrets every replica shares, kept in the database (``cluster_keys``) rather than in each
replica's data_dir: the first replica to need one stores it (``INSERT ... ON CONFLICT DO
NOTHING``) and every replica reads the one stored, so replicas with different data_dirs agree.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import cast

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from dtr.auth.tokens import load_key, new_key_pem
from dtr.cluster.models import ClusterKey
from dtr.config import ConfigError

log = logging.getLogger("dtr.cluster")

cluster_keys = cast(Table, ClusterKey.__table__)

#: The registry token signing key's name in ``cluster_keys``.
TOKEN_SIGNING_KEY = "token-signing"
#: Where dtr kept the token signing key before it moved into the database (under data_dir).
LEGACY_SIGNING_KEY = Path("auth") / "token-signing.pem"


async def shared_secret(engine: AsyncEngine, name: str, candidate: Callable[[], str]) -> str:
    """The secret ``name`` every replica shares; when the cluster has none yet, ``candidate()`` is
    offered and the first replica's offer wins (replicas starting at once all get the winner)."""
    query = select(cluster_keys.c.value).where(cluster_keys.c.name == name)
    async with engine.begin() as conn:
        found = (await conn.execute(query)).scalar()
        if found is not None:
            return str(found)
        await conn.execute(pg_insert(cluster_keys).values(name=name, value=candidate()).on_conflict_do_nothing())
        # Read committed: this statement sees the row of a replica whose insert beat ours.
        return str((await conn.execute(query)).scalar_one())


def _read_legacy(path: Path) -> str:
    """The PEM key in ``path``; ConfigError (one line) if it cannot be read or is no EC key."""
    try:
        pem = path.read_text()
        load_key(pem)
    except (OSError, UnicodeDecodeError, ValueError, TypeError) as e:
        raise ConfigError(f"{path}: cannot import the token signing key: {getattr(e, 'strerror', None) or e}"
                          ) from None
    return pem


async def token_signing_key(engine: AsyncEngine, data_dir: Path) -> ec.EllipticCurvePrivateKey:
    """The registry token signing key of the cluster. The first replica stores it: the key file an
    earlier dtr kept under its data_dir, if there is one (so the tokens it issued stay valid), else
    a new key. ConfigError if that file has to be imported but cannot be read."""
    legacy = data_dir / LEGACY_SIGNING_KEY
    pem = await shared_secret(engine, TOKEN_SIGNING_KEY,
                              lambda: _read_legacy(legacy) if legacy.exists() else new_key_pem())
    if legacy.exists():
        try:
            same = legacy.read_text() == pem
        except (OSError, UnicodeDecodeError):
            same = False
        if not same:
            log.warning("the token signing key in %s is not the cluster's (another replica stored its own "
                        "first): tokens signed with it are not accepted; the file is no longer used", legacy)
    return load_key(pem)

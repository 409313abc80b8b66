"""The server-held snapshot and timestamp keys (``trust_keys``), inside the caller's transaction.

Which key a GUN uses for a role: the newest held key its current root lists; before any root,
the newest key handed out (so repeated GETs of ``<role>.key`` answer the same key, where
notary-server made a new one each time). A rotation (``POST <role>.key``) adds a newer key; it
is used once a root listing it is published. Private halves are sealed (``dtr.trust.sealing``)
under a context naming GUN, role and key id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import cast

from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dtr.trust.errors import METADATA_NOT_FOUND, UNKNOWN, TrustError
from dtr.trust.models import TrustKey
from dtr.trust.sealing import Sealer, SealingError
from dtr.trust.tufkeys import PublicKey, ServerKey, generate_server_key, load_server_key
from dtr.trust.validate import current_root_keys

log = logging.getLogger("dtr.trust")

trust_keys = cast(Table, TrustKey.__table__)

#: The roles whose keys the server holds.
SERVER_ROLES = ("snapshot", "timestamp")


def _context(gun: str, role: str, key_id: str) -> bytes:
    return f"dtr-trust-key\0{gun}\0{role}\0{key_id}".encode()


def _public(row: object) -> PublicKey:
    r = cast(TrustKey, row)
    return PublicKey(keytype=r.algorithm, public=r.public, key_id=r.key_id)


class HeldKeys:
    """The key rows of every GUN; ``sealer`` gives the sealing key (loaded on first use)."""

    def __init__(self, sealer: Callable[[], Sealer]) -> None:
        self._sealer = sealer

    async def create(self, conn: AsyncConnection, gun: str, repository: str, role: str) -> PublicKey:
        """A new key for ``role`` of ``gun``, its private half sealed."""
        key = generate_server_key()
        pub = key.public
        sealed = self._sealer().seal(key.private_der(), _context(gun, role, pub.key_id))
        await conn.execute(insert(trust_keys).values(
            gun=gun, repository=repository, role=role, key_id=pub.key_id, algorithm=pub.keytype,
            public=pub.public, private_sealed=sealed))
        return pub

    async def _rows(self, conn: AsyncConnection, gun: str, role: str, key_ids: set[str] | None) -> list[object]:
        q = select(trust_keys).where(trust_keys.c.gun == gun, trust_keys.c.role == role)
        if key_ids is not None:
            q = q.where(trust_keys.c.key_id.in_(sorted(key_ids)))
        return list((await conn.execute(q.order_by(trust_keys.c.id.desc()).limit(1))).all())

    async def public_for(self, conn: AsyncConnection, gun: str, repository: str, role: str,
                         root: bytes | None) -> PublicKey:
        """The key ``GET <role>.key`` answers: the held key ``root`` lists (404 when it lists none
        the server holds: the role is the client's); without a root, the newest handed out, made
        when there is none. The caller holds the GUN's lock."""
        if root is not None:
            ids = {k.key_id for k in current_root_keys(root, role)}
            rows = await self._rows(conn, gun, role, ids)
            if not rows:
                raise TrustError(METADATA_NOT_FOUND, f"the server holds no {role} key of this repository's root")
            return _public(rows[0])
        rows = await self._rows(conn, gun, role, None)
        if rows:
            return _public(rows[0])
        return await self.create(conn, gun, repository, role)

    async def signer_for(self, conn: AsyncConnection, gun: str, role: str, root: bytes) -> ServerKey | None:
        """The held key ``root`` lists for ``role``, unsealed, or None when the server holds none."""
        ids = {k.key_id for k in current_root_keys(root, role)}
        rows = await self._rows(conn, gun, role, ids)
        if not rows:
            return None
        row = cast(TrustKey, rows[0])
        try:
            der = self._sealer().unseal(row.private_sealed, _context(gun, role, row.key_id))
        except SealingError as e:
            log.error("cannot unseal the %s key of %s: %s", role, gun, e)
            raise TrustError(UNKNOWN, f"the server's {role} key cannot be unsealed: {e}") from None
        return load_server_key(row.algorithm, row.public, der)

    async def delete(self, conn: AsyncConnection, gun: str) -> None:
        await conn.execute(trust_keys.delete().where(trust_keys.c.gun == gun))

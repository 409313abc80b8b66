"""The server-held snapshot and timestamp keys (``trust_keys``), inside the caller's transaction
(an asyncpg connection: ``dtr.trust.store`` runs its hot paths on the driver).

Which key a GUN uses for a role: the newest held key its current root lists; before any root,
the newest key handed out (so repeated GETs of ``<role>.key`` answer the same key, where
notary-server made a new one each time). The first ask of either role hands out a key of each
(a client publishing a new repository asks for both: one commit instead of two; a key its root
does not list is never used). A rotation (``POST <role>.key``) adds a newer key; it
is used once a root listing it is published. Private halves are sealed (``dtr.trust.sealing``)
under a context naming GUN, role and key id. A key unsealed once is kept in memory (a bounded
LRU keyed by its row's context and sealed bytes, which never change: nothing to keep coherent),
so an update does not unseal and parse the same keys again.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import asyncpg

from dtr.trust.errors import METADATA_NOT_FOUND, UNKNOWN, TrustError
from dtr.trust.sealing import Sealer, SealingError
from dtr.trust.tufkeys import PublicKey, ServerKey, generate_server_key, load_server_key
from dtr.trust.validate import current_root_keys

log = logging.getLogger("dtr.trust")

#: The roles whose keys the server holds.
SERVER_ROLES = ("snapshot", "timestamp")
#: Unsealed keys kept in memory.
MAX_UNSEALED = 4096

_INSERT = ("INSERT INTO trust_keys (gun, repository, role, key_id, algorithm, public, private_sealed) "
           "VALUES ($1, $2, $3, $4, $5, $6, $7)")
#: The newest of a role's keys; ``$3``: only those among these key ids (NULL: any).
_NEWEST = ("SELECT key_id, algorithm, public FROM trust_keys WHERE gun = $1 AND role = $2 "
           "AND ($3::text[] IS NULL OR key_id = ANY($3::text[])) ORDER BY id DESC LIMIT 1")
#: The newest key of each role.
_EACH_ROLE = ("SELECT DISTINCT ON (role) role, key_id, algorithm, public FROM trust_keys WHERE gun = $1 "
              "ORDER BY role, id DESC")
_LISTED = ("SELECT role, key_id, algorithm, public, private_sealed FROM trust_keys "
           "WHERE gun = $1 AND key_id = ANY($2::text[]) ORDER BY id DESC")


def _context(gun: str, role: str, key_id: str) -> bytes:
    return f"dtr-trust-key\0{gun}\0{role}\0{key_id}".encode()


def _public(row: Any) -> PublicKey:
    return PublicKey(keytype=row["algorithm"], public=row["public"], key_id=row["key_id"])


class HeldKeys:
    """The key rows of every GUN; ``sealer`` gives the sealing key (loaded on first use)."""

    def __init__(self, sealer: Callable[[], Sealer]) -> None:
        self._sealer = sealer
        self._unsealed: OrderedDict[tuple[bytes, bytes], ServerKey] = OrderedDict()

    async def create(self, conn: asyncpg.Connection, gun: str, repository: str, role: str) -> PublicKey:
        """A new key for ``role`` of ``gun``, its private half sealed."""
        return (await self._create(conn, gun, repository, [role]))[role]

    async def _create(self, conn: asyncpg.Connection, gun: str, repository: str,
                      roles: list[str]) -> dict[str, PublicKey]:
        """A new key for each of ``roles``, stored in one round trip."""
        made = []
        for role in roles:
            key = generate_server_key()
            context = _context(gun, role, key.public.key_id)
            made.append((role, key, context, self._sealer().seal(key.private_der(), context)))
        await conn.executemany(_INSERT, [(gun, repository, role, key.public.key_id, key.public.keytype,
                                          key.public.public, sealed) for role, key, _, sealed in made])
        for _, key, context, sealed in made:  # the update that follows signs with them: no unsealing
            self._keep(context, sealed, key)
        return {role: key.public for role, key, _, _ in made}

    @staticmethod
    async def listed(conn: asyncpg.Connection, gun: str, role: str, root: bytes) -> PublicKey:
        """The key ``GET <role>.key`` answers once a root is published: the held key ``root``
        lists (404 when it lists none the server holds: the role is the client's)."""
        ids = sorted({k.key_id for k in current_root_keys(root, role)})
        row = await conn.fetchrow(_NEWEST, gun, role, ids)
        if row is None:
            raise TrustError(METADATA_NOT_FOUND, f"the server holds no {role} key of this repository's root")
        return _public(row)

    @staticmethod
    async def newest(conn: asyncpg.Connection, gun: str, role: str) -> PublicKey | None:
        """The newest key handed out for ``role``, if any."""
        row = await conn.fetchrow(_NEWEST, gun, role, None)
        return None if row is None else _public(row)

    async def handed_out(self, conn: asyncpg.Connection, gun: str, repository: str, role: str) -> PublicKey:
        """The key ``GET <role>.key`` answers before any root: the newest handed out; when there
        is none, one is made for it and for each server role that has none. The caller holds the
        GUN's lock."""
        rows = {row["role"]: row for row in await conn.fetch(_EACH_ROLE, gun)}
        if role in rows:
            return _public(rows[role])
        return (await self._create(conn, gun, repository, [r for r in SERVER_ROLES if r not in rows]))[role]

    async def signers_for(self, conn: asyncpg.Connection, gun: str, root: bytes) -> Mapping[str, ServerKey]:
        """role -> the newest held key ``root`` lists for it, unsealed (the roles the server holds
        no listed key of are absent), in one query."""
        listed = {role: {k.key_id for k in current_root_keys(root, role)} for role in SERVER_ROLES}
        ids = set().union(*listed.values())
        if not ids:
            return {}
        found: dict[str, ServerKey] = {}
        for row in await conn.fetch(_LISTED, gun, sorted(ids)):
            role = row["role"]
            if row["key_id"] in listed.get(role, ()) and role not in found:
                found[role] = self._unseal(gun, row)
        return found

    def _unseal(self, gun: str, row: Any) -> ServerKey:
        role, key_id, sealed = row["role"], row["key_id"], row["private_sealed"]
        context = _context(gun, role, key_id)
        key = self._unsealed.get((context, sealed))
        if key is not None:
            self._unsealed.move_to_end((context, sealed))
            return key
        try:
            der = self._sealer().unseal(sealed, context)
        except SealingError as e:
            log.error("cannot unseal the %s key of %s: %s", role, gun, e)
            raise TrustError(UNKNOWN, f"the server's {role} key cannot be unsealed: {e}") from None
        key = load_server_key(row["algorithm"], row["public"], der)
        self._keep(context, sealed, key)
        return key

    def _keep(self, context: bytes, sealed: bytes, key: ServerKey) -> None:
        self._unsealed[context, sealed] = key
        if len(self._unsealed) > MAX_UNSEALED:
            self._unsealed.popitem(last=False)

"""The built-in Notary (Docker Content Trust, TUF metadata) served on the registry's own port.

- ``canonical``: canonical JSON (the bytes TUF signs).
- ``tufkeys``: TUF key objects, key ids, signature checks.
- ``certs``: the root certificate rules (CN = GUN, expiry, no SHA-1, RSA >= 2048, leaf only).
- ``metadata``: reading a role file strictly, times, role names, threshold signature checks.
- ``delegations``: the targets role and its delegations, their paths, the walk to a delegation.
- ``validate``: an update's validation, notary-server's table; pure.
- ``serverroles``: the snapshot and timestamp the server makes and signs with its held keys.
- ``models``: ``trust_files`` (every version of every role file, the exact uploaded bytes),
  ``trust_keys`` (server-held keys, sealed), ``trust_changes`` (the change feed).
- ``sealing``: the key that seals server-held private keys at rest.
- ``store``: the Postgres side: current/by-checksum/by-version reads, atomic updates, keys, feed.
- ``views``: the ``/v2/<gun>/_trust/...`` routes of the registry's route table.
- ``signers``: who signed which tag, from a repository's current trust data (API, policy).

A GUN is the full name clients use, the registry host included (``127.0.0.1:5000/ns/repo``);
``gun_repository`` gives the repository it belongs to.
"""

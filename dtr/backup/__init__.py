"""``dtr backup`` and ``dtr restore``: a consistent snapshot of dtr's metadata (a ``pg_dump``), its
config and key material, optionally the blobs of a filesystem storage, in one tar stream, encrypted
with a passphrase when one is given (see ``docs/backup.md``)."""

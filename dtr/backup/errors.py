"""The one error of backup and restore."""

from __future__ import annotations


class BackupError(Exception):
    """A backup or restore that cannot go on: the message is one readable line (exit status 1)."""

"""Local passwords: argon2id hashes and the minimum password policy."""

from __future__ import annotations

import asyncio
import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

#: argon2id with OWASP's minimum (19 MiB, 2 passes): strong, and cheap enough for 2 cores.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


@functools.cache
def _dummy_hash() -> str:
    """Verified against when an account does not exist, so that the answer takes as long (made on
    first use: hashing costs every process that imports this ~70 ms, most never need it)."""
    return _HASHER.hash(secrets.token_urlsafe(16))


class PasswordPolicyError(ValueError):
    """The password breaks the policy; the message says how."""


def check_policy(password: str, username: str, min_length: int) -> None:
    """Raise PasswordPolicyError unless ``password`` is long enough, varied, and not the username."""
    if len(password) < min_length:
        raise PasswordPolicyError(f"the password must be at least {min_length} characters long")
    if len(password) > 1024:
        raise PasswordPolicyError("the password must be at most 1024 characters long")
    if password.lower() == username.lower():
        raise PasswordPolicyError("the password must differ from the username")
    if len(set(password)) < 4:
        raise PasswordPolicyError("the password must use at least 4 different characters")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True if ``password`` matches ``stored`` (constant work when ``stored`` is None)."""
    try:
        return _HASHER.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def hash_password_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def verify_password_async(stored: str | None, password: str) -> bool:
    return await asyncio.to_thread(verify_password, stored, password)


def random_password() -> str:
    return secrets.token_urlsafe(18)

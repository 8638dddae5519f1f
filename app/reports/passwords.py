"""Password hashing with argon2id (memory-hard), via argon2-cffi.

Parameters follow RFC 9106's second recommended option (64 MiB, 3 passes); tests may pass cheaper ones.
`needs_rehash` lets a login quietly upgrade old hashes when the parameters change.
"""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

DEFAULT_HASHER = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=1, type=Type.ID)
MIN_PASSWORD_LENGTH = 8


class WeakPasswordError(ValueError):
    """A new password that does not meet the minimum policy."""


def check_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPasswordError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if password.strip() != password:
        raise WeakPasswordError("password must not start or end with whitespace")


def hash_password(password: str, hasher: PasswordHasher = DEFAULT_HASHER) -> str:
    return hasher.hash(password)


def verify_password(stored_hash: str, password: str, hasher: PasswordHasher = DEFAULT_HASHER) -> bool:
    """True when `password` matches; a corrupt stored hash counts as a mismatch, never a crash."""
    try:
        return hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str, hasher: PasswordHasher = DEFAULT_HASHER) -> bool:
    try:
        return hasher.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True

"""Secrets and their digests: argon2id password hashes, random tokens, SHA-256.

What Soi keeps of a secret is decided here: an argon2id hash of a password (slow on
purpose, salted), a SHA-256 digest of a random token or session id (they carry 256
bits of randomness, so a fast digest cannot be guessed back). The store only holds
what these functions return.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from soi.auth.errors import PasswordPolicyError

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "TOKEN_PREFIX",
    "digest",
    "hash_password",
    "new_secret",
    "new_token",
    "password_needs_rehash",
    "same_digest",
    "verify_password",
]

#: Shortest password accepted.
MIN_PASSWORD_LENGTH = 10
#: Longest password accepted (argon2 would hash more; a bound keeps requests small).
MAX_PASSWORD_LENGTH = 1024
#: What every API token starts with, so that a leaked one is recognised in logs and scans.
TOKEN_PREFIX = "soi_"  # noqa: S105 - a public prefix, not a secret

# argon2-cffi's defaults: argon2id with RFC 9106's low-memory profile (t=3, m=64 MiB, p=4).
_HASHER = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """A hash verified against when the user does not exist, so unknown names take as long."""
    return _HASHER.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """Return the argon2id hash of ``password``.

    Raises
    ------
    PasswordPolicyError
        The password is shorter than :data:`MIN_PASSWORD_LENGTH` or longer than
        :data:`MAX_PASSWORD_LENGTH` characters.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordPolicyError(
            f"a password has at least {MIN_PASSWORD_LENGTH} characters, {len(password)} are given"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordPolicyError(
            f"a password has at most {MAX_PASSWORD_LENGTH} characters, {len(password)} are given"
        )
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``.

    With no hash (an unknown user, a service account) a dummy hash is verified so the
    answer takes as long, and is ``False``.
    """
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        if password_hash is None:
            _HASHER.verify(_dummy_hash(), password)
            return False
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    """Whether a hash was made with weaker parameters than today's."""
    try:
        return _HASHER.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


def new_token() -> str:
    """Return a new API token: :data:`TOKEN_PREFIX` and 256 random bits, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_secret() -> str:
    """Return 256 random bits, URL-safe: a session id or a CSRF token."""
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """Return the SHA-256 of ``secret`` in lower-case hex: what the store keeps."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def same_digest(secret: str, expected_digest: str) -> bool:
    """Whether ``secret``'s digest is ``expected_digest``, compared in constant time."""
    return hmac.compare_digest(digest(secret), expected_digest)

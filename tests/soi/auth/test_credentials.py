"""Passwords (argon2id), tokens and their digests."""

from __future__ import annotations

import hashlib

import pytest
from argon2 import PasswordHasher

from soi.auth import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    TOKEN_PREFIX,
    PasswordPolicyError,
    digest,
    hash_password,
    new_secret,
    new_token,
    password_needs_rehash,
    same_digest,
    verify_password,
)

PASSWORD = "mật khẩu đủ dài 2026"


class TestPasswords:
    def test_hash_is_argon2id_salted_and_verifies(self) -> None:
        first, second = hash_password(PASSWORD), hash_password(PASSWORD)
        assert first.startswith("$argon2id$")
        assert first != second
        assert PASSWORD not in first
        assert verify_password(first, PASSWORD)
        assert verify_password(second, PASSWORD)
        assert not verify_password(first, PASSWORD + "!")
        assert not password_needs_rehash(first)

    def test_no_hash_or_a_malformed_one_never_verifies(self) -> None:
        assert not verify_password(None, PASSWORD)
        assert not verify_password("not-a-hash", PASSWORD)
        assert not verify_password(hash_password(PASSWORD), "x" * (MAX_PASSWORD_LENGTH + 1))

    def test_weaker_hashes_need_rehash(self) -> None:
        weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
        assert verify_password(weak, PASSWORD)
        assert password_needs_rehash(weak)
        assert password_needs_rehash("not-a-hash")

    @pytest.mark.parametrize(
        "password", ["x" * (MIN_PASSWORD_LENGTH - 1), "", "y" * (MAX_PASSWORD_LENGTH + 1)]
    )
    def test_length_policy(self, password: str) -> None:
        with pytest.raises(PasswordPolicyError, match="characters"):
            hash_password(password)
        assert issubclass(PasswordPolicyError, ValueError)


class TestTokens:
    def test_tokens_are_prefixed_random_and_kept_as_sha256(self) -> None:
        tokens = {new_token() for _ in range(100)}
        assert len(tokens) == 100
        token = tokens.pop()
        assert token.startswith(TOKEN_PREFIX)
        assert len(token) >= len(TOKEN_PREFIX) + 43  # 256 bits, URL-safe base64
        assert digest(token) == hashlib.sha256(token.encode()).hexdigest()
        assert same_digest(token, digest(token))
        assert not same_digest(token + "x", digest(token))
        assert new_secret() != new_secret()

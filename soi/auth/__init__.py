"""Who may do what: callers and their scope, passwords, tokens, sign-in limits."""

from soi.auth.caller import Caller, caller_for_user, local_caller, visible_facilities
from soi.auth.credentials import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    TOKEN_PREFIX,
    digest,
    hash_password,
    new_secret,
    new_token,
    password_needs_rehash,
    same_digest,
    verify_password,
)
from soi.auth.errors import (
    AuthError,
    CsrfError,
    ForbiddenError,
    InvalidCredentialsError,
    InvalidSessionError,
    InvalidTokenError,
    NotAuthenticatedError,
    PasswordPolicyError,
    TooManyAttemptsError,
)
from soi.auth.ratelimit import LoginLimiter

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "TOKEN_PREFIX",
    "AuthError",
    "Caller",
    "CsrfError",
    "ForbiddenError",
    "InvalidCredentialsError",
    "InvalidSessionError",
    "InvalidTokenError",
    "LoginLimiter",
    "NotAuthenticatedError",
    "PasswordPolicyError",
    "TooManyAttemptsError",
    "caller_for_user",
    "digest",
    "hash_password",
    "local_caller",
    "new_secret",
    "new_token",
    "password_needs_rehash",
    "same_digest",
    "verify_password",
    "visible_facilities",
]

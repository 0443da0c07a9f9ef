"""Errors of signing in and of credentials."""

from __future__ import annotations

__all__ = [
    "AuthError",
    "CsrfError",
    "ForbiddenError",
    "InvalidCredentialsError",
    "InvalidSessionError",
    "InvalidTokenError",
    "NotAuthenticatedError",
    "PasswordPolicyError",
    "TooManyAttemptsError",
]


class AuthError(Exception):
    """Base class of every sign-in and credential error."""


class NotAuthenticatedError(AuthError):
    """A request carries no credentials."""


class InvalidCredentialsError(AuthError):
    """A username and password do not sign anyone in (unknown user, wrong password,
    service account, or disabled account)."""


class InvalidTokenError(AuthError):
    """A bearer token is unknown, expired, revoked, or its user is disabled.

    Parameters
    ----------
    reason:
        ``unknown``, ``expired``, ``revoked``, ``disabled`` or ``malformed``.
    message:
        What is wrong, for people.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class InvalidSessionError(AuthError):
    """A session cookie is unknown, ended, expired, or its user is disabled."""


class CsrfError(AuthError):
    """A request that changes something with a session cookie lacks the session's
    CSRF token."""


class ForbiddenError(AuthError):
    """The caller is known but their role may not do this."""


class TooManyAttemptsError(AuthError):
    """Sign-in is refused for a while after too many failures.

    Parameters
    ----------
    retry_after:
        Seconds until a new attempt is considered.
    """

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins: try again in {retry_after} s")
        self.retry_after = retry_after


class PasswordPolicyError(AuthError, ValueError):
    """A new password is too short or too long."""
